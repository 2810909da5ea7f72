package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// cmdPoolImport rebuilds a pool whose meta/ or pool.json is gone from its
// members: pool.json from their member.json, meta/ from the newest
// metadata checkpoint on any of them, then frees the pack records written
// after that checkpoint and reports what was lost and what exists.
func cmdPoolImport(g *globals, args []string) error {
	flags := newFlags(g, "pool import", "POOLDIR --member DIR|s3://BUCKET/PREFIX [--s3-endpoint URL]...")
	members := flags.StringArray("member", nil, "member directory of the pool (repeat for each), or s3://BUCKET/PREFIX of an object-store member")
	addS3Flags(flags)
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
		return fmt.Errorf("pool import: at least one --member DIR is needed")
	}
	objects, err := objectConfigs(args)
	if err != nil {
		return fmt.Errorf("pool import: %w", err)
	}
	abs, err := memberArgs(*members)
	if err != nil {
		return err
	}
	res, err := pool.Import(dir, pool.ImportOptions{Members: abs, Objects: objects})
	if err != nil {
		return importError(dir, err)
	}
	fmt.Printf("imported pool %s (id %s, incarnation %d) from %s\n", dir, res.Config.ID, res.Config.Incarnation, strings.Join(abs, ", "))
	if res.PoolJSON == "rebuilt" {
		fmt.Printf("pool.json: rebuilt from the members' configuration (%d members, copies %d)\n", len(res.Config.Members), res.Config.Copies)
	}
	if res.Restored == nil {
		fmt.Println("meta/: kept as it was (only pool.json was missing): nothing lost")
	} else if err := reconcileImport(dir, res.Restored); err != nil {
		return err
	}
	return printImported(dir)
}

// importError turns the refusals of pool.Import into one clear line.
func importError(dir string, err error) error {
	switch {
	case errors.Is(err, pool.ErrInUse):
		return fmt.Errorf("pool %s is in use (is it mounted? snapfs umount it first)", dir)
	}
	return fmt.Errorf("pool import %s: %w", dir, err)
}

// reconcileImport frees the records the restored checkpoint does not
// name and says what was lost.
func reconcileImport(dir string, c *pool.ShippedCheckpoint) error {
	p, err := openPool(dir)
	if err != nil {
		return err
	}
	line := newProgressLine("import: scanning packs", false)
	rep, rerr := store.ReconcileImportProgress(p, store.Options{}, c.Info, scanProgress(line))
	line.end()
	if cerr := p.Close(); rerr == nil {
		rerr = cerr
	}
	if rerr != nil {
		return fmt.Errorf("pool import %s: %w", dir, rerr)
	}
	fmt.Printf("meta/: restored from the checkpoint of %s (%s) on %s\n",
		c.Info.Taken.Local().Format("2006-01-02 15:04:05"), c.Info.Reason, c.Member)
	if rep.Orphans == 0 {
		fmt.Println("lost: nothing: the packs hold no record written after the checkpoint")
	} else {
		fmt.Printf("lost: %d records (%d chunks, %s of file data) written after the checkpoint were not in it and are freed; changes made after %s are gone\n",
			rep.Orphans, rep.OrphanChunks, ibytes(rep.OrphanBytes), c.Info.Taken.Local().Format("15:04:05"))
	}
	if rep.Missing > 0 {
		fmt.Printf("damaged: %d records the checkpoint names are on no member (snapfs fsck lists them)\n", rep.Missing)
	}
	for _, m := range rep.Unscanned {
		fmt.Printf("not scanned: member %s is missing; records it holds that the checkpoint does not name stay until fsck --repair\n", m)
	}
	return nil
}

// printImported lists the volumes, snapshots and branches of the pool.
func printImported(dir string) error {
	e, err := openEngine(dir)
	if err != nil {
		return err
	}
	vols, err := e.st.Volumes()
	if err == nil {
		fmt.Printf("volumes after import: %d\n", len(vols))
		m := snap.ManagerFor(e.st)
		for _, v := range vols {
			ss, lerr := m.List(v.Name)
			if lerr != nil {
				err = lerr
				break
			}
			var names []string
			for _, s := range ss {
				names = append(names, s.Name+kindSuffix(s.Kind))
			}
			list := "no snapshots"
			if len(names) > 0 {
				list = "snapshots: " + strings.Join(names, ", ")
			}
			fmt.Printf("  %s: %s\n", v.Name, list)
		}
		snap.Release(e.st)
	}
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return err
}

func kindSuffix(k snap.Kind) string {
	if k == snap.KindBranch {
		return " (branch)"
	}
	return ""
}
