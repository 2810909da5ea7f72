# snapfs: the single entry point for building, testing, the demo and the
# benchmarks. Run `make help` for the list of targets.

GO      ?= go
BIN     := bin/snapfs
DEMO    := $(CURDIR)/demo
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

# The engine packages that exist (snap/ may not be written yet); their unit
# tests need no FUSE and run with the race detector.
ENGINE_DIRS := $(foreach d,store pool snap stream fs internal objstore,$(if $(wildcard $(d)/*.go),./$(d)/...))
ENGINE_PKGS  = $(shell $(GO) list $(ENGINE_DIRS) 2>/dev/null)

# The other unit tests: the control API, the client, the CLI's helpers and
# the kill points (no FUSE needed).
UNIT_PKGS = $(shell $(GO) list ./control/... ./client/... ./cmd/... ./internal/... 2>/dev/null)

# The end-to-end mount tests: one package at a time, never cached.
MOUNT_TESTS := $(GO) test -count=1 -p 1 -timeout 40m ./tests/...

.PHONY: help build weed test test-short test-procs1 soak crash-test crash-test-writeback powercut-test fuzz lint demo demo-clean bench bench-quick clean install uninstall

help:
	@echo "make build        build $(BIN)"
	@echo "make test         go vet, engine tests with -race, then the mount tests (needs /dev/fuse)"
	@echo "make weed         build SeaweedFS (the S3 server of the object-store tests) once per machine"
	@echo "                  into ~/.cache/snapfs (about 13 minutes the first time; make test depends on it)"
	@echo "make test-short   the same with -short (smaller trees, a few minutes)"
	@echo "make test-procs1  engine and mount tests with GOMAXPROCS=1, -short"
	@echo "make soak         the single-file soak through a mount: SOAK_OPS (default 1,000,000) operations per variant"
	@echo "make crash-test   the kill -9 crash harness: 200 random rounds, 100 at kill points (make test: 5 and 5)"
	@echo "make crash-test-writeback  the same on mounts with --writeback-cache"
	@echo "make powercut-test the engine's power-cut test at 400 points of a random seed"
	@echo "make fuzz         run every fuzz target for FUZZTIME each (default 10s)"
	@echo "make lint         gofmt, go vet (and staticcheck when installed)"
	@echo "make demo         the story in 40 lines: a pool in ./demo, a volume mounted at ./demo/mnt,"
	@echo "                  a snapshot, a diff, an old version read back, a branch, snapshot list"
	@echo "make demo-clean   unmount the demo and remove ./demo"
	@echo "make install      as root: snapfs into PREFIX/bin (default /usr/local), the mount -t fuse.snapfs"
	@echo "                  helper into /sbin, the systemd unit template into PREFIX/lib/systemd/system"
	@echo "make uninstall    remove what make install put there"
	@echo "make bench        the full benchmark (about 15 minutes)"
	@echo "make bench-quick  a benchmark smoke run (about 7 minutes here)"

build:
	$(GO) build -o $(BIN) ./cmd/snapfs

# weed builds SeaweedFS's server from the tools module in tools/seaweedfs
# into a cache directory, once per machine (scripts/build-weed.sh); the
# object-store tests and the benchmark's seaweedfs target find it there.
weed:
	@bash scripts/build-weed.sh >/dev/null

test: weed
	$(GO) vet ./...
	$(GO) test -race -count=1 $(ENGINE_PKGS)
	$(GO) test -count=1 $(UNIT_PKGS)
	$(MAKE) fuzz FUZZTIME=3000x
	$(MOUNT_TESTS)

# The single-file soak (tests/singlefile_test.go, issue 11): random writes,
# reads, mmap reads and writes and truncates on one open file against a
# model, with reads racing the truncates, on the live volume and in a
# branch, with and without snapshots taken and destroyed every 200 ms.
# make test runs 6,000 operations per variant; SNAPFS_TEST_SEED replays.
SOAK_OPS ?= 1000000
soak:
	SNAPFS_SOAK_OPS=$(SOAK_OPS) $(GO) test -count=1 -v -timeout 300m -run 'TestSingleFileSoak$$' ./tests/

# The crash harness (tests/crash_test.go): rounds of a mixed workload ended
# by kill -9 of the daemon at a random moment, then fsck and checks of every
# fsync'd file and acknowledged snapshot; then rounds killed at chosen kill
# points (tests/killpoint_test.go, internal/killpoint). SNAPFS_CRASH_SEED
# replays a run. make test runs 5 random rounds and one per kill point.
CRASH_ROUNDS ?= 200
CRASH_POINT_ROUNDS ?= 100
crash-test:
	SNAPFS_CRASH_ROUNDS=$(CRASH_ROUNDS) $(GO) test -count=1 -v -timeout 90m -run 'TestCrashKill9Rounds$$' ./tests/
	SNAPFS_CRASH_POINT_ROUNDS=$(CRASH_POINT_ROUNDS) $(GO) test -count=1 -v -timeout 90m -run 'TestCrashKillPoints$$' ./tests/

# The same on mounts with the kernel writeback cache (--writeback-cache).
crash-test-writeback:
	SNAPFS_CRASH_ROUNDS=$(CRASH_ROUNDS) $(GO) test -count=1 -v -timeout 90m -run 'TestCrashKill9RoundsWritebackCache$$' ./tests/
	SNAPFS_CRASH_POINT_ROUNDS=$(CRASH_POINT_ROUNDS) $(GO) test -count=1 -v -timeout 90m -run 'TestCrashKillPointsWritebackCache$$' ./tests/

# The engine's power-cut test at many points (make test cuts at 50 of a
# fixed seed): POWERCUT_POINTS points of a random seed, printed.
POWERCUT_POINTS ?= 400
powercut-test:
	SNAPFS_POWERCUT_POINTS=$(POWERCUT_POINTS) SNAPFS_POWERCUT_SEED=$${SNAPFS_POWERCUT_SEED:-$$(date +%s)} \
		$(GO) test -count=1 -v -timeout 120m -run 'TestPowerCutRandomPoints$$' ./store/

# The fuzz targets (package:Name); go test fuzzes one package and one target
# at a time. Their seed corpora (testdata/fuzz) also run in every go test.
# make test bounds each by a count of inputs (3000x), not a duration: a
# -fuzztime duration can end with a spurious "context deadline exceeded"
# on a loaded machine.
FUZZ_TARGETS := $(foreach p,store pool control stream,$(addprefix $(p):,\
	$(shell grep -ho '^func Fuzz[A-Za-z0-9_]*' $(p)/*_fuzz_test.go 2>/dev/null | cut -c6-)))
FUZZTIME ?= 10s

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name$$' -fuzztime $(FUZZTIME) ./$$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

test-short: weed
	$(GO) vet ./...
	$(GO) test -race -count=1 -short $(ENGINE_PKGS)
	$(MOUNT_TESTS) -short

test-procs1: weed
	GOMAXPROCS=1 $(GO) test -count=1 -short $(ENGINE_PKGS)
	GOMAXPROCS=1 $(MOUNT_TESTS) -short

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then echo staticcheck ./...; staticcheck ./...; \
	else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@latest); skipped"; fi
	$(GO) test -count=1 -run 'TestLayering' ./tests/

# demo tells the story in about 40 lines (contrib/demo.sh): a pool, a
# volume, a snapshot, an old version read back from .snapshots, a branch
# written without touching the volume, snapshot list with its space
# figures. Every step is printed as a command to copy. It starts from
# scratch each time (a previous demo is cleaned up first).
demo: build
	@command -v fusermount3 >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y fuse3; }
	@$(DEMO_CLEAN)
	@mkdir -p demo/disk1 demo/disk2 demo/mnt
	@# A go.mod makes demo/ a module of its own, so ./... in this module
	@# (go vet, go test) never walks into files copied into the mount.
	@printf 'module snapfs.demo\n' > demo/go.mod
	@sh contrib/demo.sh $(BIN) demo

# demo-clean unmounts the demo (the daemon flushes and exits) and removes
# demo/ with the pool, its members and the mount point.
DEMO_CLEAN = if grep -qs " $(DEMO)/mnt " /proc/self/mountinfo; then \
		if [ -x $(BIN) ]; then $(BIN) umount $(DEMO)/mnt; else fusermount3 -u $(DEMO)/mnt; fi; \
	fi; rm -rf $(DEMO)

demo-clean:
	@$(DEMO_CLEAN)
	@echo "removed $(DEMO)"

# install: snapfs into $(BINDIR); /sbin/mount.fuse.snapfs, a link to it,
# so that `mount -t fuse.snapfs` and fstab lines find it (mount(8) looks
# for helpers only in /sbin, whatever PREFIX is; without the link it falls
# back to fuse3's mount.fuse3, which runs snapfs from the standard PATH);
# the systemd unit template with $(BINDIR)/snapfs in its commands.
# DESTDIR stages the whole tree elsewhere (packaging, tests).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= /sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

install: build
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make install: run it as root (sudo make install), or stage it with DESTDIR=DIR"; exit 1; fi
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/snapfs
	install -d $(DESTDIR)$(SBINDIR)
	ln -sfn $(BINDIR)/snapfs $(DESTDIR)$(SBINDIR)/mount.fuse.snapfs
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/snapfs|$(BINDIR)/snapfs|g' contrib/snapfs@.service > $(DESTDIR)$(UNITDIR)/snapfs@.service
	@command -v fusermount3 >/dev/null || echo "note: fuse3 is not installed (apt-get install fuse3): non-root mounts need its fusermount3"

uninstall:
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make uninstall: run it as root (sudo make uninstall), or give the DESTDIR of make install"; exit 1; fi
	rm -f $(DESTDIR)$(BINDIR)/snapfs $(DESTDIR)$(SBINDIR)/mount.fuse.snapfs $(DESTDIR)$(UNITDIR)/snapfs@.service

bench:
	$(GO) run ./bench

bench-quick:
	$(GO) run ./bench --quick

clean: demo-clean
	rm -rf bin
