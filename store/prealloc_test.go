package store

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// reserved returns the pool's outstanding reservations.
func reserved(t *testing.T, s *Store) int64 {
	t.Helper()
	st, err := s.pool.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Reserved
}

// TestPreallocateQuota: mode 0 grows the size against the quota; KEEP_SIZE
// counts its range past the size, so other files cannot take it, and the
// file then grows into it without EDQUOT; a fallocate past the quota is
// ErrQuota with nothing changed; truncate and unlink give everything back.
func TestPreallocateQuota(t *testing.T) {
	const mib = 1 << 20
	s, _ := NewTestStore(t, 2, Options{})
	if _, err := s.CreateVolume("q", VolumeOptions{Quota: 4 * mib}); err != nil {
		t.Fatal(err)
	}
	v, err := s.LiveView("q")
	if err != nil {
		t.Fatal(err)
	}
	size := func(ino uint64) uint64 {
		a, err := s.GetAttr(v, ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Size
	}
	a := openRW(t, s, v, newEmpty(t, s, v, "a"))
	defer a.Release()
	base := reserved(t, s)
	if err := a.Allocate(0, 8*mib, 0); !errors.Is(err, ErrQuota) {
		t.Fatalf("fallocate 8 MiB under a 4 MiB quota: %v, want ErrQuota", err)
	}
	if size(a.ino) != 0 || reserved(t, s) != base {
		t.Fatalf("a refused fallocate changed something: size %d, reserved %d (was %d)", size(a.ino), reserved(t, s), base)
	}
	if err := a.Allocate(0, 2*mib, 0); err != nil {
		t.Fatal(err)
	}
	if size(a.ino) != 2*mib {
		t.Errorf("size after fallocate of 2 MiB: %d", size(a.ino))
	}
	if got := reserved(t, s) - base; got != 2*mib*int64(s.pool.Copies()) {
		t.Errorf("reserved after fallocate of 2 MiB: %d more", got)
	}
	b := openRW(t, s, v, newEmpty(t, s, v, "b"))
	defer b.Release()
	if err := b.Allocate(0, 3*mib/2, FallocKeepSize); err != nil {
		t.Fatal(err)
	}
	if size(b.ino) != 0 {
		t.Errorf("KEEP_SIZE changed the size to %d", size(b.ino))
	}
	c := openRW(t, s, v, newEmpty(t, s, v, "c"))
	defer c.Release()
	if _, err := c.Write(randomChunks(mib, 1), 0); !errors.Is(err, ErrQuota) {
		t.Errorf("writing 1 MiB with 3.5 MiB of 4 allocated: %v, want ErrQuota", err)
	}
	if _, err := b.Write(randomChunks(3*mib/2, 2), 0); err != nil {
		t.Errorf("writing the KEEP_SIZE range: %v", err)
	}
	if _, err := a.Write(randomChunks(2*mib, 3), 0); err != nil {
		t.Errorf("writing the mode-0 range: %v", err)
	}
	for _, h := range []*Handle{a, b} {
		if err := h.Fsync(false); err != nil {
			t.Fatal(err)
		}
	}
	// The reservations were spent by the first writes; the quota is full.
	if _, err := c.Write(randomChunks(mib, 4), 0); !errors.Is(err, ErrQuota) {
		t.Errorf("writing 1 MiB with 3.5 MiB written: %v, want ErrQuota", err)
	}
	// truncate gives back a KEEP_SIZE range past the size, and unlink the rest.
	if err := c.Allocate(0, mib/4, FallocKeepSize); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAttr(v, c.ino, SetAttrIn{Valid: SetSize, Size: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(randomChunks(mib/4, 5), 0); err != nil {
		t.Errorf("a write after truncate gave the KEEP_SIZE range back: %v", err)
	}
	if err := c.Fsync(false); err != nil {
		t.Fatal(err)
	}
	if got := reserved(t, s); got != base {
		t.Errorf("reservations left after every range was written or truncated: %d, want %d", got, base)
	}
}

// TestPreallocateNoSpace: on a pool that fills up, a fallocate the pool
// cannot hold is ErrNoSpace with nothing reserved; one that fits holds its
// space through a snapshot and while another file fills the pool, and the
// first write of the whole range then succeeds and is durable.
func TestPreallocateNoSpace(t *testing.T) {
	const mib = 1 << 20
	s, v := smallPoolStore(t)
	f := openRW(t, s, v, newEmpty(t, s, v, "f"))
	base := reserved(t, s)
	if err := f.Allocate(0, 64*mib, 0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("fallocate 64 MiB on a 40 MiB pool: %v, want ErrNoSpace", err)
	}
	if a, _ := f.Attr(); a.Size != 0 || reserved(t, s) != base {
		t.Fatalf("a refused fallocate changed something: size %d, reserved %d (was %d)", a.Size, reserved(t, s), base)
	}
	if err := f.Allocate(0, 8*mib, 0); err != nil {
		t.Fatal(err)
	}
	snap, _, err := s.PinEpoch(v.Lineage, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another file takes everything else.
	var full error
	for i := 0; i < 64 && full == nil; i++ {
		name := fmt.Sprintf("fill%d", i)
		_, h, err := s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Write(randomChunks(mib, uint64(100+i)), 0); err != nil {
			full = err
		} else if err := h.Fsync(false); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(); err != nil && full == nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(full, ErrNoSpace) {
		t.Fatalf("filling the pool: %v, want ErrNoSpace", full)
	}
	data := randomChunks(8*mib, 9)
	if _, err := f.Write(data, 0); err != nil {
		t.Fatalf("the first write into the preallocated range on a full pool: %v", err)
	}
	if err := f.Fsync(false); err != nil {
		t.Fatalf("fsync of the preallocated range: %v", err)
	}
	checkRead(t, f, data, "the preallocated range after the pool filled")
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(v.Lineage, snap.Epoch, "s"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
