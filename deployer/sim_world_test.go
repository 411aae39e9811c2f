package deployer_test

// The simulated world of TestSimulation: which servers exist, where each
// load balancer sends traffic, which servers answer. Its fakes of Cloud,
// Switch, Checker and Store check promises 1 and 2 at the moment the
// deployer acts, and play the faults the simulation arms. A crash marks a
// generation dead: nothing it asks of the world or the store takes effect
// afterwards, as if the process had been killed there.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/storage"
)

// Images of the simulated cloud; a server of imgBroken never answers.
const (
	simImgOld    = "img-1"
	simImgNew    = "img-2"
	simImgBroken = "img-broken"
)

// faultMode is what an armed fault does to the call it hits.
type faultMode string

const (
	faultError      faultMode = "error"       // fails, changes nothing
	faultLost       faultMode = "lost"        // takes effect, then fails (the answer was lost)
	faultHang       faultMode = "hang"        // blocks until the caller gives up
	faultCrash      faultMode = "crash"       // the process dies before the call takes effect
	faultCrashAfter faultMode = "crash-after" // the process dies after it took effect
)

// fault fails the k-th call (counting from the moment it is armed) of op.
type fault struct {
	op   string // "store", "create", "wait", "delete", "accept", "drain", "check"
	mode faultMode
	k    int
}

func (f fault) String() string { return fmt.Sprintf("%s %s at call %d", f.op, f.mode, f.k) }

type simServer struct {
	id, name, role, service, label, image string
	tags                                  []string
	checked                               bool // answered a direct check
}

type simLB struct {
	accepting []string // server IDs
	draining  []string
}

type world struct {
	mu         sync.Mutex
	gen        int  // the generation of the live process
	dead       bool // gen has crashed and not been restarted yet
	servers    map[string]*simServer
	nextID     int
	lbs        map[string]*simLB // by service
	faults     []*fault
	violations []string
	progress   atomic.Int64 // bumped by every call, for settling
	hanging    atomic.Int32 // calls blocked in a hang fault now

	provisionPanics atomic.Bool
}

func newWorld(services ...string) *world {
	w := &world{servers: map[string]*simServer{}, lbs: map[string]*simLB{}}
	for _, s := range services {
		w.lbs[s] = &simLB{}
	}
	return w
}

func (w *world) violate(format string, args ...any) {
	w.violations = append(w.violations, fmt.Sprintf(format, args...))
}

var errKilled = errors.New("the process was killed")

// call is the gate every fake passes: a dead generation gets errKilled, an
// armed fault for op is played. It returns with w.mu held when the call
// may take effect (mode "" or lost/crash-after, to finish after effect).
func (w *world) call(ctx context.Context, gen int, op string) (faultMode, error) {
	w.progress.Add(1)
	w.mu.Lock()
	if gen != w.gen || w.dead {
		w.mu.Unlock()
		return "", errKilled
	}
	var hit *fault
	for i, f := range w.faults {
		if f.op != op {
			continue
		}
		if f.k--; f.k <= 0 {
			hit = f
			w.faults = slices.Delete(w.faults, i, i+1)
		}
		break
	}
	if hit == nil {
		return "", nil
	}
	switch hit.mode {
	case faultError:
		w.mu.Unlock()
		return "", fmt.Errorf("simulated %s failure", op)
	case faultHang:
		w.mu.Unlock()
		w.hanging.Add(1)
		defer w.hanging.Add(-1)
		<-ctx.Done()
		return "", fmt.Errorf("simulated %s hang: %w", op, ctx.Err())
	case faultCrash:
		w.dead = true
		w.mu.Unlock()
		return "", errKilled
	}
	return hit.mode, nil
}

// after finishes a call that took effect under w.mu.
func (w *world) after(mode faultMode, op string) error {
	defer w.mu.Unlock()
	switch mode {
	case faultLost:
		return fmt.Errorf("simulated %s: the answer was lost", op)
	case faultCrashAfter:
		w.dead = true
		return errKilled
	}
	return nil
}

func (w *world) serving(id string) bool {
	for _, lb := range w.lbs {
		if slices.Contains(lb.accepting, id) || slices.Contains(lb.draining, id) {
			return true
		}
	}
	return false
}

func (w *world) toServer(s *simServer) deployer.Server {
	return deployer.Server{ID: s.id, Name: s.name, Role: s.role, Label: s.label, Addr: s.id, Image: s.image,
		Tags: slices.Clone(s.tags), Status: "running"}
}

// simCloud is one generation's view of the cloud; it is also the
// provisioner (provisioning always works: its faults are the cloud's).
type simCloud struct {
	w   *world
	gen int
}

