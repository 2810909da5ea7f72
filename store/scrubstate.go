package store

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// Resuming a scrub
//
// A scrub goes through the chunks in disk order (scrubOrder): each
// chunk by the location of its first copy, each member's records in
// (pack, offset) order. Its cursor is therefore one position per member:
// the first-copy position of the last chunk of that member it finished
// (verified, repaired, and raised: the raise batch is committed before a
// cursor passes it). The cursor and the counts so far are saved in the
// metadata (scrubStateKey) every scrubSaveInterval, when the scrub is
// stopped (ScrubOptions.Context) and when it fails; a complete scrub
// deletes them.
//
// The next Scrub resumes: it takes the chunkrefs as they are now and
// verifies those whose first copy lies past its member's cursor. This is
// exact because a member's positions are never reused: records are only
// appended (a new pack gets a number above every earlier one, and
// recovery cuts off only records no metadata names), so every record
// written after the interrupted scrub passed a position (a new file's
// chunk, a repaired or evacuated copy, a repacked record) lies past it
// and is verified, and every chunk at or before it was. Chunks without a
// location come last, by hash, with their own cursor.
//
// Every save is synced (once a second costs nothing next to the reads),
// so a kill loses at most the last interval's progress, which is verified
// again; repairs and raised copies are committed with their own synced
// batches before a save names them, so what an interrupted scrub
// repaired stays repaired.

// catScrub is the catalog kind of the scrub's saved state.
const catScrub byte = 'S'

func scrubStateKey() []byte { return catalogKey(catScrub, "state") }

// scrubSaveInterval is how often a running scrub saves its cursor.
var scrubSaveInterval = time.Second

// scrubPos is a position in a member's append stream.
type scrubPos struct {
	Pack   uint32 `json:"pack"`
	Offset int64  `json:"offset"`
}

func posOf(l pool.Location) scrubPos { return scrubPos{Pack: l.Pack, Offset: l.Offset} }

// after reports whether a lies past b.
func (a scrubPos) after(b scrubPos) bool {
	return a.Pack > b.Pack || (a.Pack == b.Pack && a.Offset > b.Offset)
}

// scrubState is the saved progress of an unfinished scrub.
type scrubState struct {
	Started  time.Time `json:"started"`
	Saved    time.Time `json:"saved"`
	NoRepair bool      `json:"no_repair"`
	// UnderAtStart is the under-replicated count when the scrub first
	// started: what a complete scrub that raised everything subtracts.
	UnderAtStart int64 `json:"under_at_start"`
	// Members holds, for each member index, the first-copy position of
	// the last chunk finished there.
	Members map[uint16]scrubPos `json:"members"`
	// NoLoc is the hex hash of the last chunk without a location
	// finished ("" if none).
	NoLoc  string      `json:"noloc,omitempty"`
	Report ScrubReport `json:"report"`
}

// ScrubResume describes the interrupted scrub a Scrub continued.
type ScrubResume struct {
	// Started is when the interrupted scrub began; Saved when its
	// progress was last saved.
	Started time.Time `json:"started"`
	Saved   time.Time `json:"saved"`
	// Done is how many chunks it had verified.
	Done int64 `json:"done"`
	// Where names the cursor: per member, the pack and offset after
	// which the scrub continued.
	Where []string `json:"where"`
}

// newScrubState starts the state of a scrub from scratch.
func newScrubState(noRepair bool, under int64) *scrubState {
	now := time.Now()
	return &scrubState{Started: now, Saved: now, NoRepair: noRepair, UnderAtStart: under, Members: map[uint16]scrubPos{}}
}

// loadScrubState returns the saved state of an interrupted scrub, or nil.
// A state that does not decode is dropped (the scrub starts over).
func (s *Store) loadScrubState() (*scrubState, error) {
	v, c, err := s.db.Get(scrubStateKey())
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read scrub state: %w", err)
	}
	defer c.Close()
	var st scrubState
	if err := json.Unmarshal(v, &st); err != nil {
		fmt.Printf("snapfs: scrub: saved progress unreadable (%v): starting over\n", err)
		return nil, nil
	}
	if st.Members == nil {
		st.Members = map[uint16]scrubPos{}
	}
	return &st, nil
}

// saveScrubState writes st with report r, synced.
func (s *Store) saveScrubState(st *scrubState, r ScrubReport) error {
	st.Saved = time.Now()
	st.Report = r
	st.Report.Resumed = nil
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := s.db.Set(scrubStateKey(), v, pebble.Sync); err != nil {
		return fmt.Errorf("save scrub progress: %w", err)
	}
	return nil
}

// dropScrubState forgets the saved progress (a scrub finished, or one
// starting over).
func (s *Store) dropScrubState() error {
	if err := s.db.Delete(scrubStateKey(), pebble.Sync); err != nil {
		return fmt.Errorf("drop scrub progress: %w", err)
	}
	return nil
}

// done reports whether the chunk h, whose record is rec, is at or before
// the cursor: verified by the interrupted scrub.
func (st *scrubState) done(h pool.Hash, rec chunkRefRec) bool {
	if len(rec.Locs) == 0 {
		return st.NoLoc != "" && hex.EncodeToString(h[:]) <= st.NoLoc
	}
	c, ok := st.Members[rec.Locs[0].Member]
	return ok && !posOf(rec.Locs[0]).after(c)
}

// finished moves the cursor past chunk h, whose record (as ordered) is
// rec.
func (st *scrubState) finished(h pool.Hash, rec chunkRefRec) {
	if len(rec.Locs) == 0 {
		st.NoLoc = hex.EncodeToString(h[:])
		return
	}
	st.Members[rec.Locs[0].Member] = posOf(rec.Locs[0])
}

// resume describes st for the report, naming members by path.
func (st *scrubState) resume(p *pool.Pool) *ScrubResume {
	r := &ScrubResume{Started: st.Started, Saved: st.Saved, Done: st.Report.Chunks}
	cfg := p.Config()
	var ms []uint16
	for m := range st.Members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
	for _, m := range ms {
		name := fmt.Sprintf("member %d", m)
		if int(m) < len(cfg.Members) {
			name = cfg.Members[m].Path
		}
		c := st.Members[m]
		r.Where = append(r.Where, fmt.Sprintf("%s after pack %d offset %d", name, c.Pack, c.Offset))
	}
	if st.NoLoc != "" {
		r.Where = append(r.Where, "chunks without a location after "+st.NoLoc[:16])
	}
	return r
}
