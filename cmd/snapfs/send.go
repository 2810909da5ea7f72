package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/klauspost/compress/zstd"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/stream"
)

// cmdSend writes the replication stream of a snapshot to stdout
// (docs/stream.md): whole, incremental from -i BASE, every snapshot after
// -I BASE in order, or the rest of an interrupted one (--resume TOKEN).
func cmdSend(g *globals, args []string) error {
	flags := newFlags(g, "send", "[-i BASE | -I BASE] DATASET@SNAP | --resume TOKEN [--compress] [--json]")
	incr := flags.StringP("incremental", "i", "", "send only what changed since snapshot BASE (DATASET@BASE or BASE)")
	chain := flags.StringP("chain", "I", "", "send every snapshot after BASE up to SNAP, one incremental each")
	resume := flags.String("resume", "", "send the rest of an interrupted stream (token from receive --resume-token)")
	compress := flags.Bool("compress", false, "compress the stream with zstd")
	asJSON := flags.Bool("json", false, "print a summary as JSON on stderr at the end")
	dir, rest, err := poolArgs(g, flags, args, 0, 1)
	if err != nil {
		return err
	}
	if isTerminal(os.Stdout) {
		return errors.New("send writes a binary stream: redirect stdout to a file or a pipe (snapfs send ... | snapfs receive ...)")
	}
	req := stream.SendRequest{}
	switch {
	case *resume != "":
		if len(rest) != 0 || *incr != "" || *chain != "" {
			return errors.New("send --resume TOKEN takes no snapshot and no -i/-I")
		}
	case len(rest) != 1:
		return errors.New("send needs DATASET@SNAP")
	case *incr != "" && *chain != "":
		return errors.New("send takes -i or -I, not both")
	default:
		ds, name, ok := strings.Cut(rest[0], "@")
		if !ok || name == "" {
			return fmt.Errorf("%q is not DATASET@SNAP", rest[0])
		}
		if err := checkDataset(ds); err != nil {
			return err
		}
		req.Dataset, req.Snapshot = ds, name
		base := *incr
		if *chain != "" {
			base, req.Chain = *chain, true
		}
		if bds, bname, ok := strings.Cut(base, "@"); ok {
			if bds != ds {
				return fmt.Errorf("base %s is not a snapshot of %s", base, ds)
			}
			base = bname
		}
		req.Base = base
	}
	growPipe(os.Stdout)
	var w io.Writer = os.Stdout
	var zw *zstd.Encoder
	if *compress {
		if zw, err = zstd.NewWriter(os.Stdout); err != nil {
			return err
		}
		w = zw
	}
	prog := newProgress("send")
	var st stream.Stats
	served, err := withDaemon(dir, func(c *client.Client) error {
		// The estimate (a listing with every snapshot's space) is for
		// the progress line only.
		if prog.on && *resume == "" {
			if l, err := c.ListSnapshots(req.Dataset); err == nil {
				var list []snapSpace
				for _, x := range l {
					list = append(list, snapSpace{x.Name, x.Created.UnixNano(), x.Referenced, x.Written})
				}
				prog.total = estimate(list, req.Base, req.Snapshot)
			}
		}
		// Without a progress line or compression, the daemon writes into
		// stdout itself (client.Send passes its descriptor).
		var out io.Writer = os.Stdout
		if prog.on || zw != nil {
			out = &countingWriter{w: w, byteCount: byteCount{p: prog}}
		}
		var err error
		st, err = c.Send(client.SendArgs{Dataset: req.Dataset, Snapshot: req.Snapshot, Base: req.Base,
			Chain: req.Chain, Resume: *resume}, out)
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err != nil {
			return err
		}
		defer e.close()
		req.Store, req.PoolID = e.st, e.p.Config().ID
		req.OnProgress = prog.update
		if prog.on && *resume == "" {
			if l, err := snap.ManagerFor(e.st).List(req.Dataset); err == nil {
				var list []snapSpace
				for _, x := range l {
					list = append(list, snapSpace{x.Name, x.Created.UnixNano(), x.Referenced, x.Written})
				}
				prog.total = estimate(list, req.Base, req.Snapshot)
			}
		}
		if *resume != "" {
			st, err = stream.SendResume(&req, *resume, w)
		} else {
			st, err = stream.SendNamed(&req, w)
		}
	}
	if err == nil && zw != nil {
		err = zw.Close()
	}
	prog.done()
	if err != nil {
		return sendError(req.Dataset, req.Snapshot, err)
	}
	return summary(*asJSON, "sent", st)
}

// sendError turns the engine's errors into one clear line.
func sendError(ds, name string, err error) error {
	switch {
	case errors.Is(err, snap.ErrNoSnapshot), errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("no such snapshot: %s (see snapfs snapshot list %s)", strings.TrimPrefix(oneLine(err), "snap: "), ds)
	case errors.Is(err, stream.ErrStaleToken):
		return fmt.Errorf("send --resume: %v", err)
	}
	return err
}

// summary prints the end-of-run figures: JSON on stderr with --json.
func summary(asJSON bool, verb string, st stream.Stats, extra ...any) error {
	if !asJSON {
		return nil
	}
	out := map[string]any{"bytes": st.Bytes, "chunks": st.Chunks, "chunk_bytes": st.ChunkBytes,
		"files": st.Files, "records": st.Records, "seconds": st.Duration.Seconds()}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i].(string)] = extra[i+1]
	}
	b, _ := json.Marshal(out)
	fmt.Fprintf(os.Stderr, "%s\n", b)
	return nil
}

// progress draws bytes, rate and (when the total is known) the time left
// on stderr when it is a terminal.
type progress struct {
	total int64 // expected bytes, 0 if unknown
	verb  string
	start time.Time
	on    bool
	drawn bool
}

func newProgress(verb string) *progress {
	return &progress{verb: verb, start: time.Now(), on: isTerminal(os.Stderr)}
}

func (p *progress) update(n int64) {
	if !p.on {
		return
	}
	el := time.Since(p.start).Seconds()
	rate := float64(n) / max(el, 0.001)
	left := ""
	if p.total > n && rate > 0 {
		left = fmt.Sprintf(", about %.0fs left", float64(p.total-n)/rate)
	}
	fmt.Fprintf(os.Stderr, "\r%s: %s, %s/s, %.0fs elapsed%s   ", p.verb, humanize.IBytes(uint64(n)), humanize.IBytes(uint64(rate)), el, left)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(os.Stderr)
	}
}

// countingWriter reports the bytes written so far to a progress line.
type countingWriter struct {
	w io.Writer
	byteCount
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.add(n)
	return n, err
}

// snapSpace is what estimate needs of a snapshot listing.
type snapSpace struct {
	name                string
	created             int64
	referenced, written int64
}

// estimate guesses the bytes of a stream for the progress line: the
// snapshot's referenced bytes for a full stream, the bytes written in
// the snapshots after the base up to it for an incremental. The listing
// is oldest first.
func estimate(list []snapSpace, base, name string) int64 {
	if base == "" {
		for _, s := range list {
			if s.name == name {
				return s.referenced
			}
		}
		return 0
	}
	var sum int64
	in := false
	for _, s := range list {
		if in {
			sum += s.written
		}
		if s.name == base {
			in = true
		}
		if s.name == name {
			return sum
		}
	}
	return 0
}
