package storage_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The on-disk layout, spelled out here on purpose: a change to it must be
// a deliberate schema change, not an accident these tests follow.
var wantBuckets = []string{"active", "approvals", "audit", "deployments", "diffs", "freezes", "history", "locks", "meta", "schedules", "services"}

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// openDB opens a fresh data file in t.TempDir with a manual clock.
func openDB(t *testing.T) (*storage.DB, string, *deployer.ManualClock) {
	t.Helper()
	clock := deployer.NewManualClock(epoch)
	path := filepath.Join(t.TempDir(), "greenlight.db")
	db, err := storage.Open(path, storage.Options{Clock: clock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path, clock
}

func newDeployment(service, requester string) deployer.Deployment {
	return deployer.Deployment{
		Service:   service,
		Requester: requester,
		Reason:    "new zone serial",
		Steps:     deployer.NewSteps(),
		Phase:     deployer.PhaseRunning,
		Created:   epoch,
	}
}

func begin(t *testing.T, db *storage.DB, service, requester string) uint64 {
	t.Helper()
	d := newDeployment(service, requester)
	if err := db.BeginDeployment(&d, nil); err != nil {
		t.Fatalf("BeginDeployment(%s): %v", service, err)
	}
	return d.ID
}

// setPhase records deploy id in phase ph without touching its lock: a
// deploy that ended and left its lock behind, or one that needs attention.
func setPhase(t *testing.T, db *storage.DB, id uint64, ph deployer.Phase) {
	t.Helper()
	if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error { d.Phase = ph; return nil }); err != nil {
		t.Fatal(err)
	}
}

// rawView opens a closed data file with bbolt itself.
func rawView(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer raw.Close()
	if err := raw.View(fn); err != nil {
		t.Fatal(err)
	}
}

func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer raw.Close()
	if err := raw.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesBucketsAndSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "greenlight")
	path := filepath.Join(dir, "greenlight.db")
	for i := range 2 { // the second Open finds everything in place
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
	rawView(t, path, func(tx *bolt.Tx) error {
		var got []string
		err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			got = append(got, string(name))
			return nil
		})
		if !slices.Equal(got, wantBuckets) {
			t.Errorf("buckets %q, want %q", got, wantBuckets)
		}
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); !slices.Equal(v, be(2)) {
			t.Errorf("meta schema = %x, want %x", v, be(2))
		}
		return err
	})
}

func TestOpenChecksTheFile(t *testing.T) {
	writeSchema := func(v []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("meta"))
				if err != nil {
					return err
				}
				return b.Put([]byte("schema"), v)
			})
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string // "" = opens; otherwise a fragment of the message after the path
	}{
		{name: "current schema", setup: writeSchema(be(2))},
		{name: "schema 1, converted", setup: writeSchema(be(1))},
		{name: "newer schema", setup: writeSchema(be(3)),
			wantErr: " was written by a newer greenlight (schema 3, this one reads 2)"},
		{name: "unreadable schema", setup: writeSchema([]byte{2}),
			wantErr: " has an unreadable schema version"},
		{name: "not a bbolt file", setup: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("$ORIGIN example.test.\n", 400)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: " is not a greenlight data file, or it is damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "greenlight.db")
			tt.setup(t, path)
			db, err := storage.Open(path, storage.Options{Timeout: 200 * time.Millisecond})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = db.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tt.wantErr)
			}
			if want := "data file " + path + tt.wantErr; !strings.Contains(err.Error(), want) {
				t.Fatalf("Open error:\n  %v\nwant it to contain\n  %s", err, want)
			}
			if strings.Contains(tt.name, "schema") {
				// Nothing was written, and the file was released.
				rawView(t, path, func(tx *bolt.Tx) error {
					if tx.Bucket([]byte("deployments")) != nil {
						t.Error("a refused Open created buckets")
					}
					return nil
				})
			}
		})
	}
}

func TestOpenWhileInUse(t *testing.T) {
	_, path, _ := openDB(t)
	db, err := storage.Open(path, storage.Options{Timeout: 200 * time.Millisecond})
	if err == nil {
		_ = db.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	want := "data file " + path + " is locked: another greenlight is using it"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("error %v does not wrap bbolt's ErrTimeout", err)
	}
}