func (c simCloud) Create(ctx context.Context, spec deployer.ServerSpec) (deployer.Server, error) {
	mode, err := c.w.call(ctx, c.gen, "create")
	if err != nil {
		return deployer.Server{}, err
	}
	c.w.nextID++
	s := &simServer{id: fmt.Sprintf("s%d", c.w.nextID), name: spec.Name, role: spec.Role, service: spec.Service,
		label: spec.Label, image: spec.Image, tags: slices.Clone(spec.Tags)}
	c.w.servers[s.id] = s
	out := c.w.toServer(s)
	return out, c.w.after(mode, "create")
}

func (c simCloud) WaitRunning(ctx context.Context, s deployer.Server) (deployer.Server, error) {
	mode, err := c.w.call(ctx, c.gen, "wait")
	if err != nil {
		return s, err
	}
	got, ok := c.w.servers[s.ID]
	if !ok {
		c.w.mu.Unlock()
		return s, fmt.Errorf("server %s does not exist", s.Name)
	}
	out := c.w.toServer(got)
	return out, c.w.after(mode, "wait")
}

func (c simCloud) Delete(ctx context.Context, s deployer.Server) error {
	mode, err := c.w.call(ctx, c.gen, "delete")
	if err != nil {
		return err
	}
	if c.w.serving(s.ID) {
		c.w.violate("promise 2: deleted %s (%s) while traffic can reach it", s.Name, s.ID)
	}
	delete(c.w.servers, s.ID)
	return c.w.after(mode, "delete")
}

func (c simCloud) Relabel(ctx context.Context, s deployer.Server, label string) (deployer.Server, error) {
	mode, err := c.w.call(ctx, c.gen, "relabel")
	if err != nil {
		return s, err
	}
	got, ok := c.w.servers[s.ID]
	if !ok {
		c.w.mu.Unlock()
		return s, fmt.Errorf("server %s does not exist", s.Name)
	}
	got.label = label
	out := c.w.toServer(got)
	return out, c.w.after(mode, "relabel")
}

func (c simCloud) ListByTag(ctx context.Context, tag string) ([]deployer.Server, error) {
	mode, err := c.w.call(ctx, c.gen, "list")
	if err != nil {
		return nil, err
	}
	var out []deployer.Server
	for _, s := range c.w.servers {
		if slices.Contains(s.tags, tag) {
			out = append(out, c.w.toServer(s))
		}
	}
	slices.SortFunc(out, func(a, b deployer.Server) int { return strings.Compare(a.ID, b.ID) })
	return out, c.w.after(mode, "list")
}

func (c simCloud) Images(ctx context.Context, service string) ([]deployer.Image, error) {
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return []deployer.Image{
		{ID: simImgNew, Label: simImgNew, Golden: true, Created: t.Add(time.Hour)},
		{ID: simImgOld, Label: simImgOld, Golden: true, Created: t},
		{ID: simImgBroken, Label: simImgBroken, Created: t},
	}, nil
}

// Provision does nothing, unless the world says it panics: greenlight's
// own bug, which must fail the step and not end the process.
func (c simCloud) Provision(ctx context.Context, s deployer.Server) error {
	if c.w.provisionPanics.Load() {
		panic("provisioner bug")
	}
	return nil
}

// simSwitch is one generation's view of a service's load balancer.
type simSwitch struct {
	w       *world
	gen     int
	service string
}

func (sw simSwitch) Accept(ctx context.Context, servers []deployer.Server) error {
	mode, err := sw.w.call(ctx, sw.gen, "accept")
	if err != nil {
		return err
	}
	lb := sw.w.lbs[sw.service]
	var ids []string
	for _, s := range servers {
		got, ok := sw.w.servers[s.ID]
		switch {
		case !ok:
			sw.w.violate("promise 1: traffic of %s sent to %s (%s), which does not exist", sw.service, s.Name, s.ID)
		case got.image == simImgBroken:
			sw.w.violate("promise 1: traffic of %s sent to %s, which does not answer", sw.service, s.Name)
		case !got.checked:
			sw.w.violate("promise 1: traffic of %s sent to %s, which never passed a check", sw.service, s.Name)
		}
		ids = append(ids, s.ID)
	}
	for _, id := range lb.accepting {
		if !slices.Contains(ids, id) && !slices.Contains(lb.draining, id) {
			lb.draining = append(lb.draining, id)
		}
	}
	lb.accepting = ids
	lb.draining = slices.DeleteFunc(lb.draining, func(id string) bool { return slices.Contains(ids, id) })
	return sw.w.after(mode, "accept")
}

func (sw simSwitch) Drain(ctx context.Context, servers []deployer.Server) error {
	mode, err := sw.w.call(ctx, sw.gen, "drain")
	if err != nil {
		return err
	}
	lb := sw.w.lbs[sw.service]
	lb.draining = slices.DeleteFunc(lb.draining, func(id string) bool {
		return slices.ContainsFunc(servers, func(s deployer.Server) bool { return s.ID == id })
	})
	return sw.w.after(mode, "drain")
}

