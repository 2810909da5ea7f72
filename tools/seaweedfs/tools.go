//go:build tools

// Package tools pins the SeaweedFS server that the object-store tests run
// on 127.0.0.1. It is a module of its own so that the product's go.mod
// never requires SeaweedFS; scripts/build-weed.sh builds its weed command
// once per machine into a cache directory.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
