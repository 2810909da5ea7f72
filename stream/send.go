package stream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// SendRequest names what to send from a store: Dataset@Snapshot, whole
// or from Base; with Chain, every snapshot after Base up to Snapshot, as
// one incremental stream each (send -I).
type SendRequest struct {
	Store      *store.Store
	PoolID     string
	Dataset    string
	Snapshot   string
	Base       string
	Chain      bool
	OnProgress func(bytes int64)
}

func snapInfo(s snap.Snapshot) SnapInfo {
	return SnapInfo{Name: s.Name, Epoch: s.Epoch, Created: s.Created.UnixNano()}
}

func chunkSizeOf(st *store.Store, ds string) (int64, error) {
	vi, err := st.Volume(snap.VolumeOf(ds))
	if err != nil {
		return 0, err
	}
	return int64(vi.ChunkSize), nil
}

// source resolves one stream's source: ds@name, from base if not "".
func source(r *SendRequest, name, base string) (*Source, error) {
	m := snap.ManagerFor(r.Store)
	s, err := m.Entry(r.Dataset, name)
	if err != nil {
		return nil, err
	}
	if s.Kind != snap.KindSnapshot {
		return nil, fmt.Errorf("%s@%s is a branch, not a snapshot: %w", r.Dataset, name, snap.ErrIsBranch)
	}
	cs, err := chunkSizeOf(r.Store, r.Dataset)
	if err != nil {
		return nil, err
	}
	src := &Source{Store: r.Store, PoolID: r.PoolID, Dataset: r.Dataset, Snapshot: snapInfo(s),
		View: s.View(), ChunkSize: cs, OnProgress: r.OnProgress}
	if base != "" {
		b, err := m.Entry(r.Dataset, base)
		if err != nil {
			return nil, err
		}
		if b.Kind != snap.KindSnapshot {
			return nil, fmt.Errorf("%s@%s is a branch, not a snapshot: %w", r.Dataset, base, snap.ErrIsBranch)
		}
		if b.Epoch >= s.Epoch {
			return nil, fmt.Errorf("base %s@%s is not older than %s@%s: %w", r.Dataset, base, r.Dataset, name, store.ErrInvalid)
		}
		bi := snapInfo(b)
		src.Base, src.BaseView = &bi, b.View()
	}
	return src, nil
}

// SendNamed writes the stream (or, with Chain, the streams) r names to w.
func SendNamed(r *SendRequest, w io.Writer) (Stats, error) {
	names := []string{r.Snapshot}
	if r.Chain {
		if r.Base == "" {
			return Stats{}, fmt.Errorf("send -I needs a base: %w", store.ErrInvalid)
		}
		m := snap.ManagerFor(r.Store)
		b, err := m.Entry(r.Dataset, r.Base)
		if err != nil {
			return Stats{}, err
		}
		t, err := m.Entry(r.Dataset, r.Snapshot)
		if err != nil {
			return Stats{}, err
		}
		list, err := m.Entries(r.Dataset)
		if err != nil {
			return Stats{}, err
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Epoch < list[j].Epoch })
		names = names[:0]
		for _, s := range list {
			if s.Kind == snap.KindSnapshot && s.Epoch > b.Epoch && s.Epoch <= t.Epoch {
				names = append(names, s.Name)
			}
		}
	}
	var total Stats
	base := r.Base
	for _, n := range names {
		src, err := source(r, n, base)
		if err != nil {
			return total, err
		}
		st, err := Send(src, w)
		total.Add(st)
		if err != nil {
			return total, err
		}
		base = n
	}
	return total, nil
}

// ParseToken decodes a resume token.
func ParseToken(s string) (Token, error) {
	var t Token
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "1-")
	if !ok {
		return t, fmt.Errorf("%w: not a resume token", ErrStaleToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &t) != nil || t.V != 1 || t.Offset < preambleLen {
		return t, fmt.Errorf("%w: not a resume token", ErrStaleToken)
	}
	return t, nil
}

// SendResume writes the rest of the stream a resume token names: a resume
// record, then the stream's bytes from the token's offset on. The source
// must still hold the same snapshots (same epochs) in the same pool.
func SendResume(r *SendRequest, token string, w io.Writer) (Stats, error) {
	t, err := ParseToken(token)
	if err != nil {
		return Stats{}, err
	}
	if t.SourcePool != r.PoolID {
		return Stats{}, fmt.Errorf("%w: it names a stream of pool %s, this is pool %s", ErrStaleToken, t.SourcePool, r.PoolID)
	}
	base := ""
	if t.Base != nil {
		base = t.Base.Name
	}
	rq := *r
	rq.Dataset = t.Dataset
	src, err := source(&rq, t.Snapshot.Name, base)
	if errors.Is(err, snap.ErrNoSnapshot) {
		return Stats{}, fmt.Errorf("%w: %s@%s is gone from the source", ErrStaleToken, t.Dataset, t.Snapshot.Name)
	}
	if err != nil {
		return Stats{}, err
	}
	if src.header().StreamID != t.StreamID {
		return Stats{}, fmt.Errorf("%w: %s@%s is not the snapshot the token names (destroyed and taken again?)", ErrStaleToken, t.Dataset, t.Snapshot.Name)
	}
	return send(src, w, t.Offset)
}
