package fs

import (
	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/snapfs/snapfs/store"
)

// invalidateLineage makes the kernel forget what it caches of the live
// views of lineage lin under root, after a rollback changed them under it
// (DESIGN-NOTES 5e): attributes and pages of every inode it knows, the
// names it has looked up, and negative entries of names the rollback
// brought back. The store calls it with no lock held; it runs outside any
// FUSE request, so the kernel's answers cannot wait on us.
func invalidateLineage(st *store.Store, root *gofs.Inode, lin uint32) {
	var walk func(in *gofs.Inode)
	walk = func(in *gofs.Inode) {
		var mine *node
		if b, ok := in.Operations().(baser); ok {
			if n := b.base(); n.vs.view.Lineage == lin && n.vs.view.Live() {
				mine = n
			}
		}
		children := in.Children()
		if mine != nil {
			in.NotifyContent(0, 0)
			for name := range children {
				in.NotifyEntry(name)
			}
			if in.IsDir() {
				// Names that exist again may be cached as absent.
				_ = st.ReadDir(mine.vs.view, mine.ino, 0, func(e store.DirEntry) bool {
					if children[e.Name] == nil {
						in.NotifyEntry(e.Name)
					}
					return true
				})
			}
		}
		for _, c := range children {
			walk(c)
		}
	}
	walk(root)
}
