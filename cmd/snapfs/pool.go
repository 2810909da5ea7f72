package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
)

func cmdPoolCreate(g *globals, args []string) error {
	flags := newFlags(g, "pool create", "POOLDIR --member DIR|s3://BUCKET/PREFIX [--s3-endpoint URL] [--async]... [--copies N] [--chunk-size SIZE]")
	members := flags.StringArray("member", nil, "member directory (repeat for each disk), or s3://BUCKET/PREFIX of an object store")
	addS3Flags(flags)
	flags.Bool("async", false, "the s3:// member given before it is an asynchronous replica (never counted toward --copies)")
	domains := flags.StringArray("domain", nil, "failure domain label of each --member, in order (default: its device)")
	copies := flags.Int("copies", 0, "copies of each chunk, on distinct members (default 1)")
	chunk := flags.String("chunk-size", "", "default chunk size of new volumes, e.g. 128KiB")
	rest, err := parseArgs(flags, args, 0, 1)
	if err != nil {
		return err
	}
	if len(rest) == 1 {
		g.pool = rest[0]
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	if len(*members) == 0 {
		return fmt.Errorf("pool create: at least one --member DIR is needed")
	}
	opts := pool.CreateOptions{Copies: *copies, Domains: *domains}
	if opts.Objects, err = objectConfigs(args); err != nil {
		return fmt.Errorf("pool create: %w", err)
	}
	if opts.Async, err = asyncMembers(args); err != nil {
		return fmt.Errorf("pool create: %w", err)
	}
	if opts.Members, err = memberArgs(*members); err != nil {
		return err
	}
	if *chunk != "" {
		n, err := parseSize("--chunk-size", *chunk)
		if err != nil {
			return err
		}
		opts.ChunkSize = int(n)
	}
	if err := pool.Create(dir, opts); err != nil {
		return fmt.Errorf("create pool %s: %w", dir, err)
	}
	fmt.Printf("created pool %s with %d member(s)\n", dir, len(opts.Members))
	return nil
}

// poolStatus is what pool status reports, also as JSON.
type poolStatus = client.PoolStatus

func cmdPoolStatus(g *globals, args []string) error {
	flags := newFlags(g, "pool status", "[-v] [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	verbose := flags.BoolP("verbose", "v", false, "name the files that reference each damaged chunk, in every view (scans the metadata)")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	s, err := readPoolStatus(dir, *verbose)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(s)
	}
	printPoolStatus(s, *verbose)
	return nil
}

func readPoolStatus(dir string, verbose bool) (poolStatus, error) {
	var s poolStatus
	served, err := withDaemon(dir, func(c *client.Client) error {
		var err error
		s, err = c.PoolStatusVerbose(verbose)
		return err
	})
	if served || err != nil {
		if err != nil {
			return poolStatus{}, fmt.Errorf("pool status %s: %w", dir, err)
		}
		s.Pool = dir
		return s, nil
	}
	return openPoolStatus(dir, verbose)
}

// openPoolStatus reads the status of the pool in dir, opened directly.
func openPoolStatus(dir string, verbose bool) (poolStatus, error) {
	e, err := openEngine(dir)
	if err != nil {
		return poolStatus{}, err
	}
	s, err := control.StatusOf(dir, e.p, e.st, snap.ManagerFor(e.st), verbose)
	if cerr := e.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return poolStatus{}, fmt.Errorf("pool status %s: %w", dir, err)
	}
	return s, nil
}

func printPoolStatus(s poolStatus, verbose bool) {
	fmt.Printf("pool %s  id %s  copies %d  chunk size %s\n", s.Pool, s.ID, s.Copies, ibytes(int64(s.ChunkSize)))
	fmt.Printf("state %s\n\n", s.State)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MEMBER\tSTATE\tUSED\tFREE\tTOTAL\tPACKS\n")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.Path, m.State, ibytes(m.Used), ibytes(m.Free), ibytes(m.Total), m.Packs)
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\n", ibytes(s.Used), ibytes(s.Free), ibytes(s.Total))
	tw.Flush()
	for _, m := range s.Members {
		if m.Kind == "" {
			continue
		}
		kind := ""
		if m.Async {
			kind = " (asynchronous replica)"
		}
		line := fmt.Sprintf("%s%s: %s, %d objects, %s; backlog %s", m.Path, kind, m.State, m.Objects, ibytes(m.Used), ibytes(m.BacklogBytes))
		if m.BacklogBytes > 0 {
			line += fmt.Sprintf(" (oldest %.0fs)", m.BacklogAgeSeconds)
		}
		if m.Async {
			if m.ReplicaComplete {
				line += "; complete (every chunk there)"
			} else {
				line += "; incomplete (the backfill copies the chunks it lacks)"
			}
		}
		if m.Problem != "" {
			line += "; last error: " + m.Problem
		}
		fmt.Println(line)
	}
	ratio := "-"
	if s.Stored > 0 {
		ratio = fmt.Sprintf("%.2fx", float64(s.Logical)/float64(s.Stored))
	}
	fmt.Printf("\nlogical %s  stored %s  ratio %s  chunks %d\n", ibytes(s.Logical), ibytes(s.Stored), ratio, s.Chunks)
	for _, line := range healthLines(s) {
		fmt.Println(line)
	}
	if verbose {
		printDamaged(s)
	}
}

