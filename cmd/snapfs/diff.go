package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// diffHelp is the rules of snapfs diff, printed by --help (docs/cli.md
// says the same).
const diffHelp = `
Lists what changed from FROM to TO, one line per change:

  CHANGE<TAB>KIND<TAB>PATH            (R: CHANGE<TAB>KIND<TAB>OLD -> NEW)

FROM and TO are DATASET@SNAP (a snapshot, or a branch of DATASET) or
DATASET (its live files: a volume VOL or a branch VOL/BRANCH); without TO,
FROM's dataset's live files. Both must be of one volume.

CHANGE is
  +  a name new in TO: of a new file, or a new hard link of an old one
  -  a name gone in TO: of a removed file, or a removed hard link
  R  a file that lost one name and gained another (renamed or moved)
  M  a file whose content, size, mode, owner, group, mtime, device
     number, symlink target or xattrs changed (once, at its name in TO);
     a directory whose entries changed is M too (its mtime changed)
A rename, a link or an unlink alone changes only ctime and the link
count, which never make an M line. A name whose file was replaced (rm
and create again, mv over it, a file replaced by a directory) is - for
the old file and + for the new one: a new file is a new inode.

KIND is the file's type as zfs diff -F prints it: F regular file,
/ directory, @ symlink, | FIFO, = socket, B block device, C character
device. PATHs start at the dataset's root ("/" is the root itself) and
are escaped: a space, a backslash and any byte that is not printable
ASCII is written \0ooo (backslash, 0, three octal digits), so every line
splits on white space. --json prints one object per line:
{"change","kind","path","new_path","ino"}, paths escaped the same way.

The cost follows what changed between FROM and TO, not the volume's size.
`

func cmdDiff(g *globals, args []string) error {
	flags := newFlags(g, "diff", "DATASET@SNAP [DATASET@SNAP | DATASET] [--json]")
	asJSON := flags.Bool("json", false, "print one JSON object per change")
	flags.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: snapfs diff DATASET@SNAP [DATASET@SNAP | DATASET] [--json]\n%s%s",
			flags.FlagUsages(), diffHelp)
	}
	dir, rest, err := poolArgs(g, flags, args, 1, 2)
	if err != nil {
		return err
	}
	from, to := rest[0], ""
	if len(rest) == 2 {
		to = rest[1]
	}
	if err := checkSide(from); err != nil {
		return err
	}
	fds, _, _ := snap.ParseSide(from)
	if to != "" {
		if err := checkSide(to); err != nil {
			return err
		}
		if tds, _, _ := snap.ParseSide(to); snap.VolumeOf(tds) != snap.VolumeOf(fds) {
			return fmt.Errorf("%s and %s are of different volumes (%s, %s): diff compares two versions of one volume",
				from, to, snap.VolumeOf(fds), snap.VolumeOf(tds))
		}
	}
	var out []control.DiffChange
	err = onPool(dir, fds, func(c *client.Client) error {
		l, err := c.Diff(from, to)
		if err != nil {
			return diffError(dir, from, to, asErrno(err), func(ds string) ([]string, error) {
				l, err := c.ListSnapshots(ds)
				names := make([]string, 0, len(l))
				for _, s := range l {
					names = append(names, s.Name)
				}
				return names, asErrno(err)
			})
		}
		out = l
		return nil
	}, func(m *snap.Manager) error {
		l, err := m.Diff(from, to)
		if err != nil {
			return diffError(dir, from, to, err, func(ds string) ([]string, error) {
				l, err := m.Entries(ds)
				names := make([]string, 0, len(l))
				for _, s := range l {
					names = append(names, s.Name)
				}
				return names, err
			})
		}
		for _, x := range l {
			out = append(out, control.DiffChangeOf(x))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSONLines(out)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, c := range out {
		if c.Change == "R" {
			fmt.Fprintf(w, "%s\t%s\t%s -> %s\n", c.Change, c.Kind, c.Path, c.NewPath)
		} else {
			fmt.Fprintf(w, "%s\t%s\t%s\n", c.Change, c.Kind, c.Path)
		}
	}
	return w.Flush()
}

// checkSide reports, in one line, why arg cannot be a side of a diff.
func checkSide(arg string) error {
	ds, name, at := strings.Cut(arg, "@")
	if at && name == "" {
		return fmt.Errorf("%q: expected DATASET@SNAP or DATASET", arg)
	}
	if err := checkDataset(ds); err != nil {
		return err
	}
	if at {
		if err := snap.ValidName(name); err != nil {
			return snapError("", ds, name, err)
		}
	}
	return nil
}

// diffError names the side of a diff that does not resolve, in one line.
// list lists the names in a dataset's .snapshots, through the daemon or
// the engine.
func diffError(dir, from, to string, err error, list func(ds string) ([]string, error)) error {
	if !isPathError(err) && !errors.Is(err, store.ErrNoVolume) {
		return fmt.Errorf("diff %s %s: %w", from, to, err)
	}
	sides := []string{from}
	if to != "" {
		sides = append(sides, to)
	}
	listErr := func(ds string) error { _, err := list(ds); return err }
	for _, side := range sides {
		ds, name, _ := snap.ParseSide(side)
		names, lerr := list(ds)
		if lerr != nil {
			if listErr(snap.VolumeOf(ds)) != nil {
				return volumeError(dir, snap.VolumeOf(ds), store.ErrNoVolume)
			}
			if perr := missingBranch(ds, listErr); perr != nil {
				return perr
			}
			return fmt.Errorf("%s: %w", ds, lerr)
		}
		if name != "" && !slices.Contains(names, name) {
			return fmt.Errorf("no snapshot %s@%s (see snapfs snapshot list %s)", ds, name, ds)
		}
	}
	return fmt.Errorf("diff %s %s: %w", from, to, err)
}

// printJSONLines prints one compact JSON object per line.
func printJSONLines[T any](items []T) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

func cmdVersions(g *globals, args []string) error {
	flags := newFlags(g, "versions", "PATH [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	rest, err := parseArgs(flags, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(rest[0])
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	m, err := mountOf(path)
	if err != nil {
		return err
	}
	dir := poolOfSource(m.Source)
	viewID, ino := uint32(st.Ino>>40), st.Ino&store.MaxIno
	if ino == store.MaxIno {
		return fmt.Errorf("%s is the .snapshots directory, which has no versions: name a file", rest[0])
	}
	var res client.Versions
	served, err := withDaemon(dir, func(c *client.Client) error {
		var err error
		res, err = c.Versions(viewID, ino)
		return err
	})
	if err == nil && !served {
		err = fmt.Errorf("no daemon serves pool %s, yet %s is mounted from it: is the mount dead? (snapfs umount %s)", dir, m.Point, m.Point)
	}
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("%s: not found in pool %s (was the file or its snapshot removed since?): %s", rest[0], dir, err)
		}
		return fmt.Errorf("versions of %s: %w", rest[0], err)
	}
	if *asJSON {
		return printJSON(res)
	}
	printVersions(os.Stdout, m.Point, rest[0], res)
	return nil
}

// mountOf returns the snapfs mount that path (absolute, resolved) is
// in: the deepest mount whose point contains it must be snapfs.
func mountOf(path string) (mountEntry, error) {
	real, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return mountEntry{}, fmt.Errorf("%s: %w", path, err)
	}
	real = filepath.Join(real, filepath.Base(path))
	mounts, err := readMounts()
	if err != nil {
		return mountEntry{}, fmt.Errorf("read mounts: %w", err)
	}
	best := -1
	for i, m := range mounts {
		if real == m.Point || strings.HasPrefix(real, strings.TrimSuffix(m.Point, "/")+"/") {
			if best < 0 || len(m.Point) >= len(mounts[best].Point) {
				best = i
			}
		}
	}
	if best < 0 || mounts[best].FsType != fsType {
		return mountEntry{}, fmt.Errorf("%s is not in a snapfs mount (versions reads a file of a mounted volume or branch)", path)
	}
	return mounts[best], nil
}

