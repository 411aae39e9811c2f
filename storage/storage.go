// Package storage keeps greenlight's state in one bbolt file: deploy locks,
// deployments, the decisions taken on them, each service's live set, the
// audit log and schedule state. *DB implements deployer.Store.
//
// Every method is one bbolt transaction, and every decision (take a lock,
// approve, finish a deploy) reads, checks and writes inside one Update, so
// two racers cannot both win. Values are decoded inside the transaction;
// nothing returned refers to bbolt's memory. Decoded deployments are kept
// in a small cache, each used only while the stored bytes it was decoded
// from are unchanged.
//
// The file's layout (schema version 2):
//
//	meta         "schema" → 8-byte big-endian version
//	deployments  8-byte big-endian ID → Deployment JSON without its zone diffs
//	             (IDs from the bucket's sequence)
//	diffs        8-byte big-endian ID → the deployment's zone diffs, JSON; absent when
//	             it has none, and written only when they change
//	active       8-byte big-endian ID → empty, for each deployment whose phase is not final
//	history      one bucket per service: 8-byte big-endian ID → empty
//	locks        service → Lock JSON
//	services     service → ServiceState JSON
//	approvals    8-byte big-endian deploy ID + 8-byte big-endian sequence → Decision JSON
//	audit        8-byte big-endian sequence → AuditEntry JSON (append-only)
//	schedules    service → JSON blob
//
// Every write of a deployment keeps diffs, active and history in the same
// transaction. Open converts a file of schema 1, where each deployment
// record carried its diffs and there were no indexes, in one transaction.
package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/greenlight/greenlight/deployer"
)

// SchemaVersion is the version of the file layout this package reads and writes.
const SchemaVersion = 2

// appendFill is the fill percent of buckets whose keys only ever grow:
// their pages are filled before they split rather than left half empty.
const appendFill = 0.9

// DefaultTimeout is how long Open waits for a data file another greenlight holds.
const DefaultTimeout = time.Second

var (
	bucketMeta        = []byte("meta")
	bucketDeployments = []byte("deployments")
	bucketLocks       = []byte("locks")
	bucketServices    = []byte("services")
	bucketApprovals   = []byte("approvals")
	bucketAudit       = []byte("audit")
	bucketSchedules   = []byte("schedules")
	bucketDiffs       = []byte("diffs")
	bucketActive      = []byte("active")
	bucketHistory     = []byte("history")
	bucketFreezes     = []byte("freezes")

	keySchema = []byte("schema")
)

func allBuckets() [][]byte {
	return [][]byte{bucketMeta, bucketDeployments, bucketLocks, bucketServices,
		bucketApprovals, bucketAudit, bucketSchedules, bucketDiffs, bucketActive, bucketHistory, bucketFreezes}
}

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for a data file another process (or another
	// Open in this one) holds; zero means DefaultTimeout.
	Timeout time.Duration
	// Clock stamps audit entries and locks whose time is zero; nil means
	// the system clock.
	Clock interface{ Now() time.Time }
	// NoSync skips fsync at each commit. Only for tests that open many
	// short-lived files: a crash of the machine may lose recent writes.
	NoSync bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// DB is greenlight's state in one bbolt file. It is safe for concurrent use.
type DB struct {
	bolt  *bolt.DB
	path  string
	clock interface{ Now() time.Time }
	cache *recordCache
}

var (
	_ deployer.Store       = (*DB)(nil)
	_ deployer.FreezeStore = (*DB)(nil)
)

// Open opens the data file at path, creating it (mode 0600) and its parent
// directory (mode 0700) when they do not exist, and every bucket in one
// write transaction. It fails within opts.Timeout when another greenlight
// holds the file, and when the file was written by a newer greenlight.
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open data file: no path given")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the directory of data file %s: %w", path, err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("data file %s is locked: another greenlight is using it (gave up after %s): %w",
			path, opts.Timeout, err)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("data file %s is not a greenlight data file, or it is damaged: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path, clock: opts.Clock, cache: newRecordCache()}
	if err := db.init(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	db.warm()
	return db, nil
}

// init checks the schema version, creates every bucket and converts a file
// of an older schema, in one transaction.
func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		var version uint64
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(keySchema); v != nil {
				if len(v) != 8 {
					return fmt.Errorf("data file %s has an unreadable schema version (%d bytes)", db.path, len(v))
				}
				version = binary.BigEndian.Uint64(v)
				if version > SchemaVersion {
					return fmt.Errorf("data file %s was written by a newer greenlight (schema %d, this one reads %d)",
						db.path, version, SchemaVersion)
				}
			}
		}
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("data file %s: create bucket %s: %w", db.path, name, err)
			}
		}
		if version == 1 {
			if err := migrate1(tx); err != nil {
				return fmt.Errorf("data file %s: convert from schema 1 to %d: %w", db.path, SchemaVersion, err)
			}
		}
		if version != SchemaVersion {
			if err := tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion)); err != nil {
				return fmt.Errorf("data file %s: record the schema version: %w", db.path, err)
			}
		}
		return nil
	})
}

// Close closes the data file, releasing it for another greenlight.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close data file %s: %w", db.path, err)
	}
	return nil
}

// u64 encodes v as 8 big-endian bytes, so keys sort numerically.
func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// decode unmarshals data, which may be bbolt's memory, into v; what names
// the value for a person: "deployment #3".
func decode(what string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// put encodes v and stores it under key.
func put(b *bolt.Bucket, key []byte, what string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	return nil
}

func deploymentName(id uint64) string { return fmt.Sprintf("deployment #%d", id) }
