package main

// The loopback baselines: go-fuse's loopback filesystem, served by a child
// process (this same program, re-executed with --internal-serve-loopback) so
// that, like the snapfs daemon, it has its own CPUs' worth of scheduling and
// its own memory, apart from the workload.
//
// "loopback" hides FUSE passthrough: its file handles do not implement
// fs.FilePassthroughFder, so every read and write travels through the
// daemon, as it does in snapfs. It is the baseline of every ratio.
// "loopback-pt" is the loopback as the library ships it, where the kernel
// may route reads and writes straight to the backing file (when running as
// root on a kernel with FUSE passthrough); it is shown for reference only.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// noPTNode is a loopback node whose open files hide passthrough.
type noPTNode struct {
	fs.LoopbackNode
}

var (
	_ = (fs.NodeOpener)((*noPTNode)(nil))
	_ = (fs.NodeCreater)((*noPTNode)(nil))
)

func (n *noPTNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	return wrapNoPT(fh), fl, errno
}

func (n *noPTNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, wrapNoPT(fh), fl, errno
}

// loopbackFile is the set of file interfaces fs.LoopbackFile implements,
// minus fs.FilePassthroughFder.
type loopbackFile interface {
	fs.FileReleaser
	fs.FileGetattrer
	fs.FileStatxer
	fs.FileReader
	fs.FileWriter
	fs.FileWritever
	fs.FileGetlker
	fs.FileSetlker
	fs.FileSetlkwer
	fs.FileLseeker
	fs.FileFlusher
	fs.FileFsyncer
	fs.FileSetattrer
	fs.FileAllocater
	fs.FileIoctler
}

// noPTFile forwards every file operation but PassthroughFd. Because the
// struct embeds an interface that lacks that method, the bridge's type
// assertion to fs.FilePassthroughFder fails and it never registers a
// backing file.
type noPTFile struct {
	loopbackFile
}

func wrapNoPT(fh fs.FileHandle) fs.FileHandle {
	if fh == nil {
		return nil
	}
	if lf, ok := fh.(loopbackFile); ok {
		return &noPTFile{lf}
	}
	return fh
}

var _ = (fs.FilePassthroughFder)((*fs.LoopbackFile)(nil))

// newNoPTLoopbackRoot is fs.NewLoopbackRoot with noPTNode nodes.
func newNoPTLoopbackRoot(path string) (fs.InodeEmbedder, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, err
	}
	root := &fs.LoopbackRoot{Path: path, Dev: uint64(st.Dev)}
	//lint:ignore SA1019 NewNode is the simplest hook that types every node.
	root.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &noPTNode{fs.LoopbackNode{RootData: r}}
	}
	rootNode := root.NewNode(root, nil, "", &st)
	root.RootNode = rootNode
	return rootNode, nil
}

// serveLoopback is the child-process entry: mount backing dir at mnt,
// print "ready" on stdout, serve until unmounted or signalled.
func serveLoopback(backing, mnt string, passthrough bool) error {
	var root fs.InodeEmbedder
	var err error
	if passthrough {
		root, err = fs.NewLoopbackRoot(backing)
	} else {
		root, err = newNoPTLoopbackRoot(backing)
	}
	if err != nil {
		return err
	}
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout:  &sec,
		EntryTimeout: &sec,
		MountOptions: fuse.MountOptions{
			FsName:      backing,
			Name:        "benchloop",
			MaxWrite:    1 << 20,
			DirectMount: os.Geteuid() == 0,
		},
	}
	srv, err := fs.Mount(mnt, root, opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		_ = srv.Unmount()
	}()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	w.Flush()
	srv.Wait()
	return nil
}
