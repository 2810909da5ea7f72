package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/snapfs/snapfs/objstore"
)

// Metadata checkpoints on object-store members.
//
//	PREFIX/meta-checkpoints/sst/<name>            sstables and blob files (immutable),
//	                                              shared by the checkpoints naming them
//	PREFIX/meta-checkpoints/<seq>/<name>          the checkpoint's other files
//	PREFIX/meta-checkpoints/<seq>/checkpoint.json the manifest, Put last
//
// A store has no rename, so completeness is the manifest: it is Put only
// after every file it lists, and a checkpoint counts (for Import and
// NewestCheckpoint) only when its manifest is there and every file it
// lists is there with its size. An immutable file already in the store
// with the same name and size is not Put again (as a directory member
// hard-links it). Once the new manifest is Put, older checkpoints and
// immutable files no longer named are deleted.
const objSST = checkpointsDir + "/sst/"

// objCheckpointKey is the key of file name of checkpoint seq.
func objCheckpointKey(seq uint64, name string) string {
	if immutableFile(name) {
		return objSST + name
	}
	return fmt.Sprintf("%s/%d/%s", checkpointsDir, seq, name)
}

// shipToObject writes one checkpoint into object-store member st.
func shipToObject(st objstore.Store, info CheckpointInfo, open func(string) (io.ReadCloser, error)) (copied, linked int64, err error) {
	return shipToObjectCtx(context.Background(), st, info, open)
}

// shipToObjectCtx is shipToObject ending its Puts when ctx is done (a
// replica's uploader, at close).
func shipToObjectCtx(ctx context.Context, st objstore.Store, info CheckpointInfo, open func(string) (io.ReadCloser, error)) (copied, linked int64, err error) {
	have, err := objSizes(st, checkpointsDir+"/")
	if err != nil {
		return 0, 0, err
	}
	if _, ok := have[objCheckpointKey(info.Seq, checkpointFile)]; ok {
		return 0, 0, fmt.Errorf("%s checkpoint %d: %w", st, info.Seq, ErrExists)
	}
	for _, f := range info.Files {
		if strings.ContainsRune(f.Name, '/') || f.Name == checkpointFile {
			return copied, linked, fmt.Errorf("checkpoint file name %q: %w", f.Name, ErrCorrupt)
		}
		key := objCheckpointKey(info.Seq, f.Name)
		if size, ok := have[key]; ok && immutableFile(f.Name) && size == f.Size {
			linked += f.Size
			continue
		}
		b, err := readAll(open, f)
		if err != nil {
			return copied, linked, err
		}
		if err := st.Put(ctx, key, b); err != nil {
			return copied, linked, fmt.Errorf("put %s %s: %w", st, key, err)
		}
		copied += f.Size
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := st.Put(ctx, objCheckpointKey(info.Seq, checkpointFile), append(b, '\n')); err != nil {
		return copied, linked, fmt.Errorf("put %s checkpoint %d manifest: %w", st, info.Seq, err)
	}
	pruneObjectCheckpoints(st, info, have)
	return copied, linked, nil
}

// readAll reads checkpoint file f whole through open.
func readAll(open func(string) (io.ReadCloser, error), f CheckpointFile) ([]byte, error) {
	r, err := open(f.Name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer r.Close()
	b := make([]byte, f.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name, err)
	}
	return b, nil
}

// objSizes lists the objects under prefix with their sizes.
func objSizes(st objstore.Store, prefix string) (map[string]int64, error) {
	infos, err := st.List(context.Background(), prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s %s: %w", st, prefix, err)
	}
	out := make(map[string]int64, len(infos))
	for _, in := range infos {
		out[in.Key] = in.Size
	}
	return out, nil
}

// pruneObjectCheckpoints deletes the objects of checkpoints older than
// info and the immutable files info does not name. Errors are ignored:
// what stays is deleted after the next ship.
func pruneObjectCheckpoints(st objstore.Store, info CheckpointInfo, have map[string]int64) {
	keep := map[string]bool{}
	for _, f := range info.Files {
		keep[objCheckpointKey(info.Seq, f.Name)] = true
	}
	for key := range have {
		if strings.HasPrefix(key, objSST) {
			if !keep[key] {
				st.Delete(context.Background(), key)
			}
			continue
		}
		if seq, ok := objCheckpointSeq(key); ok && seq < info.Seq {
			st.Delete(context.Background(), key)
		}
	}
}

// objCheckpointSeq returns the checkpoint sequence of a key under
// meta-checkpoints/<seq>/.
func objCheckpointSeq(key string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, checkpointsDir+"/")
	if !ok {
		return 0, false
	}
	dir, _, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(dir, 10, 64)
	return seq, err == nil
}

// objectCheckpoints lists the complete checkpoints in st, oldest first
// (url names the member in them). A checkpoint whose manifest lists a
// file missing or of another size is not complete; incomplete lists
// them, for the messages of an import that finds none.
func objectCheckpoints(st objstore.Store, url string) (complete []ShippedCheckpoint, incomplete []string, err error) {
	have, err := objSizes(st, checkpointsDir+"/")
	if err != nil {
		return nil, nil, err
	}
	for key := range have {
		seq, ok := objCheckpointSeq(key)
		if !ok || path.Base(key) != checkpointFile {
			continue
		}
		b, err := st.Get(context.Background(), key, 0, -1)
		var info CheckpointInfo
		if err == nil {
			err = json.Unmarshal(b, &info)
		}
		if err != nil || info.Seq != seq {
			incomplete = append(incomplete, fmt.Sprintf("checkpoint %d: unreadable manifest", seq))
			continue
		}
		var missing []string
		for _, f := range info.Files {
			if size, ok := have[objCheckpointKey(seq, f.Name)]; !ok || size != f.Size {
				missing = append(missing, f.Name)
			}
		}
		if len(missing) > 0 {
			incomplete = append(incomplete, fmt.Sprintf("checkpoint %d lacks %s", seq, strings.Join(missing, ", ")))
			continue
		}
		complete = append(complete, ShippedCheckpoint{Info: info, Member: url, Dir: fmt.Sprintf("%s/%s/%d", url, checkpointsDir, seq), store: st})
	}
	sort.Slice(complete, func(i, j int) bool { return complete[i].Info.Seq < complete[j].Info.Seq })
	sort.Strings(incomplete)
	return complete, incomplete, nil
}

// restoreObjectCheckpoint copies checkpoint c of an object store into
// metaDir as restoreCheckpoint does from a directory.
func restoreObjectCheckpoint(fsys FS, c ShippedCheckpoint, metaDir string) error {
	tmp := metaDir + ".import-tmp"
	if err := removeTree(fsys, tmp); err != nil {
		return err
	}
	if err := fsys.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for _, f := range c.Info.Files {
		key := objCheckpointKey(c.Info.Seq, f.Name)
		open := func(string) (io.ReadCloser, error) {
			b, err := c.store.Get(context.Background(), key, 0, -1)
			if err != nil {
				return nil, err
			}
			if int64(len(b)) != f.Size {
				return nil, fmt.Errorf("%s %s has %d bytes, want %d: %w", c.store, key, len(b), f.Size, ErrCorrupt)
			}
			return io.NopCloser(strings.NewReader(string(b))), nil
		}
		if _, err := copyIn(fsys, tmp+"/"+f.Name, f, open); err != nil {
			removeTree(fsys, tmp)
			return err
		}
	}
	return finishRestore(fsys, tmp, metaDir)
}
