package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// BeginDeployment takes d.Service's lock for a new deployment and records d
// under a new ID, in one transaction. On success it sets d.ID, and d.Created
// (from the clock) when it was zero and d.Phase (running) when it was empty,
// to what was recorded. If the lock is held it returns a
// *deployer.LockedError naming the holder, and the step the holding deploy
// is on, and writes nothing.
func (db *DB) BeginDeployment(d *deployer.Deployment, init func(*deployer.Deployment)) error {
	if d == nil {
		return deployer.Errorf(deployer.CodeInvalid, "no deployment to begin")
	}
	if d.Service == "" {
		return deployer.Errorf(deployer.CodeInvalid, "a deployment needs a service")
	}
	rec := d.Clone()
	if rec.Created.IsZero() {
		rec.Created = db.clock.Now()
	}
	if rec.Phase == "" {
		// A deployment that holds its service's lock is active; an empty
		// phase would count as final and hide it from ActiveDeployments.
		rec.Phase = deployer.PhaseRunning
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		held, err := lockOf(tx, rec.Service)
		if err != nil {
			return err
		}
		if held != nil {
			return lockedError(tx, *held)
		}
		id, err := tx.Bucket(bucketDeployments).NextSequence()
		if err != nil {
			return fmt.Errorf("number a new deployment of %s: %w", rec.Service, err)
		}
		rec.ID = id
		if init != nil {
			init(&rec)
		}
		if err := saveDeployment(tx, &rec, nil); err != nil {
			return err
		}
		if err := indexHistory(tx, rec.Service, id); err != nil {
			return err
		}
		lock := deployer.Lock{
			Service:  rec.Service,
			DeployID: id,
			Holder:   rec.Requester,
			Since:    rec.Created,
			Reason:   rec.Reason,
		}
		if err := put(tx.Bucket(bucketLocks), []byte(rec.Service), lockName(rec.Service), &lock); err != nil {
			return err
		}
		return appendDecisions(tx, id, nil, nil, &rec)
	})
	if err != nil {
		return err
	}
	*d = rec
	return nil
}

// UpdateDeployment loads deployment id, lets fn check and change it, and
// saves it, in one transaction. An error from fn aborts the transaction and
// is returned as it is. fn may not change the deployment's ID or service.
// When fn sets or changes Approval or Rollback, the new decision is appended
// to the deployment's decisions (see Approvals) in the same transaction.
//
// fn runs inside bbolt's write transaction: it must be quick and must not
// call back into db (that can deadlock), and the *Deployment it gets is
// valid only during the call.
func (db *DB) UpdateDeployment(id uint64, fn func(*deployer.Deployment) error) (deployer.Deployment, error) {
	return db.update(id, fn, false, nil)
}

// FinishDeployment is UpdateDeployment that also, in the same transaction,
// records live as the service's state when it is not nil (an empty
// live.Service means the deployment's service) and releases the service's
// lock if deployment id holds it; a lock anyone else holds is kept.
func (db *DB) FinishDeployment(id uint64, fn func(*deployer.Deployment) error, live *deployer.ServiceState) (deployer.Deployment, error) {
	return db.update(id, fn, true, live)
}

func (db *DB) update(id uint64, fn func(*deployer.Deployment) error, finish bool, live *deployer.ServiceState) (deployer.Deployment, error) {
	var out deployer.Deployment
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		d, err := db.loadDeployment(tx, id, false)
		if err != nil {
			return err
		}
		diffs := cloneDiffs(d.Diffs)
		service := d.Service
		approval, rollback := copyDecision(d.Approval), copyDecision(d.Rollback)
		if fn != nil {
			if err := fn(&d); err != nil {
				return err
			}
		}
		if d.ID != id || d.Service != service {
			return fmt.Errorf("save %s: its ID and service cannot change (got #%d of %q, was #%d of %q)",
				deploymentName(id), d.ID, d.Service, id, service)
		}
		if err := saveDeployment(tx, &d, diffs); err != nil {
			return err
		}
		if err := appendDecisions(tx, id, approval, rollback, &d); err != nil {
			return err
		}
		if finish {
			if err := finishDeployment(tx, &d, live); err != nil {
				return err
			}
		}
		// fn may have kept a pointer into d; hand back a copy of our own.
		out = d.Clone()
		return nil
	})
	if err != nil {
		return deployer.Deployment{}, err
	}
	return out, nil
}

