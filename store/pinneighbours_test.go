package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPinNeighboursModel pins and unpins epochs of one lineage at random,
// writing a file between steps, and before every unpin checks the
// neighbours found by seeks (pinNeighbours) against those read from the
// full list of pins (Pins), which is what unpin walked before it stopped
// costing O(number of pins). After each unpin the lineage's lastPin must be
// the newest pin left. Check runs at the end (NewTestStore).
func TestPinNeighboursModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	s, live := NewTestStore(t, 2, Options{})
	var pinned []uint64 // the model: pinned epochs, oldest first
	for step := range 120 {
		writeRoot(t, s, live, fmt.Sprintf("f%d", rng.IntN(8)), 1+rng.IntN(40_000))
		if len(pinned) == 0 || rng.IntN(3) > 0 {
			v, _, err := s.PinEpoch(live.Lineage, "h", nil)
			if err != nil {
				t.Fatalf("step %d: pin: %v", step, err)
			}
			pinned = append(pinned, v.Epoch)
			continue
		}
		i := rng.IntN(len(pinned))
		e := pinned[i]
		all, err := s.Pins(live.Lineage)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(all, pinned) {
			t.Fatalf("step %d: Pins = %v, model %v", step, all, pinned)
		}
		want := pinNeighbours{}
		if i > 0 {
			want.prev = pinned[i-1]
		}
		if i+1 < len(pinned) {
			want.next, want.hasNext = pinned[i+1], true
		}
		if rest := slices.Delete(slices.Clone(pinned), i, i+1); len(rest) > 0 {
			want.newestOther = rest[len(rest)-1]
		}
		got, err := s.pinNeighbours(live.Lineage, e)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d: neighbours of %d in %v = %+v, want %+v", step, e, pinned, got, want)
		}
		if err := s.UnpinEpoch(live.Lineage, e, "h"); err != nil {
			t.Fatalf("step %d: unpin %d: %v", step, e, err)
		}
		pinned = slices.Delete(pinned, i, i+1)
		l, err := s.lineageOf(live)
		if err != nil {
			t.Fatal(err)
		}
		if l.lastPin != want.newestOther {
			t.Fatalf("step %d: lastPin %d after unpinning %d, want %d", step, l.lastPin, e, want.newestOther)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}
