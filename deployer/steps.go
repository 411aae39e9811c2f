package deployer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StepName names one step of the pipeline. The names are persisted with
// every deployment, so a step is never renamed.
type StepName string

// The pipeline's steps, in the order they run.
const (
	StepLock           StepName = "lock"
	StepPlan           StepName = "plan"
	StepCreate         StepName = "create"
	StepWaitRunning    StepName = "wait-running"
	StepProvision      StepName = "provision"
	StepCheckNext      StepName = "check-next"
	StepApproval       StepName = "approval"
	StepSwitch         StepName = "switch"
	StepCheckLive      StepName = "check-live"
	StepRollbackWindow StepName = "rollback-window"
	StepRetire         StepName = "retire"
)

// stepDef is what the pipeline, the chat and the metrics know of a step.
type stepDef struct {
	name  StepName
	title string // as a person reads it in a checklist
	// timeout bounds one run of the step, from the service's config; nil
	// for the lock and the plan, which have none, and for the steps with
	// deadlines of their own (the approval gate, the rollback window).
	timeout func(Timeouts) time.Duration
	// do is the step's work; nil for the lock, which Deploy takes.
	do func(dep *Deployer, ctx context.Context, svc *Service, d *Deployment, r *run) (detail string, err error)
	// waits says the step waits for people rather than working, so
	// restarts while it waits do not count as attempts.
	waits bool
}

// stepDefs is the pipeline, one row per step in the order they run. A new
// step is a StepName above and a row here; nothing writes the table.
var stepDefs = [...]stepDef{
	{name: StepLock, title: "Take the deploy lock"},
	{name: StepPlan, title: "Plan", do: (*Deployer).plan},
	{
		name:    StepCreate,
		title:   "Create the next set",
		timeout: func(t Timeouts) time.Duration { return t.Create },
		do:      (*Deployer).create,
	},
	{
		name:    StepWaitRunning,
		title:   "Wait until running",
		timeout: func(t Timeouts) time.Duration { return t.WaitRunning },
		do:      (*Deployer).waitRunning,
	},
	{
		name:    StepProvision,
		title:   "Provision",
		timeout: func(t Timeouts) time.Duration { return t.Provision },
		do:      (*Deployer).provision,
	},
	{
		name:    StepCheckNext,
		title:   "Check the next set answers",
		timeout: func(t Timeouts) time.Duration { return t.Check },
		do:      (*Deployer).checkNext,
	},
	{name: StepApproval, title: "Approval", do: (*Deployer).approvalGate, waits: true},
	{
		name:    StepSwitch,
		title:   "Switch traffic",
		timeout: func(t Timeouts) time.Duration { return t.Switch },
		do:      (*Deployer).switchTraffic,
	},
	{
		name:    StepCheckLive,
		title:   "Check through the load balancer",
		timeout: func(t Timeouts) time.Duration { return t.Check },
		do:      (*Deployer).checkLive,
	},
	{name: StepRollbackWindow, title: "Rollback window", do: (*Deployer).rollbackWindow, waits: true},
	{
		name:    StepRetire,
		title:   "Retire the old set",
		timeout: func(t Timeouts) time.Duration { return t.Retire },
		do:      (*Deployer).retire,
	},
}

// stepOf returns the row of step name, or a row with only the name for a
// step the table does not have.
func stepOf(name StepName) stepDef {
	for _, s := range stepDefs {
		if s.name == name {
			return s
		}
	}
	return stepDef{name: name}
}

// Steps returns the pipeline's steps in order.
func Steps() []StepName {
	out := make([]StepName, len(stepDefs))
	for i, s := range stepDefs {
		out[i] = s.name
	}
	return out
}

// Title is the step's name as a person reads it in a checklist.
func (s StepName) Title() string {
	if t := stepOf(s).title; t != "" {
		return t
	}
	return string(s)
}

