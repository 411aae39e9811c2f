package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// Lock takes a service's lock by hand (l.DeployID must be 0: a deploy's lock
// is taken by BeginDeployment). A zero l.Since is stamped from the clock. A
// held lock gives a *deployer.LockedError naming its holder.
func (db *DB) Lock(l deployer.Lock) error {
	switch {
	case l.Service == "":
		return deployer.Errorf(deployer.CodeInvalid, "a lock needs a service")
	case l.Holder == "":
		return deployer.Errorf(deployer.CodeInvalid, "a lock on %s needs a holder", l.Service)
	case l.DeployID != 0:
		return deployer.Errorf(deployer.CodeInvalid,
			"a lock on %s taken by hand cannot name deploy #%d", l.Service, l.DeployID)
	}
	if l.Since.IsZero() {
		l.Since = db.clock.Now()
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		held, err := lockOf(tx, l.Service)
		if err != nil {
			return err
		}
		if held != nil {
			return lockedError(tx, *held)
		}
		return put(tx.Bucket(bucketLocks), []byte(l.Service), lockName(l.Service), &l)
	})
}

// Unlock releases a service's lock and returns the lock released. Without
// force only the user who took it by hand may release it, and a lock held by
// a deploy is refused (a *deployer.Error with CodeForbidden that names the
// holder and says --force overrides); with force any lock is released. A
// service that is not locked gives a *deployer.Error with CodeConflict.
func (db *DB) Unlock(service, user string, force bool) (deployer.Lock, error) {
	if service == "" {
		return deployer.Lock{}, deployer.Errorf(deployer.CodeInvalid, "unlock which service?")
	}
	var released deployer.Lock
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		held, err := lockOf(tx, service)
		if err != nil {
			return err
		}
		if held == nil {
			return deployer.Errorf(deployer.CodeConflict, "%s is not locked", service)
		}
		if force && held.DeployID != 0 {
			if err := refuseActive(tx, *held); err != nil {
				return err
			}
		}
		if !force {
			locked := (&deployer.LockedError{Lock: *held}).Error()
			switch {
			case held.DeployID != 0:
				return deployer.Errorf(deployer.CodeForbidden,
					"%s; the lock is released when deploy #%d ends, and `--force` overrides",
					locked, held.DeployID)
			case held.Holder != user:
				return deployer.Errorf(deployer.CodeForbidden,
					"%s; only %s can unlock it, and `--force` overrides", locked, held.Holder)
			}
		}
		if err := tx.Bucket(bucketLocks).Delete([]byte(service)); err != nil {
			return fmt.Errorf("release the lock of %s: %w", service, err)
		}
		released = *held
		return nil
	})
	if err != nil {
		return deployer.Lock{}, err
	}
	return released, nil
}

// CurrentLock returns the service's lock, or nil when it is free.
func (db *DB) CurrentLock(service string) (*deployer.Lock, error) {
	var l *deployer.Lock
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		l, err = lockOf(tx, service)
		return err
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// lockOf returns service's lock, or nil when it is free.
func lockOf(tx *bolt.Tx, service string) (*deployer.Lock, error) {
	if service == "" {
		return nil, nil
	}
	v := tx.Bucket(bucketLocks).Get([]byte(service))
	if v == nil {
		return nil, nil
	}
	var l deployer.Lock
	if err := decode(lockName(service), v, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// lockedError describes a held lock, with the step its deploy is on when
// the lock belongs to a deploy.
func lockedError(tx *bolt.Tx, l deployer.Lock) error {
	e := &deployer.LockedError{Lock: l}
	if l.DeployID == 0 {
		return e
	}
	if v := tx.Bucket(bucketDeployments).Get(u64(l.DeployID)); v != nil {
		var d deployer.Deployment
		if decode(deploymentName(l.DeployID), v, &d) == nil {
			e.Step = d.CurrentStep()
		}
	}
	return e
}

func lockName(service string) string { return "the lock of " + service }

// refuseActive refuses to force the lock of a deploy that has not ended:
// a pipeline drives it, or it needs a person's /deploy resolve.
func refuseActive(tx *bolt.Tx, l deployer.Lock) error {
	v := tx.Bucket(bucketDeployments).Get(u64(l.DeployID))
	if v == nil {
		return nil
	}
	var d deployer.Deployment
	if err := decode(deploymentName(l.DeployID), v, &d); err != nil {
		return err
	}
	switch {
	case d.Phase == deployer.PhaseNeedsAttention:
		return deployer.Errorf(deployer.CodeConflict, "deploy #%d of %s needs attention; end it with /deploy resolve %s --to old or --to new, not by forcing the lock",
			d.ID, l.Service, l.Service)
	case !d.Phase.Final():
		return deployer.Errorf(deployer.CodeConflict, "deploy #%d of %s is still in flight (at %s); abort it or roll it back instead of forcing the lock",
			d.ID, l.Service, d.CurrentStep().Title())
	}
	return nil
}
