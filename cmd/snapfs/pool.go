package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/pool"
)

func cmdPoolCreate(g *globals, args []string) error {
	flags := newFlags(g, "pool create", "POOLDIR --member DIR [--member DIR]... [--copies N] [--chunk-size SIZE]")
	members := flags.StringArray("member", nil, "member directory (repeat for each disk)")
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
	for _, m := range *members {
		abs, err := filepath.Abs(m)
		if err != nil {
			return err
		}
		opts.Members = append(opts.Members, abs)
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
type poolStatus struct {
	Pool      string         `json:"pool"`
	ID        string         `json:"id"`
	Copies    int            `json:"copies"`
	ChunkSize int            `json:"chunk_size"`
	Members   []memberStatus `json:"members"`
	Used      int64          `json:"used"`
	Free      int64          `json:"free"`
	Total     int64          `json:"total"`
	Logical   int64          `json:"logical"`
	Stored    int64          `json:"stored"`
	Chunks    int64          `json:"chunks"`
}

type memberStatus struct {
	Path   string `json:"path"`
	Domain string `json:"domain,omitempty"`
	State  string `json:"state"` // ok, gone, or the failure
	Used   int64  `json:"used"`
	Free   int64  `json:"free"`
	Total  int64  `json:"total"`
	Packs  int    `json:"packs"`
}

func cmdPoolStatus(g *globals, args []string) error {
	flags := newFlags(g, "pool status", "[--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	if _, err := parseArgs(flags, args, 0, 0); err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	s, err := readPoolStatus(dir)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(s)
	}
	printPoolStatus(s)
	return nil
}

func readPoolStatus(dir string) (poolStatus, error) {
	var s poolStatus
	served, err := withDaemon(dir, func(c *client.Client) error {
		cs, err := c.PoolStatus()
		s = poolStatus{Pool: dir, ID: cs.ID, Copies: cs.Copies, ChunkSize: cs.ChunkSize,
			Used: cs.Used, Free: cs.Free, Total: cs.Total, Logical: cs.Logical, Stored: cs.Stored, Chunks: cs.Chunks}
		for _, m := range cs.Members {
			s.Members = append(s.Members, memberStatus(m))
		}
		return err
	})
	if served || err != nil {
		if err != nil {
			return poolStatus{}, fmt.Errorf("pool status %s: %w", dir, err)
		}
		return s, nil
	}
	return openPoolStatus(dir)
}

// openPoolStatus reads the status of the pool in dir, opened directly.
func openPoolStatus(dir string) (poolStatus, error) {
	e, err := openEngine(dir)
	if err != nil {
		return poolStatus{}, err
	}
	cfg := e.p.Config()
	s := poolStatus{Pool: dir, ID: cfg.ID, Copies: cfg.Copies, ChunkSize: cfg.ChunkSize}
	stats, err := e.p.Stats()
	if err == nil {
		s.Logical, s.Stored, s.Chunks, err = e.st.PoolUsage()
	}
	if cerr := e.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return poolStatus{}, fmt.Errorf("pool status %s: %w", dir, err)
	}
	for _, m := range stats.Members {
		state := "ok"
		switch {
		case m.Gone:
			state = "gone"
		case m.Failed != "":
			state = m.Failed
		}
		s.Members = append(s.Members, memberStatus{
			Path: m.Path, Domain: m.Domain, State: state,
			Used: m.Used, Free: m.Free, Total: m.Total, Packs: m.Packs,
		})
	}
	s.Used, s.Free, s.Total = stats.Used, stats.Free, stats.Total
	return s, nil
}

func printPoolStatus(s poolStatus) {
	fmt.Printf("pool %s  id %s  copies %d  chunk size %s\n\n", s.Pool, s.ID, s.Copies, ibytes(int64(s.ChunkSize)))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MEMBER\tSTATE\tUSED\tFREE\tTOTAL\tPACKS\n")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.Path, m.State, ibytes(m.Used), ibytes(m.Free), ibytes(m.Total), m.Packs)
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\n", ibytes(s.Used), ibytes(s.Free), ibytes(s.Total))
	tw.Flush()
	ratio := "-"
	if s.Stored > 0 {
		ratio = fmt.Sprintf("%.2fx", float64(s.Logical)/float64(s.Stored))
	}
	fmt.Printf("\nlogical %s  stored %s  ratio %s  chunks %d\n", ibytes(s.Logical), ibytes(s.Stored), ratio, s.Chunks)
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