// finishDeployment records live and releases d's lock, inside tx.
func finishDeployment(tx *bolt.Tx, d *deployer.Deployment, live *deployer.ServiceState) error {
	if live != nil {
		s := *live
		if s.Service == "" {
			s.Service = d.Service
		}
		if s.Service != d.Service {
			return fmt.Errorf("finish %s: it deploys %s, not %s", deploymentName(d.ID), d.Service, s.Service)
		}
		if err := put(tx.Bucket(bucketServices), []byte(s.Service), serviceName(s.Service), &s); err != nil {
			return err
		}
	}
	held, err := lockOf(tx, d.Service)
	if err != nil {
		return err
	}
	if held != nil && held.DeployID == d.ID {
		if err := tx.Bucket(bucketLocks).Delete([]byte(d.Service)); err != nil {
			return fmt.Errorf("release the lock of %s: %w", d.Service, err)
		}
	}
	return nil
}

// Deployment returns deployment id, or a *deployer.NotFoundError.
func (db *DB) Deployment(id uint64) (deployer.Deployment, error) {
	var d deployer.Deployment
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		d, err = db.loadDeployment(tx, id, true)
		return err
	})
	if err != nil {
		return deployer.Deployment{}, err
	}
	return d, nil
}

// Deployments returns up to limit deployments of service ("" = all), newest
// first; a limit of 0 or less means all of them. It reads only the
// deployments it returns.
func (db *DB) Deployments(service string, limit int) ([]deployer.Deployment, error) {
	var out []deployer.Deployment
	err := db.bolt.View(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketDeployments)
		if service != "" {
			if ids = tx.Bucket(bucketHistory).Bucket([]byte(service)); ids == nil {
				return nil
			}
		}
		c := ids.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			id, err := keyID("deployments", k)
			if err != nil {
				return err
			}
			d, err := db.loadDeployment(tx, id, true)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ActiveDeployments returns the deployments whose phase is not final,
// oldest first. It reads only those deployments, through the index every
// write that changes a phase keeps in the same transaction.
func (db *DB) ActiveDeployments() ([]deployer.Deployment, error) {
	var out []deployer.Deployment
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketActive).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id, err := keyID("the active deployments", k)
			if err != nil {
				return err
			}
			d, err := db.loadDeployment(tx, id, true)
			if err != nil {
				return err
			}
			if !d.Phase.Final() {
				out = append(out, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Approvals returns every decision recorded on deployment id (approve,
// abort, rollback), in the order they were taken, or a
// *deployer.NotFoundError when there is no such deployment.
func (db *DB) Approvals(id uint64) ([]deployer.Decision, error) {
	var out []deployer.Decision
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDeployments).Get(u64(id)) == nil {
			return &deployer.NotFoundError{What: deploymentName(id)}
		}
		prefix := u64(id)
		c := tx.Bucket(bucketApprovals).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			what := fmt.Sprintf("a decision on %s", deploymentName(id))
			if len(k) == 16 {
				what = fmt.Sprintf("decision %d on %s", binary.BigEndian.Uint64(k[8:]), deploymentName(id))
			}
			var dec deployer.Decision
			if err := decode(what, v, &dec); err != nil {
				return err
			}
			out = append(out, dec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendDecisions appends d's Approval and Rollback to the approvals bucket
// when they differ from what they were before (approval, rollback).
func appendDecisions(tx *bolt.Tx, id uint64, approval, rollback *deployer.Decision, d *deployer.Deployment) error {
	b := tx.Bucket(bucketApprovals)
	for _, c := range [...]struct{ before, after *deployer.Decision }{
		{approval, d.Approval},
		{rollback, d.Rollback},
	} {
		if c.after == nil || sameDecision(c.before, c.after) {
			continue
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("record the %s decision on %s: %w", c.after.Kind, deploymentName(id), err)
		}
		key := append(u64(id), u64(seq)...)
		if err := put(b, key, fmt.Sprintf("the %s decision on %s", c.after.Kind, deploymentName(id)), c.after); err != nil {
			return err
		}
	}
	return nil
}

func sameDecision(a, b *deployer.Decision) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.By == b.By && a.At.Equal(b.At) && a.Reason == b.Reason
}

func copyDecision(d *deployer.Decision) *deployer.Decision {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

// loadDeployment reads deployment id and joins its zone diffs, inside tx;
// keep puts what it decodes in the cache (a write, about to change the
// record, does not). No deployment id gives a *deployer.NotFoundError.
func (db *DB) loadDeployment(tx *bolt.Tx, id uint64, keep bool) (deployer.Deployment, error) {
	key := u64(id)
	v := tx.Bucket(bucketDeployments).Get(key)
	if v == nil {
		return deployer.Deployment{}, &deployer.NotFoundError{What: deploymentName(id)}
	}
	diffs := tx.Bucket(bucketDiffs).Get(key)
	if d, ok := db.cache.get(id, v, diffs); ok {
		return d, nil
	}
	var d deployer.Deployment
	if err := decode(deploymentName(id), v, &d); err != nil {
		return deployer.Deployment{}, err
	}
	if diffs != nil {
		if err := decode("the zone diffs of "+deploymentName(id), diffs, &d.Diffs); err != nil {
			return deployer.Deployment{}, err
		}
	}
	if keep {
		db.cache.put(id, v, diffs, &d)
	}
	return d, nil
}

// saveDeployment writes d without its zone diffs, writes the diffs when
// they differ from before (what was stored; nil for a new deployment), and
// keeps d in the index of active deployments exactly while its phase is
// not final, inside tx.
func saveDeployment(tx *bolt.Tx, d *deployer.Deployment, before []deployer.ZoneDiff) error {
	key := u64(d.ID)
	rec := *d
	rec.Diffs = nil
	if err := put(tx.Bucket(bucketDeployments), key, deploymentName(d.ID), &rec); err != nil {
		return err
	}
	if !reflect.DeepEqual(d.Diffs, before) {
		if err := saveDiffs(tx.Bucket(bucketDiffs), key, d); err != nil {
			return err
		}
	}
	active := tx.Bucket(bucketActive)
	indexed := active.Get(key) != nil
	switch final := d.Phase.Final(); {
	case !final && !indexed:
		if err := active.Put(key, []byte{}); err != nil {
			return fmt.Errorf("index %s as active: %w", deploymentName(d.ID), err)
		}
	case final && indexed:
		if err := active.Delete(key); err != nil {
			return fmt.Errorf("remove %s from the active deployments: %w", deploymentName(d.ID), err)
		}
	}
	return nil
}

// saveDiffs writes d.Diffs under key; no diffs remove the record.
func saveDiffs(b *bolt.Bucket, key []byte, d *deployer.Deployment) error {
	what := "the zone diffs of " + deploymentName(d.ID)
	if len(d.Diffs) == 0 {
		if err := b.Delete(key); err != nil {
			return fmt.Errorf("save %s: %w", what, err)
		}
		return nil
	}
	if err := put(b, key, what, d.Diffs); err != nil {
		return err
	}
	return nil
}

// cloneDiffs copies diffs and each one's lines, so a change fn makes in
// place does not reach the copy.
func cloneDiffs(diffs []deployer.ZoneDiff) []deployer.ZoneDiff {
	out := slices.Clone(diffs)
	for i := range out {
		out[i].Lines = slices.Clone(out[i].Lines)
	}
	return out
}

// indexHistory records deployment id under its service, inside tx.
func indexHistory(tx *bolt.Tx, service string, id uint64) error {
	b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(service))
	if err != nil {
		return fmt.Errorf("index %s under %s: %w", deploymentName(id), service, err)
	}
	b.FillPercent = appendFill
	if err := b.Put(u64(id), []byte{}); err != nil {
		return fmt.Errorf("index %s under %s: %w", deploymentName(id), service, err)
	}
	return nil
}

// keyID reads a deployment ID key of the named bucket.
func keyID(bucket string, k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("read %s: a record has a malformed key %x", bucket, k)
	}
	return binary.BigEndian.Uint64(k), nil
}
