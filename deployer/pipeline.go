package deployer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults for a Service's durations left at zero.
const (
	DefaultApprovalTimeout = 30 * time.Minute
	DefaultRollbackWindow  = 15 * time.Minute
)

// Config wires a Deployer.
type Config struct {
	Store    Store
	Clock    Clock    // default SystemClock
	Reporter Reporter // default: discard
	Logger   *slog.Logger
	Services []*Service
}

// Deployer runs the pipeline for every service. Its methods are safe for
// concurrent use; each deployment runs in its own goroutine.
type Deployer struct {
	store    Store
	clock    Clock
	reporter Reporter
	log      *slog.Logger
	services map[string]*Service
	names    []string

	mu      sync.Mutex
	base    context.Context // pipelines run under it; set by Start
	runs    map[uint64]*run
	changed chan struct{} // closed and replaced whenever a run changes phase or ends
	// ready is closed per service once Start has pointed its traffic where
	// the store says; a switch waits for it.
	ready map[string]chan struct{}
	wg    sync.WaitGroup
}

// run is one pipeline goroutine's handle.
type run struct {
	cancel  context.CancelCauseFunc
	wake    chan struct{} // a decision was recorded
	phase   Phase
	decided bool // a decision is recorded that the pipeline has not acted on yet
	assert  bool // resumed by Start: point traffic as recorded before any step
}

// errAbortRequested is the cause given to a run's context when someone aborts it.
var errAbortRequested = errors.New("abort requested")

// New checks cfg and returns a Deployer. Call Start before Deploy. The
// Deployer keeps its own copy of each service, with the defaults filled
// in (Service returns it); cfg's services are left as given.
func New(cfg Config) (*Deployer, error) {
	if cfg.Store == nil {
		return nil, errors.New("deployer: no store")
	}
	p := &Deployer{
		store:    cfg.Store,
		clock:    cfg.Clock,
		reporter: cfg.Reporter,
		log:      cfg.Logger,
		services: map[string]*Service{},
		runs:     map[uint64]*run{},
		changed:  make(chan struct{}),
		base:     context.Background(),
		ready:    map[string]chan struct{}{},
	}
	if p.clock == nil {
		p.clock = SystemClock{}
	}
	if p.reporter == nil {
		p.reporter = ReporterFunc(func(context.Context, Event) {})
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, s := range cfg.Services {
		if err := s.validate(); err != nil {
			return nil, err
		}
		if _, dup := p.services[s.Name]; dup {
			return nil, fmt.Errorf("service %q is defined twice", s.Name)
		}
		p.services[s.Name] = s.withDefaults()
		p.names = append(p.names, s.Name)
	}
	sort.Strings(p.names)
	return p, nil
}

func (s *Service) validate() error {
	switch {
	case s.Name == "":
		return errors.New("a service has no name")
	case len(s.Roles) == 0:
		return fmt.Errorf("service %s has no servers", s.Name)
	case s.Cloud == nil || s.Provisioner == nil || s.Switch == nil || s.Checker == nil:
		return fmt.Errorf("service %s is missing its cloud, provisioner, switch or checker", s.Name)
	case len(s.Check.Zones) == 0:
		return fmt.Errorf("service %s has no zones to check", s.Name)
	case s.ApprovalTimeoutSet && s.ApprovalTimeout <= 0 && !s.AutoPromote:
		return fmt.Errorf("service %s has an approval timeout of 0 without auto-promote, which would abort every deploy at the gate", s.Name)
	}
	return nil
}

// withDefaults returns a copy of s with a default for each setting left
// out; s is left as given. The copy shares s's lists and maps, which the
// Deployer only reads.
func (s *Service) withDefaults() *Service {
	c := *s
	c.defaults()
	return &c
}

func (s *Service) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	given := func(d *time.Duration, set bool, v time.Duration) {
		switch {
		case !set:
			def(d, v)
		case *d < 0:
			*d = 0
		}
	}
	given(&s.ApprovalTimeout, s.ApprovalTimeoutSet, DefaultApprovalTimeout)
	given(&s.RollbackWindow, s.RollbackWindowSet, DefaultRollbackWindow)
	def(&s.Timeouts.Create, 10*time.Minute)
	def(&s.Timeouts.WaitRunning, 10*time.Minute)
	def(&s.Timeouts.Provision, 15*time.Minute)
	def(&s.Timeouts.Check, 5*time.Minute)
	def(&s.Timeouts.Switch, 5*time.Minute)
	def(&s.Timeouts.Retire, 10*time.Minute)
	def(&s.Check.Timeout, 2*time.Second)
	if s.Check.Passes < 1 {
		s.Check.Passes = 3
	}
	if s.Limits.MaxUpdatePct <= 0 {
		s.Limits.MaxUpdatePct = 30
	}
	if s.Limits.MaxDeletePct <= 0 {
		s.Limits.MaxDeletePct = 30
	}
	if s.Limits.MinRRsets <= 0 {
		s.Limits.MinRRsets = 10
	}
	if s.Check.MaxRounds < s.Check.Passes {
		s.Check.MaxRounds = s.Check.Passes + 2
	}
}