func (sw simSwitch) Endpoints() []string { return []string{"lb:" + sw.service} }

// simChecker answers for the world: a server answers when it exists and
// is not of the broken image; a load balancer when every server it sends
// traffic to answers and is one the check expects.
type simChecker struct {
	w   *world
	gen int
}

func (c simChecker) Check(ctx context.Context, targets []deployer.CheckTarget, spec deployer.CheckSpec) deployer.CheckReport {
	mode, err := c.w.call(ctx, c.gen, "check")
	if err != nil {
		return deployer.CheckReport{Problems: []string{err.Error()}, Summary: "failed"}
	}
	var problems, answered []string
	var direct []*simServer
	for _, t := range targets {
		if svc, ok := strings.CutPrefix(t.Addr, "lb:"); ok {
			lb := c.w.lbs[svc]
			if len(lb.accepting) == 0 {
				problems = append(problems, t.Name+": no server behind it")
			}
			for _, id := range lb.accepting {
				s, ok := c.w.servers[id]
				switch {
				case !ok || s.image == simImgBroken:
					problems = append(problems, t.Name+": SERVFAIL")
				case !slices.Contains(t.NSIDs, s.name):
					problems = append(problems, fmt.Sprintf("%s: answered by %s", t.Name, s.name))
				default:
					answered = append(answered, s.name)
				}
			}
			continue
		}
		s, ok := c.w.servers[t.Addr]
		if !ok || s.image == simImgBroken {
			problems = append(problems, t.Name+": no answer")
			continue
		}
		direct = append(direct, s)
		answered = append(answered, s.name)
	}
	ok := len(problems) == 0 && mode == ""
	if mode != "" {
		problems = append(problems, "simulated check failure")
	}
	if ok {
		for _, s := range direct {
			s.checked = true
		}
	}
	_ = c.w.after("", "check")
	return deployer.CheckReport{OK: ok, Passes: 1, Problems: problems, Answered: answered, Summary: "checked"}
}

func (c simChecker) Serials(ctx context.Context, target deployer.CheckTarget, zones []string, timeout time.Duration) (map[string]uint32, error) {
	out := map[string]uint32{}
	for _, z := range zones {
		out[z] = 1
	}
	return out, nil
}

// simStore is one generation's view of the store: the real bbolt store,
// behind the world's gate.
type simStore struct {
	*storage.DB
	w   *world
	gen int
}

func (s simStore) write(fn func() error) error {
	mode, err := s.w.call(context.Background(), s.gen, "store")
	if err != nil {
		return err
	}
	if mode == faultLost {
		// A store either commits or not; a lost answer is a crash after it.
		mode = faultCrashAfter
	}
	if err := fn(); err != nil {
		s.w.mu.Unlock()
		return err
	}
	return s.w.after(mode, "store")
}

func (s simStore) read() error {
	s.w.progress.Add(1)
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.gen != s.w.gen || s.w.dead {
		return errKilled
	}
	return nil
}

func (s simStore) BeginDeployment(d *deployer.Deployment, init func(*deployer.Deployment)) error {
	return s.write(func() error { return s.DB.BeginDeployment(d, init) })
}

func (s simStore) UpdateDeployment(id uint64, fn func(*deployer.Deployment) error) (deployer.Deployment, error) {
	var d deployer.Deployment
	err := s.write(func() (err error) { d, err = s.DB.UpdateDeployment(id, fn); return err })
	return d, err
}

func (s simStore) FinishDeployment(id uint64, fn func(*deployer.Deployment) error, live *deployer.ServiceState) (deployer.Deployment, error) {
	var d deployer.Deployment
	err := s.write(func() (err error) { d, err = s.DB.FinishDeployment(id, fn, live); return err })
	return d, err
}

func (s simStore) Lock(l deployer.Lock) error {
	return s.write(func() error { return s.DB.Lock(l) })
}

func (s simStore) Unlock(service, user string, force bool) (deployer.Lock, error) {
	var l deployer.Lock
	err := s.write(func() (err error) { l, err = s.DB.Unlock(service, user, force); return err })
	return l, err
}

func (s simStore) SetService(st deployer.ServiceState) error {
	return s.write(func() error { return s.DB.SetService(st) })
}

func (s simStore) Deployment(id uint64) (deployer.Deployment, error) {
	if err := s.read(); err != nil {
		return deployer.Deployment{}, err
	}
	return s.DB.Deployment(id)
}

func (s simStore) ActiveDeployments() ([]deployer.Deployment, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.DB.ActiveDeployments()
}

func (s simStore) Service(name string) (deployer.ServiceState, error) {
	if err := s.read(); err != nil {
		return deployer.ServiceState{}, err
	}
	return s.DB.Service(name)
}

func (s simStore) Audit(e deployer.AuditEntry) error {
	if err := s.read(); err != nil {
		return err
	}
	return s.DB.Audit(e)
}