// waits reports whether a step waits for people rather than working.
func waits(name StepName) bool { return stepOf(name).waits }

// stepTimeout bounds one run of step name; 0 is no bound.
func (s *Service) stepTimeout(name StepName) time.Duration {
	if t := stepOf(name).timeout; t != nil {
		return t(s.Timeouts)
	}
	return 0
}

// LockLimit is how long a deploy of s may hold the lock when nobody acts:
// every step's timeout, the approval deadline and the rollback window.
func (s *Service) LockLimit() time.Duration {
	limit := s.ApprovalTimeout + s.RollbackWindow
	for _, st := range stepDefs {
		limit += s.stepTimeout(st.name)
	}
	return limit
}

// deleteNext deletes every server deploy d created: those it recorded and
// those the cloud tags with it (a crash may have come between the two).
// It returns a note for the chat when some could not be deleted.
func (dep *Deployer) deleteNext(ctx context.Context, svc *Service, d Deployment) string {
	servers := slices.Clone(d.Next)
	if tagged, err := svc.Cloud.ListByTag(ctx, DeployTag(d.ID)); err == nil {
		for _, t := range tagged {
			if !slices.ContainsFunc(servers, func(s Server) bool { return s.ID == t.ID && t.ID != "" }) {
				servers = append(servers, t)
			}
		}
	} else {
		dep.log.Warn("cannot list servers of deploy", "deploy", d.ID, "service", svc.Name, "err", err)
	}
	servers = slices.DeleteFunc(servers, func(s Server) bool { return s.ID == "" })
	if len(servers) == 0 {
		return ""
	}
	_, err := dep.forEach(ctx, servers, func(ctx context.Context, s Server) (Server, error) {
		if err := svc.Cloud.Delete(ctx, s); err != nil {
			return s, fmt.Errorf("delete %s: %w", s.Name, err)
		}
		return s, nil
	})
	if err != nil {
		dep.log.Error("cleanup left servers behind", "deploy", d.ID, "service", svc.Name, "err", err)
		return fmt.Sprintf("Could not delete every server of the next set (%s); the reconciler will report them.", ErrorMessage(err))
	}
	dep.log.Info("deleted next set", "deploy", d.ID, "servers", serverNames(servers))
	return ""
}

