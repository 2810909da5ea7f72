package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/client"
)

// snapfs as a mount helper: `mount -t fuse.snapfs POOLDIR#DATASET DIR -o
// OPTS` (or the same line in /etc/fstab) reaches snapfs in one of two ways.
//
//   - mount(8) runs /sbin/mount.fuse.snapfs when it exists (make install
//     links it to snapfs) as `mount.fuse.snapfs SOURCE DIR [-sfnv] [-o
//     OPTS] [-t TYPE]`;
//   - otherwise it runs mount.fuse3 (fuse3's /sbin/mount.fuse), which runs
//     `snapfs SOURCE DIR -o OPTS` through /bin/sh with the standard PATH
//     (mount(8) drops the caller's), so snapfs must be in /usr/local/bin,
//     /usr/bin or /bin.
//
// Either way the helper must return once the mount answers, as `snapfs
// mount -d` does, and it must not fail on the options mount(8) and fstab
// add for their own use (helperIgnored). umount(8) needs no helper: it
// unmounts, and the daemon exits when its last mount is gone.

// helperNames are the names under which mount(8) runs snapfs directly.
var helperNames = []string{"mount.fuse.snapfs", "mount.snapfs"}

// isHelperName reports whether argv0 is one of helperNames.
func isHelperName(argv0 string) bool {
	base := filepath.Base(argv0)
	for _, n := range helperNames {
		if base == n {
			return true
		}
	}
	return false
}

// looksLikeSource reports whether the first word of a command line is a
// mount source rather than a command: commands never hold '/' or '#'.
func looksLikeSource(word string) bool {
	return strings.ContainsAny(word, "/#")
}

// helperIgnored are the options mount(8), fstab and systemd use for
// themselves, or that ask for what snapfs does anyway; the helper accepts
// them silently. dev, suid and exec are ignored too: a snapfs mount stays
// nodev and nosuid (mount.fuse3 adds dev,suid when root mounts).
var helperIgnored = map[string]bool{
	"defaults": true, "rw": true, "dev": true, "suid": true, "exec": true,
	"async": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "owner": true, "group": true, "_netdev": true, "nofail": true,
	"relatime": true, "default_permissions": true,
}

// helperIgnoredPrefixes are option prefixes ignored as helperIgnored is:
// x-systemd.automount, x-gvfs-show, comment=systemd.automount...
var helperIgnoredPrefixes = []string{"x-", "comment="}

// helperKernel are the options the helper passes on to the kernel.
var helperKernel = map[string]bool{"ro": true, "nosuid": true, "nodev": true, "noexec": true}

// parseHelperOptions applies the comma-separated options of -o values to
// o and m: snapfs's own (allow_other, snapdir=, debug, writeback_cache, metrics=ADDR), the
// kernel's (helperKernel); the ignored ones are dropped, and unknown ones
// are returned so that the caller warns once and mounts anyway.
func parseHelperOptions(m *mountArgs, raw []string) (unknown []string, err error) {
	for _, r := range raw {
	next:
		for _, opt := range strings.Split(r, ",") {
			switch {
			case opt == "" || helperIgnored[opt]:
			case opt == "allow_other":
				m.opts.AllowOther = true
			case opt == "debug":
				m.opts.Debug = true
			case opt == "writeback_cache":
				m.opts.WritebackCache = true
			case opt == "no_writeback_cache":
				m.opts.WritebackCache = false
			case opt == "snapdir=visible":
				m.opts.SnapdirVisible = true
			case opt == "snapdir=hidden":
				m.opts.SnapdirVisible = false
			case strings.HasPrefix(opt, "snapdir="):
				return nil, fmt.Errorf("-o %s: snapdir is visible or hidden", opt)
			case strings.HasPrefix(opt, "metrics="):
				m.metrics = strings.TrimPrefix(opt, "metrics=")
			case helperKernel[opt]:
				m.opts.Options = append(m.opts.Options, opt)
			default:
				for _, p := range helperIgnoredPrefixes {
					if strings.HasPrefix(opt, p) {
						continue next
					}
				}
				unknown = append(unknown, opt)
			}
		}
	}
	return unknown, nil
}