func TestBeginDeploymentRace(t *testing.T) {
	db, _, _ := openDB(t)
	const racers = 20
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		ds    = make([]deployer.Deployment, racers)
		errs  = make([]error, racers)
	)
	for i := range racers {
		ds[i] = newDeployment("ns", fmt.Sprintf("user%02d", i))
		wg.Go(func() {
			<-start
			errs[i] = db.BeginDeployment(&ds[i], nil)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("racers %d and %d both took the lock", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no racer took the lock: %v", errs)
	}
	w := ds[winner]
	if w.ID != 1 {
		t.Errorf("winner's ID = %d, want 1", w.ID)
	}
	for i, err := range errs {
		if i == winner {
			continue
		}
		le, ok := errors.AsType[*deployer.LockedError](err)
		if !ok {
			t.Errorf("racer %d: error %v, want a *LockedError", i, err)
			continue
		}
		want := deployer.Lock{Service: "ns", DeployID: w.ID, Holder: w.Requester, Since: epoch, Reason: w.Reason}
		if !reflect.DeepEqual(le.Lock, want) || le.Step != deployer.StepLock {
			t.Errorf("racer %d: locked by %+v on step %q, want %+v on %q", i, le.Lock, le.Step, want, deployer.StepLock)
		}
		wantMsg := fmt.Sprintf("ns is locked by deploy #1 by %s since 2026-03-01 12:00:00 UTC", w.Requester)
		if !strings.HasPrefix(err.Error(), wantMsg) {
			t.Errorf("racer %d: message %q, want it to start %q", i, err, wantMsg)
		}
		if ds[i].ID != 0 {
			t.Errorf("racer %d: a refused deployment got ID %d", i, ds[i].ID)
		}
	}

	all, err := db.Deployments("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Requester != w.Requester {
		t.Fatalf("stored %d deployments (%+v), want only the winner's", len(all), all)
	}
	// The losers' transactions rolled back their sequence numbers too.
	if id := begin(t, db, "web", "alice"); id != 2 {
		t.Errorf("next ID = %d, want 2", id)
	}
	checkIndexes(t, db)
}

func TestIDsSortNumerically(t *testing.T) {
	db, _, _ := openDB(t)
	const n = 300 // past 255 and 256, where little-endian or text keys misorder
	for i := range n {
		service := fmt.Sprintf("svc%d", i%3)
		d := newDeployment(service, "alice")
		if err := db.BeginDeployment(&d, nil); err != nil {
			t.Fatalf("BeginDeployment #%d: %v", i+1, err)
		}
		if d.ID != uint64(i+1) {
			t.Fatalf("deployment %d got ID %d", i+1, d.ID)
		}
		// Release the lock so the next deploy of the service can begin;
		// every tenth deployment stays in an active phase.
		final := deployer.PhaseSucceeded
		if i%10 == 0 {
			final = deployer.PhaseRunning
		}
		if _, err := db.FinishDeployment(d.ID, func(d *deployer.Deployment) error {
			d.Phase = final
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}

	ids := func(ds []deployer.Deployment) []uint64 {
		var out []uint64
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	span := func(from, to, step int) []uint64 {
		var out []uint64
		for i := from; step > 0 && i <= to || step < 0 && i >= to; i += step {
			out = append(out, uint64(i))
		}
		return out
	}
	tests := []struct {
		name    string
		service string
		limit   int
		want    []uint64
	}{
		{"all", "", 0, span(n, 1, -1)},
		{"negative limit is all", "", -1, span(n, 1, -1)},
		{"limit", "", 5, span(300, 296, -1)},
		{"one service", "svc0", 4, []uint64{298, 295, 292, 289}},
		{"unknown service", "mail", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Deployments(tt.service, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("Deployments(%q, %d) = %v, want %v", tt.service, tt.limit, ids(got), tt.want)
			}
		})
	}

	active, err := db.ActiveDeployments()
	if err != nil {
		t.Fatal(err)
	}
	if want := span(1, n, 10); !slices.Equal(ids(active), want) {
		t.Errorf("ActiveDeployments = %v, want %v", ids(active), want)
	}
	for _, id := range []uint64{255, 256, 257} {
		d, err := db.Deployment(id)
		if err != nil || d.ID != id {
			t.Errorf("Deployment(%d) = #%d, %v", id, d.ID, err)
		}
	}
	_, err = db.Deployment(n + 1)
	if nf, ok := errors.AsType[*deployer.NotFoundError](err); !ok || nf.What != "deployment #301" {
		t.Errorf("Deployment(%d) error = %v, want NotFoundError for deployment #301", n+1, err)
	}
}

func TestUpdateDeploymentFnErrorChangesNothing(t *testing.T) {
	refusal := deployer.Errorf(deployer.CodeConflict, "deploy #1 is not waiting for approval")
	for _, finish := range []bool{false, true} {
		t.Run(fmt.Sprintf("finish=%v", finish), func(t *testing.T) {
			db, _, _ := openDB(t)
			id := begin(t, db, "ns", "alice")
			before, err := db.Deployment(id)
			if err != nil {
				t.Fatal(err)
			}
			fn := func(d *deployer.Deployment) error {
				d.Phase = deployer.PhaseSucceeded
				d.Steps[0].Status = deployer.StatusDone
				d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: "bob", At: epoch}
				d.Refs = map[string]string{"slack.ts": "1.2"}
				return refusal
			}
			live := &deployer.ServiceState{Service: "ns", Image: "private/42"}
			if finish {
				_, err = db.FinishDeployment(id, fn, live)
			} else {
				_, err = db.UpdateDeployment(id, fn)
			}
			if err != refusal { // returned as it is, not wrapped
				t.Fatalf("error = %#v, want fn's own error", err)
			}
			after, err := db.Deployment(id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after, before) {
				t.Errorf("deployment changed:\n got %+v\nwant %+v", after, before)
			}
			if decs, err := db.Approvals(id); err != nil || len(decs) != 0 {
				t.Errorf("Approvals = %v, %v; want none", decs, err)
			}
			if l, err := db.CurrentLock("ns"); err != nil || l == nil || l.DeployID != id {
				t.Errorf("lock = %+v, %v; want it still held by #%d", l, err, id)
			}
			if s, err := db.Service("ns"); err != nil || !reflect.DeepEqual(s, deployer.ServiceState{}) {
				t.Errorf("Service = %+v, %v; want the zero value", s, err)
			}
		})
	}
}

func TestUpdateDeploymentRefusals(t *testing.T) {
	db, _, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	tests := []struct {
		name    string
		id      uint64
		fn      func(*deployer.Deployment) error
		wantErr string
	}{
		{"missing", 99, func(*deployer.Deployment) error { return nil }, "deployment #99 not found"},
		{"changes ID", id, func(d *deployer.Deployment) error { d.ID = 7; return nil },
			"save deployment #1: its ID and service cannot change"},
		{"changes service", id, func(d *deployer.Deployment) error { d.Service = "web"; return nil },
			"save deployment #1: its ID and service cannot change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.UpdateDeployment(tt.id, tt.fn)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if d, err := db.Deployment(id); err != nil || d.ID != id || d.Service != "ns" {
		t.Errorf("Deployment(%d) = #%d of %q, %v", id, d.ID, d.Service, err)
	}
}

func TestConcurrentApprove(t *testing.T) {
	db, _, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	approve := func(by string) func(*deployer.Deployment) error {
		return func(d *deployer.Deployment) error {
			if d.Approval != nil {
				return deployer.Errorf(deployer.CodeConflict, "deploy #%d was already %sd by %s",
					d.ID, d.Approval.Kind, d.Approval.By)
			}
			d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: by, At: epoch}
			return nil
		}
	}
	users := []string{"bob", "carol"}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   = make([]deployer.Deployment, len(users))
		errs  = make([]error, len(users))
	)
	for i, u := range users {
		wg.Go(func() {
			<-start
			got[i], errs[i] = db.UpdateDeployment(id, approve(u))
		})
	}
	close(start)
	wg.Wait()

	var winners []string
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, users[i])
			if got[i].Approval == nil || got[i].Approval.By != users[i] {
				t.Errorf("%s's result has approval %+v", users[i], got[i].Approval)
			}
		case deployer.ErrorCode(err) != deployer.CodeConflict:
			t.Errorf("%s: error %v, want a conflict", users[i], err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
	decs, err := db.Approvals(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(decs) != 1 || decs[0].By != winners[0] || decs[0].Kind != deployer.DecisionApprove {
		t.Errorf("Approvals = %+v, want one approve by %s", decs, winners[0])
	}
	checkIndexes(t, db)
}

func TestApprovalsRecordEveryNewDecision(t *testing.T) {
	db, _, _ := openDB(t)
	approve := deployer.Decision{Kind: deployer.DecisionApprove, By: "bob", At: epoch.Add(time.Minute)}
	rollback := deployer.Decision{Kind: deployer.DecisionRollback, By: "carol", At: epoch.Add(5 * time.Minute), Reason: "SERVFAIL"}

	// Another deployment's decisions interleave, and must not leak in.
	other := begin(t, db, "web", "dave")
	id := begin(t, db, "ns", "alice")
	steps := []struct {
		name string
		fn   func(*deployer.Deployment)
		want []deployer.Decision
	}{
		{"approve", func(d *deployer.Deployment) { a := approve; d.Approval = &a },
			[]deployer.Decision{approve}},
		{"unrelated change", func(d *deployer.Deployment) { d.Phase = deployer.PhaseRollbackWindow },
			[]deployer.Decision{approve}},
		{"same decision again", func(d *deployer.Deployment) { a := approve; d.Approval = &a },
			[]deployer.Decision{approve}},
		{"rollback", func(d *deployer.Deployment) { r := rollback; d.Rollback = &r },
			[]deployer.Decision{approve, rollback}},
		{"rollback changed in place", func(d *deployer.Deployment) { d.Rollback.Reason = "NXDOMAIN" },
			[]deployer.Decision{approve, rollback, {Kind: deployer.DecisionRollback, By: "carol", At: rollback.At, Reason: "NXDOMAIN"}}},
		{"cleared", func(d *deployer.Deployment) { d.Approval, d.Rollback = nil, nil },
			[]deployer.Decision{approve, rollback, {Kind: deployer.DecisionRollback, By: "carol", At: rollback.At, Reason: "NXDOMAIN"}}},
	}
	for _, st := range steps {
		if _, err := db.UpdateDeployment(other, func(d *deployer.Deployment) error {
			d.Approval = &deployer.Decision{Kind: deployer.DecisionAbort, By: st.name, At: epoch}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error { st.fn(d); return nil }); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := db.Approvals(id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("after %s: Approvals =\n  %+v\nwant\n  %+v", st.name, got, st.want)
		}
	}
	if got, err := db.Approvals(other); err != nil || len(got) != len(steps) {
		t.Errorf("Approvals(other) = %d decisions, %v; want %d", len(got), err, len(steps))
	}

	// A deployment that begins already decided (auto-approve) records it.
	d := newDeployment("mail", "erin")
	d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: "auto-approve", At: epoch}
	if err := db.BeginDeployment(&d, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Approvals(d.ID); err != nil || len(got) != 1 || got[0].By != "auto-approve" {
		t.Errorf("Approvals(auto) = %+v, %v", got, err)
	}
	if _, err := db.Approvals(99); deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("Approvals(99) error = %v, want not found", err)
	}
}

func TestFinishDeployment(t *testing.T) {
	servers := []deployer.Server{{ID: "101", Name: "ns1-1", Role: "ns1", Label: "ns1"}}
	bootstrap := deployer.ServiceState{Service: "ns", Image: "private/1", Updated: epoch}
	tests := []struct {
		name        string
		prepare     func(t *testing.T, db *storage.DB) uint64 // returns the deploy to finish
		live        *deployer.ServiceState
		wantErr     string
		wantLock    *deployer.Lock // nil = free
		wantService deployer.ServiceState
	}{
		{
			name:        "holds the lock, records live",
			prepare:     func(t *testing.T, db *storage.DB) uint64 { return begin(t, db, "ns", "alice") },
			live:        &deployer.ServiceState{Image: "private/2", Servers: servers, DeployID: 1, Updated: epoch},
			wantService: deployer.ServiceState{Service: "ns", Image: "private/2", Servers: servers, DeployID: 1, Updated: epoch},
		},
		{
			name: "nil live keeps the service state",
			prepare: func(t *testing.T, db *storage.DB) uint64 {
				if err := db.SetService(bootstrap); err != nil {
					t.Fatal(err)
				}
				return begin(t, db, "ns", "alice")
			},
			wantService: bootstrap,
		},
		{
			name: "lock force-released and taken by hand",
			prepare: func(t *testing.T, db *storage.DB) uint64 {
				id := begin(t, db, "ns", "alice")
				setPhase(t, db, id, deployer.PhaseFailed)
				if _, err := db.Unlock("ns", "carol", true); err != nil {
					t.Fatal(err)
				}
				if err := db.Lock(deployer.Lock{Service: "ns", Holder: "carol", Since: epoch}); err != nil {
					t.Fatal(err)
				}
				return id
			},
			wantLock: &deployer.Lock{Service: "ns", Holder: "carol", Since: epoch},
		},
		{
			name: "lock held by a later deploy",
			prepare: func(t *testing.T, db *storage.DB) uint64 {
				id := begin(t, db, "ns", "alice")
				setPhase(t, db, id, deployer.PhaseFailed)
				if _, err := db.Unlock("ns", "carol", true); err != nil {
					t.Fatal(err)
				}
				begin(t, db, "ns", "bob")
				return id
			},
			wantLock: &deployer.Lock{Service: "ns", DeployID: 2, Holder: "bob", Since: epoch, Reason: "new zone serial"},
		},
		{
			name:     "live for another service",
			prepare:  func(t *testing.T, db *storage.DB) uint64 { return begin(t, db, "ns", "alice") },
			live:     &deployer.ServiceState{Service: "web", Image: "private/2"},
			wantErr:  "finish deployment #1: it deploys ns, not web",
			wantLock: &deployer.Lock{Service: "ns", DeployID: 1, Holder: "alice", Since: epoch, Reason: "new zone serial"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _, _ := openDB(t)
			id := tt.prepare(t, db)
			got, err := db.FinishDeployment(id, func(d *deployer.Deployment) error {
				d.Phase = deployer.PhaseSucceeded
				d.Finished = epoch.Add(time.Hour)
				return nil
			}, tt.live)
			wantPhase := deployer.PhaseSucceeded
			if tt.wantErr != "" {
				wantPhase = deployer.PhaseRunning
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if got.Phase != wantPhase || got.ID != id {
				t.Errorf("returned #%d in phase %s", got.ID, got.Phase)
			}
			if d, err := db.Deployment(id); err != nil || d.Phase != wantPhase {
				t.Errorf("stored phase %q, %v; want %q", d.Phase, err, wantPhase)
			}
			lock, err := db.CurrentLock("ns")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(lock, tt.wantLock) {
				t.Errorf("lock = %+v, want %+v", lock, tt.wantLock)
			}
			s, err := db.Service("ns")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s, tt.wantService) {
				t.Errorf("Service = %+v, want %+v", s, tt.wantService)
			}
		})
	}
}

func TestLockAndUnlock(t *testing.T) {
	byHand := func(t *testing.T, db *storage.DB) {
		if err := db.Lock(deployer.Lock{Service: "ns", Holder: "alice", Reason: "registrar migration"}); err != nil {
			t.Fatal(err)
		}
	}
	byDeploy := func(t *testing.T, db *storage.DB) { begin(t, db, "ns", "alice") }
	byEndedDeploy := func(t *testing.T, db *storage.DB) { setPhase(t, db, begin(t, db, "ns", "alice"), deployer.PhaseFailed) }
	byStuckDeploy := func(t *testing.T, db *storage.DB) {
		setPhase(t, db, begin(t, db, "ns", "alice"), deployer.PhaseNeedsAttention)
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, db *storage.DB)
		user     string
		force    bool
		wantCode deployer.Code // "" = released
		wantMsg  []string      // fragments of the refusal
		wantLock deployer.Lock // released
	}{
		{name: "not locked", setup: func(*testing.T, *storage.DB) {}, user: "alice",
			wantCode: deployer.CodeConflict, wantMsg: []string{"ns is not locked"}},
		{name: "holder unlocks", setup: byHand, user: "alice",
			wantLock: deployer.Lock{Service: "ns", Holder: "alice", Since: epoch, Reason: "registrar migration"}},
		{name: "another user is refused", setup: byHand, user: "bob",
			wantCode: deployer.CodeForbidden,
			wantMsg:  []string{"ns is locked by alice since 2026-03-01 12:00:00 UTC", "only alice can unlock it", "`--force` overrides"}},
		{name: "another user forces", setup: byHand, user: "bob", force: true,
			wantLock: deployer.Lock{Service: "ns", Holder: "alice", Since: epoch, Reason: "registrar migration"}},
		{name: "deploy lock is refused, even to its requester", setup: byDeploy, user: "alice",
			wantCode: deployer.CodeForbidden,
			wantMsg:  []string{"ns is locked by deploy #1 by alice", "`--force` overrides"}},
		{name: "lock of a deploy in flight is refused even with force", setup: byDeploy, user: "bob", force: true,
			wantCode: deployer.CodeConflict, wantMsg: []string{"deploy #1 of ns is still in flight", "abort it or roll it back"}},
		{name: "lock of a deploy that needs attention is refused even with force", setup: byStuckDeploy, user: "bob", force: true,
			wantCode: deployer.CodeConflict, wantMsg: []string{"deploy #1 of ns needs attention", "/deploy resolve ns --to old"}},
		{name: "lock left by an ended deploy forced", setup: byEndedDeploy, user: "bob", force: true,
			wantLock: deployer.Lock{Service: "ns", DeployID: 1, Holder: "alice", Since: epoch, Reason: "new zone serial"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _, _ := openDB(t)
			tt.setup(t, db)
			before, err := db.CurrentLock("ns")
			if err != nil {
				t.Fatal(err)
			}
			released, err := db.Unlock("ns", tt.user, tt.force)
			after, lerr := db.CurrentLock("ns")
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tt.wantCode != "" {
				if code := deployer.ErrorCode(err); code != tt.wantCode {
					t.Fatalf("error %v has code %q, want %q", err, code, tt.wantCode)
				}
				for _, frag := range tt.wantMsg {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("message %q lacks %q", err, frag)
					}
				}
				if !reflect.DeepEqual(after, before) {
					t.Errorf("a refused Unlock changed the lock from %+v to %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(released, tt.wantLock) {
				t.Errorf("released %+v, want %+v", released, tt.wantLock)
			}
			if after != nil {
				t.Errorf("lock still held: %+v", after)
			}
		})
	}
}

func TestLockRefusals(t *testing.T) {
	db, _, _ := openDB(t)
	if err := db.Lock(deployer.Lock{Service: "ns", Holder: "alice", Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	id := begin(t, db, "web", "bob")
	if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error {
		for _, s := range []deployer.StepName{deployer.StepLock, deployer.StepPlan, deployer.StepCreate} {
			d.Step(s).Status = deployer.StatusDone
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		try      func() error
		wantCode deployer.Code
		wantMsg  string
	}{
		{"lock a locked service", func() error { return db.Lock(deployer.Lock{Service: "ns", Holder: "bob"}) },
			deployer.CodeConflict, "ns is locked by alice since 2026-03-01 12:00:00 UTC (reason: maintenance)"},
		{"deploy a locked service", func() error { d := newDeployment("ns", "bob"); return db.BeginDeployment(&d, nil) },
			deployer.CodeConflict, "ns is locked by alice since 2026-03-01 12:00:00 UTC (reason: maintenance)"},
		{"lock a deploying service", func() error { return db.Lock(deployer.Lock{Service: "web", Holder: "carol"}) },
			deployer.CodeConflict, `web is locked by deploy #1 by bob since 2026-03-01 12:00:00 UTC, now on step "wait-running" (reason: new zone serial)`},
		{"no holder", func() error { return db.Lock(deployer.Lock{Service: "mail"}) },
			deployer.CodeInvalid, "a lock on mail needs a holder"},
		{"names a deploy", func() error { return db.Lock(deployer.Lock{Service: "mail", Holder: "x", DeployID: 3}) },
			deployer.CodeInvalid, "a lock on mail taken by hand cannot name deploy #3"},
		{"deploy without a service", func() error { d := newDeployment("", "bob"); return db.BeginDeployment(&d, nil) },
			deployer.CodeInvalid, "a deployment needs a service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.try()
			if code := deployer.ErrorCode(err); code != tt.wantCode || err.Error() != tt.wantMsg {
				t.Errorf("error %v (code %q), want %q (code %q)", err, code, tt.wantMsg, tt.wantCode)
			}
		})
	}
	if all, err := db.Deployments("", 0); err != nil || len(all) != 1 {
		t.Errorf("%d deployments stored, %v; want 1", len(all), err)
	}
}

func TestAuditLog(t *testing.T) {
	db, _, clock := openDB(t)
	actions := []string{"lock", "deploy", "refused approve", "approve", "unlock --force"}
	for i, a := range actions {
		e := deployer.AuditEntry{User: "alice", Action: a, Service: "ns", DeployID: uint64(i)}
		if i != 2 {
			e.At = epoch.Add(time.Duration(i) * time.Minute)
		}
		clock.Advance(time.Hour) // the clock stamps only entries without a time
		if err := db.Audit(e); err != nil {
			t.Fatal(err)
		}
	}
	reversed := slices.Clone(actions)
	slices.Reverse(reversed)
	tests := []struct {
		limit int
		want  []string
	}{
		{0, reversed},
		{-3, reversed},
		{2, reversed[:2]},
		{len(actions) + 10, reversed},
	}
	for _, tt := range tests {
		got, err := db.AuditLog(tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Action)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("AuditLog(%d) = %q, want %q", tt.limit, names, tt.want)
		}
	}
	all, _ := db.AuditLog(0)
	if at, want := all[2].At, epoch.Add(3*time.Hour); !at.Equal(want) {
		t.Errorf("entry without a time stamped %v, want the clock's %v", at, want)
	}
	if at, want := all[0].At, epoch.Add(4*time.Minute); !at.Equal(want) {
		t.Errorf("entry with a time stored %v, want %v", at, want)
	}
}

func TestScheduleState(t *testing.T) {
	db, _, _ := openDB(t)
	if v, err := db.ScheduleState("ns"); err != nil || v != nil {
		t.Fatalf("unset ScheduleState = %q, %v", v, err)
	}
	in := []byte(`{"last_bake":"2026-03-01T12:00:00Z"}`)
	if err := db.SetScheduleState("ns", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X' // the caller's slice is not kept
	v, err := db.ScheduleState("ns")
	if err != nil || string(v) != `{"last_bake":"2026-03-01T12:00:00Z"}` {
		t.Fatalf("ScheduleState = %q, %v", v, err)
	}
	v[0] = 'X' // nor is the one returned shared
	if v, _ := db.ScheduleState("ns"); v[0] != '{' {
		t.Errorf("the returned slice aliases the stored state: %q", v)
	}
	if err := db.SetScheduleState("ns", []byte("not json")); deployer.ErrorCode(err) != deployer.CodeInvalid {
		t.Errorf("invalid JSON: error %v, want invalid", err)
	}
	if err := db.SetScheduleState("ns", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := db.ScheduleState("ns"); err != nil || v != nil {
		t.Errorf("after removal ScheduleState = %q, %v", v, err)
	}
}

func TestReadErrorsNameTheRecord(t *testing.T) {
	db, path, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("deployments")).Put(be(id), []byte(`{"id":1,"service":`))
	})
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, try := range map[string]func() error{
		"Deployment":        func() error { _, err := db.Deployment(id); return err },
		"Deployments":       func() error { _, err := db.Deployments("", 0); return err },
		"ActiveDeployments": func() error { _, err := db.ActiveDeployments(); return err },
		"UpdateDeployment":  func() error { _, err := db.UpdateDeployment(id, nil); return err },
	} {
		err := try()
		var syntax *json.SyntaxError
		if err == nil || !strings.HasPrefix(err.Error(), "read deployment #1: ") || !errors.As(err, &syntax) {
			t.Errorf("%s: error %v, want \"read deployment #1: …\" wrapping the JSON error", name, err)
		}
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	db, path, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	approval := deployer.Decision{Kind: deployer.DecisionApprove, By: "bob", At: epoch.Add(time.Minute)}
	want, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error {
		d.Phase = deployer.PhaseRollbackWindow
		d.Approval = &approval
		d.Next = []deployer.Server{{ID: "7", Name: "ns1-1", Role: "ns1", Tags: []string{"greenlight", "deploy:1"}}}
		d.Refs = map[string]string{"slack.channel": "C1", "slack.ts": "1700000000.1"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	live := deployer.ServiceState{Service: "ns", Image: "private/1", Updated: epoch}
	webLock := deployer.Lock{Service: "web", Holder: "carol", Since: epoch, Reason: "maintenance"}
	audit := deployer.AuditEntry{At: epoch, User: "alice", Action: "deploy", Service: "ns", DeployID: id}
	for _, err := range []error{
		db.SetService(live),
		db.Lock(webLock),
		db.Audit(audit),
		db.SetScheduleState("ns", []byte(`{"next":"03:00"}`)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got, err := db.Deployment(id); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Deployment after reopen:\n got %+v, %v\nwant %+v", got, err, want)
	}
	if got, err := db.ActiveDeployments(); err != nil || len(got) != 1 || got[0].ID != id {
		t.Errorf("ActiveDeployments after reopen = %+v, %v", got, err)
	}
	if got, err := db.Approvals(id); err != nil || !reflect.DeepEqual(got, []deployer.Decision{approval}) {
		t.Errorf("Approvals after reopen = %+v, %v", got, err)
	}
	if got, err := db.CurrentLock("ns"); err != nil || got == nil || got.DeployID != id {
		t.Errorf("ns lock after reopen = %+v, %v", got, err)
	}
	if got, err := db.CurrentLock("web"); err != nil || got == nil || *got != webLock {
		t.Errorf("web lock after reopen = %+v, %v", got, err)
	}
	if got, err := db.Service("ns"); err != nil || !reflect.DeepEqual(got, live) {
		t.Errorf("Service after reopen = %+v, %v", got, err)
	}
	if got, err := db.ScheduleState("ns"); err != nil || string(got) != `{"next":"03:00"}` {
		t.Errorf("ScheduleState after reopen = %q, %v", got, err)
	}
	if err := db.Audit(deployer.AuditEntry{At: epoch, User: "bob", Action: "approve"}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.AuditLog(0); err != nil || len(got) != 2 || got[0].Action != "approve" || got[1] != audit {
		t.Errorf("AuditLog after reopen = %+v, %v", got, err)
	}
	if next := begin(t, db, "mail", "dave"); next != id+1 {
		t.Errorf("ID after reopen = %d, want %d", next, id+1)
	}
}

// TestAftermathIsKept: a deployment's Aftermath is saved by the
// transaction that ends it, under its own key, and read back after a
// reopen. A record written before the field, with what was done at the end
// of its Error, reads as it was stored: the file needs no conversion.
func TestAftermathIsKept(t *testing.T) {
	db, path, _ := openDB(t)
	end := func(id uint64, why, aftermath string) deployer.Deployment {
		d, err := db.FinishDeployment(id, func(d *deployer.Deployment) error {
			d.Phase, d.Error, d.Aftermath = deployer.PhaseFailed, why, aftermath
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	why := "Switch traffic failed: the NodeBalancer answered 500"
	aftermath := "Traffic is back on ns1-0; the next set (ns1-1) was deleted and the lock released."
	want := end(begin(t, db, "ns", "alice"), why, aftermath)
	before := end(begin(t, db, "web", "bob"), why, aftermath)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		deps := tx.Bucket([]byte("deployments"))
		var rec map[string]any
		if err := json.Unmarshal(deps.Get(be(want.ID)), &rec); err != nil {
			return err
		}
		if rec["aftermath"] != aftermath || rec["error"] != why {
			t.Errorf("stored record has error %q and aftermath %q, want %q and %q", rec["error"], rec["aftermath"], why, aftermath)
		}
		// The record as an earlier greenlight wrote it.
		if err := json.Unmarshal(deps.Get(be(before.ID)), &rec); err != nil {
			return err
		}
		delete(rec, "aftermath")
		rec["error"] = why + ". " + aftermath
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return deps.Put(be(before.ID), v)
	})

	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got, err := db.Deployment(want.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Deployment after reopen:\n got %+v, %v\nwant %+v", got, err, want)
	}
	before.Error, before.Aftermath = why+". "+aftermath, ""
	if got, err := db.Deployment(before.ID); err != nil || !reflect.DeepEqual(got, before) {
		t.Errorf("a record without an aftermath:\n got %+v, %v\nwant %+v", got, err, before)
	}
}

// Freezes set in chat are kept per service, one for every service, and
// removed one at a time.
func TestFreezes(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "g.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	end := time.Date(2026, 12, 27, 8, 0, 0, 0, time.UTC)
	for _, f := range []deployer.Freeze{{Service: "ns", Reason: "a", By: "ops", End: end}, {Reason: "all", By: "ops"}, {Service: "ns", Reason: "b", By: "ops"}} {
		if err := db.SetFreeze(f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Freezes()
	if err != nil || len(got) != 2 {
		t.Fatalf("freezes %+v, %v; want 2", got, err)
	}
	if f, ok, err := db.DeleteFreeze("ns"); err != nil || !ok || f.Reason != "b" {
		t.Fatalf("delete ns: %+v %v %v", f, ok, err)
	}
	if _, ok, err := db.DeleteFreeze("ns"); err != nil || ok {
		t.Fatalf("second delete of ns: %v %v", ok, err)
	}
	if f, ok, err := db.DeleteFreeze(""); err != nil || !ok || f.Reason != "all" {
		t.Fatalf("delete all: %+v %v %v", f, ok, err)
	}
}
