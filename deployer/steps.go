package deployer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// abortedError ends a deployment as aborted (a person, or the approval deadline).
type abortedError struct{ decision Decision }

func (e *abortedError) Error() string { return "aborted by " + e.decision.By }

// rolledBackError ends a deployment whose rollback has been carried out.
type rolledBackError struct{ text string }

func (e *rolledBackError) Error() string { return e.text }

// stuckError is a failure after which traffic could not be put back on the
// old set: the next set is kept and the lock stays held for a person to look.
type stuckError struct{ err error }

func (e *stuckError) Error() string { return e.err.Error() }
func (e *stuckError) Unwrap() error { return e.err }

type stepFunc func(ctx context.Context, svc *Service, d *Deployment, r *run) (detail string, err error)

func (p *Deployer) stepFunc(name StepName) stepFunc {
	switch name {
	case StepPlan:
		return p.plan
	case StepCreate:
		return p.create
	case StepWaitRunning:
		return p.waitRunning
	case StepProvision:
		return p.provision
	case StepCheckNext:
		return p.checkNext
	case StepApproval:
		return p.approvalGate
	case StepSwitch:
		return p.switchTraffic
	case StepCheckLive:
		return p.checkLive
	case StepRollbackWindow:
		return p.rollbackWindow
	case StepRetire:
		return p.retire
	}
	return func(context.Context, *Service, *Deployment, *run) (string, error) { return "", nil } // lock: taken by Deploy
}

func (s *Service) stepTimeout(name StepName) time.Duration {
	switch name {
	case StepCreate:
		return s.Timeouts.Create
	case StepWaitRunning:
		return s.Timeouts.WaitRunning
	case StepProvision:
		return s.Timeouts.Provision
	case StepCheckNext, StepCheckLive:
		return s.Timeouts.Check
	case StepSwitch:
		return s.Timeouts.Switch
	case StepRetire:
		return s.Timeouts.Retire
	}
	return 0 // the gate and the window have their own deadlines
}

// execute drives deployment id from its current step to the end. It returns
// when the deployment is final, or when ctx ends (shutdown): the step it was
// on stays "running" and is re-run, idempotently, on the next Start.
func (p *Deployer) execute(ctx context.Context, svc *Service, id uint64, r *run) {
	stop := false
	for {
		d, err := p.store.Deployment(id)
		if err != nil {
			p.log.Error("cannot read deployment; stopping its pipeline", "deploy", id, "err", err)
			return
		}
		switch {
		case d.Phase.Final():
			return
		case d.Approval != nil && d.Approval.Kind == DecisionAbort:
			p.finishAborted(ctx, svc, d)
			return
		case failedStep(d) != "":
			p.finishFailed(ctx, svc, d, nil)
			return
		case stop || ctx.Err() != nil:
			return
		}
		name := d.CurrentStep()
		if name == "" {
			p.log.Error("deployment has no step left but is not final", "deploy", id)
			return
		}
		stop = !p.runStep(ctx, svc, id, name, r)
	}
}

func failedStep(d Deployment) StepName {
	for _, s := range d.Steps {
		if s.Status == StatusFailed {
			return s.Name
		}
	}
	return ""
}

