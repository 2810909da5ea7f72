package pool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestReadvAt: osFile.ReadvAt fills its buffers in turn from the offset,
// across buffer boundaries and through empty buffers, and stops with
// io.EOF and the count read when the file ends first.
func TestReadvAt(t *testing.T) {
	content := payload(7, 10000)
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name  string
		sizes []int
		off   int64
		want  int
		eof   bool
	}{
		{"one buffer", []int{4096}, 0, 4096, false},
		{"three buffers", []int{72, 8192, 132}, 100, 72 + 8192 + 132, false},
		{"an empty buffer between", []int{10, 0, 20}, 5, 30, false},
		{"ends in the last buffer", []int{72, 4096, 500}, 10000 - 72 - 4096 - 100, 72 + 4096 + 100, true},
		{"ends in the middle buffer", []int{72, 4096, 500}, 10000 - 1000, 1000, true},
		{"at the end", []int{10}, 10000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bufs [][]byte
			for _, n := range tc.sizes {
				bufs = append(bufs, bytes.Repeat([]byte{0xee}, n))
			}
			n, err := osFile{f}.ReadvAt(bufs, tc.off)
			if n != tc.want || (err == io.EOF) != tc.eof || (err != nil && err != io.EOF) {
				t.Fatalf("read %d bytes, %v; want %d, EOF %v", n, err, tc.want, tc.eof)
			}
			got := bytes.Join(bufs, nil)[:n]
			if !bytes.Equal(got, content[tc.off:tc.off+int64(n)]) {
				t.Fatalf("the %d bytes read are not the file's", n)
			}
		})
	}
}

// vectorCounter is the OS file system with the calls of its files'
// ReadAt and ReadvAt counted: which way a read went. Without vector its
// files have no ReadvAt.
type vectorCounter struct {
	FS
	readAt, readv *atomic.Int64
	vector        bool
}

// scalarCountedFile is a vectorCountedFile without ReadvAt.
type scalarCountedFile struct {
	File
	c vectorCounter
}

func (f scalarCountedFile) ReadAt(b []byte, off int64) (int, error) {
	f.c.readAt.Add(1)
	return f.File.ReadAt(b, off)
}

type vectorCountedFile struct {
	File
	c vectorCounter
}

func (c vectorCounter) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !c.vector {
		return scalarCountedFile{f, c}, nil
	}
	return vectorCountedFile{f, c}, nil
}

func (f vectorCountedFile) ReadAt(b []byte, off int64) (int, error) {
	f.c.readAt.Add(1)
	return f.File.ReadAt(b, off)
}

func (f vectorCountedFile) ReadvAt(bufs [][]byte, off int64) (int, error) {
	f.c.readv.Add(1)
	return f.File.(vectorReader).ReadvAt(bufs, off)
}

// readIntoPaths are the two ways ReadInto reads: one preadv into the
// caller's buffer (a pack file), or Read and a copy (a File without
// ReadvAt, as an object-store pack). Each opens a one-member pool
// writing records of version v, and says how many ReadvAt and ReadAt
// calls a ReadInto of one record makes.
var readIntoPaths = []struct {
	name          string
	open          func(t *testing.T, v uint16) (*Pool, vectorCounter)
	readv, readAt int64
}{
	{"preadv", func(t *testing.T, v uint16) (*Pool, vectorCounter) {
		c := vectorCounter{OSFS{}, new(atomic.Int64), new(atomic.Int64), true}
		return NewTestPoolOptions(t, 1, CreateOptions{FS: c}, OpenOptions{FS: c, RecordVersion: v}), c
	}, 1, 0},
	{"read and copy", func(t *testing.T, v uint16) (*Pool, vectorCounter) {
		c := vectorCounter{OSFS{}, new(atomic.Int64), new(atomic.Int64), false}
		return NewTestPoolOptions(t, 1, CreateOptions{FS: c}, OpenOptions{FS: c, RecordVersion: v}), c
	}, 0, 1},
}

