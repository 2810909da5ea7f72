package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory Store for engine tests. Fault, when set, is called
// before every operation with its name ("put", "get", "head", "list",
// "delete") and key; a non-nil result fails the operation without doing
// it, which is how tests model a store that is down, throttles or times
// out.
type Mem struct {
	name string

	// mu guards objs and Fault.
	mu    sync.Mutex
	objs  map[string]memObject
	fault func(op, key string) error
	// ops counts operations by name (for tests that count requests).
	ops map[string]int
}

type memObject struct {
	data     []byte
	etag     string
	modified time.Time
}

// NewMem returns an empty in-memory store named name.
func NewMem(name string) *Mem {
	return &Mem{name: name, objs: map[string]memObject{}, ops: map[string]int{}}
}

// SetFault installs (or, with nil, removes) the fault hook.
func (m *Mem) SetFault(f func(op, key string) error) {
	m.mu.Lock()
	m.fault = f
	m.mu.Unlock()
}

// Ops returns how many operations named op were attempted.
func (m *Mem) Ops(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops[op]
}

// begin counts the operation and returns the injected fault, if any;
// called with mu held.
func (m *Mem) begin(op, key string) error {
	m.ops[op]++
	if m.fault != nil {
		if err := m.fault(op, key); err != nil {
			return fmt.Errorf("%s %s/%s: %w", op, m, key, err)
		}
	}
	return nil
}

func (m *Mem) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("put", key); err != nil {
		return err
	}
	sum := md5.Sum(data)
	m.objs[key] = memObject{data: bytes.Clone(data), etag: hex.EncodeToString(sum[:]), modified: time.Now()}
	return nil
}

func (m *Mem) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("get", key); err != nil {
		return nil, err
	}
	o, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s/%s: %w", m, key, ErrNotFound)
	}
	size := int64(len(o.data))
	if n < 0 {
		n = size - off
	}
	if off < 0 || n < 0 || off+n > size {
		return nil, fmt.Errorf("get %s/%s [%d,+%d) of %d bytes: %w", m, key, off, n, size, ErrShort)
	}
	return bytes.Clone(o.data[off : off+n]), nil
}

func (m *Mem) Head(ctx context.Context, key string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("head", key); err != nil {
		return Info{}, err
	}
	o, ok := m.objs[key]
	if !ok {
		return Info{}, fmt.Errorf("head %s/%s: %w", m, key, ErrNotFound)
	}
	return Info{Key: key, Size: int64(len(o.data)), ETag: o.etag, Modified: o.modified}, nil
}

func (m *Mem) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("list", prefix); err != nil {
		return nil, err
	}
	var out []Info
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, Info{Key: k, Size: int64(len(o.data)), ETag: o.etag, Modified: o.modified})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *Mem) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("delete", key); err != nil {
		return err
	}
	delete(m.objs, key)
	return nil
}

func (m *Mem) String() string { return "mem://" + m.name }

// Corrupt flips one byte of an object in place (tests of read repair and
// scrub); it reports whether the object exists and is long enough.
func (m *Mem) Corrupt(key string, off int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok || off < 0 || off >= int64(len(o.data)) {
		return false
	}
	o.data[off] ^= 0xff
	return true
}

// Truncate shortens an object in place (a store returning an object of
// the wrong length).
func (m *Mem) Truncate(key string, size int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok || size < 0 || size > int64(len(o.data)) {
		return false
	}
	o.data = o.data[:size]
	m.objs[key] = o
	return true
}

// Clone returns a copy of the store's objects as a new store named name
// (without the fault hook): a test's picture of the bucket at one
// moment, for example what a kill -9 at that moment would leave.
func (m *Mem) Clone(name string) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMem(name)
	for k, o := range m.objs {
		c.objs[k] = memObject{data: bytes.Clone(o.data), etag: o.etag, modified: o.modified}
	}
	return c
}
