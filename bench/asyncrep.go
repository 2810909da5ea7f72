package main

// The asynchronous replica figure of the objects workload: a pool of a
// local directory and an asynchronous replica (pool/asyncrep.go) in the
// seaweedfs target's server, written at half the raw PUT rate the same
// repetition measured, while the replica's lag (the age of the oldest
// record not yet in the bucket) is sampled. It runs in the bench process
// through package pool (appends and syncs as the store's flush makes
// them, without the store or a mount): the lag is the uploader's, which
// neither changes.

import (
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
)

// asyncRecord is the record size of the paced write (the default chunk
// size), asyncSyncEvery how many records one sync covers (8 MiB).
const (
	asyncRecord    = 128 << 10
	asyncSyncEvery = 64
)

// runAsyncLag writes at rate MB/s for 20 s (8 with --quick) into a fresh
// pool with an asynchronous replica and fills in the async-* figures.
func runAsyncLag(e *runEnv, endpoint string, rate float64, res map[string]float64) error {
	if rate <= 0 {
		return errors.New("no PUT rate to pace by")
	}
	dur := 20 * time.Second
	if e.cfg.quick {
		dur = 8 * time.Second
	}
	root := filepath.Join(e.t.dir(), fmt.Sprintf("async-%d", e.rep))
	defer os.RemoveAll(root)
	disk, dir := filepath.Join(root, "disk"), filepath.Join(root, "pool")
	if err := os.MkdirAll(disk, 0o755); err != nil {
		return err
	}
	url := fmt.Sprintf("s3://snapfs-bench/async-rep-%d-%d", e.rep, time.Now().UnixNano())
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""},
		Objects: map[string]objstore.Config{url: {URL: url, Endpoint: endpoint, Addressing: "path"}},
		Async:   map[string]bool{url: true}}); err != nil {
		return err
	}
	p, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		return err
	}
	defer p.Close()

	var mu sync.Mutex // guards lags
	var lags []float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if st, err := p.Replica(1); err == nil {
				mu.Lock()
				lags = append(lags, st.BacklogAge.Seconds())
				mu.Unlock()
			}
		}
	}()

	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, asyncRecord)
		crand.Read(bufs[i])
	}
	perByte := time.Duration(float64(time.Second) / (rate * 1e6))
	start := time.Now()
	var written int64
	var pending []pool.Location
	for i := 0; time.Since(start) < dur; i++ {
		b := bufs[i%len(bufs)]
		b[0], b[1], b[2], b[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24) // every record distinct
		locs, err := p.Append(pool.Hash(sha256.Sum256(b)), b)
		if err != nil {
			close(stop)
			return err
		}
		pending = append(pending, locs...)
		written += int64(len(b))
		if len(pending) >= asyncSyncEvery*2 {
			if err := p.Sync(pending); err != nil {
				close(stop)
				return err
			}
			pending = pending[:0]
		}
		if ahead := time.Until(start.Add(time.Duration(written) * perByte)); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	if err := p.Sync(pending); err != nil {
		close(stop)
		return err
	}
	res["async-write"] = mbps(written, time.Since(start))
	close(stop)
	<-sampled
	last := time.Now()
	for {
		st, err := p.Replica(1)
		if err != nil {
			return err
		}
		if st.Backlog == 0 {
			break
		}
		if time.Since(last) > time.Minute {
			return fmt.Errorf("backlog %d bytes a minute after the writes stopped (%v)", st.Backlog, st.Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res["async-drain"] = time.Since(last).Seconds()
	mu.Lock()
	defer mu.Unlock()
	if len(lags) == 0 {
		return errors.New("no lag sampled")
	}
	sort.Float64s(lags)
	res["async-lag-p50"], res["async-lag-max"] = lags[len(lags)/2], lags[len(lags)-1]
	e.note(fmt.Sprintf("objects: async-* paced at %.1f MB/s (half this rep's obj-put) for %v, 128 KiB records, a sync per 8 MiB, through package pool in the bench process; lag sampled every 100 ms while writing", rate, dur))
	return nil
}
