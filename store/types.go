package store

import (
	"math"
	"time"
)

// RootIno is the inode number of every volume's root directory.
const RootIno uint64 = 1

// MaxIno is the largest inode number: inode numbers are 40 bits wide so that
// (view << 40 | ino) fits a 64-bit FUSE node id.
const MaxIno uint64 = 1<<40 - 1

// LiveEpoch is the epoch of a live view: it sees the newest version of every key.
const LiveEpoch uint64 = math.MaxUint64 >> 1

// MaxNameLen is the longest file name, in bytes, as on ext4.
const MaxNameLen = 255

// View is a way of looking at a lineage: the live view of a volume or branch
// (Epoch == LiveEpoch, writable) or a snapshot (Lineage, Epoch), read-only.
type View struct {
	ID       uint32 // 24-bit view id, never reused; the high bits of node ids
	Lineage  uint32 // the lineage whose keys the view reads first
	Epoch    uint64 // newest epoch visible; LiveEpoch for a live view
	ReadOnly bool
}

// Live reports whether v is the live (writable) view of its lineage.
func (v View) Live() bool { return v.Epoch == LiveEpoch }

// Attr is what stat(2) reports of an inode in a view.
type Attr struct {
	Ino     uint64
	Mode    uint32 // file type bits (syscall.S_IFREG ...) and permissions
	Nlink   uint32
	Uid     uint32
	Gid     uint32
	Rdev    uint32
	Size    uint64
	Blocks  uint64 // 512-byte blocks: logical bytes of non-hole data, rounded up
	Blksize uint32 // the inode's chunk size: the I/O size that avoids read-modify-write
	Atime   int64  // nanoseconds since the Unix epoch
	Mtime   int64
	Ctime   int64
}

// IsDir reports whether the attributes describe a directory.
func (a *Attr) IsDir() bool { return a.Mode&sIFMT == sIFDIR }

// DirEntry is one name of a directory listing. "." and ".." are not listed.
type DirEntry struct {
	Name   string
	Ino    uint64
	Mode   uint32 // file type bits only
	Cookie uint64 // pass to ReadDir to continue after this entry; stable across changes
}

// SetAttrIn says which attributes SetAttr changes. Times are nanoseconds
// since the Unix epoch; the *Now flags take the current time instead.
type SetAttrIn struct {
	Valid     uint32 // SetMode | SetUid | ...
	Mode      uint32 // permission bits only
	Uid, Gid  uint32
	Size      uint64
	Atime     int64
	Mtime     int64
	Ctime     int64
	HandleFor *Handle // the handle ftruncate came through, if any (nil is fine)
}

// SetAttrIn.Valid bits.
const (
	SetMode uint32 = 1 << iota
	SetUid
	SetGid
	SetSize
	SetAtime
	SetMtime
	SetAtimeNow
	SetMtimeNow
	SetCtime
	// SetKillSuidgid clears setuid, and setgid with group execute, of a
	// regular file: a truncate by a caller without CAP_FSETID.
	SetKillSuidgid
)

// Rename flags, as renameat2(2) spells them.
const (
	RenameNoReplace uint32 = 1
	RenameExchange  uint32 = 2
	RenameWhiteout  uint32 = 4
)

// Xattr flags, as setxattr(2) spells them.
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// Fallocate modes, as fallocate(2) spells them.
const (
	FallocKeepSize  uint32 = 0x01
	FallocPunchHole uint32 = 0x02
	FallocZeroRange uint32 = 0x10
)

// StatFS is what statfs(2) reports for a view.
type StatFS struct {
	Bsize   uint32
	Blocks  uint64 // total, in Bsize units
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	NameLen uint32
}

// VolumeOptions are set when a volume is created.
type VolumeOptions struct {
	// Quota is the most logical bytes the volume's live view may hold; 0 means none.
	Quota int64
	// ChunkSize for new files; 0 means the pool's default.
	ChunkSize int
	// Uid and Gid own the root directory and the volume's snapshots.
	Uid, Gid uint32
	// Mode is the root directory's permission bits; 0 means 0755.
	Mode uint32
}

// VolumeInfo describes a volume.
type VolumeInfo struct {
	Name      string
	Lineage   uint32
	ViewID    uint32 // the live view's id
	ChunkSize int
	Quota     int64
	Uid, Gid  uint32
	Created   time.Time
	Used      int64 // logical bytes held by the live view
	Files     int64 // inodes in the live view
}

const (
	sIFMT   = 0o170000
	sIFDIR  = 0o040000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFIFO  = 0o010000
	sIFCHR  = 0o020000
	sIFBLK  = 0o060000
	sIFSOCK = 0o140000
)
