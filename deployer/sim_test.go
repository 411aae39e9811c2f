package deployer_test

// TestSimulation is the executable specification of greenlight's safety
// promises (ARCHITECTURE.md, "Safety"). From a seed it draws operator
// actions, faults and crashes, runs the real Deployer on a real bbolt file
// against the simulated world of sim_world_test.go, and checks the
// promises after every event:
//
//  1. traffic only goes to servers that exist and passed a check;
//  2. nothing that serves is ever deleted;
//  3. the lock is free only when the service is in a known-good state, and
//     a deploy holding it is driven by a pipeline or needs attention;
//  4. a decision, once recorded, is never replaced;
//  5. (authorization is the router's: bot's TestAuthorizationEveryPath);
//  6. Start never fails because the cloud or the switch does not answer.
//
// go test ./deployer/ -run TestSimulation -count=1 -v -args -sim.runs=N -sim.seed=S

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

var (
	simRuns     = flag.Int("sim.runs", 200, "simulation runs")
	simSeed     = flag.Uint64("sim.seed", 1, "seed of the first run; run i uses seed+i")
	simEvents   = flag.Int("sim.events", 30, "events per run")
	simParallel = flag.Int("sim.parallel", 8, "runs at once")
)

func TestSimulation(t *testing.T) {
	dir := t.TempDir()
	results := make([]simResult, *simRuns)
	// Runs share nothing, and spend most of their time waiting for a
	// pipeline to settle, so several go at once.
	next := make(chan int)
	var wg sync.WaitGroup
	for range *simParallel {
		wg.Go(func() {
			for i := range next {
				seed := *simSeed + uint64(i)
				results[i] = runSimulation(filepath.Join(dir, fmt.Sprintf("run-%d.db", seed)), seed, *simEvents)
			}
		})
	}
	for i := range results {
		next <- i
	}
	close(next)
	wg.Wait()
	var events, violations, failedRuns int
	for i, r := range results {
		seed := *simSeed + uint64(i)
		events += r.events
		if len(r.violations) == 0 {
			continue
		}
		violations += len(r.violations)
		failedRuns++
		if failedRuns <= 3 {
			t.Errorf("seed %d: %d violations:\n  %s\nevents:\n  %s\nreplay: go test ./deployer/ -run TestSimulation -count=1 -v -args -sim.runs=1 -sim.seed=%d -sim.events=%d",
				seed, len(r.violations), strings.Join(r.violations, "\n  "), strings.Join(r.log, "\n  "), seed, *simEvents)
		}
	}
	line := fmt.Sprintf("simulation: %d runs from seed %d, %d events, %d violations", *simRuns, *simSeed, events, violations)
	fmt.Fprintln(os.Stdout, line)
	t.Log(line)
}

// Users of the simulation: two people who deploy and approve.
var simUsers = []string{"alice", "bob"}

type simResult struct {
	events     int
	violations []string
	log        []string
}

type simulation struct {
	rng   *rand.Rand
	w     *world
	path  string
	opts  simServiceOptions
	gen   int
	clock *deployer.ManualClock
	db    *storage.DB
	dep   *deployer.Deployer
	stop  context.CancelFunc
	log   []string

	approvals map[uint64]deployer.Decision // first decision seen at the gate
	rollbacks map[uint64]deployer.Decision
	retires   map[uint64]deployer.Decision

	// maxJump, when set, is the furthest settle moves the clock for
	// greenlight's busy work: far enough for a retry's backoff, short of
	// any deadline, so a timer left from an earlier wait (the approval
	// gate's, the window's) is never taken for one the busy work needs.
	// Scripted scenarios set it and move time past deadlines themselves.
	maxJump time.Duration
}

type simServiceOptions struct {
	fourEyes, autoPromote bool
}

// simServices are the services of every run: two, so that decisions
// without a service name have something to confuse.
var simServices = map[string][]string{"ns": {"ns1", "ns2"}, "web": {"w1"}}

func runSimulation(path string, seed uint64, events int) simResult {
	defer os.Remove(path)
	s := newSimulation(path, seed)
	n := 0
	for ; n < events && len(s.w.violations) == 0; n++ {
		s.step()
		s.settle()
		s.check()
	}
	if len(s.w.violations) == 0 {
		s.finish()
	}
	s.close()
	return simResult{events: n, violations: s.w.violations, log: s.log}
}

