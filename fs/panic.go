package fs

import (
	"runtime/debug"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// panicked is go-fuse's PanicHandler for our mounts: a handler that
// panicked is a bug. go-fuse recovers it and answers with what this
// returns; we log the panic once with the stack of the goroutine that
// panicked (the handler runs in the deferred recover, before the stack
// unwinds), count it in the store's internal errors (pool status shows
// them), and answer EIO, as go-fuse's default does. The store releases
// its locks on every exit (defer), so the daemon goes on serving.
func (f *fileSystem) panicked(r any) fuse.Status {
	f.st.NoteInternalError()
	f.opts.Logger.Printf("snapfs: panic in FS handler (answered EIO): %v\n%s", r, debug.Stack())
	return fuse.EIO
}
