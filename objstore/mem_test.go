package objstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestMemRangesAndFaults(t *testing.T) {
	ctx := context.Background()
	m := NewMem("t")
	if err := m.Put(ctx, "packs/1.pack", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off, n int64
		want   string
		err    error
	}{
		{0, -1, "0123456789", nil},
		{3, 4, "3456", nil},
		{10, 0, "", nil},
		{8, 4, "", ErrShort},
		{-1, 2, "", ErrShort},
	} {
		got, err := m.Get(ctx, "packs/1.pack", tc.off, tc.n)
		if !errors.Is(err, tc.err) || (err == nil && !bytes.Equal(got, []byte(tc.want))) {
			t.Errorf("Get(%d,%d) = %q, %v; want %q, %v", tc.off, tc.n, got, err, tc.want, tc.err)
		}
	}
	if _, err := m.Get(ctx, "nope", 0, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing object: %v, want ErrNotFound", err)
	}
	down := errors.New("503 SlowDown")
	m.SetFault(func(op, key string) error {
		if op == "put" {
			return down
		}
		return nil
	})
	if err := m.Put(ctx, "packs/2.pack", []byte("x")); !errors.Is(err, down) {
		t.Errorf("Put under a fault: %v", err)
	}
	m.SetFault(nil)
	list, err := m.List(ctx, "packs/")
	if err != nil || len(list) != 1 || list[0].Key != "packs/1.pack" || list[0].Size != 10 {
		t.Errorf("List after a failed Put: %v, %v", list, err)
	}
	if m.Ops("put") != 2 {
		t.Errorf("Ops(put) = %d, want 2", m.Ops("put"))
	}
	if !m.Corrupt("packs/1.pack", 0) {
		t.Fatal("Corrupt")
	}
	if got, _ := m.Get(ctx, "packs/1.pack", 0, 1); got[0] == '0' {
		t.Error("Corrupt changed nothing")
	}
	if err := m.Delete(ctx, "packs/1.pack"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "packs/1.pack"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := m.Head(ctx, "packs/1.pack"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head after Delete: %v", err)
	}
}