// newSimulation starts greenlight on a new data file and seeds both
// services with their first set.
func newSimulation(path string, seed uint64) *simulation {
	s := &simulation{
		rng:       rand.New(rand.NewPCG(seed, 0x5eed)),
		w:         newWorld("ns", "web"),
		path:      path,
		clock:     deployer.NewManualClock(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)),
		approvals: map[uint64]deployer.Decision{},
		rollbacks: map[uint64]deployer.Decision{},
		retires:   map[uint64]deployer.Decision{},
	}
	s.opts = simServiceOptions{fourEyes: s.rng.IntN(3) == 0, autoPromote: s.rng.IntN(3) == 0}
	s.open()
	for _, name := range []string{"ns", "web"} {
		if _, err := s.dep.Seed(context.Background(), name, simImgOld); err != nil {
			s.w.violate("seeding %s: %v", name, err)
		}
	}
	s.settle()
	s.check()
	return s
}

func (s *simulation) note(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%s ", s.clock.Now().Format("15:04:05"))+fmt.Sprintf(format, args...))
}

// open starts a new generation of greenlight on the same data file.
func (s *simulation) open() {
	s.gen++
	s.w.mu.Lock()
	s.w.gen, s.w.dead = s.gen, false
	s.w.mu.Unlock()
	s.clock = deployer.NewManualClock(s.clock.Now())
	db, err := storage.Open(s.path, storage.Options{Clock: s.clock, NoSync: true, Timeout: 5 * time.Second})
	if err != nil {
		panic(fmt.Sprintf("open the simulation's store: %v", err))
	}
	s.db = db
	store := simStore{DB: db, w: s.w, gen: s.gen}
	cloud := simCloud{w: s.w, gen: s.gen}
	var services []*deployer.Service
	for _, name := range []string{"ns", "web"} {
		t := 80 * time.Millisecond
		services = append(services, &deployer.Service{
			Name:            name,
			Roles:           simServices[name],
			Check:           deployer.CheckSpec{Zones: []string{"example.test"}, Passes: 1, MaxRounds: 1},
			ApprovalTimeout: 30 * time.Minute,
			AutoPromote:     s.opts.autoPromote,
			FourEyes:        s.opts.fourEyes,
			RollbackWindow:  15 * time.Minute,
			Timeouts:        deployer.Timeouts{Create: t, WaitRunning: t, Provision: t, Check: t, Switch: t, Retire: t},
			Cloud:           cloud,
			Provisioner:     cloud,
			Switch:          simSwitch{w: s.w, gen: s.gen, service: name},
			Checker:         simChecker{w: s.w, gen: s.gen},
		})
	}
	s.dep, err = deployer.New(deployer.Config{Store: store, Clock: s.clock, Logger: simLogger(), Services: services})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if err := s.dep.Start(ctx); err != nil && !s.isDead() {
		s.w.violate("promise 6: Start failed: %v", err)
	}
}

// close stops the generation: its goroutines end (a dead one's calls all
// fail), then its store is closed.
func (s *simulation) close() {
	s.stop()
	s.dep.Wait()
	_ = s.db.Close()
}

// crash kills the process: nothing it does from now on takes effect.
func (s *simulation) crash() {
	s.w.mu.Lock()
	s.w.dead = true
	s.w.mu.Unlock()
	s.restart()
}

func (s *simulation) restart() {
	s.note("restart")
	s.close()
	s.open()
}

