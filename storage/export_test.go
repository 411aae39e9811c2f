package storage

import bolt "go.etcd.io/bbolt"

// RawView runs fn in a read transaction of the open file, for tests that
// check the layout against what the methods answer.
func (db *DB) RawView(fn func(*bolt.Tx) error) error { return db.bolt.View(fn) }

// Cached returns how many decoded deployments db keeps.
func (db *DB) Cached() int { return db.cache.len() }
