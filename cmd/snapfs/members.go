package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/store"
)

// cmdPoolRemoveMember evacuates a member to the others and removes it:
// through the daemon when the pool is open, else directly. A progress
// line is drawn on stderr when it is a terminal.
func cmdPoolRemoveMember(g *globals, args []string) error {
	flags := newFlags(g, "pool remove-member", "DIR|s3://BUCKET/PREFIX [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	mdir := rest[0]
	if !strings.Contains(mdir, "://") { // a directory; an object-store member is named by its URL
		if mdir, err = filepath.Abs(mdir); err != nil {
			return err
		}
	}
	line := newProgressLine("remove-member", *asJSON)
	show := removeProgress(line)
	var r store.RemoveReport
	served, err := withDaemon(dir, func(c *client.Client) error {
		var poll func(client.Progress)
		if show != nil {
			poll = func(p client.Progress) {
				if p.Remove != nil {
					show(*p.Remove)
				}
			}
		}
		stop := pollProgress(dir, poll)
		r, err = c.RemoveMember(mdir)
		stop()
		return asErrno(err)
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err == nil {
			r, err = e.st.RemoveMember(mdir, store.RemoveOptions{Progress: show})
			if cerr := e.close(); err == nil {
				err = cerr
			}
		}
	}
	line.end()
	if err != nil {
		return fmt.Errorf("pool remove-member %s: %w", dir, err)
	}
	if *asJSON {
		return printJSON(r)
	}
	fmt.Printf("removed member %s from pool %s: %d chunk copies moved (%s) in %s (%s/s), %d surplus copies dropped\n",
		r.Member, dir, r.Moved, ibytes(r.Bytes), r.Elapsed.Round(time.Millisecond), ibytes(rate(r.Bytes, r.Elapsed)), r.Dropped)
	if r.BucketKept != "" {
		fmt.Println(r.BucketKept)
	}
	return nil
}

// pollProgress asks the daemon for the running operation's progress
// every 200 ms on a second connection and passes it to show, until the
// returned stop is called. With show nil it does nothing.
func pollProgress(dir string, show func(client.Progress)) (stop func()) {
	if show == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		c, err := client.Dial(dir)
		if err != nil {
			return
		}
		defer c.Close()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if p, err := c.Progress(); err == nil {
				show(p)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// removeProgress returns the progress callback drawing line (nil: none).
func removeProgress(line *progressLine) func(store.RemoveReport) {
	if line == nil {
		return nil
	}
	return func(r store.RemoveReport) {
		line.draw(progressStep{Done: r.Done, Total: r.Chunks, Unit: "chunks", Bytes: r.Bytes, BytesTotal: r.Total, Elapsed: r.Elapsed})
	}
}

// cmdPoolSetCopies sets the copies of new writes.
func cmdPoolSetCopies(g *globals, args []string) error {
	flags := newFlags(g, "pool set copies", "N")
	rest, err := parseArgs(flags, args, 1, 1)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(rest[0])
	if err != nil || n < 1 {
		return fmt.Errorf("pool set copies: %q is not a number of copies (a whole number, at least 1)", rest[0])
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	served, err := withDaemon(dir, func(c *client.Client) error {
		return asErrno(c.SetCopies(n))
	})
	if !served && err == nil {
		p, perr := openPool(dir)
		if perr != nil {
			return perr
		}
		err = p.SetCopies(n)
		if cerr := p.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("pool set copies %s: %w", dir, err)
	}
	fmt.Printf("pool %s: new writes get %d copies\n", dir, n)
	return nil
}

// cmdPoolRepack rewrites mostly-empty packs and deletes them: through the
// daemon when the pool is open, else directly.
func cmdPoolRepack(g *globals, args []string) error {
	flags := newFlags(g, "pool repack", "[--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	line := newProgressLine("repack", *asJSON)
	show := repackProgress(line)
	var r store.RepackReport
	served, err := withDaemon(dir, func(c *client.Client) error {
		var poll func(client.Progress)
		if show != nil {
			poll = func(p client.Progress) {
				if p.Repack != nil {
					show(*p.Repack)
				}
			}
		}
		stop := pollProgress(dir, poll)
		r, err = c.Repack()
		stop()
		return asErrno(err)
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err == nil {
			r, err = e.st.Repack(store.RepackOptions{Progress: show})
			if cerr := e.close(); err == nil {
				err = cerr
			}
		}
	}
	line.end()
	if err != nil {
		return fmt.Errorf("pool repack %s: %w", dir, err)
	}
	if *asJSON {
		return printJSON(r)
	}
	fmt.Printf("repack: %d pack(s) rewritten, %d deleted; %d records moved (%s) in %s; packs took %s, now %s\n",
		r.Packs, r.Deleted, r.Moved, ibytes(r.Bytes), r.Elapsed.Round(time.Millisecond), ibytes(r.Before), ibytes(r.After))
	for _, k := range r.Kept {
		fmt.Printf("kept (deleted by the next repack): %s\n", k)
	}
	if len(r.Unreadable) > 0 {
		return fmt.Errorf("pool repack %s: %d record(s) have no readable copy and were left in place (see pool scrub)", dir, len(r.Unreadable))
	}
	return nil
}

// repackProgress returns the progress callback drawing line (nil: none).
func repackProgress(line *progressLine) func(store.RepackReport) {
	if line == nil {
		return nil
	}
	return func(r store.RepackReport) {
		line.draw(progressStep{Done: r.Done, Total: r.Chunks, Unit: "records", Bytes: r.Bytes, BytesTotal: r.Total, Elapsed: r.Elapsed})
	}
}