// forEach runs fn on every server in parallel and returns the results in
// order, with every error joined.
func (dep *Deployer) forEach(ctx context.Context, servers []Server, fn func(context.Context, Server) (Server, error)) ([]Server, error) {
	out := make([]Server, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			// A bug in fn fails this server, not greenlight: callStep only
			// recovers panics of the pipeline's own goroutine.
			defer func() {
				if v := recover(); v != nil {
					dep.log.Error("panic acting on a server", "server", s.Name, "panic", v, "stack", string(debug.Stack()))
					out[i], errs[i] = s, &Error{Code: CodeFailed, Message: s.Name + ": " + InternalMessage, Err: fmt.Errorf("panic: %v", v)}
				}
			}()
			out[i], errs[i] = fn(ctx, s)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// planSet resolves the image and names the next set of deploy id (0 for a
// dry run, whose servers are named by role).
func (dep *Deployer) planSet(ctx context.Context, svc *Service, id uint64, opts Options) (ServiceState, Image, []Server, string, error) {
	live, err := dep.store.Service(svc.Name)
	if err != nil {
		return live, Image{}, nil, "", fmt.Errorf("read the live set: %w", err)
	}
	var image Image
	if opts.Image != "" {
		image, err = dep.findImage(ctx, svc, opts.Image)
	} else {
		image, err = dep.newestGolden(ctx, svc)
	}
	if err != nil {
		return live, Image{}, nil, "", err
	}
	next := make([]Server, len(svc.Roles))
	for i, role := range svc.Roles {
		name := fmt.Sprintf("%s-%d", role, id)
		if id == 0 {
			name = role + "-next"
		}
		next[i] = Server{
			Name:  name,
			Role:  role,
			Label: role + "-next",
			Image: image.ID,
			Tags:  []string{TagGreenlight, ServiceTag(svc.Name), DeployTag(id)},
		}
	}
	detail := fmt.Sprintf("image %s → %s · %d servers: %s", orNone(live.Image), image.ID, len(next), serverNames(next))
	if len(live.Servers) > 0 {
		detail += " · replacing " + serverNames(live.Servers)
	}
	return live, image, next, detail, nil
}

// plan records the image and the next set.
func (dep *Deployer) plan(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	live, image, next, detail, err := dep.planSet(ctx, svc, d.ID, d.Options)
	if err != nil {
		return "", err
	}
	zones, zonesLine, err := dep.planZones(ctx, svc, live, d.Options)
	if err != nil {
		return "", err
	}
	if zonesLine != "" {
		detail += " · " + zonesLine
	}
	detail += imageZones(image)
	*d, err = dep.update(d.ID, func(x *Deployment) {
		x.ImageOld, x.ImageNew = live.Image, image.ID
		x.Old, x.Next = cloneServers(live.Servers), next
		x.Zones = zones
	})
	return detail, err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// create asks the cloud for every server of the next set at once. Servers
// the cloud already has for this deploy (a re-run after a crash) are reused.
func (dep *Deployer) create(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	tagged, err := svc.Cloud.ListByTag(ctx, DeployTag(d.ID))
	if err != nil {
		return "", fmt.Errorf("list servers of deploy #%d: %w", d.ID, err)
	}
	created, err := dep.forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		for _, t := range tagged {
			if t.Name == s.Name {
				return t, nil
			}
		}
		got, err := svc.Cloud.Create(ctx, ServerSpec{Service: svc.Name, Role: s.Role, Name: s.Name, Label: s.Label,
			Image: s.Image, Tags: s.Tags, DeployID: d.ID, Zones: d.Zones.Clone()})
		if err != nil {
			return s, fmt.Errorf("create %s: %w", s.Name, err)
		}
		return got, nil
	})
	if _, uerr := dep.setNext(d, created); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("created %s", serverNames(created)), nil
}

// setNext records the servers that have a cloud ID, keeping planned ones in
// their slots.
func (dep *Deployer) setNext(d *Deployment, servers []Server) (Deployment, error) {
	var err error
	*d, err = dep.update(d.ID, func(x *Deployment) {
		for i, s := range servers {
			if s.ID != "" && i < len(x.Next) {
				x.Next[i] = s
			}
		}
	})
	return *d, err
}

func (dep *Deployer) waitRunning(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	running, err := dep.forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		got, err := svc.Cloud.WaitRunning(ctx, s)
		if err != nil {
			return s, fmt.Errorf("%s did not start: %w", s.Name, err)
		}
		return got, nil
	})
	if _, uerr := dep.setNext(d, running); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", err
	}
	addrs := make([]string, len(running))
	for i, s := range running {
		addrs[i] = s.Name + " " + s.Addr
	}
	return "running: " + strings.Join(addrs, ", "), nil
}

func (dep *Deployer) provision(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	_, err := dep.forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		if err := svc.Provisioner.Provision(ctx, s); err != nil {
			return s, fmt.Errorf("provision %s: %w", s.Name, err)
		}
		return s, nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("provisioned %s", serverNames(d.Next)), nil
}

// ownTargets checks each server directly, expecting it to name itself.
func ownTargets(servers []Server) []CheckTarget {
	out := make([]CheckTarget, len(servers))
	for i, s := range servers {
		out[i] = CheckTarget{Name: s.Name, Addr: s.Addr, NSIDs: []string{s.Name}}
	}
	return out
}

