package store

import (
	"errors"
	"testing"
)

// TestRefusedGrowKeepsBufferedWrites: a size change refused for the quota
// (a truncate up, a zero range past the end) changes nothing, not even the
// file's record in memory. It used to drop that record while the file's
// last writes were still buffered: the size they gave was lost, the unlink
// then returned only the committed bytes to the quota, and the rest stayed
// counted until a remount (a write after `rm` saw EDQUOT: TestQuota).
func TestRefusedGrowKeepsBufferedWrites(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		grow func(s *Store, v View, h *Handle) error
	}{
		{"truncate up by setattr", func(s *Store, v View, h *Handle) error {
			_, err := s.SetAttr(v, h.ino, SetAttrIn{Valid: SetSize, Size: 64 * mib})
			return err
		}},
		{"truncate up through the handle", func(s *Store, v View, h *Handle) error {
			_, err := s.SetAttr(v, h.ino, SetAttrIn{Valid: SetSize, Size: 64 * mib, HandleFor: h})
			return err
		}},
		{"zero range past the end", func(s *Store, v View, h *Handle) error {
			return h.Allocate(3*mib, 61*mib, FallocZeroRange)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := NewTestStore(t, 1, Options{})
			if _, err := s.CreateVolume("q", VolumeOptions{Quota: 4 * mib}); err != nil {
				t.Fatal(err)
			}
			v, err := s.LiveView("q")
			if err != nil {
				t.Fatal(err)
			}
			h := openRW(t, s, v, newEmpty(t, s, v, "big"))
			data := randomChunks(3*mib+5000, 11)
			if _, err := h.Write(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := tc.grow(s, v, h); !errors.Is(err, ErrQuota) {
				t.Fatalf("growing to 64 MiB under a 4 MiB quota: %v, want ErrQuota", err)
			}
			if a, err := s.GetAttr(v, h.ino); err != nil || a.Size != uint64(len(data)) {
				t.Fatalf("size after the refusal: %d (%v), want %d", a.Size, err, len(data))
			}
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			readBack(t, s, v, h.ino, data)
			if err := s.Unlink(v, RootIno, "big"); err != nil {
				t.Fatal(err)
			}
			if vi, err := s.Volume("q"); err != nil || vi.Used != 0 {
				t.Fatalf("used after the unlink: %d (%v), want 0", vi.Used, err)
			}
			nw := openRW(t, s, v, newEmpty(t, s, v, "after"))
			if _, err := nw.Write(randomChunks(3*mib, 12), 0); err != nil {
				t.Fatalf("writing 3 MiB after the unlink: %v", err)
			}
			if err := nw.Release(); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
