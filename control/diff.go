package control

import (
	"encoding/json"
	"time"

	"github.com/snapfs/snapfs/store"
)

// DiffArgs are the arguments of diff: From and To are each
// "DATASET@NAME" (a snapshot, or a branch in DATASET's .snapshots) or
// "DATASET" (its live view); an empty To is From's dataset's live view.
// Both must be of one volume, else EINVAL.
type DiffArgs struct {
	From string `json:"from"`
	To   string `json:"to,omitempty"`
}

// DiffChange is one change of a diff (store.DiffLine): Change is "M",
// "+", "-" or "R"; Kind the file's type as zfs diff -F prints it ("F",
// "/", "@", "|", "=", "B", "C"); Path (and NewPath, for "R") are paths
// from the dataset's root, escaped as store.EscapePath does, so any byte
// of a name travels in JSON.
type DiffChange struct {
	Change  string `json:"change"`
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	NewPath string `json:"new_path,omitempty"`
	Ino     uint64 `json:"ino"`
}

// DiffChangeOf is the wire form of a diff line.
func DiffChangeOf(l store.DiffLine) DiffChange {
	c := DiffChange{Change: string(l.Change), Kind: string(l.Kind), Path: store.EscapePath(l.Path), Ino: l.Ino}
	if l.Change == 'R' {
		c.NewPath = store.EscapePath(l.NewPath)
	}
	return c
}

// VersionsArgs are the arguments of versions: the file is inode Ino of
// the view ViewID, as a mount's st_ino gives them (ViewID<<40 | Ino).
type VersionsArgs struct {
	ViewID uint32 `json:"view_id"`
	Ino    uint64 `json:"ino"`
}

// VersionsResult is the result of versions: the dataset whose snapshots
// were read, the file's path in the view it was named in, and its
// distinct versions, oldest first. Paths are escaped (store.EscapePath).
type VersionsResult struct {
	Dataset  string        `json:"dataset"`
	Ino      uint64        `json:"ino"`
	Path     string        `json:"path"`
	Versions []FileVersion `json:"versions"`
}

// FileVersion is one distinct version of a file: the snapshots that hold
// it (oldest first; consecutive snapshots where the file did not change),
// when the first of them was taken, whether the live file is this
// version, and the file's path in the first of them (or in the live view
// for a version only the live file has).
type FileVersion struct {
	Snapshots []string   `json:"snapshots"`
	Taken     *time.Time `json:"taken,omitempty"`
	Live      bool       `json:"live"`
	Size      uint64     `json:"size"`
	Mtime     time.Time  `json:"mtime"`
	Mode      uint32     `json:"mode"`
	Path      string     `json:"path"`
}

func (s *Server) diff(p peer, raw json.RawMessage) (any, error) {
	var a DiffArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("from", a.From); err != nil {
		return nil, err
	}
	lines, err := s.snaps.Diff(a.From, a.To)
	if err != nil {
		return nil, err
	}
	out := make([]DiffChange, 0, len(lines))
	for _, l := range lines {
		out = append(out, DiffChangeOf(l))
	}
	return out, nil
}

func (s *Server) versions(p peer, raw json.RawMessage) (any, error) {
	var a VersionsArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if a.ViewID == 0 || a.Ino == 0 || a.Ino > store.MaxIno {
		return nil, Errorf("EINVAL", "versions: view_id and ino must name a file (view %d, ino %d)", a.ViewID, a.Ino)
	}
	r, err := s.snaps.Versions(a.ViewID, a.Ino)
	if err != nil {
		return nil, err
	}
	out := VersionsResult{Dataset: r.Dataset, Ino: r.Ino, Path: store.EscapePath(r.Path), Versions: []FileVersion{}}
	for _, v := range r.Versions {
		fv := FileVersion{Snapshots: v.Snapshots, Live: v.Live, Size: v.Size, Mtime: v.Mtime, Mode: v.Mode,
			Path: store.EscapePath(v.Path)}
		if fv.Snapshots == nil {
			fv.Snapshots = []string{}
		}
		if !v.Taken.IsZero() {
			t := v.Taken
			fv.Taken = &t
		}
		out.Versions = append(out.Versions, fv)
	}
	return out, nil
}
