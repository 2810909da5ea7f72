#!/usr/bin/env bash
# Builds SeaweedFS's weed command, the S3 server the object-store tests
# run on 127.0.0.1, once per machine into a cache directory, from the tools
# module in tools/seaweedfs (kept out of the product's go.mod). Prints the
# binary's path. A second run finds it cached and returns at once.
#
#   SNAPFS_WEED_CACHE  the cache directory (default ~/.cache/snapfs)
#
# With --print-path it only prints where the binary is or would be, and
# builds nothing (the tests use it to find the binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod=$root/tools/seaweedfs
version=$(awk '$1 == "require" && $2 == "github.com/seaweedfs/seaweedfs" {print $3}' "$mod/go.mod")
if [ -z "$version" ]; then
	echo "build-weed: no seaweedfs version in $mod/go.mod" >&2
	exit 1
fi
cache=${SNAPFS_WEED_CACHE:-${HOME:-/root}/.cache/snapfs}
out=$cache/weed-$version/weed
if [ "${1:-}" = --print-path ]; then
	echo "$out"
	exit 0
fi
if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$(dirname "$out")"
echo "build-weed: building SeaweedFS $version into $out (once per machine; about 10 minutes)" >&2
start=$(date +%s)
(cd "$mod" && go build -trimpath -o "$out.tmp" github.com/seaweedfs/seaweedfs/weed)
mv "$out.tmp" "$out"
echo "build-weed: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
