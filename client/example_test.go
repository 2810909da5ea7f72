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
