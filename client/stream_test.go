package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"syscall"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/stream"
)

// ExampleClient_Send sends a snapshot from one daemon's pool into
// another's, then shows the typed error of a stream that was damaged on
// the way.
func ExampleClient_Send() {
	srcDir, st, stopSrc := startDaemonStore()
	defer stopSrc()
	dstDir, stopDst := startDaemon()
	defer stopDst()

	src, err := client.Dial(srcDir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	if _, err := src.CreateVolume("home", client.VolumeOptions{}); err != nil {
		log.Fatal(err)
	}
	// A file, written as a mount would.
	v, _ := snap.ManagerFor(st).LiveView("home")
	_, h, _ := st.Create(v, store.RootIno, "notes.txt", syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
	h.Write([]byte("hello"), 0)
	h.Release()
	if _, err := src.CreateSnapshot("home", "mon"); err != nil {
		log.Fatal(err)
	}

	var buf bytes.Buffer
	sent, err := src.Send(client.SendArgs{Dataset: "home", Snapshot: "mon"}, &buf)
	if err != nil {
		log.Fatal(err)
	}
	dst, err := client.Dial(dstDir)
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()

	damaged := append([]byte{}, buf.Bytes()...)
	damaged[len(damaged)/2] ^= 1
	_, err = dst.Receive(client.ReceiveArgs{Dataset: "copy"}, bytes.NewReader(damaged))
	fmt.Println("damaged:", errors.Is(err, stream.ErrCorrupt))
	// Drop what the damaged stream left, if it got past its header.
	if err := dst.AbortReceive("copy"); err != nil && !errors.Is(err, stream.ErrNoPartial) {
		log.Fatal(err)
	}

	res, err := dst.Receive(client.ReceiveArgs{Dataset: "copy"}, bytes.NewReader(buf.Bytes()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("received:", res.Received[0].Snapshot, "bytes match:", res.Stats.Bytes == sent.Bytes)
	_, err = dst.Receive(client.ReceiveArgs{Dataset: "copy"}, bytes.NewReader(buf.Bytes()))
	fmt.Println("again:", errors.Is(err, stream.ErrTargetExists))
	// Output:
	// damaged: true
	// received: mon bytes match: true
	// again: true
}
