package refresh

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

// weekly is the example schedule: Mondays at 04:00 UTC.
const weekly = "CRON_TZ=UTC 0 4 * * 1"

// fixture is a Refresher on a ManualClock with a fake baker and deployer
// and a real store.
type fixture struct {
	clock   *deployer.ManualClock
	baker   *fakeBaker
	deploys *fakeDeploys
	evs     *events
	r       *Refresher
}

func newFixture(t *testing.T, start time.Time, jobs ...Job) *fixture {
	t.Helper()
	clock := deployer.NewManualClock(start)
	f := &fixture{clock: clock, baker: &fakeBaker{clock: clock}, deploys: &fakeDeploys{}, evs: newEvents()}
	var err error
	f.r, err = New(Options{Jobs: jobs, Baker: f.baker, Images: f.baker, State: openDB(t, "", clock),
		Deploys: f.deploys, Reporter: f.evs, Clock: clock, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Runs happen when the ManualClock reaches the schedule, with the build ID,
// label, description and user data of that time, and only then.
func TestScheduledRuns(t *testing.T) {
	job := Job{Service: "ns", Schedule: weekly, BaseImage: "linode/debian12", CatchUp: true, Channel: "C-OPS",
		RenderUserData: func(ctx context.Context, service, buildID string) ([]byte, error) {
			return []byte("#cloud-config\n# " + service + " build " + buildID + "\n"), nil
		}}
	f := newFixture(t, monday, job, Job{Service: "web"}) // web: on demand only
	rr := run(t, f.r)
	waitLoops(t, f.clock, 1) // web has no loop

	st := f.r.Schedules(context.Background())
	if len(st) != 2 || st[0].Service != "ns" || !st[0].Next.Equal(monday.Add(time.Hour)) || !st[0].LastRun.IsZero() ||
		st[0].LastResult != "" || st[0].Running || st[0].Keep != DefaultKeep {
		t.Fatalf("Schedules before the first run = %+v", st)
	}
	if st[1].Service != "web" || st[1].Schedule != "" || !st[1].Next.IsZero() {
		t.Errorf("an on-demand job's status = %+v", st[1])
	}

	f.clock.Advance(59 * time.Minute)
	if f.clock.Waiters() != 1 || len(f.baker.calls()) != 0 {
		t.Fatalf("at 03:59 the loop woke (%d waiters) or baked (%d)", f.clock.Waiters(), len(f.baker.calls()))
	}
	f.evs.none(t)

	f.clock.Advance(time.Minute)
	started := f.evs.next(t, EventStarted)
	if started.Service != "ns" || started.Trigger != TriggerSchedule || started.BuildID != "20261123-0400" ||
		started.Base != "linode/debian12" || started.Channel != "C-OPS" || !started.Started.Equal(monday.Add(time.Hour)) {
		t.Errorf("started event = %+v", started)
	}
	fin := f.evs.next(t, EventFinished)
	if fin.Image.ID != "private/101" || fin.Image.Label != "ns-golden-20261123-0400" || fin.Err != nil || fin.DeployID != 0 {
		t.Errorf("finished event = %+v", fin)
	}
	spec := f.baker.calls()[0]
	want := deployer.BakeSpec{Service: "ns", BaseImage: "linode/debian12", Label: "ns-golden-20261123-0400",
		Description: "baked from linode/debian12 by greenlight build 20261123-0400", BuildID: "20261123-0400",
		UserData: []byte("#cloud-config\n# ns build 20261123-0400\n")}
	if fmt.Sprint(spec) != fmt.Sprint(want) {
		t.Errorf("BakeSpec = %+v\nwant %+v", spec, want)
	}

	waitLoops(t, f.clock, 1)
	st = f.r.Schedules(context.Background())
	if !st[0].LastRun.Equal(monday.Add(time.Hour)) || st[0].LastResult != "ok: ns-golden-20261123-0400" ||
		st[0].LastImage != "private/101" || !st[0].Next.Equal(monday.Add(7*24*time.Hour+time.Hour)) {
		t.Errorf("Schedules after the first run = %+v", st[0])
	}

	f.clock.Advance(7 * 24 * time.Hour)
	if ev := f.evs.next(t, EventStarted); ev.BuildID != "20261130-0400" {
		t.Errorf("second run's build ID = %s", ev.BuildID)
	}
	f.evs.next(t, EventFinished)

	// Three weeks at once: one run, not three.
	waitLoops(t, f.clock, 1)
	f.clock.Advance(21 * 24 * time.Hour)
	if ev := f.evs.next(t, EventStarted); ev.BuildID != "20261221-0400" {
		t.Errorf("run after three weeks at once: build ID %s", ev.BuildID)
	}
	f.evs.next(t, EventFinished)
	waitLoops(t, f.clock, 1)
	rr.stop()
	f.evs.none(t)
	if n := len(f.baker.calls()); n != 3 {
		t.Errorf("%d bakes, want 3", n)
	}
}

// A run missed while greenlight was down is done once at start-up, from the
// last run recorded in the store; not when CatchUp is off, not when nothing
// was missed, not for a service never run.
func TestCatchUp(t *testing.T) {
	tests := []struct {
		name      string
		catchUp   bool
		ranBefore bool          // a run at monday 04:00 is in the store
		down      time.Duration // from monday 04:00 to the restart
		want      bool
	}{
		{name: "three runs missed", catchUp: true, ranBefore: true, down: 3*7*24*time.Hour + 5*time.Hour, want: true},
		{name: "one run missed by a minute", catchUp: true, ranBefore: true, down: 7*24*time.Hour + time.Minute, want: true},
		{name: "catch-up off", catchUp: false, ranBefore: true, down: 3 * 7 * 24 * time.Hour, want: false},
		{name: "nothing missed", catchUp: true, ranBefore: true, down: 6 * 24 * time.Hour, want: false},
		{name: "never run", catchUp: true, ranBefore: false, down: 3 * 7 * 24 * time.Hour, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			job := Job{Service: "ns", Schedule: weekly, CatchUp: tt.catchUp}
			clock := deployer.NewManualClock(monday.Add(time.Hour))
			// open is one greenlight start on the same data file; close is its
			// end, so the next start can open the file.
			var db *storage.DB
			open := func(clock *deployer.ManualClock, baker *fakeBaker, evs *events) *Refresher {
				var err error
				db, err = storage.Open(filepath.Join(dir, "greenlight.db"), storage.Options{Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				r, err := New(Options{Jobs: []Job{job}, Baker: baker, Images: baker, State: db,
					Deploys: &fakeDeploys{}, Reporter: evs, Clock: clock, Logger: discard()})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			closeDB := func() {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if tt.ranBefore {
				evs := newEvents()
				r := open(clock, &fakeBaker{clock: clock}, evs)
				if _, err := r.RunNow(context.Background(), "ns", TriggerSchedule); err != nil {
					t.Fatal(err)
				}
				evs.next(t, EventStarted)
				evs.next(t, EventFinished)
				r.Wait()
				closeDB()
			}

			// Greenlight starts again after being down.
			later := deployer.NewManualClock(monday.Add(time.Hour + tt.down))
			baker, evs := &fakeBaker{clock: later}, newEvents()
			rr := run(t, open(later, baker, evs))
			if tt.want {
				ev := evs.next(t, EventStarted)
				if ev.Trigger != TriggerCatchUp || !ev.Started.Equal(later.Now()) {
					t.Errorf("catch-up started event = %+v", ev)
				}
				evs.next(t, EventFinished)
			}
			waitLoops(t, later, 1)
			rr.stop()
			closeDB()
			evs.none(t)
			wantBakes := 0
			if tt.want {
				wantBakes = 1
			}
			if n := len(baker.calls()); n != wantBakes {
				t.Errorf("%d bakes at start-up, want %d", n, wantBakes)
			}
			if tt.want {
				// A second restart right away has nothing to catch up.
				baker2, evs2 := &fakeBaker{clock: later}, newEvents()
				rr2 := run(t, open(later, baker2, evs2))
				waitLoops(t, later, 2) // the stopped loop's waiter is still there
				rr2.stop()
				closeDB()
				if n := len(baker2.calls()); n != 0 {
					t.Errorf("a second restart baked %d times", n)
				}
			}
		})
	}
}

// One bake per service at a time: asking again while one runs is refused
// with when it started, a schedule firing meanwhile is skipped, another
// service bakes alongside, and once the bake ends a new one may start.
func TestOneBakePerService(t *testing.T) {
	f := newFixture(t, monday.Add(time.Hour), Job{Service: "ns", Schedule: "*/30 * * * *"}, Job{Service: "web"})
	f.baker.gate = make(chan struct{})
	rr := run(t, f.r)
	waitLoops(t, f.clock, 1)

	ctx := context.Background()
	if _, err := f.r.RunNow(ctx, "ns", "U1"); err != nil {
		t.Fatal(err)
	}
	f.evs.next(t, EventStarted)
	_, err := f.r.RunNow(ctx, "ns", "U2")
	if err == nil || err.Error() != "a bake of ns is already running (started 04:00 UTC)" || deployer.ErrorCode(err) != deployer.CodeConflict {
		t.Fatalf("RunNow during a bake = %v (code %q)", err, deployer.ErrorCode(err))
	}
	if st := f.r.Schedules(ctx)[0]; !st.Running || !st.Started.Equal(monday.Add(time.Hour)) {
		t.Errorf("status during the bake = %+v", st)
	}

	// The schedule fires at 04:30 while the bake runs: skipped.
	f.clock.Advance(30 * time.Minute)
	waitLoops(t, f.clock, 1)
	if n := len(f.baker.calls()); n != 1 {
		t.Errorf("%d bakes after the schedule fired during one, want 1", n)
	}

	// Another service is not held up.
	if _, err := f.r.RunNow(ctx, "web", "U2"); err != nil {
		t.Fatalf("RunNow of another service during a bake: %v", err)
	}
	f.evs.next(t, EventStarted)

	_, err = f.r.RunNow(ctx, "dns", "U1")
	if err == nil || err.Error() != `"dns" has no image refresh configured; services with one: ns, web` ||
		deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("RunNow of an unknown service = %v", err)
	}

	close(f.baker.gate)
	f.evs.next(t, EventFinished)
	f.evs.next(t, EventFinished)
	if _, err := f.r.RunNow(ctx, "ns", "U2"); err != nil {
		t.Fatalf("RunNow after the bake ended: %v", err)
	}
	f.evs.next(t, EventStarted)
	f.evs.next(t, EventFinished)
	rr.stop()
}

// A failed bake is announced with the reason and recorded as the last run;
// a bake that outlasts its timeout says so.
func TestBakeFails(t *testing.T) {
	f := newFixture(t, monday, Job{Service: "ns", BaseImage: "linode/debian12"},
		Job{Service: "web", BakeTimeout: time.Millisecond})
	f.baker.bakeErr = &deployer.Error{Code: deployer.CodeFailed, Message: "the builder ns-build-20261123-0300 never powered off",
		Err: errors.New("[400] Linode busy")} // the cause, for the log only
	ctx := context.Background()
	if _, err := f.r.RunNow(ctx, "ns", "U1"); err != nil {
		t.Fatal(err)
	}
	f.evs.next(t, EventStarted)
	ev := f.evs.next(t, EventFailed)
	if ev.Err == nil || deployer.ErrorMessage(ev.Err) != "the builder ns-build-20261123-0300 never powered off" || ev.Image.ID != "" {
		t.Errorf("failed event = %+v", ev)
	}
	f.r.Wait()
	if st := f.r.Schedules(ctx)[0]; st.LastResult != "failed: the builder ns-build-20261123-0300 never powered off" ||
		!st.LastRun.Equal(monday) || st.LastImage != "" || st.Running {
		t.Errorf("status after a failed bake = %+v", st)
	}

	f.baker.mu.Lock()
	f.baker.bakeErr, f.baker.gate = nil, make(chan struct{}) // never opened: the timeout ends it
	f.baker.mu.Unlock()
	if _, err := f.r.RunNow(ctx, "web", "U1"); err != nil {
		t.Fatal(err)
	}
	f.evs.next(t, EventStarted)
	ev = f.evs.next(t, EventFailed)
	if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), "the bake of web took longer than 1ms: builder of web-golden-20261123-0300 stopped") {
		t.Errorf("timed out bake's error = %v", ev.Err)
	}
	f.r.Wait()
}

// auto_deploy asks for a deploy of the new image as greenlight, in the
// job's channel; a deploy that cannot start is reported, and the bake
// still succeeds.
func TestAutoDeploy(t *testing.T) {
	f := newFixture(t, monday, Job{Service: "ns", AutoDeploy: true, Channel: "C-OPS"})
	ctx := context.Background()
	if _, err := f.r.RunNow(ctx, "ns", "U1"); err != nil {
		t.Fatal(err)
	}
	f.evs.next(t, EventStarted)
	ev := f.evs.next(t, EventFinished)
	want := []DeployRequest{{Service: "ns", Image: "private/101", Requester: "greenlight (scheduled refresh)",
		Reason: "new golden image ns-golden-20261123-0300", Channel: "C-OPS"}}
	if ev.DeployID != 7 || ev.DeployErr != nil || !slices.Equal(f.deploys.requests, want) {
		t.Errorf("deploy %d (%v), requests %+v", ev.DeployID, ev.DeployErr, f.deploys.requests)
	}
	f.r.Wait()

	f.deploys.mu.Lock()
	f.deploys.deployErr = &deployer.LockedError{Lock: deployer.Lock{Service: "ns", Holder: "U9", Since: monday}}
	f.deploys.mu.Unlock()
	f.clock.Advance(time.Hour)
	if _, err := f.r.RunNow(ctx, "ns", "U1"); err != nil {
		t.Fatal(err)
	}
	f.evs.next(t, EventStarted)
	ev = f.evs.next(t, EventFinished)
	if ev.DeployID != 0 || ev.DeployErr == nil || ev.DeployErr.Error() !=
		"could not start a deploy of private/102: ns is locked by U9 since 2026-11-23 03:00:00 UTC" || ev.Image.ID != "private/102" {
		t.Errorf("finished event with the lock held: deploy %d, %v, image %s", ev.DeployID, ev.DeployErr, ev.Image.ID)
	}
	f.r.Wait()
}

// TestBakeRecordsZones: a bake whose user data carries the zone files
// records their digest and serials in the image's description; a render
// that fails (a zone file that does not parse) bakes nothing.
func TestBakeRecordsZones(t *testing.T) {
	zones := &deployer.ZoneContent{Digest: "sha256:0123456789abcdef", Files: []deployer.ZoneFile{{Zone: "example.test.", Serial: 2026110102}}}
	tests := []struct {
		name     string
		err      error
		wantDesc string
	}{
		{name: "zones recorded", wantDesc: "baked from linode/debian12 by greenlight build 20261123-0300; zones sha256:0123456789ab · example.test. 2026110102"},
		{name: "zone files refused", err: errors.New("example.test.zone line 3: bad A")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := Job{Service: "ns", BaseImage: "linode/debian12",
				RenderBake: func(ctx context.Context, service, buildID string) ([]byte, *deployer.ZoneContent, error) {
					return []byte("#cloud-config\n"), zones, tt.err
				}}
			f := newFixture(t, monday, job)
			if _, err := f.r.RunNow(t.Context(), "ns", "alice"); err != nil {
				t.Fatal(err)
			}
			f.evs.next(t, EventStarted)
			want := EventFinished
			if tt.err != nil {
				want = EventFailed
			}
			fin := f.evs.next(t, want)
			if tt.err != nil {
				if fin.Err == nil || !strings.Contains(fin.Err.Error(), "bad A") || len(f.baker.calls()) != 0 {
					t.Fatalf("finished = %+v, bakes %d", fin, len(f.baker.calls()))
				}
				return
			}
			if calls := f.baker.calls(); len(calls) != 1 || calls[0].Description != tt.wantDesc {
				t.Fatalf("bakes = %+v", calls)
			}
		})
	}
}
