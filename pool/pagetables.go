package pool

import "sync"

// pageTables keeps the verified page tables of version 2 records a range
// read has read (ReadRange), so the next range read of the same record
// reads only its pages: one pread instead of three (header, pages,
// trailer), which is what a cold 4 KiB random read costs on a disk.
//
// An entry is the table as read and checked with its record's header
// (magic, CRC, version, pool id, hash, length) and its own CRC, keyed by
// location and held with the hash it was read for: a lookup must name
// both. Pages read later are still checked against it, so no byte is
// returned unverified; an entry goes when its record is freed (Free), or
// when a page does not match it (the caller then reads the record again,
// whole). Pack space is never reused in place (packs are append-only and
// a deleted pack's number is not taken again), so a location names one
// record for the life of the pool.
type pageTables struct {
	mu sync.Mutex // guards m
	m  map[Location]pageTable
}

// pageTable is one record's table: a CRC32C per page of its stored bytes.
type pageTable struct {
	hash  Hash
	table []byte
}

// maxPageTables bounds the entries: 16,384 tables of 128 KiB records (2
// GiB of chunks) take about 4 MiB.
const maxPageTables = 16384

func (t *pageTables) get(loc Location, h Hash) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[loc]; ok && e.hash == h {
		return e.table
	}
	return nil
}

func (t *pageTables) put(loc Location, h Hash, table []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[Location]pageTable{}
	}
	if len(t.m) >= maxPageTables {
		// Any entry will do: a random reader's set is not worth an LRU
		// here, and a dropped table costs one pread of it.
		for k := range t.m {
			delete(t.m, k)
			break
		}
	}
	t.m[loc] = pageTable{hash: h, table: append([]byte(nil), table...)}
}

func (t *pageTables) drop(locs ...Location) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range locs {
		delete(t.m, l)
	}
}
