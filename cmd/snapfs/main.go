// Command snapfs manages snapfs pools and volumes and serves them over FUSE.
//
//	snapfs pool create POOLDIR --member DIR [--member DIR]... [--copies N] [--chunk-size SIZE]
//	snapfs -p POOLDIR pool status [-v] [--json]
//	snapfs -p POOLDIR pool scrub [--no-repair] [--restart] [--rate SIZE] [--json]
//	snapfs -p POOLDIR pool add-member DIR [--domain LABEL]
//	snapfs -p POOLDIR pool remove-member DIR|s3://BUCKET/PREFIX [--json]
//	snapfs -p POOLDIR pool set copies N
//	snapfs -p POOLDIR pool repack [--json]
//	snapfs pool import POOLDIR --member DIR [--member DIR]...
//	snapfs -p POOLDIR fsck [--repair] [--json]
//	snapfs -p POOLDIR volume create VOL [--quota SIZE] [--chunk-size SIZE]
//	snapfs -p POOLDIR volume list [--json]
//	snapfs -p POOLDIR snapshot create DATASET [DATASET...] NAME
//	snapfs -p POOLDIR snapshot list DATASET [--json]
//	snapfs -p POOLDIR snapshot destroy DATASET@NAME
//	snapfs -p POOLDIR snapshot rename DATASET@OLD NEW
//	snapfs -p POOLDIR snapshot rollback DATASET@NAME [-r|--recursive]
//	snapfs -p POOLDIR branch create DATASET@SNAP NAME
//	snapfs -p POOLDIR branch destroy VOL/BRANCH[/...] [--recursive]
//	snapfs -p POOLDIR mount DATASET MOUNTPOINT [-d] [--allow-other] [--writeback-cache] [-o OPTS] [--debug] [--metrics ADDR]
//	snapfs umount MOUNTPOINT
//	snapfs -p POOLDIR sync
//	snapfs -p POOLDIR debug stacks
//	snapfs version
//	snapfs -p POOLDIR schedule set DATASET TIER=COUNT...
//	snapfs -p POOLDIR schedule list [DATASET] [--json]
//	snapfs -p POOLDIR schedule clear DATASET
//	snapfs -p POOLDIR snapshot hold DATASET@SNAP TAG
//	snapfs -p POOLDIR snapshot release DATASET@SNAP TAG
//	snapfs -p POOLDIR snapshot holds DATASET@SNAP [--json]
//	snapfs -p POOLDIR volume destroy VOL [-r|--recursive]
//	snapfs -p POOLDIR volume rename VOL NEW
//	snapfs -p POOLDIR volume set VOL quota=SIZE|none [chunksize=SIZE]
//	snapfs -p POOLDIR volume get VOL [--json]
//	snapfs POOLDIR#DATASET MOUNTPOINT [-o OPTS]   (as mount.fuse3 runs it; see mounthelper.go)
//	snapfs -p POOLDIR send [-i BASE | -I BASE] DATASET@SNAP [--compress] [--json] > STREAM
//	snapfs -p POOLDIR send --resume TOKEN > STREAM
//	snapfs -p POOLDIR receive VOL [-F] [--json] < STREAM
//	snapfs -p POOLDIR receive --resume-token VOL | --abort VOL
//	snapfs -p POOLDIR diff DATASET@SNAP [DATASET@SNAP | DATASET] [--json]
//	snapfs versions PATH [--json]
//
// A DATASET is a volume VOL or a branch VOL/BRANCH[/BRANCH...]: branch B
// of dataset D is D/B, with snapshots and branches of its own. branch
// destroy also accepts DATASET@BRANCH.
//
// The pool directory may also come from $SNAPFS_POOL. Every error is one
// line "snapfs: <message>" on stderr and exit status 1.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dustin/go-humanize"
)

// globals are the flags that come before the command.
type globals struct {
	pool string // -p, --pool; default $SNAPFS_POOL
}

// command is one verb (or verb group and verb) of the CLI.
type command struct {
	name  string // as typed: "pool create"
	usage string // arguments, for help
	run   func(g *globals, args []string) error
}