// healthLines says what is wrong with the pool and how to fix it, one
// line each.
func healthLines(s poolStatus) []string {
	var out []string
	p := s.Pool
	for _, m := range s.Members {
		switch {
		case m.State == pool.StateFailed:
			out = append(out, fmt.Sprintf("member %s is missing: no member.json there (disk unplugged or unmounted, or directory removed).", m.Path),
				fmt.Sprintf("  fix: bring it back (mount its disk; it is used again as soon as it is seen) and run snapfs -p %s pool scrub, or remove it with snapfs -p %s pool remove-member %s", p, p, m.Path))
		case m.State == pool.StateDegraded && m.FailsReads:
			out = append(out, fmt.Sprintf("member %s fails reads (%s); it takes no new data, and its copies are read last (with copies >= 2 reads go to the other copies).", m.Path, m.Problem),
				fmt.Sprintf("  fix: replace its disk: snapfs -p %s pool remove-member %s copies each of its chunks from another copy (add a new member first with snapfs -p %s pool add-member DIR if the others cannot hold them); if the errors have passed (a loose cable), snapfs -p %s pool scrub tries it again and rewrites the copies it cannot read", p, m.Path, p, p))
		case m.State == pool.StateDegraded:
			out = append(out, fmt.Sprintf("member %s takes no new data (%s); reads still use it.", m.Path, m.Problem),
				fmt.Sprintf("  fix: make its file system writable again and run snapfs -p %s pool scrub, or remove it with snapfs -p %s pool remove-member %s", p, p, m.Path))
		case m.ReadErrors > 0:
			out = append(out, fmt.Sprintf("member %s: %d read(s) failed with I/O errors (too few to degrade it); snapfs -p %s pool scrub rewrites the copies it cannot read", m.Path, m.ReadErrors, p))
		}
	}
	if s.UnderReplicated > 0 {
		out = append(out, fmt.Sprintf("%d chunk(s) were written with fewer than %d copies while members were missing: run snapfs -p %s pool scrub once they are back or replaced", s.UnderReplicated, s.Copies, p))
	}
	if r := s.ReadRepairs; r.Found > 0 {
		line := fmt.Sprintf("reads found %d bad copies since the pool was opened: %d rewritten from a good copy", r.Found, r.Rewritten)
		if left := r.Failed + r.Skipped; left > 0 {
			line += fmt.Sprintf(", %d not (snapfs -p %s pool scrub rewrites them)", left, p)
		}
		out = append(out, line)
	}
	if s.InternalErrors > 0 {
		out = append(out, fmt.Sprintf("the daemon caught %d internal error(s) (a bug: the requests got EIO); %s/daemon.log has their stacks: please report them", s.InternalErrors, p))
	}
	if n := len(s.Damaged); n > 0 {
		out = append(out, fmt.Sprintf("%d chunk(s) have no good copy: snapfs -p %s pool status -v names the damaged files; restore them from a snapshot or a backup", n, p))
	}
	if len(out) > 0 {
		out = append([]string{""}, out...)
	}
	return out
}

// printDamaged lists the damaged chunks and the files that reference them.
func printDamaged(s poolStatus) {
	if len(s.Damaged) == 0 {
		fmt.Println("\nno known damaged files")
		return
	}
	fmt.Println("\ndamaged files (VIEW:PATH; DATASET@NAME is a snapshot, VOL/BRANCH a branch):")
	for _, d := range s.Damaged {
		if len(d.Files) == 0 {
			fmt.Printf("  chunk %s: referenced by no file of any view (%s)\n", d.Hash[:16], d.Reason)
		}
		for _, f := range d.Files {
			fmt.Printf("  %s  (chunk %s)\n", f, d.Hash[:16])
		}
	}
}

// ibytes formats a byte count in binary units.
func ibytes(n int64) string {
	if n < 0 {
		return "-"
	}
	return humanize.IBytes(uint64(n))
}

// printJSON writes v as indented JSON on stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
