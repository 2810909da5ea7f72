// Package pool stores chunk bytes for snapfs: a set of member directories
// (normally one per disk) holding append-only pack files, with placement,
// copies, checksums, group-committed durability, hole-punching reclaim and
// crash recovery. It knows nothing of files, inodes or snapshots: the store
// hands it (hash, bytes) and keeps the returned Locations in its metadata.
//
// # Layout
//
//	POOL/pool.json        Config: id, incarnation, format, copies, chunk size, members
//	POOL/lock             flock(LOCK_EX|LOCK_NB) while open; holds the owner's pid
//	POOL/meta/            the metadata database (opened by the store, not here)
//	MEMBER/member.json    the full Config + generation + this member's id
//	MEMBER/accounted      the durable accounted position (two CRC'd slots)
//	MEMBER/packs/<n>.pack pack files, n = 1, 2, ...; the highest is active
//	MEMBER/meta-checkpoints/<seq>/  the newest metadata checkpoint shipped
//	                      here (checkpoint.go); Import restores POOL/meta/ from it
//	POOL/stage/<member-id>/packs/  an object-store member's stage (objmember.go)
//	PREFIX/member.json, PREFIX/packs/<n>.pack, PREFIX/meta-checkpoints/...
//	                      an object-store member (s3://BUCKET/PREFIX): the same
//	                      files as objects; packs are sealed stage packs
//
// A member whose directory or member.json is missing is "gone" (a failed
// disk, or a mount point whose disk is not mounted), at Open or later
// (CheckMembers): the pool is degraded, never writes there, and reads
// from it fail with ErrMemberGone so ReadAny reads around it. A member on
// a read-only file system, or whose writes failed, serves reads but takes
// no records. Appends then place as many copies as there are writable
// failure domains (at least one). CheckMembers brings members back when
// they reappear; see health.go for the states and the rules.
//
// # Records
//
// A pack is a sequence of records, each starting at a 4 KiB-aligned offset
// and padded with zeros to the next one. All integers are little endian:
//
//	offset  size
//	     0     4  +-------------------------------------------+
//	              | magic "SNPK"                              |
//	     4     2  | format version (1 or 2; 2 is written)     |
//	     6     1  | codec (0 = none: stored bytes = logical)   |
//	     7     1  | flags (0)                                 |
//	     8    16  | pool id                                   |
//	    24    32  | hash: BLAKE3-256 of the logical bytes     |
//	    56     4  | logical length                            |
//	    60     4  | stored length                             |
//	    64     4  | CRC32C (Castagnoli) of the stored bytes   |
//	    68     4  | CRC32C of header bytes [0, 68)            |
//	    72        +-------------------------------------------+
//	              | stored bytes (S)                          |
//	  72+S        +-------------------------------------------+
//	              | version 2 only, the page trailer:         |
//	              | CRC32C of each 4 KiB page of the stored   |
//	              | bytes (the last may be short), 4 bytes    |
//	              | each, then the CRC32C of that table       |
//	              +-------------------------------------------+
//	              | zero padding to a multiple of 4096        |
//	              +-------------------------------------------+
//
// The trailer (132 bytes for a 128 KiB chunk) fits in the padding a
// version 1 record of whole pages had, so both take the same space; a
// record whose last page is nearly full takes one block more. Version 1
// records (pools written before 2026-12-06) have no trailer and still
// read; a pool may hold both.
//
// A Location is (member, pack, offset of the header, logical length). Read
// reads a record whole and checks the header CRC, magic, version, pool
// id, that the hash and length are the expected ones, the payload CRC and
// (version 2) the trailer's CRC; any mismatch is ErrChecksum and no bytes
// are returned. ReadRange reads part of a version 2 record: the header,
// the pages holding the range and the trailer, and checks each page read
// against its CRC, so a 4 KiB read of a 128 KiB chunk reads 4.3 KiB in
// at most three preads (at most four 4 KiB blocks of the pack),
// never returning a byte its CRC did not cover (a version 1 record is
// read whole). ReadInto reads a record whole with its payload landing in
// the caller's buffer (one preadv of header, payload and trailer, the
// same checks as Read): a sequential reader's FUSE request gets the bytes
// without a buffer of the pool's or a copy; on a mismatch the buffer's
// bytes are unverified and the caller must not use them. The full content hash is the caller's business (scrub,
// first dedup use). The pool id lets a scan reject records of another
// pool; the magic and header CRC let it resynchronise after a torn
// record: it tries every 4 KiB boundary, and takes a record only when its
// payload and trailer check.
//
// # Writing and durability
//
// Append encodes the record once and writes it (one pwrite at the pack end,
// under that member's mutex) to Copies members in distinct failure domains;
// different members proceed in parallel. Placement is a smooth weighted
// round robin over the writable members, weighted by free space (statfs,
// refreshed every second and corrected by what was appended since), so
// consecutive records stripe across all members. With copies=1 that is
// RAID 0: losing a member loses part of most large files.
//
// Nothing is durable until Sync. Sync is a group commit per member: the
// member's durable position only grows; a caller whose record lies past it
// waits for the fdatasync in progress, and if that one started before its
// record was written, one waiter leads the next fdatasync for all of them.
// A failed fdatasync marks the member failed (the page cache state is then
// unknown): later Syncs of unsynced records fail and appends go elsewhere.
// A pack is sealed at 1 GiB (64 MiB on members that cannot punch): it is
// fdatasync'ed before the next pack is created, so sealed packs are always
// durable.
//
// # Recovery
//
// Each member persists an accounted position (pack, offset) with
// MarkAccounted, which the store calls once everything durable is committed
// or freed. At Open only packs at or past it are scanned; valid records
// found there are returned by Tails (the store frees those it does not
// reference), and whatever follows the last valid record of a pack (a torn
// write) is truncated away. Open fdatasyncs the active pack, so everything
// Tails reports is durable.
//
// # Reclaim and space
//
// Free punches a record's aligned extent with PUNCH_HOLE|KEEP_SIZE after
// checking that its header is still there (so a double free is a no-op),
// deletes a sealed pack whose allocated blocks reach zero, and fsyncs the
// packs it punched before returning. Whether a member
// can punch is probed at Open; members that cannot, and btrfs members (where
// punching frees nothing), skip punching and use small packs for a later
// repack. Reserve/Unreserve account accepted-but-unflushed writes against
// free space minus a slop reserve (1 % per member, 8 MiB to 256 MiB).
//
// # Removing members and repacking
//
// A removed member keeps its slot in Config.Members (Removed set), so the
// member index in stored locations never changes meaning. The store moves
// records off a member (SetDraining stops placement there; CheckRemove
// refuses what cannot work) and then calls ForgetMember; see remove.go.
// Repack (store) rewrites sealed packs that are mostly holes and calls
// DeletePack once no metadata names a record in them; Packs lists each
// member's packs with their size and allocated bytes.
//
// # Testing seams
//
// Every file access goes through FS. OSFS is the real one; MemFS keeps files
// in memory and drops unsynced writes on Crash/CrashClone (power-cut tests);
// FaultFS fails the Nth operation of a kind (EIO, ENOSPC, torn writes);
// ParseFaults reads faults from text, so a daemon started with
// $SNAPFS_FAULTS injects them once mounted (the fault tests in tests/).
package pool