// endpointTargets checks through the switch, expecting answers from servers.
func endpointTargets(sw Switch, servers []Server) []CheckTarget {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	var out []CheckTarget
	for _, ep := range sw.Endpoints() {
		out = append(out, CheckTarget{Name: "load balancer " + ep, Addr: ep, NSIDs: names})
	}
	return out
}

func (dep *Deployer) checkNext(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	spec := svc.Check
	var notes []string
	if len(d.Old) > 0 {
		old := ownTargets(d.Old[:1])[0]
		serials, err := svc.Checker.Serials(ctx, old, spec.Zones, spec.Timeout)
		if err != nil {
			dep.log.Warn("live serial unknown", "deploy", d.ID, "service", svc.Name, "server", old.Name, "err", err)
			notes = append(notes, fmt.Sprintf("live serial unknown (%s); serial not compared", ErrorMessage(err)))
		} else {
			spec.MinSerial = serials
		}
	}
	report := svc.Checker.Check(ctx, ownTargets(d.Next), spec)
	checks := append([]string{report.Summary}, notes...)
	checks = append(checks, report.Problems...)
	if _, err := dep.update(d.ID, func(x *Deployment) { x.Checks = checks }); err != nil {
		return "", err
	}
	if !report.OK {
		return "", Errorf(CodeFailed, "the next set failed its checks: %s", strings.Join(report.Problems, "; "))
	}
	detail := strings.Join(append([]string{report.Summary}, notes...), " · ")
	if svc.Compare == nil || len(d.Old) == 0 {
		return detail, nil
	}
	diffs, err := svc.Compare.CompareZones(ctx, CheckTarget{Name: d.Old[0].Name, Addr: d.Old[0].Addr}, ownTargets(d.Next), spec.Zones)
	lines, limitErr := judgeChanges(svc.Limits, d.Options.AllowLargeChange, diffs)
	if _, uerr := dep.update(d.ID, func(x *Deployment) {
		x.Diffs = diffs
		x.Checks = append(x.Checks, lines...)
	}); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", Wrapf(err, "zone comparison failed")
	}
	if limitErr != nil {
		return "", limitErr
	}
	for _, z := range diffs {
		detail += " · " + z.Summary
	}
	return detail, nil
}

