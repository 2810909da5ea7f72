package fs

// rootNode is the root directory of a mounted volume: the live view's root
// inode. It is a directory like any other today; it is also where the
// .snapshots directory of the view will be served from (Lookup of that name
// and, with MountOptions.SnapdirVisible, one more entry in the listing), so
// that nothing below the root needs to know about it.
type rootNode struct {
	dirNode
}
