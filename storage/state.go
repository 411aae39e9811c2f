package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// Service returns the service's live state (the zero value when never set).
func (db *DB) Service(name string) (deployer.ServiceState, error) {
	var s deployer.ServiceState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if name == "" {
			return nil
		}
		v := tx.Bucket(bucketServices).Get([]byte(name))
		if v == nil {
			return nil
		}
		return decode(serviceName(name), v, &s)
	})
	if err != nil {
		return deployer.ServiceState{}, err
	}
	return s, nil
}

// SetService records the service's live state.
func (db *DB) SetService(s deployer.ServiceState) error {
	if s.Service == "" {
		return deployer.Errorf(deployer.CodeInvalid, "a service state needs a service")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketServices), []byte(s.Service), serviceName(s.Service), &s)
	})
}

// Audit appends e to the audit log; a zero e.At is stamped from the clock.
// Nothing removes entries from the log.
func (db *DB) Audit(e deployer.AuditEntry) error {
	if e.At.IsZero() {
		e.At = db.clock.Now()
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("append to the audit log: %w", err)
		}
		return put(b, u64(seq), fmt.Sprintf("audit entry %d", seq), &e)
	})
}

// AuditLog returns up to limit entries, newest first; a limit of 0 or less
// means all of them.
func (db *DB) AuditLog(limit int) ([]deployer.AuditEntry, error) {
	var out []deployer.AuditEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			what := fmt.Sprintf("audit entry %x", k)
			if len(k) == 8 {
				what = fmt.Sprintf("audit entry %d", binary.BigEndian.Uint64(k))
			}
			var e deployer.AuditEntry
			if err := decode(what, v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScheduleState returns the scheduler's JSON state for service, a copy, or
// nil when none was set.
func (db *DB) ScheduleState(service string) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if service == "" {
			return nil
		}
		if v := tx.Bucket(bucketSchedules).Get([]byte(service)); len(v) > 0 {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetScheduleState records the scheduler's state for service; v must be
// JSON. An empty v removes the state.
func (db *DB) SetScheduleState(service string, v []byte) error {
	if service == "" {
		return deployer.Errorf(deployer.CodeInvalid, "a schedule state needs a service")
	}
	if len(v) > 0 && !json.Valid(v) {
		return deployer.Errorf(deployer.CodeInvalid, "the schedule state of %s is not valid JSON", service)
	}
	v = append([]byte(nil), v...)
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSchedules)
		if len(v) == 0 {
			if err := b.Delete([]byte(service)); err != nil {
				return fmt.Errorf("remove the schedule state of %s: %w", service, err)
			}
			return nil
		}
		if err := b.Put([]byte(service), v); err != nil {
			return fmt.Errorf("save the schedule state of %s: %w", service, err)
		}
		return nil
	})
}

func serviceName(service string) string { return "the state of service " + service }
