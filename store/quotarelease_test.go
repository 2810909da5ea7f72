package store

import (
	"errors"
	"testing"
	"time"
)

// TestQuotaWaitsForReleasedOrphan: a file unlinked while its last handle
// is being released (the kernel sends close(2)'s RELEASE in the
// background, and it may arrive after the UNLINK and the next WRITE) still
// counts against the quota until the release; a write refused for the
// quota meanwhile waits for it and succeeds, as on ext4 where the unlink
// of a closed file frees its space at once. A file that stays open keeps
// its space counted, and the write is refused.
func TestQuotaWaitsForReleasedOrphan(t *testing.T) {
	const mib = 1 << 20
	s, _ := NewTestStore(t, 1, Options{})
	if _, err := s.CreateVolume("q", VolumeOptions{Quota: 4 * mib}); err != nil {
		t.Fatal(err)
	}
	v, err := s.LiveView("q")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		release bool // the old file's handle is released during the write
		wantErr error
	}{
		{"released during the write", true, nil},
		{"kept open", false, ErrQuota},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := openRW(t, s, v, newEmpty(t, s, v, "old"))
			if _, err := old.Write(randomChunks(3*mib, 7), 0); err != nil {
				t.Fatal(err)
			}
			if err := s.Unlink(v, RootIno, "old"); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			if tc.release {
				go func() {
					time.Sleep(300 * time.Millisecond)
					done <- old.Release()
				}()
			}
			nw := openRW(t, s, v, newEmpty(t, s, v, "new"))
			_, err := nw.Write(randomChunks(2*mib, 8), 0)
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Errorf("writing 2 MiB with 3 MiB unlinked: %v, want %v", err, tc.wantErr)
			}
			if tc.release {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			} else if err := old.Release(); err != nil {
				t.Fatal(err)
			}
			if err := nw.Release(); err != nil {
				t.Fatal(err)
			}
			if err := s.Unlink(v, RootIno, "new"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
