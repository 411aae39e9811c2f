package storage

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// freezeKey is a freeze's key: its service, or "*" for every service.
func freezeKey(service string) []byte {
	if service == "" {
		return []byte("*")
	}
	return []byte(service)
}

// Freezes returns the freezes set in chat, every service's first.
func (db *DB) Freezes() ([]deployer.Freeze, error) {
	var out []deployer.Freeze
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFreezes).ForEach(func(k, v []byte) error {
			var f deployer.Freeze
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("read the freeze of %s: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	return out, err
}

// SetFreeze records f, replacing the freeze of the same service.
func (db *DB) SetFreeze(f deployer.Freeze) error {
	v, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFreezes).Put(freezeKey(f.Service), v)
	})
}

// DeleteFreeze removes the freeze of service ("" = the one of every
// service) and returns it; ok is false when there was none.
func (db *DB) DeleteFreeze(service string) (f deployer.Freeze, ok bool, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFreezes)
		v := b.Get(freezeKey(service))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("read the freeze of %s: %w", freezeKey(service), err)
		}
		ok = true
		return b.Delete(freezeKey(service))
	})
	return f, ok, err
}
