package storage_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

// benchDeployment is a deploy as the pipeline leaves it: every step done,
// two servers each side, a check summary and a zone diff.
func benchDeployment(service string, i int) deployer.Deployment {
	at := epoch.Add(time.Duration(i) * time.Hour)
	servers := func(gen int) []deployer.Server {
		return []deployer.Server{
			{ID: fmt.Sprint("local-", 2*gen), Name: fmt.Sprintf("ns1-%d", gen), Role: "ns1", Addr: "127.0.0.1:40001", Image: "local/ns-v2",
				Tags: []string{"greenlight", "service:" + service, fmt.Sprintf("deploy:%d", gen)}},
			{ID: fmt.Sprint("local-", 2*gen+1), Name: fmt.Sprintf("ns2-%d", gen), Role: "ns2", Addr: "127.0.0.1:40002", Image: "local/ns-v2",
				Tags: []string{"greenlight", "service:" + service, fmt.Sprintf("deploy:%d", gen)}},
		}
	}
	d := deployer.Deployment{Service: service, Requester: "bench", Reason: "weekly image", ImageOld: "local/ns-v1", ImageNew: "local/ns-v2",
		Old: servers(i - 1), Next: servers(i), Steps: deployer.NewSteps(), Phase: deployer.PhaseSucceeded, Created: at,
		Checks: []string{"2 servers · 1 zone · 1 expected record · UDP+TCP · 3/3 passes · serial 2026110102"},
		Diffs: []deployer.ZoneDiff{{Zone: "example.test.", OldSerial: 1, NewSerial: 2, Summary: "example.test.: serial 1 → 2 · 1 added",
			Lines: []string{"+ api.example.test. 300 IN A 192.0.2.20"}, Added: 1}},
		Finished: at.Add(20 * time.Minute), Updated: at.Add(20 * time.Minute)}
	for j := range d.Steps {
		d.Steps[j].Status, d.Steps[j].Started, d.Steps[j].Finished = deployer.StatusDone, at.Add(time.Duration(j)*time.Minute), at.Add(time.Duration(j)*time.Minute+time.Second)
	}
	return d
}

// BenchmarkReads times the reads behind what a person types, with 10,000
// ended deploys stored (one in 500 of mail, the others of ns) and two in
// flight.
func BenchmarkReads(b *testing.B) {
	const n = 10_000
	db, err := storage.Open(filepath.Join(b.TempDir(), "greenlight.db"), storage.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for i := 1; i <= n; i++ {
		service := "ns"
		if i%500 == 1 {
			service = "mail"
		}
		d := benchDeployment(service, i)
		if err := db.BeginDeployment(&d, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := db.FinishDeployment(d.ID, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, service := range []string{"web", "dns"} {
		d := newDeployment(service, "bench")
		if err := db.BeginDeployment(&d, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, bm := range []struct {
		name string
		fn   func() (int, error)
	}{
		{"ActiveDeployments", func() (int, error) { ds, err := db.ActiveDeployments(); return len(ds), err }},
		{"Deployments/ns/20", func() (int, error) { ds, err := db.Deployments("ns", 20); return len(ds), err }},
		{"Deployments/mail/20", func() (int, error) { ds, err := db.Deployments("mail", 20); return len(ds), err }},
		{"Deployments/all/20", func() (int, error) { ds, err := db.Deployments("", 20); return len(ds), err }},
		{"Deployment", func() (int, error) { _, err := db.Deployment(n / 2); return 1, err }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if got, err := bm.fn(); err != nil || got == 0 {
					b.Fatalf("%d, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkOpenConvertsSchema1 times Open converting a schema 1 file of
// 10,000 ended deploys (each record carrying its zone diff).
func BenchmarkOpenConvertsSchema1(b *testing.B) {
	const n = 10_000
	dir := b.TempDir()
	src := filepath.Join(dir, "schema1.db")
	raw, err := bolt.Open(src, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"meta", "deployments", "locks", "services", "approvals", "audit", "schedules"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), be(1)); err != nil {
			return err
		}
		deps := tx.Bucket([]byte("deployments"))
		for i := 1; i <= n; i++ {
			d := benchDeployment("ns", i)
			d.ID = uint64(i)
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := deps.Put(be(d.ID), v); err != nil {
				return err
			}
		}
		return deps.SetSequence(n)
	})
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "greenlight.db")
	for b.Loop() {
		b.StopTimer()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
