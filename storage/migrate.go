package storage

import (
	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
)

// migrate1 converts the deployments of a schema 1 file, inside tx: each
// record loses its zone diffs to the diffs bucket, and the active and
// history indexes are built. The buckets of schema 2 exist already.
func migrate1(tx *bolt.Tx) error {
	deps := tx.Bucket(bucketDeployments)
	var keys [][]byte
	if err := deps.ForEach(func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		id, err := keyID("deployments", k)
		if err != nil {
			return err
		}
		var d deployer.Deployment
		if err := decode(deploymentName(id), deps.Get(k), &d); err != nil {
			return err
		}
		if err := saveDeployment(tx, &d, nil); err != nil {
			return err
		}
		if d.Service == "" {
			continue
		}
		if err := indexHistory(tx, d.Service, id); err != nil {
			return err
		}
	}
	return nil
}
