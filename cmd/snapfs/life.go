package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Schedules, holds and a volume's whole life. Each command goes through
// the pool's daemon when one runs, else opens the pool; either way the
// engine's error text is what the user reads (the daemon forwards it), so
// both paths print the same line: lifeError turns it into one clear line.

// sentinelPrefix is the package prefix of the engine's sentinel errors,
// dropped from messages shown to users.
var sentinelPrefix = regexp.MustCompile(`: (snap|store|pool): `)

// lifeError makes err one clear line; ds names the dataset (or volume)
// the command was about, for a missing volume.
func lifeError(dir, ds string, err error) error {
	if err == nil {
		return nil
	}
	err = asErrno(err)
	msg := err.Error()
	var ce *client.Error
	if errors.As(err, &ce) {
		msg = ce.Message
	}
	switch {
	case errors.Is(err, store.ErrNoVolume), strings.HasSuffix(msg, "store: no such volume"):
		return volumeError(dir, snap.VolumeOf(ds), store.ErrNoVolume)
	case strings.HasSuffix(msg, ": snap: no such snapshot"):
		target := strings.TrimSuffix(msg, ": snap: no such snapshot")
		d, _, _ := strings.Cut(target, "@")
		return fmt.Errorf("no snapshot %s (see snapfs snapshot list %s)", target, d)
	case strings.HasSuffix(msg, ": snap: no schedule"):
		return fmt.Errorf("%s has no schedule (see snapfs schedule list)", datasetNoun(ds))
	case errors.Is(err, store.ErrPerm), errors.Is(err, client.ErrPermission):
		return fmt.Errorf("permission denied: only root and the owner of volume %s may change it", snap.VolumeOf(ds))
	}
	return errors.New(oneLine(errors.New(sentinelPrefix.ReplaceAllString(msg, ": "))))
}

// onPoolManager runs viaDaemon when a daemon serves the pool in dir, else
// direct on the pool opened here; errors go through lifeError.
func onPoolManager(dir, ds string, viaDaemon func(c *client.Client) error, direct func(st *store.Store, m *snap.Manager) error) error {
	served, err := withDaemon(dir, viaDaemon)
	if !served && err == nil {
		var e *engine
		if e, err = openEngine(dir); err != nil {
			return err
		}
		m := snap.ManagerFor(e.st)
		err = direct(e.st, m)
		snap.Release(e.st)
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}
	return lifeError(dir, ds, err)
}

func cmdScheduleSet(g *globals, args []string) error {
	flags := newFlags(g, "schedule set", "DATASET TIER=COUNT...")
	dir, rest, err := poolArgs(g, flags, args, 2, 64)
	if err != nil {
		return err
	}
	ds := rest[0]
	if err := checkDataset(ds); err != nil {
		return fmt.Errorf("schedule set: %w: a schedule belongs to a volume or branch", err)
	}
	if _, err := snap.ParseTiers(rest[1:]); err != nil {
		return lifeError(dir, ds, err)
	}
	var sc control.Schedule
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		sc, err = c.SetSchedule(ds, rest[1:])
		return err
	}, func(_ *store.Store, m *snap.Manager) error {
		tiers, _ := snap.ParseTiers(rest[1:])
		p, err := m.SetSchedule(ds, tiers)
		sc = control.ScheduleOf(p, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("schedule of %s: %s; next snapshot %s\n", ds, tierList(sc), whenString(sc.NextRun))
	return nil
}

func tierList(sc control.Schedule) string {
	var ts []string
	for _, t := range sc.Tiers {
		ts = append(ts, fmt.Sprintf("%s=%d", t.Name, t.Keep))
	}
	return strings.Join(ts, " ")
}

// whenString is a run time for people: local time, or "at the next pass"
// for one due now.
func whenString(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if !t.After(time.Now()) {
		return "due now (taken while the pool is mounted)"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cmdScheduleList(g *globals, args []string) error {
	flags := newFlags(g, "schedule list", "[DATASET] [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, rest, err := poolArgs(g, flags, args, 0, 1)
	if err != nil {
		return err
	}
	ds := ""
	if len(rest) == 1 {
		ds = rest[0]
		if err := checkDataset(ds); err != nil {
			return err
		}
	}
	var l []control.Schedule
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		l, err = c.ListSchedules(ds)
		return err
	}, func(_ *store.Store, m *snap.Manager) error {
		l, err = control.ListSchedules(m, ds)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if l == nil {
			l = []control.Schedule{}
		}
		return printJSON(l)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "DATASET\tTIERS\tLAST RUN\tNEXT RUN\n")
	for _, sc := range l {
		last := "-"
		if !sc.LastRun.IsZero() {
			last = sc.LastRun.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sc.Dataset, tierList(sc), last, whenString(sc.NextRun))
	}
	return tw.Flush()
}

func cmdScheduleClear(g *globals, args []string) error {
	flags := newFlags(g, "schedule clear", "DATASET")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	ds := rest[0]
	if err := checkDataset(ds); err != nil {
		return err
	}
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		return c.ClearSchedule(ds)
	}, func(_ *store.Store, m *snap.Manager) error {
		return m.ClearSchedule(ds)
	})
	if err != nil {
		return err
	}
	fmt.Printf("cleared the schedule of %s (its automatic snapshots stay)\n", ds)
	return nil
}

// holdTarget parses DATASET@SNAP TAG.
func holdTarget(g *globals, name string, args []string) (dir, ds, snapName, tag string, err error) {
	flags := newFlags(g, name, "DATASET@SNAP TAG")
	dir, rest, err := poolArgs(g, flags, args, 2, 2)
	if err != nil {
		return "", "", "", "", err
	}
	if ds, snapName, err = splitAt(rest[0]); err != nil {
		return "", "", "", "", err
	}
	if err := snap.ValidTag(rest[1]); err != nil {
		return "", "", "", "", lifeError(dir, ds, err)
	}
	return dir, ds, snapName, rest[1], nil
}

func cmdSnapshotHold(g *globals, args []string) error {
	dir, ds, name, tag, err := holdTarget(g, "snapshot hold", args)
	if err != nil {
		return err
	}
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		return c.HoldSnapshot(ds, name, tag)
	}, func(_ *store.Store, m *snap.Manager) error {
		return m.Hold(ds, name, tag)
	})
	if err != nil {
		return err
	}
	fmt.Printf("held %s@%s with tag %q\n", ds, name, tag)
	return nil
}

