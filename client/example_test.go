package client_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// startDaemon creates a pool in a temporary directory and serves its
// control socket in this process, as snapfs mount does; it returns the
// pool directory and a function that stops everything.
func startDaemon() (dir string, stop func()) {
	dir, _, stop = startDaemonStore()
	return dir, stop
}

// startDaemonStore is startDaemon that also returns the store, for
// examples that write files as a mount would.
func startDaemonStore() (dir string, st *store.Store, stop func()) {
	base, err := os.MkdirTemp("", "snapfs-example-")
	if err != nil {
		log.Fatal(err)
	}
	dir = filepath.Join(base, "pool")
	member := filepath.Join(base, "disk")
	if err := os.Mkdir(member, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{member}}); err != nil {
		log.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	st, err = store.Open(p, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := control.Start(dir, p, st, nil)
	if err != nil {
		log.Fatal(err)
	}
	return dir, st, func() {
		srv.Close()
		st.Close()
		p.Close()
		os.RemoveAll(base)
	}
}

func Example() {
	dir, stop := startDaemon()
	defer stop()

	c, err := client.Dial(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if _, err := c.CreateVolume("home", client.VolumeOptions{}); err != nil {
		log.Fatal(err)
	}
	s, err := c.CreateSnapshot("home", "nightly")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", s.Volume+"@"+s.Name, s.Kind)

	// Errors are typed: compare them with errors.Is, never by message.
	_, err = c.CreateSnapshot("home", "nightly")
	fmt.Println("again:", errors.Is(err, client.ErrExists))
	err = c.DestroySnapshot("home", "weekly")
	fmt.Println("destroy missing:", errors.Is(err, client.ErrNotFound))

	if _, err := c.CreateBranch("home", "nightly", "experiment"); err != nil {
		log.Fatal(err)
	}
	list, err := c.ListSnapshots("home")
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range list {
		if s.Parent != "" {
			fmt.Println(s.Name, s.Kind, "from", s.Parent)
		} else {
			fmt.Println(s.Name, s.Kind)
		}
	}
	err = c.DestroySnapshot("home", "nightly")
	fmt.Println("destroy with branches:", errors.Is(err, client.ErrBusy))
	// Output:
	// created home@nightly snapshot
	// again: true
	// destroy missing: true
	// nightly snapshot
	// experiment branch from nightly
	// destroy with branches: true
}

// writeFile writes data to name in the root of volume vol, as a program
// writing through the mount would.
func writeFile(st *store.Store, vol, name string, data []byte) {
	v, err := st.LiveView(vol)
	if err != nil {
		log.Fatal(err)
	}
	var h *store.Handle
	if a, err := st.Lookup(v, store.RootIno, name); err == nil {
		h, err = st.Open(v, a.Ino, os.O_RDWR)
		if err != nil {
			log.Fatal(err)
		}
	} else if _, h, err = st.Create(v, store.RootIno, name, 0o644, 0, 0, os.O_RDWR); err != nil {
		log.Fatal(err)
	}
	if _, err := h.Write(data, 0); err != nil {
		log.Fatal(err)
	}
	if err := h.Release(); err != nil {
		log.Fatal(err)
	}
}

// Reading the space figures of snapshots: what each one holds, what was
// written since the previous one, and what destroying it would free.
func ExampleClient_ListSnapshots() {
	dir, st, stop := startDaemonStore()
	defer stop()
	c, err := client.Dial(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateVolume("home", client.VolumeOptions{}); err != nil {
		log.Fatal(err)
	}
	chunk := func(b byte) []byte { // one 128 KiB chunk
		p := make([]byte, 128<<10)
		for i := range p {
			p[i] = b
		}
		return p
	}
	writeFile(st, "home", "report", chunk('a'))
	if _, err := c.CreateSnapshot("home", "monday"); err != nil {
		log.Fatal(err)
	}
	writeFile(st, "home", "report", chunk('b')) // monday alone keeps the old chunk
	writeFile(st, "home", "notes", chunk('c'))
	if _, err := c.CreateSnapshot("home", "tuesday"); err != nil {
		log.Fatal(err)
	}
	list, err := c.ListSnapshots("home")
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range list {
		fmt.Printf("%s: referenced %d, written %d, unique %d\n", s.Name, s.Referenced, s.Written, s.Unique)
	}
	vols, err := c.ListVolumes()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("used by snapshots:", vols[0].UsedBySnapshots)
	// Output:
	// monday: referenced 131072, written 131072, unique 131072
	// tuesday: referenced 262144, written 262144, unique 0
	// used by snapshots: 131072
}

// A branch is a dataset of its own, "VOL/BRANCH", with snapshots and
// branches of its own: the tree has any depth.
func Example_branchDatasets() {
	dir, stop := startDaemon()
	defer stop()
	c, err := client.Dial(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	_, err = c.CreateVolume("home", client.VolumeOptions{})
	must(err)
	_, err = c.CreateSnapshot("home", "nightly")
	must(err)
	_, err = c.CreateBranch("home", "nightly", "test") // the dataset home/test
	must(err)
	t1, err := c.CreateSnapshot("home/test", "t1")
	must(err)
	fmt.Println("created", t1.Volume+"@"+t1.Name)
	fix, err := c.CreateBranch("home/test", "t1", "fix") // home/test/fix
	must(err)
	fmt.Println("created", fix.Volume+"/"+fix.Name, "from", fix.Volume+"@"+fix.Parent)

	// A branch with snapshots or branches of its own is destroyed only
	// with everything below it.
	err = c.DestroyBranch("home", "test")
	fmt.Println("destroy home/test:", errors.Is(err, client.ErrBusy))
	must(c.DestroyBranchRecursive("home", "test"))
	_, err = c.ListSnapshots("home/test")
	fmt.Println("home/test gone:", errors.Is(err, client.ErrNotFound))
	// Output:
	// created home/test@t1
	// created home/test/fix from home/test@t1
	// destroy home/test: true
	// home/test gone: true
}
