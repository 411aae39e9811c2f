package storage_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

// fullScan decodes every deployment record with its zone diffs, oldest
// first, straight from the file: the answer schema 1 computed for every
// read, and the reference the indexes are checked against.
func fullScan(t *testing.T, db *storage.DB) []deployer.Deployment {
	t.Helper()
	var all []deployer.Deployment
	err := db.RawView(func(tx *bolt.Tx) error {
		diffs := tx.Bucket([]byte("diffs"))
		return tx.Bucket([]byte("deployments")).ForEach(func(k, v []byte) error {
			var d deployer.Deployment
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			if d.Diffs != nil {
				return fmt.Errorf("deployment #%d carries its diffs in its record", d.ID)
			}
			if dv := diffs.Get(k); dv != nil {
				if err := json.Unmarshal(dv, &d.Diffs); err != nil {
					return err
				}
			}
			all = append(all, d)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// checkIndexes compares what the methods answer, and the index buckets
// themselves, with a full scan of the records.
func checkIndexes(t *testing.T, db *storage.DB) {
	t.Helper()
	all := fullScan(t, db)
	var wantActive []deployer.Deployment
	wantHistory := map[string][]uint64{}
	services := []string{"", "nosuch"}
	for _, d := range all {
		if !d.Phase.Final() {
			wantActive = append(wantActive, d)
		}
		if _, ok := wantHistory[d.Service]; !ok {
			services = append(services, d.Service)
		}
		wantHistory[d.Service] = append(wantHistory[d.Service], d.ID)
	}
	got, err := db.ActiveDeployments()
	if err != nil || !reflect.DeepEqual(got, wantActive) {
		t.Errorf("ActiveDeployments = %v, %v\nwant (full scan) %v", ids(got), err, ids(wantActive))
	}
	for _, service := range services {
		var want []deployer.Deployment
		for _, d := range slices.Backward(all) {
			if service == "" || d.Service == service {
				want = append(want, d)
			}
		}
		for _, limit := range []int{0, 1, 3, 20} {
			w := want
			if limit > 0 && len(w) > limit {
				w = w[:limit]
			}
			got, err := db.Deployments(service, limit)
			if err != nil || !reflect.DeepEqual(got, w) {
				t.Errorf("Deployments(%q, %d) = %v, %v\nwant (full scan) %v", service, limit, ids(got), err, ids(w))
			}
		}
	}
	for _, d := range all {
		if got, err := db.Deployment(d.ID); err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("Deployment(%d) = %+v, %v\nwant (full scan) %+v", d.ID, got, err, d)
		}
	}
	gotHistory := map[string][]uint64{}
	var gotActive []uint64
	err = db.RawView(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("active")).ForEach(func(k, _ []byte) error {
			gotActive = append(gotActive, be64(k))
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte("history")).ForEachBucket(func(name []byte) error {
			return tx.Bucket([]byte("history")).Bucket(name).ForEach(func(k, _ []byte) error {
				gotHistory[string(name)] = append(gotHistory[string(name)], be64(k))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := ids(wantActive); !slices.Equal(gotActive, want) {
		t.Errorf("active bucket holds %v, want %v", gotActive, want)
	}
	if !reflect.DeepEqual(gotHistory, wantHistory) {
		t.Errorf("history buckets hold %v, want %v", gotHistory, wantHistory)
	}
}

func ids(ds []deployer.Deployment) []uint64 {
	var out []uint64
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func be64(k []byte) uint64 {
	var v uint64
	for _, b := range k {
		v = v<<8 | uint64(b)
	}
	return v
}

// phaseOf records deploy id in phase ph and, when release is set, frees
// its service's lock in the same transaction.
func phaseOf(t *testing.T, db *storage.DB, id uint64, ph deployer.Phase, release bool) {
	t.Helper()
	fn := func(d *deployer.Deployment) error { d.Phase = ph; return nil }
	var err error
	if release {
		_, err = db.FinishDeployment(id, fn, nil)
	} else {
		_, err = db.UpdateDeployment(id, fn)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func diffsOf(zone string, lines ...string) []deployer.ZoneDiff {
	return []deployer.ZoneDiff{{Zone: zone, OldSerial: 1, NewSerial: 2, Summary: zone + ": serial 1 → 2", Lines: lines, Added: len(lines)}}
}

func setDiffs(t *testing.T, db *storage.DB, id uint64, diffs []deployer.ZoneDiff) {
	t.Helper()
	if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error { d.Diffs = diffs; return nil }); err != nil {
		t.Fatal(err)
	}
}

var allPhases = []deployer.Phase{
	deployer.PhaseRunning, deployer.PhaseAwaitingApproval, deployer.PhaseRollbackWindow, deployer.PhaseNeedsAttention,
	deployer.PhaseSucceeded, deployer.PhaseFailed, deployer.PhaseAborted, deployer.PhaseRolledBack, deployer.PhasePlanned,
}

func TestIndexesMatchAFullScan(t *testing.T) {
	tests := []struct {
		name       string
		run        func(t *testing.T, db *storage.DB)
		wantActive []uint64
	}{
		{name: "no deployments", run: func(*testing.T, *storage.DB) {}},
		{name: "one in each phase", run: func(t *testing.T, db *storage.DB) {
			for _, ph := range allPhases {
				phaseOf(t, db, begin(t, db, "ns", "alice"), ph, true)
			}
		}, wantActive: []uint64{1, 2, 3, 4}},
		{name: "through every phase and back", run: func(t *testing.T, db *storage.DB) {
			id := begin(t, db, "ns", "alice")
			for _, ph := range append(slices.Clone(allPhases), deployer.PhaseNeedsAttention, deployer.PhaseFailed, deployer.PhaseRunning) {
				phaseOf(t, db, id, ph, false)
			}
		}, wantActive: []uint64{1}},
		{name: "services interleaved", run: func(t *testing.T, db *storage.DB) {
			for i := range 300 {
				id := begin(t, db, fmt.Sprintf("svc%d", i%3), "alice")
				ph := deployer.PhaseSucceeded
				if i%7 == 0 {
					ph = deployer.PhaseNeedsAttention
				}
				phaseOf(t, db, id, ph, true)
			}
		}, wantActive: []uint64{1, 8, 15, 22, 29, 36, 43, 50, 57, 64, 71, 78, 85, 92, 99, 106, 113, 120, 127, 134, 141,
			148, 155, 162, 169, 176, 183, 190, 197, 204, 211, 218, 225, 232, 239, 246, 253, 260, 267, 274, 281, 288, 295}},
		{name: "a rare service among many", run: func(t *testing.T, db *storage.DB) {
			for i := range 120 {
				service := "ns"
				if i%40 == 0 {
					service = "mail"
				}
				phaseOf(t, db, begin(t, db, service, "alice"), deployer.PhaseSucceeded, true)
			}
		}},
		{name: "diffs set, changed, cleared", run: func(t *testing.T, db *storage.DB) {
			a, b := begin(t, db, "ns", "alice"), begin(t, db, "web", "bob")
			setDiffs(t, db, a, diffsOf("example.test.", "+ a 300 IN A 192.0.2.1"))
			setDiffs(t, db, b, diffsOf("example.test.", "+ b 300 IN A 192.0.2.2"))
			setDiffs(t, db, a, diffsOf("example.test.", "+ a 300 IN A 192.0.2.3", "- a 300 IN A 192.0.2.1"))
			setDiffs(t, db, b, nil)
			phaseOf(t, db, b, deployer.PhaseAborted, true)
		}, wantActive: []uint64{1}},
		{name: "begun in a final phase", run: func(t *testing.T, db *storage.DB) {
			d := newDeployment("ns", "alice")
			d.Phase = deployer.PhaseFailed
			if err := db.BeginDeployment(&d, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "failed writes change no index", run: func(t *testing.T, db *storage.DB) {
			id := begin(t, db, "ns", "alice")
			setDiffs(t, db, id, diffsOf("example.test.", "+ a 300 IN A 192.0.2.1"))
			_, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error {
				d.Phase, d.Diffs = deployer.PhaseSucceeded, nil
				return deployer.Errorf(deployer.CodeConflict, "changed my mind")
			})
			if err == nil {
				t.Fatal("fn's error was not returned")
			}
			// This one fails after the record and its indexes were written,
			// inside the transaction: the live set names another service.
			_, err = db.FinishDeployment(id, func(d *deployer.Deployment) error {
				d.Phase, d.Diffs = deployer.PhaseSucceeded, nil
				return nil
			}, &deployer.ServiceState{Service: "web"})
			if err == nil || !strings.Contains(err.Error(), "it deploys ns, not web") {
				t.Fatalf("FinishDeployment with web's state: %v", err)
			}
			if d, err := db.Deployment(id); err != nil || d.Phase != deployer.PhaseRunning || len(d.Diffs) != 1 {
				t.Fatalf("after failed writes: %+v, %v", d, err)
			}
		}, wantActive: []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path, _ := openDB(t)
			tt.run(t, db)
			checkIndexes(t, db)
			if got, err := db.ActiveDeployments(); err != nil || !slices.Equal(ids(got), tt.wantActive) {
				t.Errorf("ActiveDeployments = %v, %v, want %v", ids(got), err, tt.wantActive)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkIndexes(t, db)
		})
	}
}

// TestDiffsWrittenOnlyWhenTheyChange watches the diffs bucket's root page:
// bbolt copies a page it writes, so an update that leaves the diffs alone
// leaves the page where it was.
func TestDiffsWrittenOnlyWhenTheyChange(t *testing.T) {
	db, _, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("+ host%d.example.test. 300 IN A 192.0.2.%d", i, i%250))
	}
	root := func() uint64 {
		var r uint64
		if err := db.RawView(func(tx *bolt.Tx) error {
			r = uint64(tx.Bucket([]byte("diffs")).Root())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name    string
		fn      func(d *deployer.Deployment)
		written bool
	}{
		{"diffs set", func(d *deployer.Deployment) { d.Diffs = diffsOf("example.test.", lines...) }, true},
		{"a step starts", func(d *deployer.Deployment) { d.Steps[3].Status = deployer.StatusRunning }, false},
		{"a step ends", func(d *deployer.Deployment) { d.Steps[3].Status = deployer.StatusDone }, false},
		{"the same diffs again", func(d *deployer.Deployment) { d.Diffs = diffsOf("example.test.", lines...) }, false},
		{"a diff line changes", func(d *deployer.Deployment) { d.Diffs[0].Lines[0] = "- gone" }, true},
		{"approved", func(d *deployer.Deployment) {
			d.Phase = deployer.PhaseRollbackWindow
			d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: "bob", At: epoch}
		}, false},
	}
	for _, tt := range tests {
		before := root()
		if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error { tt.fn(d); return nil }); err != nil {
			t.Fatal(err)
		}
		if written := root() != before; written != tt.written {
			t.Errorf("%s: diffs written = %t, want %t", tt.name, written, tt.written)
		}
	}
	checkIndexes(t, db)
}

// TestRacingWritersKeepTheIndexes: 20 services' deploys go through their
// phases at once while 20 racers decide on one shared deploy and readers
// read the index.
func TestRacingWritersKeepTheIndexes(t *testing.T) {
	db, _, _ := openDB(t)
	shared := begin(t, db, "shared", "alice")
	phaseOf(t, db, shared, deployer.PhaseAwaitingApproval, false)
	const racers = 20
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		stop    = make(chan struct{})
		readErr = make(chan error, 1)
		won     = make([]bool, racers)
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			service := fmt.Sprintf("svc%02d", i)
			for round := range 3 {
				d := newDeployment(service, "alice")
				if err := db.BeginDeployment(&d, nil); err != nil {
					t.Error(err)
					return
				}
				for _, ph := range []deployer.Phase{deployer.PhaseAwaitingApproval, deployer.PhaseRollbackWindow} {
					if _, err := db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
						x.Phase, x.Diffs = ph, diffsOf(service, string(ph))
						return nil
					}); err != nil {
						t.Error(err)
						return
					}
				}
				end := deployer.PhaseSucceeded
				if (i+round)%4 == 0 {
					end = deployer.PhaseNeedsAttention
				}
				if _, err := db.FinishDeployment(d.ID, func(x *deployer.Deployment) error { x.Phase = end; return nil }, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			<-start
			_, err := db.FinishDeployment(shared, func(d *deployer.Deployment) error {
				if d.Phase.Final() {
					return deployer.Errorf(deployer.CodeConflict, "deploy #%d has ended", d.ID)
				}
				d.Phase = deployer.PhaseSucceeded
				d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: fmt.Sprintf("user%02d", i), At: epoch}
				return nil
			}, nil)
			won[i] = err == nil
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			active, err := db.ActiveDeployments()
			if err == nil {
				for _, d := range active {
					if d.Phase.Final() {
						err = fmt.Errorf("ActiveDeployments gave #%d, %s", d.ID, d.Phase)
					}
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	})
	close(start)
	wg.Wait()
	close(stop)
	readers.Wait()
	select {
	case err := <-readErr:
		t.Fatal(err)
	default:
	}
	if n := len(slices.DeleteFunc(won, func(w bool) bool { return !w })); n != 1 {
		t.Errorf("%d racers ended the shared deploy, want 1", n)
	}
	checkIndexes(t, db)
	if got, err := db.ActiveDeployments(); err != nil || len(got) != 15 {
		t.Errorf("%d deploys in flight (%v), want 15 that need attention", len(got), err)
	}
}

// The crash tests run this test binary again as a child that writes to
// the file and dies; the parent opens what the child left.
const crashEnv = "GREENLIGHT_STORAGE_CRASH"

func TestCrashBetweenWrites(t *testing.T) {
	if mode := os.Getenv(crashEnv); mode != "" {
		crashChild(mode, os.Getenv(crashEnv+"_FILE"))
		return
	}
	tests := []struct {
		mode  string
		check func(t *testing.T, db *storage.DB)
	}{
		{mode: "exit-inside-a-write", check: func(t *testing.T, db *storage.DB) {
			d, err := db.Deployment(1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Phase != deployer.PhaseAwaitingApproval || len(d.Diffs) != 1 || d.Diffs[0].Lines[0] != "+ a" {
				t.Errorf("the interrupted write left %s with diffs %+v, want the write before it", d.Phase, d.Diffs)
			}
		}},
		{mode: "killed-while-writing", check: func(t *testing.T, db *storage.DB) {
			if all, err := db.Deployments("", 0); err != nil || len(all) < 10 {
				t.Errorf("%d deployments survived (%v), want at least the 10 written before the kill", len(all), err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "greenlight.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBetweenWrites$")
			cmd.Env = append(os.Environ(), crashEnv+"="+tt.mode, crashEnv+"_FILE="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make([]byte, 5)
			if _, err := out.Read(ready); err != nil || string(ready) != "ready" {
				t.Fatalf("child said %q, %v", ready, err)
			}
			if tt.mode == "killed-while-writing" {
				time.Sleep(30 * time.Millisecond)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			err = cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Success() {
				t.Fatalf("child ended with %v, want it to die", err)
			}
			db, err := storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tt.check(t, db)
			checkIndexes(t, db)
		})
	}
}

// crashChild writes to the data file at path and dies: inside a write
// (exit-inside-a-write), or when killed in a loop of writes.
func crashChild(mode, path string) {
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	switch mode {
	case "exit-inside-a-write":
		d := newDeployment("ns", "alice")
		must(db.BeginDeployment(&d, nil))
		_, err := db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
			x.Phase, x.Diffs = deployer.PhaseAwaitingApproval, diffsOf("example.test.", "+ a")
			return nil
		})
		must(err)
		fmt.Print("ready")
		_, _ = db.FinishDeployment(d.ID, func(x *deployer.Deployment) error {
			x.Phase, x.Diffs = deployer.PhaseSucceeded, diffsOf("example.test.", "+ b")
			os.Exit(3)
			return nil
		}, nil)
	case "killed-while-writing":
		for i := 0; ; i++ {
			d := newDeployment(fmt.Sprintf("svc%d", i%4), "alice")
			must(db.BeginDeployment(&d, nil))
			for _, ph := range []deployer.Phase{deployer.PhaseAwaitingApproval, deployer.PhaseNeedsAttention} {
				_, err := db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
					x.Phase, x.Diffs = ph, diffsOf("example.test.", string(ph))
					return nil
				})
				must(err)
			}
			end := deployer.PhaseSucceeded
			if i%5 == 0 {
				end = deployer.PhaseNeedsAttention
			}
			_, err := db.FinishDeployment(d.ID, func(x *deployer.Deployment) error { x.Phase = end; return nil }, nil)
			must(err)
			if i == 10 {
				fmt.Print("ready")
			}
		}
	}
	os.Exit(4)
}

func TestOpenWarmsTheCache(t *testing.T) {
	tests := []struct {
		name              string
		services, deploys int // deploys per service, ended
		inFlight, want    int
	}{
		{name: "empty", want: 0},
		{name: "fewer than a status reads", services: 1, deploys: 5, want: 5},
		{name: "each service's newest 20 and those in flight", services: 3, deploys: 30, inFlight: 2, want: 62},
		{name: "bounded", services: 15, deploys: 20, inFlight: 1, want: 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "greenlight.db")
			db, err := storage.Open(path, storage.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			for s := range tt.services {
				for range tt.deploys {
					phaseOf(t, db, begin(t, db, fmt.Sprintf("svc%02d", s), "alice"), deployer.PhaseSucceeded, true)
				}
			}
			for i := range tt.inFlight {
				begin(t, db, fmt.Sprintf("busy%d", i), "alice")
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Cached(); got != tt.want {
				t.Errorf("%d deployments cached after Open, want %d", got, tt.want)
			}
			checkIndexes(t, db)
		})
	}
}

// TestCallersCannotChangeTheCache: what a read returns is the caller's own;
// changing it changes nothing the next read returns.
func TestCallersCannotChangeTheCache(t *testing.T) {
	db, _, _ := openDB(t)
	id := begin(t, db, "ns", "alice")
	if _, err := db.UpdateDeployment(id, func(d *deployer.Deployment) error {
		d.Diffs = diffsOf("example.test.", "+ a", "+ b")
		d.Next = []deployer.Server{{ID: "7", Name: "ns1-1", Role: "ns1", Tags: []string{"greenlight", "deploy:1"}}}
		d.Refs = map[string]string{"slack.ts": "1"}
		d.Checks = []string{"3/3 passes"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name string
		read func() (deployer.Deployment, error)
	}{
		{"Deployment", func() (deployer.Deployment, error) { return db.Deployment(id) }},
		{"Deployments", func() (deployer.Deployment, error) {
			ds, err := db.Deployments("ns", 1)
			if err != nil || len(ds) != 1 {
				return deployer.Deployment{}, fmt.Errorf("%d deployments, %v", len(ds), err)
			}
			return ds[0], nil
		}},
		{"ActiveDeployments", func() (deployer.Deployment, error) {
			ds, err := db.ActiveDeployments()
			if err != nil || len(ds) != 1 {
				return deployer.Deployment{}, fmt.Errorf("%d deployments, %v", len(ds), err)
			}
			return ds[0], nil
		}},
	}
	want, err := db.Deployment(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		for range 2 { // the first read may decode; the second comes from the cache
			d, err := r.read()
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			if !reflect.DeepEqual(d, want) {
				t.Fatalf("%s gave %+v, want %+v", r.name, d, want)
			}
			d.Diffs[0].Lines[0] = "changed"
			d.Next[0].Tags[0] = "changed"
			d.Refs["slack.ts"] = "changed"
			d.Checks[0] = "changed"
			d.Steps[0].Status = deployer.StatusFailed
		}
	}
}