// splitSource splits a mount source POOLDIR#DATASET. A pool directory may
// itself hold '#': the first '#' after which the part before is a pool
// directory (it holds pool.json) wins, else the first '#'.
func splitSource(src string) (dir, ds string, err error) {
	bad := fmt.Errorf("mount source %q: want POOLDIR#DATASET, such as /srv/pool#home or /srv/pool#home/branch", src)
	first := strings.IndexByte(src, '#')
	if first < 0 {
		return "", "", bad
	}
	cut := first
	for i := first; i >= 0 && i < len(src); {
		if _, err := os.Stat(filepath.Join(src[:i], "pool.json")); err == nil {
			cut = i
			break
		}
		j := strings.IndexByte(src[i+1:], '#')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	dir, ds = src[:cut], src[cut+1:]
	if dir == "" || ds == "" {
		return "", "", bad
	}
	return dir, ds, nil
}

// cmdMountHelper is snapfs run as a mount helper, with the arguments
// mount(8) or mount.fuse3 give: SOURCE DIR, then -o OPTS (repeatable, or
// -oOPTS), -t TYPE (ignored), and mount(8)'s -s (sloppy), -n (no mtab) and
// -v (verbose), which change nothing here, and -f (fake: check, do not
// mount).
func cmdMountHelper(args []string) error {
	var pos, raw []string
	fake := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(args) {
				return fmt.Errorf("mount helper: %s needs a value", a)
			}
			if a == "-o" {
				raw = append(raw, args[i+1])
			} else if a == "-N" {
				return errors.New("mount helper: -N (mount in another namespace) is not supported")
			}
			i++
		case strings.HasPrefix(a, "-o"):
			raw = append(raw, a[2:])
		case strings.HasPrefix(a, "-t"):
		case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "sfnvi") == "":
			fake = fake || strings.Contains(a, "f")
		case len(a) > 0 && a[0] == '-':
			return fmt.Errorf("mount helper: unknown flag %s (usage: mount -t fuse.snapfs POOLDIR#DATASET DIR [-o OPTS])", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return fmt.Errorf("mount helper: want POOLDIR#DATASET MOUNTPOINT, got %d arguments (usage: mount -t fuse.snapfs POOLDIR#DATASET DIR [-o OPTS])", len(pos))
	}
	dir, ds, err := splitSource(pos[0])
	if err != nil {
		return err
	}
	m := mountArgs{vol: ds, daemon: true}
	if m.dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	unknown, err := parseHelperOptions(&m, raw)
	if err != nil {
		return err
	}
	// Warned once: the daemon child parses the same line again, with its
	// output going to the pool's daemon log.
	if len(unknown) > 0 && os.Getenv(readyFdEnv) == "" {
		fmt.Fprintf(os.Stderr, "snapfs: ignoring unknown mount option(s) %s\n", strings.Join(unknown, ","))
	}
	if err := checkPoolDir(m.dir); err != nil {
		return err
	}
	if err := checkDataset(m.vol); err != nil {
		return err
	}
	if m.point, err = cleanPoint(pos[1]); err != nil {
		return err
	}
	m.opts.FsName = mountSource(m.dir, m.vol)
	if err := checkMountpoint(m.point); err != nil {
		return err
	}
	if fake {
		return nil
	}
	return mountDataset(m)
}

// checkPoolDir says in one line why dir is not a pool, before anything
// else is tried on it.
func checkPoolDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "pool.json")); err != nil {
		if _, derr := os.Stat(dir); derr != nil {
			return fmt.Errorf("pool %s does not exist", dir)
		}
		return fmt.Errorf("%s is not a snapfs pool (create one with snapfs pool create)", dir)
	}
	return nil
}

// mountWait bounds how long a mount waits for the pool's daemon to finish
// exiting (or starting) before it gives up. (A variable for the tests.)
var mountWait = 30 * time.Second

// daemonExitingMessage is in the error a daemon's mount op returns once
// its last mount is gone and it is closing the pool.
const daemonExitingMessage = "is exiting"

// awaitPoolDaemon runs fn on a client of the pool's daemon as withDaemon
// does, but when the pool is held by a snapfs daemon that does not take
// the mount (it is exiting after its last unmount: flushing, writing its
// checkpoint; or starting: the lock is taken before its socket listens) it
// waits, up to mountWait, for the daemon to exit or to answer. Without
// this wait a mount right after umount or fusermount3 -u failed with
// "pool ... is in use by pid N". A pool held by another command (fsck,
// scrub of an unmounted pool) is not waited for: opening it reports the
// holder as before.
func awaitPoolDaemon(dir string, fn func(c *client.Client) error) (served bool, err error) {
	deadline := time.Now().Add(mountWait)
	for {
		served, err = withDaemon(dir, fn)
		var pid int
		switch {
		case daemonExiting(err), daemonHungUp(err):
			pid = lockPid(dir)
		case served || err != nil:
			return served, err
		default:
			if !daemonRunning(dir, 0) {
				return false, nil
			}
			if pid = lockPid(dir); pid <= 0 || !isMountProcess(pid) {
				return false, nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return false, fmt.Errorf("%w (waited %v)", err, mountWait)
			}
			return false, fmt.Errorf("pool %s: its daemon pid %d is still exiting after %v (see %s)",
				dir, pid, mountWait, filepath.Join(dir, daemonLog))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// unmountClosingMessage is in the error a daemon's mount op returns for a
// dataset it still serves at a mount point that was unmounted from outside
// a moment ago: its server ends as soon as it reads the kernel's goodbye.
const unmountClosingMessage = "is still closing"

// daemonExiting reports whether err is a daemon's refusal to mount that
// goes away by itself: it is exiting, or the dataset's last mount, already
// unmounted, is still closing.
func daemonExiting(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Code == "EBUSY" &&
		(strings.Contains(ce.Message, daemonExitingMessage) || strings.Contains(ce.Message, unmountClosingMessage))
}

// daemonHungUp reports whether err is the control connection ending
// under a request: a daemon that is exiting closes its socket, and a
// connection still waiting in the socket's backlog then is reset. The
// exiting daemon took no action on it, so asking again is safe.
func daemonHungUp(err error) bool {
	var ce *client.Error
	if err == nil || errors.As(err, &ce) {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isMountProcess reports whether process pid is a snapfs mount (a daemon
// or a foreground mount), from its command line: snapfs ... mount ..., or
// the helper forms.
func isMountProcess(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) == 0 || (filepath.Base(args[0]) != "snapfs" && !isHelperName(args[0])) {
		return false
	}
	if isHelperName(args[0]) || (len(args) > 1 && looksLikeSource(args[1])) {
		return true
	}
	for _, a := range args[1:] {
		if a == "mount" {
			return true
		}
	}
	return false
}
