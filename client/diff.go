package client

import "github.com/snapfs/snapfs/control"

// DiffChange is one change between two views of a volume: Change is "M",
// "+", "-" or "R", Kind the file's type ("F", "/", "@", "|", "=", "B",
// "C"), Path and NewPath (for "R") paths from the dataset's root, escaped
// as snapfs diff prints them (store.UnescapePath gives the bytes back).
type DiffChange = control.DiffChange

// Diff lists what changed from from to to, each "DATASET@NAME" or
// "DATASET" (its live view); to "" is from's dataset's live view. Views
// of different volumes fail with ErrInvalid, a missing snapshot or
// dataset with ErrNotFound.
func (c *Client) Diff(from, to string) ([]DiffChange, error) {
	var out []DiffChange
	if err := c.call(control.OpDiff, control.DiffArgs{From: from, To: to}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Versions is the result of Versions: the distinct versions of one file.
type Versions = control.VersionsResult

// Versions lists the versions of inode ino named in view viewID (the two
// halves of its st_ino in a mount: viewID<<40 | ino) across the snapshots
// of its dataset and the live file, oldest first.
func (c *Client) Versions(viewID uint32, ino uint64) (Versions, error) {
	var out Versions
	err := c.call(control.OpVersions, control.VersionsArgs{ViewID: viewID, Ino: ino}, &out)
	return out, err
}
