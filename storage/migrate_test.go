package storage_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

// writeSchema1 builds a data file as greenlight wrote it at schema 1: each
// deployment record carries its zone diffs, and there are no indexes.
// raw, when not nil, replaces the record of that ID.
func writeSchema1(t *testing.T, path string, ds []deployer.Deployment, raw map[uint64]string) {
	t.Helper()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, name := range []string{"meta", "deployments", "locks", "services", "approvals", "audit", "schedules"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), be(1)); err != nil {
			return err
		}
		deps := tx.Bucket([]byte("deployments"))
		for _, d := range ds {
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if r, ok := raw[d.ID]; ok {
				v = []byte(r)
			}
			if err := deps.Put(be(d.ID), v); err != nil {
				return err
			}
			if !d.Phase.Final() {
				lock, _ := json.Marshal(deployer.Lock{Service: d.Service, DeployID: d.ID, Holder: d.Requester, Since: d.Created})
				if err := tx.Bucket([]byte("locks")).Put([]byte(d.Service), lock); err != nil {
					return err
				}
			}
		}
		return deps.SetSequence(uint64(len(ds)))
	})
}

// schema1Deployments are n deployments of ns, web and mail as schema 1
// kept them, one in each phase in turn, every third with zone diffs, and
// as a reader gets them back (through JSON).
func schema1Deployments(t *testing.T, n int) []deployer.Deployment {
	t.Helper()
	var out []deployer.Deployment
	services := []string{"ns", "web", "mail"}
	for i := range n {
		d := newDeployment(services[i%len(services)], "alice")
		d.ID = uint64(i + 1)
		d.Created = epoch.Add(time.Duration(i) * time.Minute)
		d.Phase = allPhases[i%len(allPhases)]
		if i%3 == 0 {
			d.Diffs = diffsOf("example.test.", fmt.Sprintf("+ host%d 300 IN A 192.0.2.1", i))
		}
		v, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back deployer.Deployment
		if err := json.Unmarshal(v, &back); err != nil {
			t.Fatal(err)
		}
		out = append(out, back)
	}
	return out
}

func TestOpenConvertsSchema1(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		raw     map[uint64]string
		wantErr string
	}{
		{name: "no deployments", n: 0},
		{name: "one deployment", n: 1},
		{name: "deployments of three services in every phase", n: 60},
		{name: "a damaged record", n: 20, raw: map[uint64]string{7: `{"id":7,"service":`},
			wantErr: "convert from schema 1 to 2: read deployment #7: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "greenlight.db")
			want := schema1Deployments(t, tt.n)
			writeSchema1(t, path, want, tt.raw)
			db, err := storage.Open(path, storage.Options{})
			if tt.wantErr != "" {
				if err == nil {
					_ = db.Close()
					t.Fatalf("Open succeeded, want an error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open: %v, want it to contain %q", err, tt.wantErr)
				}
				// One transaction: nothing of the conversion was kept.
				rawView(t, path, func(tx *bolt.Tx) error {
					if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); !slices.Equal(v, be(1)) {
						t.Errorf("schema after a failed conversion = %x, want 1", v)
					}
					for _, name := range []string{"active", "diffs", "history"} {
						if tx.Bucket([]byte(name)) != nil {
							t.Errorf("a failed conversion left bucket %s", name)
						}
					}
					var d deployer.Deployment
					if err := json.Unmarshal(tx.Bucket([]byte("deployments")).Get(be(1)), &d); err != nil || len(d.Diffs) != 1 {
						t.Errorf("a failed conversion changed deployment #1: %+v, %v", d, err)
					}
					return nil
				})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkIndexes(t, db)
			var wantActive []uint64
			for _, d := range want {
				if got, err := db.Deployment(d.ID); err != nil || !reflect.DeepEqual(got, d) {
					t.Errorf("Deployment(%d) after conversion = %+v, %v\nwant %+v", d.ID, got, err, d)
				}
				if !d.Phase.Final() {
					wantActive = append(wantActive, d.ID)
				}
			}
			if got, err := db.ActiveDeployments(); err != nil || !slices.Equal(ids(got), wantActive) {
				t.Errorf("ActiveDeployments after conversion = %v, %v, want %v", ids(got), err, wantActive)
			}
			if got, err := db.Deployments("mail", 2); tt.n == 60 && (err != nil || !slices.Equal(ids(got), []uint64{60, 57})) {
				t.Errorf("Deployments(mail, 2) after conversion = %v, %v, want [60 57]", ids(got), err)
			}
			if next := begin(t, db, "dns", "bob"); next != uint64(tt.n+1) {
				t.Errorf("first ID after conversion = %d, want %d", next, tt.n+1)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			rawView(t, path, func(tx *bolt.Tx) error {
				if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); !slices.Equal(v, be(2)) {
					t.Errorf("schema after conversion = %x, want 2", v)
				}
				return nil
			})
			db, err = storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, db)
		})
	}
}