// runStep runs one step with its state persisted before and after. It
// reports whether the pipeline should go on.
func (p *Deployer) runStep(ctx context.Context, svc *Service, id uint64, name StepName, r *run) bool {
	d, err := p.update(id, func(d *Deployment) {
		st := d.Step(name)
		if st.Status != StatusRunning {
			st.Started = p.clock.Now()
		}
		st.Status = StatusRunning
		st.Attempts++
	})
	if err != nil {
		p.log.Error("cannot record step start", "deploy", id, "step", name, "err", err)
		return false
	}
	p.log.Info("step started", "deploy", id, "service", svc.Name, "step", name)
	p.emit(ctx, EventStep, d, name, "")

	stepCtx, cancel := ctx, context.CancelFunc(func() {})
	if t := svc.stepTimeout(name); t > 0 {
		stepCtx, cancel = context.WithTimeout(ctx, t)
	}
	detail, err := p.stepFunc(name)(stepCtx, svc, &d, r)
	timedOut := stepCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()

	var aborted *abortedError
	var rolled *rolledBackError
	switch {
	case errors.As(err, &rolled):
		// Recorded even during shutdown: the rollback has already happened.
		p.finishRolledBack(context.WithoutCancel(ctx), svc, id, rolled.text)
		return false
	case ctx.Err() != nil:
		return false // shutdown or abort: the step is re-run or cleaned up later
	case err == nil:
		return p.completeStep(ctx, svc, id, name, StatusDone, detail)
	case errors.As(err, &aborted):
		if _, uerr := p.update(id, func(d *Deployment) { d.Step(name).Detail = "aborted by " + aborted.decision.By }); uerr != nil {
			p.log.Error("cannot record abort", "deploy", id, "err", uerr)
		}
		return true // execute sees the persisted abort decision and cleans up
	}
	if timedOut {
		err = fmt.Errorf("%s did not finish within %s: %w", name, svc.stepTimeout(name), err)
	}
	p.fail(ctx, svc, id, name, err)
	return false
}

func (p *Deployer) completeStep(ctx context.Context, svc *Service, id uint64, name StepName, status StepStatus, detail string) bool {
	mark := func(d *Deployment) error {
		st := d.Step(name)
		st.Status, st.Finished, st.Detail = status, p.clock.Now(), detail
		d.Updated = st.Finished
		return nil
	}
	var d Deployment
	var err error
	if name == StepRetire {
		cur, rerr := p.store.Deployment(id)
		if rerr != nil {
			p.log.Error("cannot read deployment", "deploy", id, "err", rerr)
			return false
		}
		live := &ServiceState{Service: svc.Name, Image: cur.ImageNew, Servers: cur.Next, DeployID: id, Updated: p.clock.Now()}
		d, err = p.store.FinishDeployment(id, func(d *Deployment) error {
			_ = mark(d)
			d.Phase, d.Finished = PhaseSucceeded, d.Updated
			return nil
		}, live)
	} else {
		d, err = p.store.UpdateDeployment(id, mark)
	}
	if err != nil {
		p.log.Error("cannot record step end", "deploy", id, "step", name, "err", err)
		return false
	}
	p.log.Info("step finished", "deploy", id, "service", svc.Name, "step", name, "status", status,
		"duration", d.Step(name).Duration(), "detail", detail)
	p.emit(ctx, EventStep, d, name, "")
	if d.Phase.Final() {
		p.setPhase(id, d.Phase)
		p.emit(ctx, EventFinished, d, name, summary(d, p.clock.Now()))
		p.audit(d.Requester, "deploy finished", d.Service, id, string(d.Phase))
	}
	return !d.Phase.Final()
}

// summary is the one line posted when a deployment ends.
func summary(d Deployment, now time.Time) string {
	took := d.Duration(now).Round(100 * time.Millisecond)
	switch d.Phase {
	case PhaseSucceeded:
		return fmt.Sprintf("Deploy #%d of %s succeeded in %s: %s serves %s (%s).", d.ID, d.Service, took, d.Service, d.ImageNew, serverNames(d.Next))
	case PhaseRolledBack:
		return fmt.Sprintf("Deploy #%d of %s was rolled back after %s: %s serves %s (%s) again.", d.ID, d.Service, took, d.Service, d.ImageOld, serverNames(d.Old))
	case PhaseAborted:
		by := ""
		if d.Approval != nil {
			by = " by " + d.Approval.By
		}
		return fmt.Sprintf("Deploy #%d of %s was aborted%s after %s; nothing was switched.", d.ID, d.Service, by, took)
	}
	return fmt.Sprintf("Deploy #%d of %s failed after %s: %s", d.ID, d.Service, took, d.Error)
}