// settle waits until greenlight has nothing left to do on its own: no
// pipeline in an active step and nothing happening. A pipeline waiting
// on the clock (a backoff) gets the clock moved to its wake-up; a crash
// fault that fired restarts greenlight.
func (s *simulation) settle() {
	deadline := time.Now().Add(20 * time.Second)
	last, quiet := s.w.progress.Load(), 0
	for quiet < 4 {
		if s.isDead() {
			s.restart()
			quiet = 0
			continue
		}
		if time.Now().After(deadline) {
			s.w.violate("promise 3: greenlight did not settle within 20s (deploys %v still busy)", s.dep.Running())
			if os.Getenv("SIM_LOG") != "" {
				buf := make([]byte, 1<<20)
				os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			}
			return
		}
		time.Sleep(150 * time.Microsecond)
		if cur := s.w.progress.Load(); cur != last {
			last, quiet = cur, 0
			continue
		}
		if s.w.hanging.Load() > 0 {
			quiet = 0 // a hang ends when its caller's deadline passes
			continue
		}
		if s.dep.Busy() {
			quiet = 0
			if s.w.hanging.Load() == 0 {
				if next, ok := s.clock.NextWaiter(); ok && (s.maxJump == 0 || next.Sub(s.clock.Now()) <= s.maxJump) {
					s.clock.Advance(next.Sub(s.clock.Now()))
				}
			}
			continue
		}
		quiet++
	}
}

func (s *simulation) isDead() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.dead
}

func (s *simulation) pick(list []string) string { return list[s.rng.IntN(len(list))] }

func (s *simulation) service() string { return s.pick([]string{"ns", "web"}) }

// step draws and plays one event.
func (s *simulation) step() {
	ctx := context.Background()
	user := s.pick(simUsers)
	switch roll := s.rng.IntN(100); {
	case roll < 22:
		svc := s.service()
		opts := deployer.Options{AutoApprove: s.rng.IntN(8) == 0}
		switch s.rng.IntN(10) {
		case 0:
			opts.Image = simImgBroken
		case 1:
			opts.Image = simImgOld
		}
		d, err := s.dep.Deploy(ctx, deployer.Request{Service: svc, User: user, Options: opts})
		s.note("%s: deploy %s %+v → #%d %v", user, svc, opts, d.ID, err)
	case roll < 36:
		svc, id := s.target()
		s.decide("approve", user, func() error { _, err := s.dep.Approve(ctx, svc, id, user); return err }, svc, id)
	case roll < 42:
		svc, id := s.target()
		s.decide("abort", user, func() error { _, err := s.dep.Abort(ctx, svc, id, user, "sim"); return err }, svc, id)
	case roll < 50:
		svc, id := s.target()
		s.decide("rollback", user, func() error { _, err := s.dep.Rollback(ctx, svc, id, user); return err }, svc, id)
	case roll < 54:
		svc := s.service()
		to := deployer.TrafficTarget(s.pick([]string{"old", "next"}))
		_, err := s.dep.Resolve(ctx, svc, 0, "ops", to)
		s.note("ops: resolve %s --to %s → %v", svc, to, err)
	case roll < 57:
		svc := s.service()
		_, err := s.dep.Lock(ctx, svc, user, "sim")
		s.note("%s: lock %s → %v", user, svc, err)
	case roll < 61:
		svc, force := s.service(), s.rng.IntN(2) == 0
		_, err := s.dep.Unlock(ctx, svc, user, force)
		s.note("%s: unlock %s force=%v → %v", user, svc, force, err)
	case roll < 65:
		svc, id := s.target()
		s.decide("retire", user, func() error { _, err := s.dep.Retire(ctx, svc, id, user); return err }, svc, id)
	case roll < 78:
		d := []time.Duration{10 * time.Second, 2 * time.Minute, 16 * time.Minute, 31 * time.Minute}[s.rng.IntN(4)]
		s.note("time passes: %s", d)
		s.clock.Advance(d)
	case roll < 95:
		f := s.fault()
		s.w.mu.Lock()
		s.w.faults = append(s.w.faults, &f)
		s.w.mu.Unlock()
		s.note("fault armed: %s", f)
	default:
		s.note("crash")
		s.crash()
	}
}

// target picks what a decision names: a service, or nothing (the one
// deploy in flight), sometimes with the deploy's number.
func (s *simulation) target() (string, uint64) {
	svc := s.service()
	if s.rng.IntN(4) == 0 {
		svc = ""
	}
	var id uint64
	if s.rng.IntN(3) == 0 {
		if active, err := s.db.ActiveDeployments(); err == nil && len(active) > 0 {
			d := active[s.rng.IntN(len(active))]
			id = d.ID
			if svc != "" && s.rng.IntN(4) != 0 {
				svc = d.Service // mostly the deploy's own service; sometimes a mismatch
			}
		}
	}
	return svc, id
}