// pct prints a percentage to one decimal, without a trailing ".0".
func pct(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// judgeChanges applies a service's change limits to the zone diffs. It
// returns the lines the approver reads, and an error when a limit is
// exceeded without --allow-large-change.
func judgeChanges(l ChangeLimits, allowLarge bool, diffs []ZoneDiff) ([]string, error) {
	var lines, over []string
	for _, z := range diffs {
		lines = append(lines, z.Summary)
		if l.ExpectUnchanged && z.Changes() {
			lines = append(lines, fmt.Sprintf("⚠ %s: content changes although this service expects none (check.expect_unchanged)", z.Zone))
		}
		if z.LiveRRsets < l.MinRRsets {
			continue
		}
		if z.UpdatedPct > l.MaxUpdatePct {
			over = append(over, fmt.Sprintf("%s: %s%% of its %d live RRsets would change, above the %s%% limit by %s points",
				z.Zone, pct(z.UpdatedPct), z.LiveRRsets, pct(l.MaxUpdatePct), pct(z.UpdatedPct-l.MaxUpdatePct)))
		}
		if z.DeletedPct > l.MaxDeletePct {
			over = append(over, fmt.Sprintf("%s: %s%% of its %d live RRsets would be deleted, above the %s%% limit by %s points",
				z.Zone, pct(z.DeletedPct), z.LiveRRsets, pct(l.MaxDeletePct), pct(z.DeletedPct-l.MaxDeletePct)))
		}
	}
	if len(over) == 0 {
		return lines, nil
	}
	if allowLarge {
		return append(lines, "⚠ large change allowed by --allow-large-change: "+strings.Join(over, "; ")), nil
	}
	return lines, Errorf(CodeFailed, "the change is too large: %s; deploy with --allow-large-change if it is meant", strings.Join(over, "; "))
}

// approvalGate waits for Approve or Abort, or the deadline.
func (dep *Deployer) approvalGate(ctx context.Context, svc *Service, d *Deployment, r *run) (string, error) {
	if d.Options.AutoApprove && d.Approval == nil {
		var err error
		*d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
			if x.Approval == nil {
				x.Approval = &Decision{Kind: DecisionApprove, By: x.Requester, At: dep.clock.Now(), Reason: "--auto-approve", Source: SourceAutoApprove}
			}
			return nil
		})
		if err != nil {
			return "", &storeError{err}
		}
	}
	if d.Approval == nil {
		var err error
		*d, err = dep.update(d.ID, func(x *Deployment) {
			// A decision that landed since d was read keeps its phase.
			if x.Approval == nil {
				x.Phase = PhaseAwaitingApproval
			}
			if x.ApprovalDeadline.IsZero() {
				x.ApprovalDeadline = dep.clock.Now().Add(svc.ApprovalTimeout)
			}
		})
		if err != nil {
			return "", err
		}
		if d.Approval == nil {
			dep.waitingPhase(d.ID, PhaseAwaitingApproval)
			note := ""
			if open, next, loc := windowAt(svc.DeployWindows, dep.clock.Now()); !open && !next.IsZero() {
				note = fmt.Sprintf("Outside %s's deploy windows: once approved, it switches at %s, when the next one opens.", svc.Name, SwitchTime(next, loc.String()))
			}
			dep.emit(ctx, EventApproval, *d, StepApproval, note)
		}
	}
	for d.Approval == nil {
		select {
		case <-r.wake:
		case <-dep.clock.After(d.ApprovalDeadline.Sub(dep.clock.Now())):
			if err := dep.deadlineDecision(svc, d); err != nil {
				return "", err
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
		fresh, err := dep.read(d.ID)
		if err != nil {
			return "", err
		}
		*d = fresh
	}
	dep.setPhase(d.ID, PhaseRunning) // busy until the decision is carried out
	dec := *d.Approval
	if dec.Kind == DecisionAbort {
		return "", &abortedError{decision: dec}
	}
	if d.Phase != PhaseRunning {
		var err error
		*d, err = dep.update(d.ID, func(x *Deployment) { x.Phase = PhaseRunning })
		if err != nil {
			return "", err
		}
	}
	waited, err := dep.awaitWindow(ctx, svc, d, r)
	if err != nil {
		return "", err
	}
	dep.setPhase(d.ID, PhaseRunning)
	if waited != "" {
		dep.emit(ctx, EventDecision, *d, StepApproval, waited)
		return waited, nil
	}
	switch dec.Source {
	case SourceAutoApprove:
		return "auto-approved (--auto-approve)", nil
	case SourceDeadline:
		text := fmt.Sprintf("Promoted automatically: no decision within %s", svc.ApprovalTimeout)
		dep.emit(ctx, EventDecision, *d, StepApproval, text)
		return text, nil
	}
	text := fmt.Sprintf("Approved by %s", dec.By)
	dep.emit(ctx, EventDecision, *d, StepApproval, text)
	return text, nil
}

// awaitWindow holds an approved deploy until one of the service's deploy
// windows is open. It says so in the thread, and returns what it waited
// for ("" when it did not wait).
func (dep *Deployer) awaitWindow(ctx context.Context, svc *Service, d *Deployment, r *run) (string, error) {
	open, next, loc := windowAt(svc.DeployWindows, dep.clock.Now())
	if open || next.IsZero() {
		return "", nil
	}
	if !d.SwitchAt.Equal(next) {
		var err error
		*d, err = dep.update(d.ID, func(x *Deployment) { x.SwitchAt, x.SwitchZone = next, loc.String() })
		if err != nil {
			return "", err
		}
	}
	dep.emit(ctx, EventInfo, *d, StepApproval, fmt.Sprintf("%s; %s is outside its deploy windows, so the switch waits: it will switch at %s.",
		approvedText(d.Approval), svc.Name, SwitchTime(next, loc.String())))
	dep.waitingPhase(d.ID, PhaseAwaitingApproval)
	for !open {
		select {
		case <-r.wake:
		case <-dep.clock.After(next.Sub(dep.clock.Now())):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		open, next, _ = windowAt(svc.DeployWindows, dep.clock.Now())
		if !open && next.IsZero() {
			break
		}
	}
	return fmt.Sprintf("%s; the switch waited for the deploy window, which opened at %s", approvedText(d.Approval), SwitchTime(dep.clock.Now(), loc.String())), nil
}

func approvedText(dec *Decision) string {
	switch dec.Source {
	case SourceAutoApprove:
		return "Auto-approved (--auto-approve)"
	case SourceDeadline:
		return "Promoted at the approval deadline"
	}
	return "Approved by " + dec.By
}

// deadlineDecision decides at the approval deadline, unless a person got there first.
func (dep *Deployer) deadlineDecision(svc *Service, d *Deployment) error {
	_, err := dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Approval != nil || dep.clock.Now().Before(x.ApprovalDeadline) {
			return nil
		}
		kind, reason := DecisionAbort, fmt.Sprintf("no approval within %s", svc.ApprovalTimeout)
		if svc.AutoPromote {
			kind, reason = DecisionApprove, fmt.Sprintf("no decision within %s; auto-promote is on", svc.ApprovalTimeout)
		}
		x.Approval = &Decision{Kind: kind, By: "deadline", At: dep.clock.Now(), Reason: reason, Source: SourceDeadline}
		x.Phase = PhaseRunning
		return nil
	})
	if err != nil {
		return &storeError{err}
	}
	return nil
}