// Services returns the names of the configured services, sorted.
func (dep *Deployer) Services() []string { return slices.Clone(dep.names) }

// Service returns the named service's definition.
func (dep *Deployer) Service(name string) (*Service, error) {
	s, ok := dep.services[name]
	if !ok {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("unknown service %q; services: %s", name, strings.Join(dep.names, ", "))}
	}
	return s, nil
}

// Start points each service's traffic at the set that should serve it, as
// recorded in the store, and resumes every deployment a previous run left
// active. It fails only when the store cannot be read: a switch or cloud
// that does not answer is retried in the background and said in the chat,
// and a deploy that needs attention is left for a person. Pipelines run
// until ctx ends; Wait returns when they have stopped.
func (dep *Deployer) Start(ctx context.Context) error {
	active, err := dep.store.ActiveDeployments()
	if err != nil {
		return fmt.Errorf("read deployments in flight: %w", err)
	}
	dep.mu.Lock()
	dep.base = ctx
	for _, name := range dep.names {
		dep.ready[name] = make(chan struct{})
	}
	dep.mu.Unlock()
	byService := map[string]Deployment{}
	for _, d := range active {
		if _, ok := dep.services[d.Service]; !ok {
			dep.log.Warn("deployment of a service no longer configured; leaving it", "deploy", d.ID, "service", d.Service)
			continue
		}
		byService[d.Service] = d
	}
	for _, name := range dep.names {
		svc := dep.services[name]
		d, ok := byService[name]
		live, err := dep.store.Service(name)
		if err != nil {
			return fmt.Errorf("read %s's live set: %w", name, err)
		}
		switch {
		case ok && d.Phase == PhaseNeedsAttention:
			// A person decides where traffic goes; greenlight touches nothing.
			dep.markReady(name)
			dep.log.Warn("deployment needs attention", "deploy", d.ID, "service", name)
			dep.emit(ctx, EventProblem, d, d.CurrentStep(), "greenlight restarted. "+AttentionText(d))
		case ok:
			dep.log.Info("resuming deployment", "deploy", d.ID, "service", d.Service, "step", d.CurrentStep(), "phase", d.Phase)
			dep.emit(ctx, EventInfo, d, d.CurrentStep(),
				fmt.Sprintf("greenlight restarted; resuming deploy #%d at %s", d.ID, d.CurrentStep().Title()))
			asserted := dep.tryAccept(ctx, svc, serving(d, live.Servers))
			if asserted {
				dep.markReady(name)
			}
			dep.launch(svc, d, !asserted)
		default:
			if dep.tryAccept(ctx, svc, live.Servers) {
				dep.markReady(name)
				continue
			}
			dep.wg.Go(func() {
				if dep.assertTraffic(ctx, svc, Deployment{Service: name}, live.Servers) == nil {
					dep.markReady(name)
				}
			})
		}
	}
	return nil
}

// startAcceptLimit bounds Start's first try to point a service's traffic;
// past it the try goes on in the background and start-up does not wait.
const startAcceptLimit = 30 * time.Second

