package store

import (
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// Every sstable block records the interval of epochs of the versioned keys
// it holds (a Pebble block-property collector), so that a scan for the
// versions born after an epoch skips, without reading them, the blocks
// that hold only older versions: a rollback costs what changed since its
// target, not the lineage's size, for whatever has reached sstables. The
// property's name is part of the on-disk format; tables written before it
// existed carry none and are simply read.
const epochPropName = "snapfs.epochs.v1"

// epochCollector returns a new collector of the epoch interval property.
func epochCollector() pebble.BlockPropertyCollector {
	return sstable.NewBlockIntervalCollector(epochPropName, epochMapper{}, nil)
}

// epochMapper maps a versioned key to [epoch, epoch+1); unversioned keys
// (catalog, counters, chunkrefs, queues) map to the empty interval.
type epochMapper struct{}

func (epochMapper) MapPointKey(key sstable.InternalKey, _ []byte) (sstable.BlockInterval, error) {
	k := key.UserKey
	if splitKey(k) == len(k) {
		return sstable.BlockInterval{}, nil
	}
	e := keyEpoch(k)
	if e == math.MaxUint64 {
		return sstable.BlockInterval{Lower: e - 1, Upper: e}, nil
	}
	return sstable.BlockInterval{Lower: e, Upper: e + 1}, nil
}

func (epochMapper) MapRangeKeys(sstable.Span) (sstable.BlockInterval, error) {
	return sstable.BlockInterval{}, nil
}

// bornAfter returns a filter that lets an iterator skip blocks whose
// versioned keys were all born at or before epoch r. It is advisory:
// such keys may still be returned (from the memtable, or from a block
// that also holds newer ones).
func bornAfter(r uint64) pebble.BlockPropertyFilter {
	return sstable.NewBlockIntervalFilter(epochPropName, r+1, math.MaxUint64, nil)
}