// switchTraffic sends clients to the next set and drains the old one. A
// failure is handled by finishFailed, which moves traffic back.
func (dep *Deployer) switchTraffic(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	if d.Traffic.Target == TrafficOld && d.Traffic.NextTouched {
		return "", Errorf(CodeConflict, "traffic was switched back to %s before greenlight restarted", serverNames(d.Old))
	}
	if err := dep.WaitReady(ctx, svc.Name); err != nil {
		return "", err
	}
	if err := dep.moveTraffic(ctx, svc, d, TrafficNext); err != nil {
		return "", err
	}
	detail := "traffic → " + serverNames(d.Next)
	if len(d.Old) > 0 {
		detail += " · drained " + serverNames(d.Old)
	}
	return detail, nil
}

func (dep *Deployer) checkLive(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	if !d.Traffic.SettledOn(TrafficNext) {
		return "", Errorf(CodeConflict, "traffic is not on %s: %s", serverNames(d.Next), d.Traffic.Where(*d))
	}
	report := svc.Checker.Check(ctx, endpointTargets(svc.Switch, d.Next), svc.Check)
	if ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
		return "", ctx.Err()
	}
	if !report.OK {
		return "", Errorf(CodeFailed, "the check through the load balancer failed: %s", strings.Join(report.Problems, "; "))
	}
	return report.Summary + " · answered by " + strings.Join(report.Answered, ", "), nil
}