// tryAccept points svc's traffic at servers once, bounded, and reports
// whether it worked; nothing to point at counts as done.
func (dep *Deployer) tryAccept(ctx context.Context, svc *Service, servers []Server) bool {
	if len(servers) == 0 {
		return true
	}
	actx, cancel := context.WithTimeout(ctx, min(svc.Timeouts.Switch, startAcceptLimit))
	defer cancel()
	if err := svc.Switch.Accept(actx, servers); err != nil {
		dep.log.Warn("cannot point traffic at the serving set at start-up", "service", svc.Name, "servers", serverNames(servers), "err", err)
		return false
	}
	return true
}

// Wait blocks until every pipeline goroutine has returned.
func (dep *Deployer) Wait() { dep.wg.Wait() }

// Busy reports whether any deployment is in an active step (not waiting for
// a person or a window).
func (dep *Deployer) Busy() bool {
	dep.mu.Lock()
	defer dep.mu.Unlock()
	for _, r := range dep.runs {
		if r.phase == PhaseRunning {
			return true
		}
	}
	return false
}

// WaitIdle blocks until no deployment is in an active step, or ctx ends.
func (dep *Deployer) WaitIdle(ctx context.Context) error {
	for {
		dep.mu.Lock()
		ch := dep.changed
		dep.mu.Unlock()
		if !dep.Busy() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (dep *Deployer) notifyChanged() {
	dep.mu.Lock()
	close(dep.changed)
	dep.changed = make(chan struct{})
	dep.mu.Unlock()
}

// setPhase records the phase a pipeline is in, for Busy and WaitIdle.
func (dep *Deployer) setPhase(id uint64, ph Phase) {
	dep.mu.Lock()
	if r, ok := dep.runs[id]; ok {
		r.phase, r.decided = ph, false
	}
	dep.mu.Unlock()
	dep.notifyChanged()
}

// waitingPhase records that a pipeline waits for a person, unless a
// decision it has not seen yet arrived first: then it stays busy.
func (dep *Deployer) waitingPhase(id uint64, ph Phase) {
	dep.mu.Lock()
	if r, ok := dep.runs[id]; ok && !r.decided {
		r.phase = ph
	}
	dep.mu.Unlock()
	dep.notifyChanged()
}

// decided marks a pipeline busy from the moment a decision is recorded
// until it has acted on it, and wakes it.
func (dep *Deployer) decided(id uint64) {
	dep.mu.Lock()
	if r, ok := dep.runs[id]; ok {
		r.phase, r.decided = PhaseRunning, true
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	dep.mu.Unlock()
	dep.notifyChanged()
}

// Request asks for a deployment.
type Request struct {
	Service string
	User    string
	Reason  string
	Options Options
	Refs    map[string]string // chat references kept with the deployment (where it was asked for)
}

// Deploy validates req, takes the service's lock and starts the pipeline in
// the background. It returns the new deployment, or an error saying why
// nothing was started (unknown service or image, lock held).
func (dep *Deployer) Deploy(ctx context.Context, req Request) (Deployment, error) {
	svc, err := dep.Service(req.Service)
	if err != nil {
		return Deployment{}, err
	}
	if req.User == "" {
		return Deployment{}, Errorf(CodeInvalid, "a deploy needs a requester")
	}
	if req.Options.AutoApprove && svc.FourEyes && !req.Options.DryRun {
		return Deployment{}, Errorf(CodeForbidden, "%s follows the four-eyes rule: a deploy cannot approve itself, so --auto-approve is refused; deploy without it and ask another approver", svc.Name)
	}
	if req.Options.Image != "" {
		if _, err := dep.findImage(ctx, svc, req.Options.Image); err != nil {
			return Deployment{}, err
		}
	}
	if req.Options.DryRun {
		return dep.dryRun(ctx, svc, req)
	}
	overridden, err := dep.checkFreeze(svc, req)
	if err != nil {
		return Deployment{}, err
	}
	now := dep.clock.Now()
	d := Deployment{
		Service:   svc.Name,
		Requester: req.User,
		Reason:    req.Reason,
		Options:   req.Options,
		Steps:     NewSteps(),
		Phase:     PhaseRunning,
		Created:   now,
		Updated:   now,
		Refs:      maps.Clone(req.Refs),
	}
	lock := d.Step(StepLock)
	lock.Status, lock.Started, lock.Finished = StatusDone, now, now
	err = dep.store.BeginDeployment(&d, func(x *Deployment) {
		x.Step(StepLock).Detail = fmt.Sprintf("%s locked by deploy #%d", svc.Name, x.ID)
	})
	if err != nil {
		return Deployment{}, dep.explainLocked(err)
	}
	dep.audit(req.User, "deploy", svc.Name, d.ID, describeOptions(req))
	dep.log.Info("deploy started", "deploy", d.ID, "service", svc.Name, "user", req.User)
	dep.reporter.Report(ctx, Event{Kind: EventStep, Deployment: d, Step: StepLock})
	if overridden != nil {
		text := fmt.Sprintf("%s is frozen (%s) until %s, %s; %s deploys anyway with --override-freeze.",
			svc.Name, overridden.About(), overridden.Until(), overridden.SetBy(), req.User)
		dep.audit(req.User, "override freeze", svc.Name, d.ID, fmt.Sprintf("%s until %s", overridden.About(), overridden.Until()))
		dep.emit(ctx, EventInfo, d, StepLock, text)
	}
	dep.launch(svc, d, false)
	return d, nil
}

// dryRun plans a deploy without the lock and without creating anything; the
// plan is not recorded. The returned deployment (ID 0, phase planned) shows
// what a real deploy would do.
func (dep *Deployer) dryRun(ctx context.Context, svc *Service, req Request) (Deployment, error) {
	// Named as the deploy started next would name its servers.
	var id uint64 = 1
	if last, err := dep.store.Deployments("", 1); err == nil && len(last) == 1 {
		id = last[0].ID + 1
	}
	live, image, next, detail, err := dep.planSet(ctx, svc, id, req.Options)
	if err != nil {
		return Deployment{}, err
	}
	zones, zonesLine, err := dep.planZones(ctx, svc, live, req.Options)
	if err != nil {
		return Deployment{}, err
	}
	if zonesLine != "" {
		detail += " · " + zonesLine
	}
	detail += imageZones(image)
	now := dep.clock.Now()
	d := Deployment{Service: svc.Name, Requester: req.User, Reason: req.Reason, Options: req.Options,
		ImageOld: live.Image, ImageNew: image.ID, Old: live.Servers, Next: next, Zones: zones,
		Steps: NewSteps(), Phase: PhasePlanned, Created: now, Updated: now, Finished: now}
	for i := range d.Steps {
		d.Steps[i].Status, d.Steps[i].Detail = StatusSkipped, "dry run"
	}
	if pricer, ok := svc.Cloud.(Pricer); ok {
		hourly, monthly, err := pricer.Price(ctx, len(next))
		if err != nil {
			dep.log.Warn("dry run: price unknown", "service", svc.Name, "err", err)
			detail += fmt.Sprintf("; price unknown: %s", ErrorMessage(err))
		} else {
			detail += fmt.Sprintf("; the next set costs $%.3f/hour, $%.2f/month while it runs", hourly, monthly)
			detail += regionPrices(ctx, svc.Cloud, len(next))
		}
	}
	plan := d.Step(StepPlan)
	plan.Status, plan.Started, plan.Finished, plan.Detail = StatusDone, now, now, detail
	dep.audit(req.User, "dry run", svc.Name, 0, detail)
	return d, nil
}

func describeOptions(req Request) string {
	var parts []string
	if req.Options.Image != "" {
		parts = append(parts, "image "+req.Options.Image)
	}
	if req.Options.AutoApprove {
		parts = append(parts, "auto-approve")
	}
	if req.Options.DryRun {
		parts = append(parts, "dry run")
	}
	if req.Options.AllowLargeChange {
		parts = append(parts, "allow large change")
	}
	if req.Options.AllowSameSerial {
		parts = append(parts, "allow same serial")
	}
	if req.Options.OverrideFreeze {
		parts = append(parts, "override freeze")
	}
	if req.Reason != "" {
		parts = append(parts, "reason: "+req.Reason)
	}
	return strings.Join(parts, "; ")
}

// explainLocked adds the step the holding deploy is on to a LockedError.
func (dep *Deployer) explainLocked(err error) error {
	le, ok := errors.AsType[*LockedError](err)
	if !ok || le.Lock.DeployID == 0 {
		return err
	}
	if d, derr := dep.store.Deployment(le.Lock.DeployID); derr == nil {
		le.Step = d.CurrentStep()
		if d.Phase == PhaseAwaitingApproval {
			le.Step = StepApproval
		}
	}
	return le
}

// launch runs deployment d's pipeline in a goroutine; assert (a deploy
// resumed by Start) points traffic as recorded before any step.
func (dep *Deployer) launch(svc *Service, d Deployment, assert bool) {
	dep.mu.Lock()
	ctx, cancel := context.WithCancelCause(dep.base)
	r := &run{cancel: cancel, wake: make(chan struct{}, 1), phase: d.Phase, assert: assert}
	dep.runs[d.ID] = r
	dep.wg.Add(1)
	dep.mu.Unlock()
	dep.notifyChanged()
	go func() {
		defer dep.wg.Done()
		defer func() {
			cancel(nil)
			dep.mu.Lock()
			if dep.runs[d.ID] == r {
				delete(dep.runs, d.ID)
			}
			dep.mu.Unlock()
			dep.notifyChanged()
		}()
		defer func() {
			// A panic outside a step must not end greenlight: the deploy
			// stops where it is and is resumed at the next start.
			if v := recover(); v != nil {
				dep.log.Error("pipeline panicked", "deploy", d.ID, "service", svc.Name, "panic", v, "stack", string(debug.Stack()))
			}
		}()
		dep.execute(ctx, svc, d.ID, r)
	}()
}

// Running reports the deployments a pipeline goroutine drives now.
func (dep *Deployer) Running() []uint64 {
	dep.mu.Lock()
	defer dep.mu.Unlock()
	ids := slices.Collect(maps.Keys(dep.runs))
	slices.Sort(ids)
	return ids
}

// update persists a change to deployment id; a failure is a storeError.
func (dep *Deployer) update(id uint64, fn func(*Deployment)) (Deployment, error) {
	d, err := dep.store.UpdateDeployment(id, func(d *Deployment) error {
		fn(d)
		d.Updated = dep.clock.Now()
		return nil
	})
	if err != nil {
		return d, &storeError{err}
	}
	return d, nil
}

func (dep *Deployer) audit(user, action, service string, id uint64, detail string) {
	err := dep.store.Audit(AuditEntry{At: dep.clock.Now(), User: user, Action: action, Service: service, DeployID: id, Detail: detail})
	if err != nil {
		dep.log.Error("audit log write failed", "action", action, "err", err)
	}
}

func (dep *Deployer) emit(ctx context.Context, kind EventKind, d Deployment, step StepName, text string) {
	dep.reporter.Report(ctx, Event{Kind: kind, Deployment: d, Step: step, Text: text})
}

func (dep *Deployer) findImage(ctx context.Context, svc *Service, id string) (Image, error) {
	images, err := svc.Cloud.Images(ctx, svc.Name)
	if err != nil {
		return Image{}, fmt.Errorf("list images of %s: %w", svc.Name, err)
	}
	for _, im := range images {
		if im.ID == id || im.Label == id {
			return im, nil
		}
	}
	var ids []string
	for _, im := range images {
		ids = append(ids, im.ID)
	}
	return Image{}, &Error{Code: CodeNotFound, Message: fmt.Sprintf("image %q does not exist for %s; images: %s", id, svc.Name, strings.Join(ids, ", "))}
}

func (dep *Deployer) newestGolden(ctx context.Context, svc *Service) (Image, error) {
	images, err := svc.Cloud.Images(ctx, svc.Name)
	if err != nil {
		return Image{}, fmt.Errorf("list images of %s: %w", svc.Name, err)
	}
	var best *Image
	for i := range images {
		im := &images[i]
		if im.Golden && (best == nil || im.Created.After(best.Created) || (im.Created.Equal(best.Created) && im.ID > best.ID)) {
			best = im
		}
	}
	if best == nil && svc.Zones != nil && svc.BaseImage != "" {
		// The deploy ships the zone files itself: the base image serves too.
		if i := slices.IndexFunc(images, func(im Image) bool { return im.ID == svc.BaseImage }); i >= 0 {
			return images[i], nil
		}
	}
	if best == nil {
		return Image{}, Errorf(CodeNotFound, "%s has no golden image; bake one with /deploy refresh %s or pass --image", svc.Name, svc.Name)
	}
	return *best, nil
}

func serverNames(servers []Server) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}
