package main

// The objects workload: the raw rate of the S3 client library (through
// package objstore, the layer snapfs's object-store members use) against
// a SeaweedFS server the benchmark starts on 127.0.0.1. It is the ceiling
// the object-member figures are compared against: a pool whose only
// member is a bucket cannot write or read faster than PUT and GET of
// whole objects to the same server.
//
// Its target, seaweedfs, is a `weed server` (internal/seaweed) with its
// data under the work directory, so on the same disk as every other
// target. The weed binary comes from `make weed` (or $SNAPFS_WEED); when
// it is missing the target's setup fails and the figures say n/a.

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/snapfs/snapfs/internal/seaweed"
	"github.com/snapfs/snapfs/objstore"
)

// objectSize is the size of the objects PUT and GET whole.
const objectSize = 8 << 20

// objectsTarget is a SeaweedFS server; its dir() holds the server's data.
type objectsTarget struct {
	base string
	srv  *seaweed.Server
}

func (t *objectsTarget) name() string { return "seaweedfs" }
func (t *objectsTarget) dir() string  { return filepath.Join(t.base, "runs") }

func (t *objectsTarget) setup(ctx context.Context) error {
	if err := os.MkdirAll(t.dir(), 0o755); err != nil {
		return err
	}
	srv, err := startSeaweed(t.base)
	if err != nil {
		return err
	}
	t.srv = srv
	return nil
}

// startSeaweed starts a SeaweedFS server with its data in dir and sets
// the credentials the S3 client (in the bench and in a snapfs daemon it
// starts) will find.
func startSeaweed(dir string) (*seaweed.Server, error) {
	srv, err := seaweed.New(seaweed.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	// The server takes any credentials; the standard chain must still
	// find some, and never ask an instance metadata service.
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		os.Setenv("AWS_ACCESS_KEY_ID", "snapfs-bench")
		os.Setenv("AWS_SECRET_ACCESS_KEY", "snapfs-bench")
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return srv, nil
}

func (t *objectsTarget) coldCache(ctx context.Context) (bool, error) { return dropCaches(), nil }

func (t *objectsTarget) teardown() error {
	if t.srv != nil {
		t.srv.Stop()
	}
	return nil
}

// runObjects PUTs and then GETs objects of 8 MiB one at a time and four at
// a time, and reads 128 KiB ranges at random offsets, in a bucket prefix
// of its own per repetition.
func runObjects(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	t, ok := e.t.(*objectsTarget)
	if !ok || t.srv == nil {
		return res, errors.New("not a running seaweedfs target")
	}
	n := 32 // 256 MiB per phase
	if e.cfg.quick {
		n = 8
	}
	store, err := objstore.Open(e.ctx, objstore.Config{
		URL: fmt.Sprintf("s3://snapfs-bench/rep-%d", e.rep), Endpoint: t.srv.Endpoint,
	})
	if err != nil {
		return res, err
	}
	data := make([]byte, objectSize)
	crand.Read(data)
	key := func(phase string, i int) string { return fmt.Sprintf("%s/%04d", phase, i) }

	for _, par := range []int{1, 4} {
		phase := fmt.Sprintf("par%d", par)
		start := time.Now()
		if err := each(e.ctx, n, par, func(ctx context.Context, i int) error {
			return store.Put(ctx, key(phase, i), data)
		}); err != nil {
			return res, err
		}
		putRate := mbps(int64(n)*objectSize, time.Since(start))
		if err := e.cold(); err != nil {
			return res, err
		}
		start = time.Now()
		if err := each(e.ctx, n, par, func(ctx context.Context, i int) error {
			b, err := store.Get(ctx, key(phase, i), 0, -1)
			if err == nil && len(b) != objectSize {
				err = fmt.Errorf("GET %s: %d bytes, want %d", key(phase, i), len(b), objectSize)
			}
			return err
		}); err != nil {
			return res, err
		}
		getRate := mbps(int64(n)*objectSize, time.Since(start))
		if par == 1 {
			res["obj-put"], res["obj-get"] = putRate, getRate
		} else {
			res["obj-put-par4"], res["obj-get-par4"] = putRate, getRate
		}
	}

	if err := e.cold(); err != nil {
		return res, err
	}
	var lat []float64
	for i := 0; i < 20*n; i++ {
		off := rand.Int64N(objectSize - 128<<10)
		start := time.Now()
		if _, err := store.Get(e.ctx, key("par1", i%n), off, 128<<10); err != nil {
			return res, err
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	sort.Float64s(lat)
	res["obj-get-128k-p50"] = lat[len(lat)/2]
	if err := runAsyncLag(e, t.srv.Endpoint, res["obj-put"]/2, res); err != nil {
		return res, fmt.Errorf("async replica: %w", err)
	}
	e.note(fmt.Sprintf("objects: %d objects of 8 MiB per phase through package objstore (AWS SDK for Go v2, Content-MD5 on PUT) to a SeaweedFS server on 127.0.0.1 whose data is on the work directory's disk", n))

	// Leave the server's disk as it was found, roughly: SeaweedFS frees
	// the space of deleted objects later, by vacuum.
	for _, phase := range []string{"par1", "par4"} {
		for i := 0; i < n; i++ {
			_ = store.Delete(e.ctx, key(phase, i))
		}
	}
	return res, nil
}

// each runs fn for 0..n-1 with par calls in flight, and returns the first
// error.
func each(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, par)
	var wg sync.WaitGroup
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}
