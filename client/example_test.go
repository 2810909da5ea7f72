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
	st, err := store.Open(p, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := control.Start(dir, p, st, nil)
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() {
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
