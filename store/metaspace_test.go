package store

import (
	"errors"
	"testing"
)

// TestMetaSpaceRoom: growth stops at the reserve, everything at a quarter
// of it; a failed statfs keeps the last figure.
func TestMetaSpaceRoom(t *testing.T) {
	const reserve = 16 << 20
	for _, tc := range []struct {
		free    int64
		grows   bool
		refused bool
	}{
		{free: 1 << 30, grows: true},
		{free: reserve, grows: true},
		{free: reserve - 1, grows: true, refused: true},
		{free: reserve - 1, grows: false},
		{free: reserve / 4, grows: false},
		{free: reserve/4 - 1, grows: false, refused: true},
		{free: 0, grows: true, refused: true},
	} {
		m := metaSpace{reserve: reserve, statfs: func() (int64, error) { return tc.free, nil }}
		err := m.room(tc.grows)
		if refused := errors.Is(err, ErrNoSpace); refused != tc.refused || (err != nil && !refused) {
			t.Errorf("free %d, grows %v: %v; want refused %v", tc.free, tc.grows, err, tc.refused)
		}
	}
	m := metaSpace{reserve: reserve, statfs: func() (int64, error) { return 0, errors.New("statfs failed") }}
	m.free.Store(reserve)
	if err := m.room(true); err != nil {
		t.Errorf("statfs failing after %d bytes free: %v; want the last figure kept", reserve, err)
	}
	var off metaSpace // metadata not on a disk
	if err := off.room(true); err != nil {
		t.Errorf("no guard: %v", err)
	}
}