// decide plays a decision, sometimes as a double click: two at once, of
// which at most one may be taken.
func (s *simulation) decide(verb, user string, fn func() error, svc string, id uint64) {
	if s.rng.IntN(4) != 0 {
		err := fn()
		s.note("%s: %s %s #%d → %v", user, verb, svc, id, err)
		return
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	s.note("%s: %s %s #%d twice → %v, %v", user, verb, svc, id, errs[0], errs[1])
	if errs[0] == nil && errs[1] == nil && !s.refusedBetween(verb) {
		s.w.violate("promise 4: a double %s was taken twice", verb)
	}
}

// refusedBetween reports whether a rollback was refused, so that a second
// click that landed after the refusal was rightly a new request.
func (s *simulation) refusedBetween(verb string) bool {
	if verb != "rollback" {
		return false
	}
	all, err := s.db.Deployments("", 1000)
	return err == nil && slices.ContainsFunc(all, func(d deployer.Deployment) bool { return len(d.RefusedRollbacks) > 0 })
}

func (s *simulation) fault() fault {
	ops := []string{"store", "store", "create", "wait", "delete", "accept", "accept", "drain", "drain", "check", "relabel", "list"}
	f := fault{op: s.pick(ops), k: 1 + s.rng.IntN(6)}
	modes := []faultMode{faultError, faultError, faultLost, faultHang, faultCrash, faultCrashAfter}
	if f.op == "store" {
		modes = []faultMode{faultError, faultError, faultCrash, faultCrashAfter}
	}
	f.mode = modes[s.rng.IntN(len(modes))]
	return f
}

// check verifies promises 3 and 4 against the store and the world.
// check verifies the promises after an event. The state of promise 3 is
// read in several transactions, so a finding made while greenlight was
// still at work is read again once it settled; only one that stands in a
// quiet world is a violation.
func (s *simulation) check() {
	for try := 0; ; try++ {
		if s.isDead() {
			return
		}
		before := s.w.progress.Load()
		found := s.checkOnce()
		if len(found) == 0 {
			return
		}
		if s.w.progress.Load() == before || try == 3 {
			s.w.violations = append(s.w.violations, found...)
			return
		}
		s.settle()
	}
}

func (s *simulation) checkOnce() (found []string) {
	active, err := s.db.ActiveDeployments()
	if err != nil {
		s.w.violate("read active deployments: %v", err)
		return found
	}
	running := s.dep.Running()
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for _, name := range []string{"ns", "web"} {
		lock, err := s.db.CurrentLock(name)
		if err != nil {
			s.w.violate("read lock: %v", err)
			return found
		}
		live, err := s.db.Service(name)
		if err != nil {
			s.w.violate("read live set: %v", err)
			return found
		}
		mine := slices.DeleteFunc(slices.Clone(active), func(d deployer.Deployment) bool { return d.Service != name })
		for _, d := range mine {
			if d.Phase != deployer.PhaseNeedsAttention && !slices.Contains(running, d.ID) {
				found = append(found, fmt.Sprintf("promise 3: deploy #%d of %s holds the lock in phase %s with no pipeline driving it", d.ID, name, d.Phase))
			}
		}
		if lock != nil {
			continue
		}
		if len(mine) > 0 {
			found = append(found, fmt.Sprintf("promise 3: %s's lock is free while deploy #%d is %s", name, mine[0].ID, mine[0].Phase))
		}
		var ids []string
		for _, sv := range live.Servers {
			ids = append(ids, sv.ID)
			if _, ok := s.w.servers[sv.ID]; !ok {
				found = append(found, fmt.Sprintf("promise 3: %s's lock is free but its live server %s (%s) does not exist", name, sv.Name, sv.ID))
			}
		}
		lb := s.w.lbs[name]
		if !sameSet(ids, lb.accepting) {
			found = append(found, fmt.Sprintf("promise 3: %s's lock is free but traffic goes to %v while the live set is %v", name, lb.accepting, ids))
		}
		if len(lb.draining) > 0 {
			found = append(found, fmt.Sprintf("promise 3: %s's lock is free but %v still drain", name, lb.draining))
		}
	}
	all, err := s.db.Deployments("", 1000)
	if err != nil {
		s.w.violate("read deployments: %v", err)
		return found
	}
	for _, d := range all {
		if d.Approval != nil {
			if first, ok := s.approvals[d.ID]; !ok {
				s.approvals[d.ID] = *d.Approval
			} else if !sameDecision(first, *d.Approval) {
				s.w.violate("promise 4: deploy #%d's decision %s by %s was replaced by %s by %s", d.ID, first.Kind, first.By, d.Approval.Kind, d.Approval.By)
			}
		} else if first, ok := s.approvals[d.ID]; ok {
			s.w.violate("promise 4: deploy #%d's decision %s by %s was erased", d.ID, first.Kind, first.By)
		}
		if first, ok := s.rollbacks[d.ID]; ok {
			kept := d.Rollback != nil && sameDecision(first, *d.Rollback)
			refused := slices.ContainsFunc(d.RefusedRollbacks, func(r deployer.Decision) bool { return r.By == first.By && r.At.Equal(first.At) })
			if !kept && !refused {
				s.w.violate("promise 4: deploy #%d's rollback by %s was replaced or lost", d.ID, first.By)
			}
			if refused {
				delete(s.rollbacks, d.ID)
			}
		}
		if d.Rollback != nil {
			if _, ok := s.rollbacks[d.ID]; !ok {
				s.rollbacks[d.ID] = *d.Rollback
			}
		}
		if d.Retire != nil {
			if first, ok := s.retires[d.ID]; !ok {
				s.retires[d.ID] = *d.Retire
			} else if !sameDecision(first, *d.Retire) {
				s.w.violate("promise 4: deploy #%d's retire by %s was replaced by one by %s", d.ID, first.By, d.Retire.By)
			}
			if d.Rollback != nil {
				s.w.violate("promise 4: deploy #%d has both a rollback by %s and a retire by %s", d.ID, d.Rollback.By, d.Retire.By)
			}
			if d.Phase == deployer.PhaseRolledBack {
				s.w.violate("promise 4: deploy #%d was rolled back after %s retired its old set", d.ID, d.Retire.By)
			}
		} else if first, ok := s.retires[d.ID]; ok {
			s.w.violate("promise 4: deploy #%d's retire by %s was erased", d.ID, first.By)
		}
	}
	return found
}

// finish ends the run the way people would: faults stop, time passes,
// deploys are approved, and deploys that need attention are resolved.
// Every deploy must then end and leave its service in a known-good state.
func (s *simulation) finish() {
	ctx := context.Background()
	s.w.mu.Lock()
	s.w.faults = nil
	s.w.mu.Unlock()
	s.note("end: faults off")
	for round := 0; round < 12; round++ {
		active, err := s.db.ActiveDeployments()
		if err != nil || len(active) == 0 {
			break
		}
		for _, d := range active {
			switch d.Phase {
			case deployer.PhaseAwaitingApproval:
				by := "alice"
				if d.Requester == by {
					by = "bob"
				}
				_, err := s.dep.Approve(ctx, d.Service, d.ID, by)
				s.note("end: %s approves #%d → %v", by, d.ID, err)
			case deployer.PhaseNeedsAttention:
				to := deployer.TrafficOld
				if round%2 == 1 || len(d.Old) == 0 {
					to = deployer.TrafficNext
				}
				_, err := s.dep.Resolve(ctx, d.Service, d.ID, "ops", to)
				s.note("end: ops resolves #%d --to %s → %v", d.ID, to, err)
			}
		}
		s.settle()
		s.clock.Advance(31 * time.Minute)
		s.settle()
		s.check()
		if len(s.w.violations) > 0 {
			return
		}
	}
	if active, err := s.db.ActiveDeployments(); err == nil && len(active) > 0 {
		var left []string
		for _, d := range active {
			left = append(left, fmt.Sprintf("#%d %s %s", d.ID, d.Phase, d.CurrentStep()))
		}
		sort.Strings(left)
		s.w.violate("promise 3: deploys never ended once faults stopped: %s", strings.Join(left, ", "))
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameDecision(a, b deployer.Decision) bool {
	return a.Kind == b.Kind && a.By == b.By && a.At.Equal(b.At) && a.Source == b.Source
}

func simLogger() *slog.Logger {
	if os.Getenv("SIM_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return discard()
}