// TestReadInto: records of both versions, of every length in
// recordSizes (the trailer in the padding, spilling over, the record
// last in its pack so the read runs past its end), read by ReadInto
// either way into a buffer of their length: the bytes are the record's,
// in one call, and ReadInto agrees with Read. A buffer of another length
// is refused without a read.
func TestReadInto(t *testing.T) {
	for _, path := range readIntoPaths {
		for _, v := range []uint16{recordV1, recordV2} {
			for _, size := range recordSizes {
				t.Run(fmt.Sprintf("%s/v%d/%d", path.name, v, size), func(t *testing.T) {
					p, c := path.open(t, v)
					first := payload(size+1, size)
					last := payload(size+2, size)
					locs := []Location{appendT(t, p, first)[0], appendT(t, p, last)[0]}
					for i, data := range [][]byte{first, last} {
						c.readv.Store(0)
						c.readAt.Store(0)
						dst := bytes.Repeat([]byte{0xee}, size)
						if err := p.ReadInto(locs[i], hashOf(data), dst); err != nil || !bytes.Equal(dst, data) {
							t.Fatalf("record %d: %v, bytes right: %v", i, err, bytes.Equal(dst, data))
						}
						if c.readv.Load() != path.readv || c.readAt.Load() != path.readAt {
							t.Fatalf("record %d: %d ReadvAt and %d ReadAt calls, want %d and %d", i, c.readv.Load(), c.readAt.Load(), path.readv, path.readAt)
						}
					}
					c.readv.Store(0)
					c.readAt.Store(0)
					if err := p.ReadInto(locs[0], hashOf(first), make([]byte, size+1)); err == nil || c.readv.Load()+c.readAt.Load() != 0 {
						t.Fatalf("a buffer of %d bytes for %d: %v after %d reads", size+1, size, err, c.readv.Load()+c.readAt.Load())
					}
				})
			}
		}
	}
}

// TestReadIntoFlipped: a byte flipped anywhere in a record of either
// version (header, the first, middle or last byte of every page, the
// page table and its CRC), or a read asking for another hash or length,
// fails ReadInto with ErrChecksum, either way it reads; so does a
// location past the end of the pack. Read agrees.
func TestReadIntoFlipped(t *testing.T) {
	const size = 5*PageSize + 1000
	for _, path := range readIntoPaths {
		for _, v := range []uint16{recordV1, recordV2} {
			p, _ := path.open(t, v)
			for name, pos := range flipClasses(v, size) {
				t.Run(fmt.Sprintf("%s/v%d/%s", path.name, v, name), func(t *testing.T) {
					data := payload(pos, size)
					loc := appendT(t, p, data)[0]
					flipByte(t, packPath(p, loc), loc.Offset+int64(pos))
					if err := p.ReadInto(loc, hashOf(data), make([]byte, size)); !errors.Is(err, ErrChecksum) {
						t.Fatalf("ReadInto: %v, want ErrChecksum", err)
					}
					if _, err := p.Read(loc, hashOf(data), nil); !errors.Is(err, ErrChecksum) {
						t.Fatalf("Read: %v, want ErrChecksum", err)
					}
				})
			}
			t.Run(fmt.Sprintf("%s/v%d/wrong request", path.name, v), func(t *testing.T) {
				data := payload(1, size)
				loc := appendT(t, p, data)[0]
				other := hashOf(data)
				other[0] ^= 1
				shorter := loc
				shorter.Length--
				past := loc
				past.Offset += 1 << 30
				for _, tc := range []struct {
					name string
					loc  Location
					h    Hash
				}{
					{"another hash", loc, other},
					{"another length", shorter, hashOf(data)},
					{"past the end of the pack", past, hashOf(data)},
				} {
					if err := p.ReadInto(tc.loc, tc.h, make([]byte, tc.loc.Length)); !errors.Is(err, ErrChecksum) {
						t.Fatalf("%s: %v, want ErrChecksum", tc.name, err)
					}
				}
				if err := p.ReadInto(loc, hashOf(data), make([]byte, size)); err != nil {
					t.Fatalf("the record itself: %v", err)
				}
			})
		}
	}
}

// TestReadIntoConcurrent: goroutines reading records of one pack into
// their own buffers at once (as concurrent FUSE READs do) each get their
// record's bytes.
func TestReadIntoConcurrent(t *testing.T) {
	p := NewTestPool(t, 1)
	const records, size = 16, 32 * PageSize
	var datas [][]byte
	var locs []Location
	for i := 0; i < records; i++ {
		datas = append(datas, payload(i, size))
		locs = append(locs, appendT(t, p, datas[i])[0])
	}
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			dst := make([]byte, size)
			for k := 0; k < 50; k++ {
				i := (g*7 + k) % records
				if err := p.ReadInto(locs[i], hashOf(datas[i]), dst); err != nil || !bytes.Equal(dst, datas[i]) {
					errs <- fmt.Errorf("goroutine %d, record %d: %v", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
