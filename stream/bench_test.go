package stream

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// BenchmarkIncremental10k measures an incremental send and receive of a
// volume of 10,000 small files of which 1% changed: what the walk of the
// sender and the apply of the receiver cost, without process starts.
func BenchmarkIncremental10k(b *testing.B) {
	src, v := storetest.New(b, 1, store.Options{})
	dst, _ := storetest.New(b, 1, store.Options{})
	dir := b.TempDir()
	data := make([]byte, 8192)
	for d := 0; d < 100; d++ {
		da, err := src.Mkdir(v, store.RootIno, fmt.Sprintf("d%02d", d), 0o755, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			_, h, err := src.Create(v, da.Ino, fmt.Sprintf("f%03d", i), syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
			if err != nil {
				b.Fatal(err)
			}
			data[0], data[1] = byte(d), byte(i)
			h.Write(data, 0)
			h.Release()
		}
	}
	m := snap.ManagerFor(src)
	m.Create("vol", "s0")
	var buf bytes.Buffer
	SendNamed(&SendRequest{Store: src, PoolID: "p", Dataset: "vol", Snapshot: "s0"}, &buf)
	if _, _, err := Receive(&Target{Store: dst, Dir: dir, Dataset: "copy"}, &buf); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for d := 0; d < 100; d++ {
			da, _ := src.Lookup(v, store.RootIno, fmt.Sprintf("d%02d", d))
			fa, _ := src.Lookup(v, da.Ino, "f000")
			h, _ := src.Open(v, fa.Ino, os.O_RDWR)
			h.Write([]byte{byte(n)}, 100)
			h.Release()
		}
		prev, name := fmt.Sprintf("s%d", n), fmt.Sprintf("s%d", n+1)
		m.Create("vol", name)
		buf.Reset()
		t0 := time.Now()
		st, err := SendNamed(&SendRequest{Store: src, PoolID: "p", Dataset: "vol", Snapshot: name, Base: prev}, &buf)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, _, err := Receive(&Target{Store: dst, Dir: dir, Dataset: "copy"}, &buf); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Bytes), "stream-bytes")
		b.ReportMetric(float64(t1.Sub(t0).Milliseconds()), "send-ms")
		b.ReportMetric(float64(time.Since(t1).Milliseconds()), "receive-ms")
	}
}