// fail records a step's failure, then cleans up and releases the lock.
func (p *Deployer) fail(ctx context.Context, svc *Service, id uint64, name StepName, cause error) {
	msg := cause.Error()
	d, err := p.update(id, func(d *Deployment) {
		st := d.Step(name)
		st.Status, st.Finished, st.Detail = StatusFailed, p.clock.Now(), msg
		d.Error = fmt.Sprintf("%s failed: %s", name, msg)
	})
	if err != nil {
		p.log.Error("cannot record failure", "deploy", id, "err", err)
		return
	}
	p.log.Warn("step failed", "deploy", id, "service", svc.Name, "step", name, "err", cause)
	p.emit(ctx, EventStep, d, name, "")
	p.emit(ctx, EventProblem, d, name, fmt.Sprintf("Deploy #%d failed at step %s: %s", id, name, msg))
	p.finishFailed(ctx, svc, d, cause)
}

// finishFailed deletes the next set (unless traffic may be on it) and ends
// the deployment as failed. It is also what a restart does with a
// deployment whose failure was recorded but not yet cleaned up.
func (p *Deployer) finishFailed(ctx context.Context, svc *Service, d Deployment, cause error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
	defer cancel()
	var stuck *stuckError
	failed := failedStep(d)
	var live *ServiceState
	keepLock := false
	note := ""
	switch {
	case errors.As(cause, &stuck):
		keepLock = true
		note = fmt.Sprintf("The next set (%s) is kept and %s stays locked: check traffic by hand, then /deploy unlock %s --force.", serverNames(d.Next), svc.Name, svc.Name)
	case failed == StepRetire:
		live = &ServiceState{Service: svc.Name, Image: d.ImageNew, Servers: d.Next, DeployID: d.ID, Updated: p.clock.Now()}
		note = "Traffic is on the new set; leftover old servers will be reported by the reconciler."
	default:
		if left := p.deleteNext(cctx, svc, d); left != "" {
			note = left
		}
	}
	end := func(x *Deployment) error {
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseFailed, p.clock.Now(), p.clock.Now()
		if note != "" && !strings.Contains(x.Error, note) {
			x.Error += " " + note
		}
		return nil
	}
	var err error
	if keepLock {
		d, err = p.store.UpdateDeployment(d.ID, end)
	} else {
		d, err = p.store.FinishDeployment(d.ID, end, live)
	}
	if err != nil {
		p.log.Error("cannot record failed deployment", "deploy", d.ID, "err", err)
		return
	}
	p.setPhase(d.ID, d.Phase)
	p.emit(ctx, EventFinished, d, failed, summary(d, p.clock.Now()))
	p.audit(d.Requester, "deploy finished", d.Service, d.ID, "failed: "+d.Error)
}

// finishAborted deletes the next set and ends the deployment as aborted.
func (p *Deployer) finishAborted(ctx context.Context, svc *Service, d Deployment) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
	defer cancel()
	note := p.deleteNext(cctx, svc, d)
	d, err := p.store.FinishDeployment(d.ID, func(x *Deployment) error {
		if st := x.Step(x.CurrentStep()); st != nil && st.Status == StatusRunning {
			st.Status, st.Finished = StatusFailed, p.clock.Now()
			if st.Detail == "" {
				st.Detail = "aborted by " + x.Approval.By
			}
		}
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseAborted, p.clock.Now(), p.clock.Now()
		x.Error = fmt.Sprintf("aborted by %s", x.Approval.By)
		if x.Approval.Reason != "" {
			x.Error += ": " + x.Approval.Reason
		}
		if note != "" {
			x.Error += ". " + note
		}
		return nil
	}, nil)
	if err != nil {
		p.log.Error("cannot record aborted deployment", "deploy", d.ID, "err", err)
		return
	}
	p.setPhase(d.ID, d.Phase)
	p.emit(context.WithoutCancel(ctx), EventStep, d, "", "")
	p.emit(context.WithoutCancel(ctx), EventFinished, d, "", summary(d, p.clock.Now()))
}

func (p *Deployer) finishRolledBack(ctx context.Context, svc *Service, id uint64, text string) {
	d, err := p.store.FinishDeployment(id, func(x *Deployment) error {
		st := x.Step(StepRollbackWindow)
		st.Status, st.Finished, st.Detail = StatusDone, p.clock.Now(), text
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseRolledBack, p.clock.Now(), p.clock.Now()
		return nil
	}, nil)
	if err != nil {
		p.log.Error("cannot record rollback", "deploy", id, "err", err)
		return
	}
	p.setPhase(id, d.Phase)
	p.emit(ctx, EventStep, d, StepRollbackWindow, "")
	p.emit(ctx, EventFinished, d, StepRollbackWindow, summary(d, p.clock.Now()))
	p.audit(d.Rollback.By, "deploy finished", d.Service, id, "rolled back")
}

