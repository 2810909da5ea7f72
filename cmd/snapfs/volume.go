package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

func cmdVolumeCreate(g *globals, args []string) error {
	flags := newFlags(g, "volume create", "VOL [--quota SIZE] [--chunk-size SIZE]")
	quota := flags.String("quota", "", "most logical bytes the volume may hold, e.g. 10GiB (default none)")
	chunk := flags.String("chunk-size", "", "chunk size of new files, 4KiB to 1MiB (default the pool's)")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	opts := store.VolumeOptions{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if *quota != "" {
		n, err := parseSize("--quota", *quota)
		if err != nil {
			return err
		}
		opts.Quota = int64(n)
	}
	if *chunk != "" {
		n, err := parseSize("--chunk-size", *chunk)
		if err != nil {
			return err
		}
		opts.ChunkSize = int(n)
	}
	served, err := withDaemon(dir, func(c *client.Client) error {
		_, err := c.CreateVolume(rest[0], client.VolumeOptions{Quota: opts.Quota, ChunkSize: opts.ChunkSize})
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err != nil {
			return err
		}
		_, err = e.st.CreateVolume(rest[0], opts)
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}
	switch {
	case errors.Is(err, store.ErrVolumeExists), errors.Is(err, client.ErrExists):
		return fmt.Errorf("volume %q already exists in pool %s", rest[0], dir)
	case errors.Is(err, store.ErrBadName), errors.Is(err, client.ErrInvalid):
		return fmt.Errorf("invalid volume name %q (no '/', '@' or NUL, at most 255 bytes)", rest[0])
	case err != nil:
		return fmt.Errorf("create volume %q: %w", rest[0], err)
	}
	fmt.Printf("created volume %s\n", rest[0])
	return nil
}

// volumeJSON is one volume in volume list --json.
type volumeJSON struct {
	Name      string    `json:"name"`
	Used      int64     `json:"used"`
	Files     int64     `json:"files"`
	Quota     int64     `json:"quota"`
	ChunkSize int       `json:"chunk_size"`
	Uid       uint32    `json:"uid"`
	Gid       uint32    `json:"gid"`
	Created   time.Time `json:"created"`
	// Logical bytes only the volume's snapshots hold, and what its
	// branches store themselves.
	UsedBySnapshots int64 `json:"used_by_snapshots"`
	UsedByBranches  int64 `json:"used_by_branches"`
}

func cmdVolumeList(g *globals, args []string) error {
	flags := newFlags(g, "volume list", "[--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	var vols []volumeJSON
	served, err := withDaemon(dir, func(c *client.Client) error {
		l, err := c.ListVolumes()
		for _, v := range l {
			vols = append(vols, volumeJSON(v))
		}
		return err
	})
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err != nil {
			return err
		}
		var l []store.VolumeInfo
		l, err = e.st.Volumes()
		m := snap.ManagerFor(e.st)
		for _, v := range l {
			var vs snap.VolumeSpace
			if vs, err = m.VolumeSpace(v.Name); err != nil {
				break
			}
			vols = append(vols, volumeJSON{v.Name, v.Used, v.Files, v.Quota, v.ChunkSize, v.Uid, v.Gid, v.Created,
				vs.Snapshots, vs.Branches})
		}
		snap.Release(e.st)
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	if *asJSON {
		if vols == nil {
			vols = []volumeJSON{}
		}
		return printJSON(vols)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tUSED\tSNAPSHOTS\tBRANCHES\tFILES\tQUOTA\tCHUNK\tOWNER\tCREATED\n")
	for _, v := range vols {
		q := "none"
		if v.Quota > 0 {
			q = ibytes(v.Quota)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d:%d\t%s\n", v.Name, ibytes(v.Used), ibytes(v.UsedBySnapshots),
			ibytes(v.UsedByBranches), v.Files, q, ibytes(int64(v.ChunkSize)), v.Uid, v.Gid,
			v.Created.Local().Format("2006-01-02 15:04"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printPartials(dir, "")
}