var commands = []command{
	{"pool create", "POOLDIR --member DIR [--member DIR]... [--domain LABEL]... [--copies N] [--chunk-size SIZE]", cmdPoolCreate},
	{"pool status", "[-v] [--json]", cmdPoolStatus},
	{"pool scrub", "[--no-repair] [--restart] [--rate SIZE] [--json]", cmdPoolScrub},
	{"pool add-member", "DIR [--domain LABEL]", cmdPoolAddMember},
	{"pool remove-member", "DIR|s3://BUCKET/PREFIX [--json]", cmdPoolRemoveMember},
	{"pool set copies", "N", cmdPoolSetCopies},
	{"pool repack", "[--json]", cmdPoolRepack},
	{"pool import", "POOLDIR --member DIR [--member DIR]...", cmdPoolImport},
	{"fsck", "[--repair] [--json]", cmdFsck},
	{"volume create", "VOL [--quota SIZE] [--chunk-size SIZE]", cmdVolumeCreate},
	{"volume list", "[--json]", cmdVolumeList},
	{"snapshot create", "DATASET [DATASET...] NAME", cmdSnapshotCreate},
	{"snapshot list", "DATASET [--json]", cmdSnapshotList},
	{"snapshot destroy", "DATASET@NAME", cmdSnapshotDestroy},
	{"snapshot rename", "DATASET@OLD NEW", cmdSnapshotRename},
	{"snapshot rollback", "DATASET@NAME [-r|--recursive]", cmdSnapshotRollback},
	{"branch create", "DATASET@SNAP NAME", cmdBranchCreate},
	{"branch destroy", "VOL/BRANCH[/...] [-r|--recursive]", cmdBranchDestroy},
	{"mount", "DATASET MOUNTPOINT [-d|--daemon] [--allow-other] [--writeback-cache] [-o OPTS] [--debug] [--metrics ADDR]", cmdMount},
	{"umount", "MOUNTPOINT", cmdUmount},
	{"sync", "", cmdSync},
	{"debug stacks", "", cmdDebugStacks},
	{"version", "", cmdVersion},
	{"schedule set", "DATASET TIER=COUNT... (hourly, daily, weekly, monthly or an interval: 15m=4 30s=10 2h=12)", cmdScheduleSet},
	{"schedule list", "[DATASET] [--json]", cmdScheduleList},
	{"schedule clear", "DATASET", cmdScheduleClear},
	{"snapshot hold", "DATASET@SNAP TAG", cmdSnapshotHold},
	{"snapshot release", "DATASET@SNAP TAG", cmdSnapshotRelease},
	{"snapshot holds", "DATASET@SNAP [--json]", cmdSnapshotHolds},
	{"volume destroy", "VOL [-r|--recursive]", cmdVolumeDestroy},
	{"volume rename", "VOL NEW", cmdVolumeRename},
	{"volume set", "VOL quota=SIZE|none [chunksize=SIZE]", cmdVolumeSet},
	{"volume get", "VOL [--json]", cmdVolumeGet},
	{"send", "[-i BASE | -I BASE] DATASET@SNAP | --resume TOKEN [--compress] [--json]", cmdSend},
	{"receive", "DATASET [-F] [--json] | --resume-token DATASET | --abort DATASET", cmdReceive},
	{"diff", "DATASET@SNAP [DATASET@SNAP | DATASET] [--json]", cmdDiff},
	{"versions", "PATH [--json]", cmdVersions},
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "snapfs: %s\n", oneLine(err))
		os.Exit(1)
	}
}

func run(args []string) error {
	if isHelperName(os.Args[0]) {
		return cmdMountHelper(args)
	}
	g := &globals{}
	flags := pflag.NewFlagSet("snapfs", pflag.ContinueOnError)
	flags.SetInterspersed(false)
	flags.StringVarP(&g.pool, "pool", "p", os.Getenv("SNAPFS_POOL"), "pool directory (default $SNAPFS_POOL)")
	flags.Usage = func() { usage(flags) }
	if err := flags.Parse(args); err != nil {
		return err
	}
	rest := flags.Args()
	if len(rest) == 0 {
		usage(flags)
		return errors.New("no command given")
	}
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(rest) >= len(words) && strings.Join(rest[:len(words)], " ") == c.name {
			return c.run(g, rest[len(words):])
		}
	}
	// mount.fuse3 runs `snapfs POOLDIR#DATASET MOUNTPOINT -o OPTS`.
	if looksLikeSource(rest[0]) && g.pool == os.Getenv("SNAPFS_POOL") {
		return cmdMountHelper(rest)
	}
	return fmt.Errorf("unknown command %q (see snapfs --help)", strings.Join(rest, " "))
}

func usage(flags *pflag.FlagSet) {
	fmt.Fprintf(os.Stderr, "usage: snapfs [-p POOLDIR] COMMAND [ARGS]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  snapfs %s %s\n", c.name, c.usage)
	}
	fmt.Fprintf(os.Stderr, "\nDATASET is a volume VOL or a branch VOL/BRANCH[/BRANCH...]: branch B of\n"+
		"dataset D is D/B, with snapshots and branches of its own (its .snapshots).\n"+
		"branch destroy also accepts DATASET@BRANCH; --recursive destroys the branch's\n"+
		"snapshots and branches at every depth first.\n")
	fmt.Fprintf(os.Stderr, "\nglobal flags:\n%s", flags.FlagUsages())
}

// newFlags returns the flag set of command name, which also accepts the
// global -p after the command.
func newFlags(g *globals, name, argUsage string) *pflag.FlagSet {
	flags := pflag.NewFlagSet("snapfs "+name, pflag.ContinueOnError)
	flags.StringVarP(&g.pool, "pool", "p", g.pool, "pool directory (default $SNAPFS_POOL)")
	flags.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: snapfs %s %s\n%s", name, argUsage, flags.FlagUsages())
	}
	return flags
}

// parseArgs parses a command's flags and checks its positional argument count.
func parseArgs(flags *pflag.FlagSet, args []string, min, max int) ([]string, error) {
	if err := flags.Parse(args); err != nil {
		return nil, err
	}
	rest := flags.Args()
	if len(rest) < min || len(rest) > max {
		name := strings.TrimPrefix(flags.Name(), "snapfs ")
		return nil, fmt.Errorf("%s: wrong number of arguments (see snapfs %s --help)", name, name)
	}
	return rest, nil
}

// poolArgs parses a pool command's flags and arguments as parseArgs does
// and returns the pool directory (-p or $SNAPFS_POOL) with them.
func poolArgs(g *globals, flags *pflag.FlagSet, args []string, min, max int) (dir string, rest []string, err error) {
	if rest, err = parseArgs(flags, args, min, max); err != nil {
		return "", nil, err
	}
	if dir, err = g.poolDir(); err != nil {
		return "", nil, err
	}
	return dir, rest, nil
}

// oneLine folds an error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// parseSize parses a size flag such as 4GiB or 128KiB.
func parseSize(flag, v string) (uint64, error) {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a size (use a number with an optional unit, such as 4GiB or 128KiB)", flag, v)
	}
	return n, nil
}