func skipPending(d *Deployment) {
	for i := range d.Steps {
		if d.Steps[i].Status == StatusPending {
			d.Steps[i].Status = StatusSkipped
		}
	}
}

// deleteNext deletes every server deploy d created: those it recorded and
// those the cloud tags with it (a crash may have come between the two).
// It returns a note for the chat when some could not be deleted.
func (p *Deployer) deleteNext(ctx context.Context, svc *Service, d Deployment) string {
	servers := slices.Clone(d.Next)
	if tagged, err := svc.Cloud.ListByTag(ctx, DeployTag(d.ID)); err == nil {
		for _, t := range tagged {
			if !slices.ContainsFunc(servers, func(s Server) bool { return s.ID == t.ID && t.ID != "" }) {
				servers = append(servers, t)
			}
		}
	} else {
		p.log.Warn("cannot list servers of deploy", "deploy", d.ID, "err", err)
	}
	servers = slices.DeleteFunc(servers, func(s Server) bool { return s.ID == "" })
	if len(servers) == 0 {
		return ""
	}
	_, err := forEach(ctx, servers, func(ctx context.Context, s Server) (Server, error) {
		if err := svc.Cloud.Delete(ctx, s); err != nil {
			return s, fmt.Errorf("delete %s: %w", s.Name, err)
		}
		return s, nil
	})
	if err != nil {
		p.log.Error("cleanup left servers behind", "deploy", d.ID, "err", err)
		return fmt.Sprintf("Could not delete every server of the next set (%v); the reconciler will report them.", err)
	}
	p.log.Info("deleted next set", "deploy", d.ID, "servers", serverNames(servers))
	return ""
}