// rollbackWindow keeps the old set until the window closes or someone rolls back.
func (dep *Deployer) rollbackWindow(ctx context.Context, svc *Service, d *Deployment, r *run) (string, error) {
	if len(d.Old) == 0 {
		return "no previous set to keep", nil
	}
	if d.Phase != PhaseRollbackWindow {
		var err error
		*d, err = dep.update(d.ID, func(x *Deployment) {
			x.Phase = PhaseRollbackWindow
			if x.RollbackDeadline.IsZero() {
				x.RollbackDeadline = dep.clock.Now().Add(svc.RollbackWindow)
			}
		})
		if err != nil {
			return "", err
		}
	}
	if d.Rollback == nil && d.Retire == nil {
		dep.waitingPhase(d.ID, PhaseRollbackWindow)
	} else {
		dep.setPhase(d.ID, PhaseRunning) // busy until the rollback is carried out
	}
	if svc.RollbackWindow > 0 || d.Rollback != nil {
		dep.emit(ctx, EventRollback, *d, StepRollbackWindow, fmt.Sprintf("%s is live on %s. The old set (%s) is kept until %s: /deploy rollback %s switches back, /deploy retire %s retires it now.",
			svc.Name, serverNames(d.Next), serverNames(d.Old), TimeOfDay(d.RollbackDeadline), svc.Name, svc.Name))
	} else {
		dep.emit(ctx, EventInfo, *d, StepRollbackWindow, fmt.Sprintf("%s is live on %s. The rollback window is 0, so the old set (%s) is retired now.",
			svc.Name, serverNames(d.Next), serverNames(d.Old)))
	}
	for {
		if d.Rollback != nil {
			text, err := dep.rollBack(ctx, svc, d)
			if err == nil {
				return "", &rolledBackError{text: text}
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if _, ok := errors.AsType[*refusedError](err); !ok {
				return "", err
			}
			dep.emit(ctx, EventProblem, *d, StepRollbackWindow, err.Error())
			dep.setPhase(d.ID, PhaseRollbackWindow)
		}
		if d.Retire != nil {
			closed, err := dep.closeWindow(d.ID)
			if err != nil {
				return "", err
			}
			if closed {
				dep.setPhase(d.ID, PhaseRunning)
				text := fmt.Sprintf("Retire now by %s: the rollback window ended at %s; retiring %s", d.Retire.By, TimeOfDay(d.Retire.At), serverNames(d.Old))
				dep.emit(ctx, EventDecision, *d, StepRollbackWindow, text)
				return fmt.Sprintf("ended early by %s at %s", d.Retire.By, TimeOfDay(d.Retire.At)), nil
			}
		}
		select {
		case <-r.wake:
		case <-dep.clock.After(d.RollbackDeadline.Sub(dep.clock.Now())):
			closed, err := dep.closeWindow(d.ID)
			if err != nil {
				return "", err
			}
			if closed {
				dep.setPhase(d.ID, PhaseRunning)
				return fmt.Sprintf("closed at %s with no rollback", TimeOfDay(dep.clock.Now())), nil
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
		fresh, err := dep.read(d.ID)
		if err != nil {
			return "", err
		}
		*d = fresh
	}
}

// closeWindow ends the rollback window in one transaction, at its deadline
// or when someone asked to retire now, unless a rollback was requested
// first.
func (dep *Deployer) closeWindow(id uint64) (bool, error) {
	closed := false
	_, err := dep.store.UpdateDeployment(id, func(x *Deployment) error {
		if x.Rollback != nil || (x.Retire == nil && dep.clock.Now().Before(x.RollbackDeadline)) {
			return nil
		}
		x.Phase, closed = PhaseRunning, true
		return nil
	})
	if err != nil {
		return false, &storeError{err}
	}
	return closed, nil
}

// refusedError is a rollback that was not carried out; the deploy stays in
// its window on the new set. Its text says so for the chat.
type refusedError struct{ text string }

func (e *refusedError) Error() string { return e.text }

// rollBack checks that the old set still answers, moves traffic to it,
// proves clients reach it, and deletes the next set. When the move cannot
// be finished it puts traffic back on the next set and refuses; when even
// that fails the deploy needs attention.
func (dep *Deployer) rollBack(ctx context.Context, svc *Service, d *Deployment) (string, error) {
	spec := svc.Check
	spec.Passes, spec.MaxRounds = 1, 2
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Switch+svc.Timeouts.Retire)
	defer cancel()
	// Settled on the old set already: an earlier try moved traffic and may
	// have begun deleting the next set, which must never get traffic again.
	moved := d.Traffic.SettledOn(TrafficOld)
	if report := svc.Checker.Check(cctx, ownTargets(d.Old), spec); !report.OK && !moved {
		return "", dep.refuseRollback(d, fmt.Sprintf("the old set no longer answers: %s", strings.Join(report.Problems, "; ")))
	}
	if err := dep.moveTraffic(cctx, svc, d, TrafficOld); err != nil {
		if _, ok := errors.AsType[*storeError](err); ok {
			return "", err
		}
		cause := err
		if err := dep.moveTraffic(cctx, svc, d, TrafficNext); err != nil {
			if _, ok := errors.AsType[*storeError](err); ok {
				return "", err
			}
			dep.log.Error("rollback failed, and so did putting traffic back", "deploy", d.ID, "service", svc.Name, "err", cause, "back_err", err)
			return "", &attentionError{reason: fmt.Sprintf("the rollback could not finish (%s) and traffic could not be put back on %s (%s)",
				ErrorMessage(cause), serverNames(d.Next), ErrorMessage(err))}
		}
		dep.log.Warn("rollback failed; traffic is back on the new set", "deploy", d.ID, "service", svc.Name, "err", cause)
		return "", dep.refuseRollback(d, fmt.Sprintf("the rollback could not finish: %s; traffic is back on the new set (%s)", ErrorMessage(cause), serverNames(d.Next)))
	}
	live := svc.Checker.Check(cctx, endpointTargets(svc.Switch, d.Old), spec)
	text := fmt.Sprintf("Rolled back by %s: traffic is on %s again", d.Rollback.By, serverNames(d.Old))
	if !live.OK {
		text += fmt.Sprintf(" (but the check through the load balancer says: %s)", strings.Join(live.Problems, "; "))
	}
	dep.emit(ctx, EventDecision, *d, StepRollbackWindow, text)
	if note := dep.deleteNext(cctx, svc, *d); note != "" {
		text += ". " + note
	}
	return text, nil
}

// refuseRollback records that d's rollback was not carried out, in one
// transaction, and returns the refusal for the chat.
func (dep *Deployer) refuseRollback(d *Deployment, why string) error {
	var err error
	*d, err = dep.update(d.ID, func(x *Deployment) {
		if x.Rollback != nil {
			refused := *x.Rollback
			refused.Reason = why
			x.RefusedRollbacks = append(x.RefusedRollbacks, refused)
			x.Rollback = nil
		}
	})
	if err != nil {
		return err
	}
	return &refusedError{text: fmt.Sprintf("Rollback of deploy #%d refused: %s. %s stays on the new set (%s); the old set is kept until %s.",
		d.ID, why, d.Service, serverNames(d.Next), TimeOfDay(d.RollbackDeadline))}
}

// retire deletes the old set and gives the next set the live labels.
func (dep *Deployer) retire(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	if !d.Traffic.SettledOn(TrafficNext) {
		return "", &attentionError{reason: "the old set was about to be retired while " + strings.ToLower(d.Traffic.Where(*d))}
	}
	_, err := dep.forEach(ctx, d.Old, func(ctx context.Context, s Server) (Server, error) {
		if err := svc.Cloud.Delete(ctx, s); err != nil {
			return s, fmt.Errorf("delete %s: %w", s.Name, err)
		}
		return s, nil
	})
	if err != nil {
		return "", err
	}
	relabelled, err := dep.forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		got, err := svc.Cloud.Relabel(ctx, s, s.Role)
		if err != nil {
			return s, fmt.Errorf("relabel %s to %s: %w", s.Name, s.Role, err)
		}
		return got, nil
	})
	if _, uerr := dep.setNext(d, relabelled); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", err
	}
	detail := "next → current"
	if len(d.Old) > 0 {
		detail = "deleted " + serverNames(d.Old) + " · " + detail
	}
	return detail, nil
}