func cmdSnapshotRelease(g *globals, args []string) error {
	dir, ds, name, tag, err := holdTarget(g, "snapshot release", args)
	if err != nil {
		return err
	}
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		return c.ReleaseSnapshot(ds, name, tag)
	}, func(_ *store.Store, m *snap.Manager) error {
		return m.Release(ds, name, tag)
	})
	if err != nil {
		return err
	}
	fmt.Printf("released hold %q on %s@%s\n", tag, ds, name)
	return nil
}

func cmdSnapshotHolds(g *globals, args []string) error {
	flags := newFlags(g, "snapshot holds", "DATASET@SNAP [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, ds, name, err := namedTarget(g, flags, args, splitAt)
	if err != nil {
		return err
	}
	var l []control.Hold
	err = onPoolManager(dir, ds, func(c *client.Client) error {
		l, err = c.SnapshotHolds(ds, name)
		return err
	}, func(_ *store.Store, m *snap.Manager) error {
		hs, err := m.Holds(ds, name)
		for _, h := range hs {
			l = append(l, control.Hold{Tag: h.Tag, Created: h.Created})
		}
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if l == nil {
			l = []control.Hold{}
		}
		return printJSON(l)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TAG\tCREATED\n")
	for _, h := range l {
		fmt.Fprintf(tw, "%s\t%s\n", h.Tag, h.Created.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func cmdVolumeDestroy(g *globals, args []string) error {
	flags := newFlags(g, "volume destroy", "VOL [-r|--recursive]")
	recursive := flags.BoolP("recursive", "r", false, "also destroy its snapshots and branches, at every depth")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	vol := rest[0]
	err = onPoolManager(dir, vol, func(c *client.Client) error {
		return c.DestroyVolume(vol, *recursive)
	}, func(_ *store.Store, m *snap.Manager) error {
		return m.DestroyVolume(vol, *recursive)
	})
	if err != nil {
		return err
	}
	fmt.Printf("destroyed volume %s (its space comes back in the background)\n", vol)
	return nil
}

func cmdVolumeRename(g *globals, args []string) error {
	flags := newFlags(g, "volume rename", "VOL NEW")
	dir, rest, err := poolArgs(g, flags, args, 2, 2)
	if err != nil {
		return err
	}
	vol, nv := rest[0], rest[1]
	err = onPoolManager(dir, vol, func(c *client.Client) error {
		return c.RenameVolume(vol, nv)
	}, func(_ *store.Store, m *snap.Manager) error {
		return m.RenameVolume(vol, nv)
	})
	switch {
	case err != nil && strings.Contains(err.Error(), "volume already exists"):
		return fmt.Errorf("cannot rename volume %s to %s: volume %s already exists in pool %s", vol, nv, nv, dir)
	case err != nil && strings.Contains(err.Error(), "invalid name"):
		return fmt.Errorf("invalid volume name %q (no '/', '@' or control characters, at most 255 bytes)", nv)
	case err != nil:
		return err
	}
	fmt.Printf("renamed volume %s to %s\n", vol, nv)
	return nil
}

// usesBytes finds the usage in the engine's refusal of a quota below it.
var usesBytes = regexp.MustCompile(`, uses ([0-9]+):`)

// volumeSettings parses volume set's PROP=VALUE arguments.
func volumeSettings(args []string) (quota *int64, chunk *int, err error) {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || v == "" {
			return nil, nil, fmt.Errorf("volume set: %q: expected PROPERTY=VALUE (quota=SIZE|none, chunksize=SIZE)", a)
		}
		switch k {
		case "quota":
			q := int64(0)
			if v != "none" {
				n, err := parseSize("quota", v)
				if err != nil {
					return nil, nil, err
				}
				q = int64(n)
			}
			quota = &q
		case "chunksize", "chunk-size", "chunk_size":
			n, err := parseSize("chunksize", v)
			if err != nil {
				return nil, nil, err
			}
			c := int(n)
			chunk = &c
		default:
			return nil, nil, fmt.Errorf("volume set: unknown property %q (settable: quota, chunksize)", k)
		}
	}
	return quota, chunk, nil
}

func cmdVolumeSet(g *globals, args []string) error {
	flags := newFlags(g, "volume set", "VOL PROPERTY=VALUE... (quota=SIZE|none, chunksize=SIZE)")
	dir, rest, err := poolArgs(g, flags, args, 2, 3)
	if err != nil {
		return err
	}
	vol := rest[0]
	quota, chunk, err := volumeSettings(rest[1:])
	if err != nil {
		return err
	}
	var vp control.VolumeProps
	err = onPoolManager(dir, vol, func(c *client.Client) error {
		vp, err = c.SetVolume(vol, quota, chunk)
		return err
	}, func(st *store.Store, m *snap.Manager) error {
		if _, err := st.SetVolume(vol, store.VolumeSettings{Quota: quota, ChunkSize: chunk}); err != nil {
			return err
		}
		vp, err = control.VolumePropsOf(st, m, vol)
		return err
	})
	switch {
	case err != nil && strings.Contains(err.Error(), "quota below the volume's current usage"):
		uses := "what"
		if m := usesBytes.FindStringSubmatch(err.Error()); m != nil {
			var n int64
			fmt.Sscan(m[1], &n)
			uses = "the " + ibytes(n)
		}
		return fmt.Errorf("quota %s for volume %s is below %s it uses now: refused, as ZFS refuses it (free space first, or set a larger quota)",
			ibytes(*quota), vol, uses)
	case err != nil && strings.Contains(err.Error(), "chunk size"):
		return fmt.Errorf("chunksize %d: must be a power of two from 4KiB to 1MiB", *chunk)
	case err != nil:
		return err
	}
	q := "none"
	if vp.Quota > 0 {
		q = ibytes(vp.Quota)
	}
	fmt.Printf("volume %s: quota %s, chunk size %s for new files\n", vol, q, ibytes(int64(vp.ChunkSize)))
	return nil
}

func cmdVolumeGet(g *globals, args []string) error {
	flags := newFlags(g, "volume get", "VOL [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	vol := rest[0]
	var vp control.VolumeProps
	err = onPoolManager(dir, vol, func(c *client.Client) error {
		vp, err = c.GetVolume(vol)
		return err
	}, func(st *store.Store, m *snap.Manager) error {
		vp, err = control.VolumePropsOf(st, m, vol)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(vp)
	}
	q := "none"
	if vp.Quota > 0 {
		q = ibytes(vp.Quota)
	}
	sched := "none"
	if vp.Schedule != nil {
		sched = fmt.Sprintf("%s (next %s)", tierList(*vp.Schedule), whenString(vp.Schedule.NextRun))
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"name", vp.Name}, {"used", ibytes(vp.Used)}, {"used by snapshots", ibytes(vp.UsedBySnapshots)},
		{"used by branches", ibytes(vp.UsedByBranches)}, {"files", fmt.Sprint(vp.Files)}, {"quota", q},
		{"chunk size", ibytes(int64(vp.ChunkSize)) + " (new files)"}, {"owner", fmt.Sprintf("%d:%d", vp.Uid, vp.Gid)},
		{"created", vp.Created.Local().Format("2006-01-02 15:04:05")}, {"schedule", sched},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}
