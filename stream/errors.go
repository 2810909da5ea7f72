package stream

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of sending and receiving. Each error a receive returns wraps one
// of these (errors.Is), and its text is one line naming what is wrong.
var (
	// ErrNotStream: the input does not start with a snapfs stream's magic.
	ErrNotStream = errors.New("not a snapfs stream")
	// ErrNewerVersion: the stream's format is newer than this snapfs reads.
	ErrNewerVersion = errors.New("stream format too new")
	// ErrCorrupt: a record failed its checksum, is malformed or out of
	// place, or the whole stream's checksum differs.
	ErrCorrupt = errors.New("stream damaged")
	// ErrTruncated: the input ended before the stream's end record.
	ErrTruncated = errors.New("stream truncated")
	// ErrNoBase: an incremental's base snapshot is not on the target.
	ErrNoBase = errors.New("base snapshot missing on the target")
	// ErrTargetChanged: the target changed since the base (use -F).
	ErrTargetChanged = errors.New("target changed since the base snapshot")
	// ErrTargetExists: a full stream into a dataset that exists.
	ErrTargetExists = errors.New("target dataset exists")
	// ErrSnapshotExists: the stream's snapshot name is taken on the target.
	ErrSnapshotExists = errors.New("snapshot exists on the target")
	// ErrBusy: another receive into the same dataset is running.
	ErrBusy = errors.New("another receive into the dataset is running")
	// ErrPartial: the dataset holds a partial receive; resume or abort it.
	ErrPartial = errors.New("dataset has a partial receive")
	// ErrNoPartial: no partial receive to resume or abort.
	ErrNoPartial = errors.New("no partial receive")
	// ErrStaleToken: a resume token that does not match what is there.
	ErrStaleToken = errors.New("stale or foreign resume token")
)

// corrupt returns an ErrCorrupt error at stream offset off.
func corrupt(off int64, format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshaled
	}
	return b
}
