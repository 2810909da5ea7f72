package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// SocketName is the control socket in the pool directory.
	SocketName = "control.sock"
	// PathFile, in the pool directory, holds the socket's path when it is
	// not SocketName (the pool path is too long for a socket address).
	PathFile = "control.path"
	// maxSocketPath is the longest path sun_path holds with its NUL.
	maxSocketPath = 107
)

// runtimeDir is where sockets of deep pool paths go; os.TempDir() when it
// cannot be created.
var runtimeDir = "/run/snapfs"

// ListenPath returns the path the daemon of the pool in dir listens on:
// dir/control.sock, or, when that is too long for a socket address, a
// short path named by a hash of dir under /run/snapfs (or os.TempDir()).
func ListenPath(dir string) string {
	p := filepath.Join(dir, SocketName)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	name := "snapfs-" + hex.EncodeToString(sum[:8]) + ".sock"
	if err := os.MkdirAll(runtimeDir, 0o700); err == nil {
		if q := filepath.Join(runtimeDir, name); len(q) <= maxSocketPath && writable(runtimeDir) {
			return q
		}
	}
	return filepath.Join(os.TempDir(), name)
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// SocketPath returns where clients find the socket of the pool in dir:
// the path recorded in dir/control.path if there is one, else
// dir/control.sock.
func SocketPath(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, PathFile)); err == nil {
		if p := strings.TrimSpace(string(b)); p != "" {
			return p
		}
	}
	return filepath.Join(dir, SocketName)
}

// recordPath writes (or removes) dir/control.path for socket path p.
func recordPath(dir, p string) error {
	pf := filepath.Join(dir, PathFile)
	if p == filepath.Join(dir, SocketName) {
		if err := os.Remove(pf); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := pf + ".tmp"
	if err := os.WriteFile(tmp, []byte(p+"\n"), 0o600); err != nil {
		return fmt.Errorf("control: record socket path: %w", err)
	}
	return os.Rename(tmp, pf)
}
