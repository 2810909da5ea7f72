// Package fs serves views of a snapfs store over FUSE, through go-fuse's
// node API. It translates requests into store calls and store results into
// replies; it holds no file system state of its own.
//
// # Node kinds
//
// One type per kind, each in its own file: rootNode (root.go, the root of
// the mounted volume and the future home of .snapshots), dirNode (dir.go),
// fileNode (file.go), symlinkNode (symlink.go) and specialNode (special.go:
// FIFOs, devices, sockets). They all embed node (node.go), which serves
// getattr, setattr, statfs and extended attributes (xattr.go). Opens return
// a fileHandle (handle.go) wrapping a store.Handle, and opendir returns a
// dirHandle (dirhandle.go) that lists through store.ReadDir.
//
// A node holds only its view and inode number (plus go-fuse's Inode):
// with long timeouts the kernel may keep millions of nodes.
//
// # Node ids
//
// The FUSE node id, which is also st_ino, is view<<40 | ino: view ids are
// 24 bits and never reused, inode numbers 40 bits, counted per volume
// family. The mount uses go-fuse's Options.ExternalNodeID so node ids are
// stable across restarts (NFS, rsync -H), and the generation is the pool
// incarnation (MountOptions.Generation). The root keeps FUSE node id 1 as
// the protocol requires, but reports st_ino view<<40 | 1.
//
// # Kernel caching
//
// Entry and attribute timeouts are set per view in every reply; go-fuse's
// global ones stay nil because they would override a node's 0. Live views
// get MountOptions.EntryTimeout and AttrTimeout (1 s); failed lookups are
// cached for NegativeTimeout (1 s, the one global go-fuse timeout). Snapshot
// views never change: unlimited timeouts, and FOPEN_KEEP_CACHE and
// FOPEN_CACHE_DIR on every open. The kernel writeback cache is off unless
// MountOptions.WritebackCache asks for it: then write(2) returns once the
// page cache has the bytes, and writeback.go explains what the mount does
// so that snapshots, rollbacks and SEEK_DATA still see them. The mount
// negotiates CAP_READDIRPLUS_AUTO, and dirHandle answers READDIRPLUS
// lookups from the listing (FileLookuper). Kernel notifications, when
// needed, must come from a goroutine that holds no snapfs lock.
//
// # Errors
//
// The store and the pool return Go errors wrapping their sentinels. They
// become errnos in one place only, toErrno in errno.go, which matches
// every sentinel with errors.Is and logs anything unknown once before
// returning EIO. go-fuse's fs.ToErrno is never used: it does not unwrap.
//
// # Locking
//
// This package takes no locks of its own. go-fuse serializes the calls on
// one directory handle, and the store is safe for concurrent use and owns
// every lock that orders changes. Requests are not interruptible: the
// store API takes no context, so a request runs to completion and its
// result stands, which is what a request past its commit point must do.
package fs
