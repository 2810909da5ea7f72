package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/snapfs/snapfs/objstore"
)

// Object-store members on the command line: --member s3://BUCKET/PREFIX,
// and after it --s3-endpoint URL, --s3-region R, --s3-addressing
// path|virtual-host. Each of those flags applies to the s3:// members
// given since its previous occurrence, so two members on two services
// each get their own endpoint:
//
//	--member s3://a/p --s3-endpoint https://one --member s3://b/p --s3-endpoint https://two

// addS3Flags declares the object-store flags (their values are read in
// order by objectConfigs).
func addS3Flags(flags *pflag.FlagSet) {
	flags.StringArray("s3-endpoint", nil, "endpoint of the s3:// members given before it (default: AWS S3)")
	flags.StringArray("s3-region", nil, "signing region of the s3:// members given before it (default us-east-1)")
	flags.StringArray("s3-addressing", nil, "path or virtual-host, for the s3:// members given before it (default: path unless the endpoint is AWS)")
}

// objectConfigs pairs the s3:// members of args with the object-store
// flags that follow them. A flag with no s3:// member before it is an
// error, as is an addressing other than path or virtual-host.
func objectConfigs(args []string) (map[string]objstore.Config, error) {
	cfgs := map[string]objstore.Config{}
	pending := map[string][]string{} // flag -> s3 members given since its last use
	flagNames := []string{"s3-endpoint", "s3-region", "s3-addressing"}
	for i := 0; i < len(args); i++ {
		name, val, ok := flagValue(args, &i)
		if !ok {
			continue
		}
		if name == "member" {
			if isObjectArg(val) {
				cfgs[val] = objstore.Config{URL: val}
				for _, f := range flagNames {
					pending[f] = append(pending[f], val)
				}
			}
			continue
		}
		if !strings.HasPrefix(name, "s3-") {
			continue
		}
		if len(pending[name]) == 0 {
			return nil, fmt.Errorf("--%s %s follows no s3:// member: give it after the s3://BUCKET/PREFIX member it applies to", name, val)
		}
		if name == "s3-addressing" && val != "path" && val != "virtual-host" {
			return nil, fmt.Errorf("--s3-addressing %q: want path or virtual-host", val)
		}
		for _, url := range pending[name] {
			c := cfgs[url]
			switch name {
			case "s3-endpoint":
				c.Endpoint = val
			case "s3-region":
				c.Region = val
			case "s3-addressing":
				c.Addressing = val
			}
			cfgs[url] = c
		}
		pending[name] = nil
	}
	return cfgs, nil
}

// flagValue returns the long flag at args[*i] and its value (from
// --name=value, or the next argument, which it consumes).
func flagValue(args []string, i *int) (name, val string, ok bool) {
	a := args[*i]
	if a == "--" {
		*i = len(args)
		return "", "", false
	}
	name, ok = strings.CutPrefix(a, "--")
	if !ok {
		return "", "", false
	}
	if n, v, eq := strings.Cut(name, "="); eq {
		return n, v, true
	}
	if name != "member" && !strings.HasPrefix(name, "s3-") || *i+1 >= len(args) {
		return name, "", false
	}
	*i++
	return name, args[*i], true
}

// isObjectArg reports whether a --member value names an object store
// (any scheme: pool.Create refuses the ones it does not know).
func isObjectArg(s string) bool { return strings.Contains(s, "://") }

// memberArgs makes directory members absolute and leaves URLs as given.
func memberArgs(members []string) ([]string, error) {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if isObjectArg(m) {
			out = append(out, m)
			continue
		}
		abs, err := filepath.Abs(m)
		if err != nil {
			return nil, err
		}
		out = append(out, abs)
	}
	return out, nil
}

// defaultCacheSize is the read cache's size when --cache-dir is given
// without --cache-size.
const defaultCacheSize = 1 << 30

// cacheArgs checks mount's --cache-dir and --cache-size: a size needs a
// directory, and must be a positive size.
func cacheArgs(dir, size string) (string, int64, error) {
	if dir == "" {
		if size != "" {
			return "", 0, fmt.Errorf("--cache-size %s needs --cache-dir DIR", size)
		}
		return "", 0, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", 0, err
	}
	n := int64(defaultCacheSize)
	if size != "" {
		u, err := parseSize("--cache-size", size)
		if err != nil {
			return "", 0, err
		}
		if n = int64(u); n <= 0 {
			return "", 0, fmt.Errorf("--cache-size %s: must be more than 0", size)
		}
	}
	return abs, n, nil
}

// asyncMembers returns the s3:// members marked --async: each --async
// applies to the --member given just before it, which must be an
// s3:// member.
func asyncMembers(args []string) (map[string]bool, error) {
	out := map[string]bool{}
	last := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		switch {
		case a == "--member" && i+1 < len(args):
			i++
			last = args[i]
		case strings.HasPrefix(a, "--member="):
			last = strings.TrimPrefix(a, "--member=")
		case a == "--async" || a == "--async=true":
			if last == "" {
				return nil, fmt.Errorf("--async follows no --member: give it after the s3://BUCKET/PREFIX member it applies to")
			}
			if !isObjectArg(last) {
				return nil, fmt.Errorf("--async %s: only an s3:// member can be an asynchronous replica", last)
			}
			out[last] = true
		}
	}
	return out, nil
}

// sealIntervalEnv overrides how long an object-store member's stage pack
// waits for more records before it is sealed (pool.OpenOptions.
// SealInterval), for tests.
const sealIntervalEnv = "SNAPFS_SEAL_INTERVAL"

// asyncBacklogArg parses mount's --async-backlog ("" = the default).
func asyncBacklogArg(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	u, err := parseSize("--async-backlog", s)
	if err != nil {
		return 0, err
	}
	if int64(u) < 1<<20 {
		return 0, fmt.Errorf("--async-backlog %s: must be at least 1MiB", s)
	}
	return int64(u), nil
}