// forEach runs fn on every server in parallel and returns the results in
// order, with every error joined.
func forEach(ctx context.Context, servers []Server, fn func(context.Context, Server) (Server, error)) ([]Server, error) {
	out := make([]Server, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { out[i], errs[i] = fn(ctx, s) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// planSet resolves the image and names the next set of deploy id (0 for a
// dry run, whose servers are named by role).
func (p *Deployer) planSet(ctx context.Context, svc *Service, id uint64, opts Options) (ServiceState, Image, []Server, string, error) {
	live, err := p.store.Service(svc.Name)
	if err != nil {
		return live, Image{}, nil, "", fmt.Errorf("read the live set: %w", err)
	}
	var image Image
	if opts.Image != "" {
		image, err = p.findImage(ctx, svc, opts.Image)
	} else {
		image, err = p.newestGolden(ctx, svc)
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
func (p *Deployer) plan(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	live, image, next, detail, err := p.planSet(ctx, svc, d.ID, d.Options)
	if err != nil {
		return "", err
	}
	zones, zonesLine, err := p.planZones(ctx, svc, live, d.Options)
	if err != nil {
		return "", err
	}
	if zonesLine != "" {
		detail += " · " + zonesLine
	}
	detail += imageZones(image)
	*d, err = p.update(d.ID, func(x *Deployment) {
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
func (p *Deployer) create(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	tagged, err := svc.Cloud.ListByTag(ctx, DeployTag(d.ID))
	if err != nil {
		return "", fmt.Errorf("list servers of deploy #%d: %w", d.ID, err)
	}
	created, err := forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
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
	if _, uerr := p.setNext(d, created); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("created %s", serverNames(created)), nil
}

// setNext records the servers that have a cloud ID, keeping planned ones in
// their slots.
func (p *Deployer) setNext(d *Deployment, servers []Server) (Deployment, error) {
	var err error
	*d, err = p.update(d.ID, func(x *Deployment) {
		for i, s := range servers {
			if s.ID != "" && i < len(x.Next) {
				x.Next[i] = s
			}
		}
	})
	return *d, err
}

func (p *Deployer) waitRunning(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	running, err := forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		got, err := svc.Cloud.WaitRunning(ctx, s)
		if err != nil {
			return s, fmt.Errorf("%s did not start: %w", s.Name, err)
		}
		return got, nil
	})
	if _, uerr := p.setNext(d, running); uerr != nil {
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

func (p *Deployer) provision(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	_, err := forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
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

func (p *Deployer) checkNext(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	spec := svc.Check
	var notes []string
	if len(d.Old) > 0 {
		old := ownTargets(d.Old[:1])[0]
		serials, err := svc.Checker.Serials(ctx, old, spec.Zones, spec.Timeout)
		if err != nil {
			notes = append(notes, fmt.Sprintf("live serial unknown (%v); serial not compared", err))
		} else {
			spec.MinSerial = serials
		}
	}
	report := svc.Checker.Check(ctx, ownTargets(d.Next), spec)
	checks := append([]string{report.Summary}, notes...)
	checks = append(checks, report.Problems...)
	if _, err := p.update(d.ID, func(x *Deployment) { x.Checks = checks }); err != nil {
		return "", err
	}
	if !report.OK {
		return "", fmt.Errorf("the next set failed its checks: %s", strings.Join(report.Problems, "; "))
	}
	detail := strings.Join(append([]string{report.Summary}, notes...), " · ")
	if svc.Compare == nil || len(d.Old) == 0 {
		return detail, nil
	}
	diffs, err := svc.Compare.CompareZones(ctx, CheckTarget{Name: d.Old[0].Name, Addr: d.Old[0].Addr}, ownTargets(d.Next), spec.Zones)
	lines, limitErr := judgeChanges(svc.Limits, d.Options.AllowLargeChange, diffs)
	if _, uerr := p.update(d.ID, func(x *Deployment) {
		x.Diffs = diffs
		x.Checks = append(x.Checks, lines...)
	}); uerr != nil {
		return "", uerr
	}
	if err != nil {
		return "", fmt.Errorf("zone comparison failed: %w", err)
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
	return lines, fmt.Errorf("the change is too large: %s; deploy with --allow-large-change if it is meant", strings.Join(over, "; "))
}

// approvalGate waits for Approve or Abort, or the deadline.
func (p *Deployer) approvalGate(ctx context.Context, svc *Service, d *Deployment, r *run) (string, error) {
	if d.Options.AutoApprove && d.Approval == nil {
		var err error
		*d, err = p.store.UpdateDeployment(d.ID, func(x *Deployment) error {
			if x.Approval == nil {
				x.Approval = &Decision{Kind: DecisionApprove, By: x.Requester, At: p.clock.Now(), Reason: "--auto-approve"}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	if d.Approval == nil {
		var err error
		*d, err = p.update(d.ID, func(x *Deployment) {
			x.Phase = PhaseAwaitingApproval
			if x.ApprovalDeadline.IsZero() {
				x.ApprovalDeadline = p.clock.Now().Add(svc.ApprovalTimeout)
			}
		})
		if err != nil {
			return "", err
		}
		p.waitingPhase(d.ID, PhaseAwaitingApproval)
		p.emit(ctx, EventApproval, *d, StepApproval, "")
	}
	for d.Approval == nil {
		select {
		case <-r.wake:
		case <-p.clock.After(d.ApprovalDeadline.Sub(p.clock.Now())):
			p.deadlineDecision(svc, d)
		case <-ctx.Done():
			return "", ctx.Err()
		}
		fresh, err := p.store.Deployment(d.ID)
		if err != nil {
			return "", err
		}
		*d = fresh
	}
	dec := *d.Approval
	if dec.Kind == DecisionAbort {
		return "", &abortedError{decision: dec}
	}
	if d.Phase != PhaseRunning {
		var err error
		*d, err = p.update(d.ID, func(x *Deployment) { x.Phase = PhaseRunning })
		if err != nil {
			return "", err
		}
	}
	p.setPhase(d.ID, PhaseRunning)
	if dec.Reason == "--auto-approve" {
		return "auto-approved (--auto-approve)", nil
	}
	text := fmt.Sprintf("Approved by %s", dec.By)
	if dec.By == "deadline" {
		text = fmt.Sprintf("Promoted automatically: no decision within %s", svc.ApprovalTimeout)
	}
	p.emit(ctx, EventDecision, *d, StepApproval, text)
	return text, nil
}

// deadlineDecision decides at the approval deadline, unless a person got there first.
func (p *Deployer) deadlineDecision(svc *Service, d *Deployment) {
	_, err := p.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Approval != nil || p.clock.Now().Before(x.ApprovalDeadline) {
			return nil
		}
		kind, reason := DecisionAbort, fmt.Sprintf("no approval within %s", svc.ApprovalTimeout)
		if svc.AutoPromote {
			kind, reason = DecisionApprove, fmt.Sprintf("no decision within %s; auto-promote is on", svc.ApprovalTimeout)
		}
		x.Approval = &Decision{Kind: kind, By: "deadline", At: p.clock.Now(), Reason: reason}
		x.Phase = PhaseRunning
		return nil
	})
	if err != nil {
		p.log.Error("cannot record deadline decision", "deploy", d.ID, "err", err)
	}
}

// switchBack puts traffic back on the old set. It runs even while
// greenlight shuts down, bounded by the switch timeout.
func (p *Deployer) switchBack(ctx context.Context, svc *Service, d *Deployment) error {
	if len(d.Old) == 0 {
		return errors.New("there is no old set to switch back to")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Switch)
	defer cancel()
	if err := svc.Switch.Accept(cctx, d.Old); err != nil {
		return fmt.Errorf("switch back to %s: %w", serverNames(d.Old), err)
	}
	if err := svc.Switch.Drain(cctx, d.Next); err != nil {
		return fmt.Errorf("drain %s: %w", serverNames(d.Next), err)
	}
	return nil
}

func (p *Deployer) switchTraffic(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	if err := svc.Switch.Accept(ctx, d.Next); err != nil {
		return "", p.switchedBack(ctx, svc, d, fmt.Errorf("send traffic to %s: %w", serverNames(d.Next), err))
	}
	detail := "traffic → " + serverNames(d.Next)
	if len(d.Old) > 0 {
		if err := svc.Switch.Drain(ctx, d.Old); err != nil {
			return "", p.switchedBack(ctx, svc, d, fmt.Errorf("drain %s: %w", serverNames(d.Old), err))
		}
		detail += " · drained " + serverNames(d.Old)
	}
	return detail, nil
}

// switchedBack switches back after a failure and says so; if even that
// fails, the error is a stuckError.
func (p *Deployer) switchedBack(ctx context.Context, svc *Service, d *Deployment, cause error) error {
	if err := p.switchBack(ctx, svc, d); err != nil {
		return &stuckError{err: fmt.Errorf("%w; switching back failed too: %v", cause, err)}
	}
	text := fmt.Sprintf("Switched traffic back to %s: %v", serverNames(d.Old), cause)
	p.emit(ctx, EventDecision, *d, d.CurrentStep(), text)
	return fmt.Errorf("%w; traffic was switched back to %s", cause, serverNames(d.Old))
}

func (p *Deployer) checkLive(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	report := svc.Checker.Check(ctx, endpointTargets(svc.Switch, d.Next), svc.Check)
	if ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
		return "", ctx.Err()
	}
	if !report.OK {
		cause := fmt.Errorf("the check through the load balancer failed: %s", strings.Join(report.Problems, "; "))
		if len(d.Old) == 0 {
			return "", &stuckError{err: fmt.Errorf("%w; there is no old set to switch back to", cause)}
		}
		return "", p.switchedBack(ctx, svc, d, cause)
	}
	return report.Summary + " · answered by " + strings.Join(report.Answered, ", "), nil
}

// rollbackWindow keeps the old set until the window closes or someone rolls back.
func (p *Deployer) rollbackWindow(ctx context.Context, svc *Service, d *Deployment, r *run) (string, error) {
	if len(d.Old) == 0 {
		return "no previous set to keep", nil
	}
	if d.Phase != PhaseRollbackWindow {
		var err error
		*d, err = p.update(d.ID, func(x *Deployment) {
			x.Phase = PhaseRollbackWindow
			if x.RollbackDeadline.IsZero() {
				x.RollbackDeadline = p.clock.Now().Add(svc.RollbackWindow)
			}
		})
		if err != nil {
			return "", err
		}
	}
	p.waitingPhase(d.ID, PhaseRollbackWindow)
	p.emit(ctx, EventRollback, *d, StepRollbackWindow, fmt.Sprintf("%s is live on %s. The old set (%s) is kept until %s: /deploy rollback %s switches back.",
		svc.Name, serverNames(d.Next), serverNames(d.Old), d.RollbackDeadline.UTC().Format("15:04:05 MST"), svc.Name))
	for {
		if d.Rollback != nil {
			text, err := p.rollBack(ctx, svc, d)
			if err == nil {
				return "", &rolledBackError{text: text}
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			p.emit(ctx, EventProblem, *d, StepRollbackWindow, fmt.Sprintf("Rollback of deploy #%d refused: %v. %s stays on the new set.", d.ID, err, svc.Name))
			*d, err = p.update(d.ID, func(x *Deployment) { x.Rollback = nil })
			if err != nil {
				return "", err
			}
			p.setPhase(d.ID, PhaseRollbackWindow)
		}
		select {
		case <-r.wake:
		case <-p.clock.After(d.RollbackDeadline.Sub(p.clock.Now())):
			closed, err := p.closeWindow(d.ID)
			if err != nil {
				return "", err
			}
			if closed {
				p.setPhase(d.ID, PhaseRunning)
				return fmt.Sprintf("closed at %s with no rollback", p.clock.Now().UTC().Format("15:04:05 MST")), nil
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
		fresh, err := p.store.Deployment(d.ID)
		if err != nil {
			return "", err
		}
		*d = fresh
	}
}

// closeWindow ends the rollback window in one transaction, unless a
// rollback was requested first.
func (p *Deployer) closeWindow(id uint64) (bool, error) {
	closed := false
	_, err := p.store.UpdateDeployment(id, func(x *Deployment) error {
		if x.Rollback != nil || p.clock.Now().Before(x.RollbackDeadline) {
			return nil
		}
		x.Phase, closed = PhaseRunning, true
		return nil
	})
	return closed, err
}

// rollBack checks that the old set still answers, switches back to it,
// proves clients reach it, and deletes the next set.
func (p *Deployer) rollBack(ctx context.Context, svc *Service, d *Deployment) (string, error) {
	spec := svc.Check
	spec.Passes, spec.MaxRounds = 1, 2
	report := svc.Checker.Check(ctx, ownTargets(d.Old), spec)
	if !report.OK {
		return "", fmt.Errorf("the old set no longer answers: %s", strings.Join(report.Problems, "; "))
	}
	if err := p.switchBack(ctx, svc, d); err != nil {
		return "", err
	}
	live := svc.Checker.Check(ctx, endpointTargets(svc.Switch, d.Old), spec)
	text := fmt.Sprintf("Rolled back by %s: traffic is on %s again", d.Rollback.By, serverNames(d.Old))
	if !live.OK {
		text += fmt.Sprintf(" (but the check through the load balancer says: %s)", strings.Join(live.Problems, "; "))
	}
	p.emit(ctx, EventDecision, *d, StepRollbackWindow, text)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
	defer cancel()
	if note := p.deleteNext(cctx, svc, *d); note != "" {
		text += ". " + note
	}
	return text, nil
}

// retire deletes the old set and gives the next set the live labels.
func (p *Deployer) retire(ctx context.Context, svc *Service, d *Deployment, _ *run) (string, error) {
	_, err := forEach(ctx, d.Old, func(ctx context.Context, s Server) (Server, error) {
		if err := svc.Cloud.Delete(ctx, s); err != nil {
			return s, fmt.Errorf("delete %s: %w", s.Name, err)
		}
		return s, nil
	})
	if err != nil {
		return "", err
	}
	relabelled, err := forEach(ctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
		got, err := svc.Cloud.Relabel(ctx, s, s.Role)
		if err != nil {
			return s, fmt.Errorf("relabel %s to %s: %w", s.Name, s.Role, err)
		}
		return got, nil
	})
	if _, uerr := p.setNext(d, relabelled); uerr != nil {
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
