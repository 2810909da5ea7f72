package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/stream"
)

// byteCount counts the bytes a stream moved and updates a progress line
// every MiB.
type byteCount struct {
	n, last int64
	p       *progress
}

func (c *byteCount) add(n int) {
	c.n += int64(n)
	if c.n-c.last >= 1<<20 {
		c.last = c.n
		c.p.update(c.n)
	}
}

// countingReader reports the bytes read so far to a progress line.
type countingReader struct {
	r io.Reader
	byteCount
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.add(n)
	return n, err
}

// cmdReceive reads replication streams from stdin into volume DATASET
// (docs/stream.md), or prints or drops an interrupted receive's state.
func cmdReceive(g *globals, args []string) error {
	flags := newFlags(g, "receive", "DATASET [-F] [--json] | --resume-token DATASET | --abort DATASET")
	force := flags.BoolP("force", "F", false, "roll the target back to its newest snapshot first if it changed since")
	token := flags.Bool("resume-token", false, "print the resume token of DATASET's interrupted receive")
	abort := flags.Bool("abort", false, "drop DATASET's interrupted receive")
	asJSON := flags.Bool("json", false, "print a summary as JSON on stderr at the end")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	ds := rest[0]
	if err := checkDataset(ds); err != nil {
		return err
	}
	if *token {
		t, err := stream.ResumeToken(dir, ds)
		if err != nil {
			return receiveError(ds, err)
		}
		fmt.Println(t)
		return nil
	}
	// The crash tests kill a receive at a chosen point (internal/killpoint).
	if err := killpoint.ArmFromEnv(); err != nil {
		return err
	}
	if isTerminal(os.Stdin) && !*abort {
		return errors.New("receive reads a stream on stdin: pipe snapfs send into it, or redirect a saved stream")
	}
	growPipe(os.Stdin)
	prog := newProgress("receive")
	in := &countingReader{r: os.Stdin, byteCount: byteCount{p: prog}}
	var got []stream.Received
	var st stream.Stats
	served, err := withDaemon(dir, func(c *client.Client) error {
		if *abort {
			return c.AbortReceive(ds)
		}
		// Without a progress line, the daemon reads stdin itself
		// (client.Receive passes its descriptor).
		var r io.Reader = os.Stdin
		if prog.on {
			r = in
		}
		res, err := c.Receive(client.ReceiveArgs{Dataset: ds, Force: *force}, r)
		got, st = res.Received, res.Stats
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err != nil {
			return err
		}
		defer e.close()
		if *abort {
			err = stream.Abort(e.st, dir, ds, nil) // no daemon: nothing mounted
		} else {
			got, st, err = stream.Receive(&stream.Target{Store: e.st, Dir: dir, Dataset: ds, Force: *force}, in)
		}
	}
	prog.done()
	if err != nil || *abort {
		return receiveError(ds, err)
	}
	names := []string{}
	for _, r := range got {
		names = append(names, ds+"@"+r.Snapshot)
	}
	return summary(*asJSON, "received", st, "snapshots", names)
}

// receiveError says what went wrong in one line, and what keeps.
func receiveError(ds string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stream.ErrTruncated):
		return fmt.Errorf("%v: what was verified is kept (snapfs receive --resume-token %s, then snapfs send --resume TOKEN)", err, ds)
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, client.ErrNoSpace): // direct, or through the daemon
		return fmt.Errorf("%v: the pool is full; what was verified is kept (free space, then resume: snapfs receive --resume-token %s)", err, ds)
	}
	return err
}

// printPartials lists the interrupted receives of the pool in dir (of
// dataset ds only, if not ""), after volume list and snapshot list: the
// partial state is visible there, and never as a snapshot.
func printPartials(dir, ds string) error {
	ps, err := stream.Partials(dir)
	if err != nil {
		return fmt.Errorf("partial receives: %w", err)
	}
	for _, p := range ps {
		if ds != "" && p.Dataset != ds {
			continue
		}
		state := "interrupted"
		if p.Complete {
			state = "verified, not applied"
		}
		fmt.Printf("partial receive: %s@%s (%s, %s verified); resume: snapfs send --resume %s\n",
			p.Dataset, p.Snapshot, state, ibytes(p.Verified), p.Token)
	}
	return nil
}

// streamPipeSize is the buffer send and receive give a pipe they stream
// through (the kernel's default is 64 KiB): the writer and the reader
// then take turns every MiB instead of every 64 KiB. It is the default
// /proc/sys/fs/pipe-max-size, so an unprivileged user gets it too.
const streamPipeSize = 1 << 20

// growPipe enlarges the pipe f is an end of to streamPipeSize, if f is a
// pipe and the pipe is smaller; a refusal (a per-user limit) keeps the
// pipe as it is.
func growPipe(f *os.File) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && n < streamPipeSize {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, streamPipeSize)
		}
	})
}
