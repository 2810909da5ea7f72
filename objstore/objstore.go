// Package objstore is the seam between a pool and an object store: a
// bucket and a key prefix seen as a flat set of immutable objects.
//
// Objects are written whole (Put) and read by byte range (Get), which is
// all an S3-compatible service promises: no appends, no renames, no
// partial overwrites. The pool builds its object-store members on this
// interface (docs/objects.md): records are staged in a local pack file,
// sealed into an object by one Put, and read back with one ranged Get.
//
// Two implementations: S3 (any S3-compatible service through the client
// library, credentials from the standard chain) and Mem (in memory, for
// engine tests, with fault injection). Both pass the same contract tests
// in objstoretest.
package objstore

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned (wrapped) by Get, Head and a ranged read of an
// object that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrShort is returned (wrapped) by Get when the object ends before the
// requested range does: a wrong-length object is damage, never padding.
var ErrShort = errors.New("object shorter than the range read")

// Info describes one object.
type Info struct {
	Key      string // relative to the store's prefix
	Size     int64
	ETag     string
	Modified time.Time
}

// Store is one bucket and key prefix. Keys are relative to the prefix and
// use '/' as separator. Every method may be called concurrently.
type Store interface {
	// Put writes the object whole, replacing any object of that key;
	// when it returns nil the object is durable in the store.
	Put(ctx context.Context, key string, data []byte) error
	// Get reads n bytes at off of the object (n < 0: to its end). A range
	// past the object's end fails with ErrShort, never a short result.
	Get(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Head describes the object, or fails with ErrNotFound.
	Head(ctx context.Context, key string) (Info, error)
	// List returns every object whose key starts with prefix, in key
	// order.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes the object; deleting a missing object is not an
	// error.
	Delete(ctx context.Context, key string) error
	// String names the store for messages: s3://bucket/prefix or mem://name.
	String() string
}
