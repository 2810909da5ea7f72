package fs

import (
	"sync"
	"weak"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// kernelInodeBudget is how many file inodes (not directories) the mount
// lets the kernel keep before it asks the kernel to drop the oldest
// names it handed out. go-fuse mirrors every inode the kernel holds (an
// Inode, our node, an entry in the parent's children and in the node id
// table: about 350 bytes each), and the kernel, with memory to spare,
// keeps every name ever looked up or created: a volume of a million files
// once walked left the daemon at 399 MiB (issue 16). With the budget the
// mirror stays near 200,000 inodes (about 70 MiB), whatever the file
// count. A test lowers it.
var kernelInodeBudget = 200_000

// inodeBudget remembers, oldest first, the file inodes handed to the
// kernel, in a ring of kernelInodeBudget weak pointers. When a new one
// overwrites the oldest, that one's name is invalidated in the kernel
// (FUSE_NOTIFY_INVAL_ENTRY), which drops the dentry if nothing uses it and
// then forgets the inode (FORGET), so that go-fuse releases its mirror.
// An open file, a current directory or a name in use stays: the kernel
// keeps what it needs and looks the name up again when asked. Directories
// are never invalidated (a mount on one would be detached).
type inodeBudget struct {
	// mu guards ring, next and running.
	mu   sync.Mutex
	ring []weak.Pointer[gofs.Inode]
	next int
	// queue holds the inodes to invalidate; running says a drainer
	// goroutine is at work (it exits when the queue is empty, so an
	// unmounted file system leaves none behind).
	queue   []weak.Pointer[gofs.Inode]
	running bool
}

// added notes a file inode newly handed to the kernel.
func (b *inodeBudget) added(in *gofs.Inode) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ring == nil {
		b.ring = make([]weak.Pointer[gofs.Inode], kernelInodeBudget)
	}
	old := b.ring[b.next]
	b.ring[b.next] = weak.Make(in)
	b.next = (b.next + 1) % len(b.ring)
	if old.Value() == nil {
		return
	}
	b.queue = append(b.queue, old)
	if !b.running {
		b.running = true
		go b.drain()
	}
}

// drain invalidates the queued names outside of any request: the kernel
// takes the parent directory's lock to drop a name, which a request in
// that directory may hold while it waits for this daemon's reply.
func (b *inodeBudget) drain() {
	for {
		b.mu.Lock()
		q := b.queue
		b.queue = nil
		if len(q) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		for _, w := range q {
			in := w.Value()
			if in == nil {
				continue
			}
			// The name it has now (a rename moved it, an unlink
			// removed it: then there is nothing to drop).
			name, parent := in.Parent()
			if parent == nil {
				continue
			}
			parent.NotifyEntry(name) // ENOENT: the kernel dropped it already
		}
	}
}