// printVersions prints the table of versions: one line per distinct
// version, snapshots where the file did not change folded into one.
func printVersions(w0 *os.File, point, arg string, r client.Versions) {
	cur, _ := store.UnescapePath(r.Path)
	fmt.Fprintf(w0, "%s: inode %d of %s, %d version(s), followed by inode (renames included)\n",
		arg, r.Ino, datasetNoun(r.Dataset), len(r.Versions))
	tw := tabwriter.NewWriter(w0, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SNAPSHOTS\tTAKEN\tSIZE\tMTIME\tRESTORE FROM\n")
	for _, v := range r.Versions {
		names := "live"
		switch n := len(v.Snapshots); {
		case n == 1:
			names = v.Snapshots[0]
		case n > 1:
			names = fmt.Sprintf("%s..%s (%d)", v.Snapshots[0], v.Snapshots[n-1], n)
		}
		if v.Live && len(v.Snapshots) > 0 {
			names += " + live"
		}
		taken := "-"
		if v.Taken != nil {
			taken = v.Taken.Local().Format("2006-01-02 15:04:05")
		}
		p, _ := store.UnescapePath(v.Path)
		from := "(the live file)"
		if len(v.Snapshots) > 0 {
			from = shellQuote(filepath.Join(point, ".snapshots", v.Snapshots[0]) + p)
		}
		if p != cur {
			from += "  (renamed: was " + shellQuote(p) + ")"
			if len(v.Snapshots) == 0 {
				from = "(the live file, at " + shellQuote(p) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", names, taken, ibytes(int64(v.Size)),
			v.Mtime.Local().Format("2006-01-02 15:04:05"), from)
	}
	tw.Flush()
}

// shellQuote quotes a path for a shell when it needs it: $'...' with
// \xHH for bytes that are not printable ASCII, so it can be pasted into cp.
func shellQuote(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '/' || c == '.' || c == '-' || c == '_' || c == '+' || c == ',' || c == ':' || c == '@' ||
			c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}
