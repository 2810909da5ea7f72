package stream

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// record is one record of a crafted stream.
type record struct {
	typ     byte
	payload []byte
}

// craft frames records as a writer would, with a correct end record.
func craft(recs []record) []byte {
	var buf bytes.Buffer
	rw := newRecordWriter(&buf)
	for _, r := range recs {
		rw.record(r.typ, r.payload)
	}
	rw.end()
	return buf.Bytes()
}

// TestCraftedStreamsRefused: streams whose every record checks out but
// whose content is not a whole, consistent tree (or is out of order, or
// claims another header) are refused with ErrCorrupt, and nothing is
// made on the target.
func TestCraftedStreamsRefused(t *testing.T) {
	dst, _ := storetest.New(t, 1, store.Options{})
	dir := t.TempDir()
	h := &Header{Format: Version, SourcePool: "p", Dataset: "vol", Snapshot: SnapInfo{Name: "s", Epoch: 2, Created: 1}, ChunkSize: 4096}
	h.StreamID = streamID(h)
	hdr := record{recHeader, mustJSON(h)}
	root := inodeRecord{Ino: 1, New: true, Mode: syscall.S_IFDIR | 0o755}
	file := inodeRecord{Ino: 2, New: true, Mode: syscall.S_IFREG | 0o644, Size: 100}
	data := bytes.Repeat([]byte{7}, 100)
	sum := blake3.Sum256(data)
	chunk := record{recChunk, append(append([]byte{}, sum[:]...), data...)}
	lay := layoutRecord{Ino: 2, Size: 100, ChunkSize: 4096, Chunks: []layoutEntry{{0, sum, 100}}}
	good := []record{hdr, {recInode, root.encode()}, {recInode, file.encode()}, chunk,
		{recLayout, lay.encode()}, {recDir, encodeDir(1, []dirEntry{{"f", 2}})}}
	badHdr := *h
	badHdr.Dataset = "other" // stream id no longer matches
	wrongData := append(append([]byte{}, sum[:]...), bytes.Repeat([]byte{8}, 100)...)
	swapped := craft(good)
	{
		// swap the bytes of the two inode records (same length)
		a := bytes.Index(swapped, append([]byte{recInode}, 0, 0, 0, byte(len(root.encode()))))
		n := 5 + len(root.encode()) + 4
		if len(file.encode()) == len(root.encode()) {
			tmp := append([]byte{}, swapped[a:a+n]...)
			copy(swapped[a:a+n], swapped[a+n:a+2*n])
			copy(swapped[a+n:a+2*n], tmp)
		} else {
			swapped[a+5] ^= 1 // lengths differ: damage the record instead
		}
	}
	cases := []struct {
		name  string
		input []byte
	}{
		{"entry names an unknown inode", craft(append(append([]record{}, good[:5]...), record{recDir, encodeDir(1, []dirEntry{{"f", 9}})}))},
		{"layout names a chunk not carried", craft([]record{hdr, {recInode, root.encode()}, {recInode, file.encode()}, {recLayout, lay.encode()}, {recDir, encodeDir(1, []dirEntry{{"f", 2}})}})},
		{"second layout of one inode", craft(append(append([]record{}, good...), record{recLayout, lay.encode()}))},
		{"no root", craft([]record{hdr, {recInode, file.encode()}, chunk, {recLayout, lay.encode()}})},
		{"chunk bytes do not match the hash", craft([]record{hdr, {recInode, root.encode()}, {recInode, file.encode()}, {recChunk, wrongData}})},
		{"header of another stream id", craft([]record{{recHeader, mustJSON(&badHdr)}, {recInode, root.encode()}})},
		{"records swapped", swapped},
		{"name with a slash", craft(append(append([]record{}, good[:5]...), record{recDir, encodeDir(1, []dirEntry{{"a/b", 2}})}))},
	}
	for _, c := range cases {
		_, _, err := Receive(&Target{Store: dst, Dir: dir, Dataset: "copy"}, bytes.NewReader(c.input))
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: got %v, want ErrCorrupt", c.name, err)
		}
		if _, err := dst.Volume("copy"); err == nil {
			t.Fatalf("%s: the refused stream made the volume", c.name)
		}
		if err := Abort(dst, dir, "copy", nil); err != nil && !errors.Is(err, ErrNoPartial) {
			t.Fatal(err)
		}
	}
	if _, _, err := Receive(&Target{Store: dst, Dir: dir, Dataset: "copy"}, bytes.NewReader(craft(good))); err != nil {
		t.Fatalf("the good crafted stream: %v", err)
	}
}
