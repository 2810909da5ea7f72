package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// cmdFsck checks the pool: store.Check plus the full pack scan for leaked
// records. It prints one line per problem and exits non-zero when any is
// left; --repair fixes what it can and prints what it changed.
func cmdFsck(g *globals, args []string) error {
	flags := newFlags(g, "fsck", "[--repair] [--json]")
	repair := flags.Bool("repair", false, "fix reference counts, dangling chunks and leaked records")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	line := newProgressLine("fsck: scanning packs", *asJSON)
	show := scanProgress(line)
	var r store.FsckReport
	served, err := withDaemon(dir, func(c *client.Client) error {
		var poll func(client.Progress)
		if show != nil {
			poll = func(p client.Progress) {
				if p.Fsck != nil {
					show(*p.Fsck)
				}
			}
		}
		stop := pollProgress(dir, poll)
		r, err = c.Fsck(*repair)
		stop()
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err == nil {
			r, err = e.st.Fsck(store.FsckOptions{Repair: *repair, Progress: show})
			if cerr := e.close(); err == nil {
				err = cerr
			}
		}
	}
	line.end()
	if err != nil {
		return fmt.Errorf("fsck %s: %w", dir, err)
	}
	if *asJSON {
		if err := printJSON(r); err != nil {
			return err
		}
	} else {
		for _, p := range r.Problems {
			fmt.Println(p)
		}
		for _, c := range r.Repaired {
			fmt.Println("repaired:", c)
		}
		fmt.Printf("fsck: %d chunks, %d pack records, %d leaked, %d problem(s)", r.Chunks, r.Records, r.Leaked, len(r.Problems))
		if *repair {
			fmt.Printf(", %d repair(s), %d left", len(r.Repaired), len(r.Remaining))
		}
		fmt.Println()
	}
	if len(r.Remaining) > 0 {
		return fmt.Errorf("fsck %s: %d problem(s) left", dir, len(r.Remaining))
	}
	return nil
}

// cmdPoolScrub verifies every copy of every referenced record and
// rewrites bad copies from good ones. It resumes a scrub that was
// interrupted (a killed daemon, an unmount, ^C) unless --restart; through
// the daemon it yields to the volumes' I/O (store.scrubPacer), and ^C (the
// connection closing) stops it there too.
func cmdPoolScrub(g *globals, args []string) error {
	flags := newFlags(g, "pool scrub", "[--no-repair] [--restart] [--rate SIZE] [--json]")
	noRepair := flags.Bool("no-repair", false, "only verify")
	restart := flags.Bool("restart", false, "start over instead of resuming an interrupted scrub")
	rateArg := flags.String("rate", "", "read at most SIZE per second, e.g. 50MiB (default: no cap; through the daemon it slows to 16 MiB/s while the volumes do I/O)")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	var perSec int64
	if *rateArg != "" {
		n, err := parseSize("--rate", *rateArg)
		if err != nil {
			return fmt.Errorf("pool scrub: %w", err)
		}
		if n == 0 || n > 1<<50 {
			return fmt.Errorf("pool scrub: --rate %q: must be more than 0 bytes and at most 1 PiB per second", *rateArg)
		}
		perSec = int64(n)
	}
	line := newProgressLine("scrub", *asJSON)
	show := scrubProgress(line)
	var r store.ScrubReport
	served, err := withDaemon(dir, func(c *client.Client) error {
		var poll func(client.Progress)
		if show != nil {
			poll = func(p client.Progress) {
				if p.Scrub != nil {
					show(*p.Scrub)
				}
			}
		}
		stop := pollProgress(dir, poll)
		r, err = c.Scrub(client.ScrubOptions{NoRepair: *noRepair, Restart: *restart, Rate: perSec})
		stop()
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err == nil {
			ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			o := store.ScrubOptions{NoRepair: *noRepair, Restart: *restart, Rate: perSec, Context: ctx, Progress: show}
			r, err = e.st.Scrub(o)
			cancel()
			if cerr := e.close(); err == nil {
				err = cerr
			}
		}
	}
	line.end()
	if err != nil {
		return fmt.Errorf("pool scrub %s: %w", dir, err)
	}
	if *asJSON {
		if err := printJSON(r); err != nil {
			return err
		}
	} else {
		if r.Resumed != nil {
			fmt.Println(resumeLine(r))
		}
		for _, d := range r.Damaged {
			fmt.Println(d)
		}
		fmt.Printf("scrub: %d chunks, %d copies, %s read in %s (%s/s); %d bad, %d repaired, %d unrepairable; %d copies added\n",
			r.Chunks, r.Copies, ibytes(r.Bytes), r.Elapsed.Round(time.Millisecond), ibytes(rate(r.Bytes, r.Elapsed)),
			r.Bad, r.Repaired, r.Unrepairable, r.Raised)
		if r.Yielded > 0 {
			fmt.Printf("scrub: paused %s in all to leave the disks to the volumes (or to keep to --rate)\n", r.Yielded.Round(time.Millisecond))
		}
		if r.UnderReplicated > 0 {
			fmt.Printf("scrub: %d chunk(s) still have fewer copies than asked (too few writable failure domains: see pool status)\n", r.UnderReplicated)
		}
		if r.Unavailable > 0 {
			fmt.Printf("scrub: %d copies are on missing members and were not checked (see pool status)\n", r.Unavailable)
		}
	}
	if len(r.Damaged) > 0 {
		return fmt.Errorf("pool scrub %s: %d bad copies not repaired (%d chunks have no good copy)", dir, len(r.Damaged), r.Unrepairable)
	}
	return nil
}

// resumeLine says which interrupted scrub r continued, and from where.
func resumeLine(r store.ScrubReport) string {
	x := r.Resumed
	return fmt.Sprintf("scrub: resuming from chunk %d of %d: the scrub started %s was interrupted (last saved %s) at %s; --restart starts over",
		x.Done, r.Total, x.Started.Local().Format("2006-01-02 15:04:05"), x.Saved.Local().Format("15:04:05"), strings.Join(x.Where, ", "))
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// scrubProgress returns the progress callback drawing line (nil: none),
// after a line saying where a resumed scrub resumes.
func scrubProgress(line *progressLine) func(store.ScrubReport) {
	if line == nil {
		return nil
	}
	first := true
	return func(r store.ScrubReport) {
		if first && r.Resumed != nil {
			fmt.Fprintln(os.Stderr, resumeLine(r))
		}
		first = false
		line.draw(progressStep{Done: r.Chunks, Total: r.Total, Unit: "chunks", Bytes: r.Bytes, Elapsed: r.Elapsed,
			Extra: fmt.Sprintf("%d bad  %d repaired  %d copies added", r.Bad, r.Repaired, r.Raised)})
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// cmdPoolAddMember adds a member directory to the pool: through the
// daemon when the pool is open (online), else directly.
func cmdPoolAddMember(g *globals, args []string) error {
	flags := newFlags(g, "pool add-member", "DIR|s3://BUCKET/PREFIX [--domain LABEL] [--s3-endpoint URL] [--s3-region R] [--s3-addressing path|virtual-host] [--async]")
	domain := flags.String("domain", "", "failure domain label (default: the directory's device; an object store is a domain of its own)")
	addS3Flags(flags)
	async := flags.Bool("async", false, "add the s3:// member as an asynchronous replica: existing chunks are copied up in the background")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	ms, err := memberArgs(rest)
	if err != nil {
		return err
	}
	mdir := ms[0]
	objects, err := objectConfigs(append([]string{"--member", mdir}, args...))
	if err != nil {
		return fmt.Errorf("pool add-member: %w", err)
	}
	var object *objstore.Config
	if c, ok := objects[mdir]; ok {
		object = &c
	}
	if *async && !isObjectArg(mdir) {
		return fmt.Errorf("pool add-member: --async %s: only an s3:// member can be an asynchronous replica", mdir)
	}
	var path, dom string
	served, err := withDaemon(dir, func(c *client.Client) error {
		add := c.AddObjectMember
		if *async {
			add = c.AddReplica
		}
		m, err := add(mdir, *domain, object)
		path, dom = m.Path, m.Domain
		return err
	})
	if !served && err == nil {
		var mc pool.MemberConfig
		mc, err = pool.AddMember(dir, mdir, pool.AddMemberOptions{Domain: *domain, Object: object, Async: *async})
		if errors.Is(err, pool.ErrInUse) {
			err = fmt.Errorf("pool is in use by a process that does not answer on the control socket: %w", err)
		}
		path, dom = mc.Path, mc.Domain
	}
	if err != nil {
		return fmt.Errorf("pool add-member %s: %w", dir, err)
	}
	fmt.Printf("added member %s (domain %s) to pool %s\n", path, dom, dir)
	return nil
}
