package storage

import (
	"bytes"
	"encoding/binary"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// cacheSize bounds how many decoded deployments a DB keeps: enough for the
// newest deploys of every service that status and history read.
const cacheSize = 256

// warmPerService is how many of each service's newest deployments Open
// decodes into the cache: what status and a default history read.
const warmPerService = 20

// recordCache keeps deployments as they were decoded, each with the stored
// bytes (record and diffs) it was decoded from. A reader uses an entry only
// when the bytes it reads in its own transaction are the same, so an entry
// is never stale and writes need not invalidate anything; a changed record
// is decoded again and replaces its entry. Only values decoded from stored
// bytes enter it, so a hit gives exactly what decoding would.
type recordCache struct {
	mu      sync.Mutex
	entries map[uint64]*cachedRecord
	order   []uint64 // IDs in the order they entered, for eviction
	next    int      // the slot of order the next new entry takes
}

type cachedRecord struct {
	record, diffs []byte
	d             deployer.Deployment
}

func newRecordCache() *recordCache {
	return &recordCache{entries: make(map[uint64]*cachedRecord, cacheSize)}
}

// get returns a copy of deployment id when it was decoded from exactly
// record and diffs.
func (c *recordCache) get(id uint64, record, diffs []byte) (deployer.Deployment, bool) {
	c.mu.Lock()
	e := c.entries[id]
	c.mu.Unlock()
	if e == nil || !bytes.Equal(e.record, record) || !bytes.Equal(e.diffs, diffs) {
		return deployer.Deployment{}, false
	}
	return cloneDeployment(&e.d), true
}

// put keeps d, decoded from record and diffs (which may be bbolt's memory:
// they are copied).
func (c *recordCache) put(id uint64, record, diffs []byte, d *deployer.Deployment) {
	e := &cachedRecord{record: bytes.Clone(record), diffs: bytes.Clone(diffs), d: cloneDeployment(d)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; !ok {
		if len(c.order) < cacheSize {
			c.order = append(c.order, id)
		} else {
			delete(c.entries, c.order[c.next])
			c.order[c.next] = id
			c.next = (c.next + 1) % cacheSize
		}
	}
	c.entries[id] = e
}

// cloneDeployment is d.Clone that also copies each zone diff's lines, so
// no two copies share memory.
func cloneDeployment(d *deployer.Deployment) deployer.Deployment {
	c := d.Clone()
	c.Diffs = cloneDiffs(d.Diffs)
	return c
}

// len returns how many deployments are cached.
func (c *recordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// warm decodes the deployments in flight and each service's newest
// warmPerService into the cache, up to cacheSize in all, in one read
// transaction, so the first status or history after a start reads no
// more than later ones do. A record it cannot read is left out: the read
// that needs it reports the error.
func (db *DB) warm() {
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		var ids []uint64
		seen := make(map[uint64]bool)
		add := func(first, next func() ([]byte, []byte), most int) {
			n := 0
			for k, _ := first(); k != nil && n < most && len(ids) < cacheSize; k, _ = next() {
				if len(k) == 8 {
					if id := binary.BigEndian.Uint64(k); !seen[id] {
						ids, seen[id] = append(ids, id), true
					}
				}
				n++
			}
		}
		active := tx.Bucket(bucketActive).Cursor()
		add(active.First, active.Next, cacheSize)
		history := tx.Bucket(bucketHistory)
		_ = history.ForEachBucket(func(name []byte) error {
			c := history.Bucket(name).Cursor()
			add(c.Last, c.Prev, warmPerService)
			return nil
		})
		for _, id := range ids {
			_, _ = db.loadDeployment(tx, id, true)
		}
		return nil
	})
}
