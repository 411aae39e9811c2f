package deployer

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// drainTries is how often moveTraffic asks the switch to drain the set it
// moved away from before it gives up.
const drainTries = 3

// moveTraffic sends d's clients to target's set and away from the other;
// it does nothing when they have settled there already.
// The intent is recorded before the switch is asked to change anything, and
// the outcome after, each in one transaction, so a crash anywhere in
// between leaves a record that says where traffic may be. The next set is
// only a target once it has passed check-next (or a person chose it with
// /deploy resolve).
func (dep *Deployer) moveTraffic(ctx context.Context, svc *Service, d *Deployment, target TrafficTarget) error {
	if d.Traffic.SettledOn(target) {
		// Already there. A rollback resumed after it moved traffic (and may
		// have begun deleting the next set) must not move it anywhere else.
		return nil
	}
	to, from := d.Next, d.Old
	if target == TrafficOld {
		to, from = d.Old, d.Next
	}
	if len(to) == 0 {
		return Errorf(CodeConflict, "there is no %s set to send traffic to", target)
	}
	if target == TrafficNext && d.Step(StepCheckNext).Status != StatusDone && d.Resolve == nil {
		return Errorf(CodeConflict, "the next set has not passed its checks")
	}
	drainFrom := len(from) > 0 && (target == TrafficNext || d.Traffic.NextTouched)
	var err error
	*d, err = dep.update(d.ID, func(x *Deployment) {
		x.Traffic.Target, x.Traffic.Settled, x.Traffic.Changed = target, false, dep.clock.Now()
		if target == TrafficNext {
			x.Traffic.NextTouched = true
		}
	})
	if err != nil {
		return err
	}
	if err := svc.Switch.Accept(ctx, to); err != nil {
		return fmt.Errorf("send traffic to %s: %w", serverNames(to), err)
	}
	if drainFrom {
		for try := 1; ; try++ {
			err = svc.Switch.Drain(ctx, from)
			if err == nil || try == drainTries || ctx.Err() != nil {
				break
			}
			dep.log.Warn("drain failed; trying again", "deploy", d.ID, "servers", serverNames(from), "try", try, "err", err)
		}
		if err != nil {
			return fmt.Errorf("drain %s: %w", serverNames(from), err)
		}
	}
	*d, err = dep.update(d.ID, func(x *Deployment) { x.Traffic.Settled, x.Traffic.Changed = true, dep.clock.Now() })
	return err
}

// serving is the set d's service should be answered by, from the recorded
// intent: the next set once traffic was sent to it, else the old set.
func serving(d Deployment, live []Server) []Server {
	switch d.Traffic.Target {
	case TrafficNext:
		return d.Next
	case TrafficOld:
		return d.Old
	}
	if len(d.Old) > 0 {
		return d.Old
	}
	return live
}

// assertTraffic points svc's switch at servers, retrying with backoff until
// it succeeds or ctx ends. The first failure is said in the chat.
func (dep *Deployer) assertTraffic(ctx context.Context, svc *Service, d Deployment, servers []Server) error {
	for try := 0; ; try++ {
		actx, cancel := context.WithTimeout(ctx, svc.Timeouts.Switch)
		err := svc.Switch.Accept(actx, servers)
		cancel()
		if err == nil {
			if try > 0 {
				dep.emit(ctx, EventInfo, d, "", fmt.Sprintf("%s's traffic is on %s again.", svc.Name, serverNames(servers)))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dep.log.Warn("cannot point traffic at the serving set; trying again", "service", svc.Name, "servers", serverNames(servers), "try", try+1, "err", err)
		if try == 0 {
			dep.emit(ctx, EventInfo, d, "", fmt.Sprintf("Could not point %s's traffic at %s at start-up; greenlight keeps trying. The switch said: %s",
				svc.Name, serverNames(servers), ErrorMessage(err)))
		}
		select {
		case <-dep.clock.After(backoff(try)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// assertOnce, in a pipeline resumed by Start, first points traffic where
// the deployment's record says it should be. A deploy started since does
// not need it.
func (dep *Deployer) assertOnce(ctx context.Context, svc *Service, id uint64) error {
	dep.mu.Lock()
	r := dep.runs[id]
	dep.mu.Unlock()
	if r == nil || !r.assert {
		return nil
	}
	d, err := dep.read(id)
	if err != nil {
		return err
	}
	if d.Phase.Final() || d.Phase == PhaseNeedsAttention {
		return nil
	}
	live, err := dep.store.Service(svc.Name)
	if err != nil {
		return &storeError{err}
	}
	if servers := serving(d, live.Servers); len(servers) > 0 {
		if err := dep.assertTraffic(ctx, svc, d, servers); err != nil {
			return nil // ctx ended: advance sees why
		}
	}
	r.assert = false
	dep.markReady(svc.Name)
	return nil
}

// markReady records that svc's traffic is where the store says it should
// be; a switch waits for it after a restart.
func (dep *Deployer) markReady(service string) {
	dep.mu.Lock()
	defer dep.mu.Unlock()
	if ch := dep.ready[service]; ch != nil {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

// WaitReady waits until service's traffic is where the store says it
// should be (Start points it there, retrying while the switch refuses).
func (dep *Deployer) WaitReady(ctx context.Context, service string) error {
	return dep.waitReady(ctx, service)
}

// waitReady waits until svc's traffic has been asserted since Start.
func (dep *Deployer) waitReady(ctx context.Context, service string) error {
	dep.mu.Lock()
	ch := dep.ready[service]
	dep.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Resolve ends a deploy that needs attention: to TrafficOld keeps the old
// set, TrafficNext the new one. The chosen set must answer; traffic is
// moved to it, the other set deleted and the lock released. If that fails
// the deploy needs attention again, and the failure is kept with it.
func (dep *Deployer) Resolve(ctx context.Context, service string, id uint64, user string, to TrafficTarget) (Deployment, error) {
	if to != TrafficOld && to != TrafficNext {
		return Deployment{}, Errorf(CodeInvalid, "resolve to old or new, not %q", to)
	}
	d, err := dep.resolve(service, id, PhaseNeedsAttention)
	if err != nil {
		return Deployment{}, err
	}
	svc, err := dep.Service(d.Service)
	if err != nil {
		return Deployment{}, err
	}
	kind := DecisionResolveOld
	if to == TrafficNext {
		kind = DecisionResolveNew
	}
	d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		switch {
		case x.Resolve != nil:
			return Errorf(CodeConflict, "deploy #%d is already being resolved by %s since %s", x.ID, x.Resolve.By, TimeOfDay(x.Resolve.At))
		case x.Phase != PhaseNeedsAttention:
			return Errorf(CodeConflict, "deploy #%d does not need attention (it is %s)", x.ID, x.Phase)
		case to == TrafficOld && len(x.Old) == 0:
			return Errorf(CodeInvalid, "deploy #%d has no old set to keep; resolve it with --to new", x.ID)
		case to == TrafficNext && len(x.Next) == 0:
			return Errorf(CodeInvalid, "deploy #%d has no new set to keep; resolve it with --to old", x.ID)
		}
		x.Resolve = &Decision{Kind: kind, By: user, At: dep.clock.Now()}
		x.Phase, x.Updated = PhaseRunning, dep.clock.Now()
		return nil
	})
	if err != nil {
		dep.audit(user, "refused resolve", service, id, err.Error())
		return Deployment{}, err
	}
	dep.audit(user, "resolve", d.Service, d.ID, "keep the "+string(to)+" set")
	keep := d.Old
	if to == TrafficNext {
		keep = d.Next
	}
	dep.emit(ctx, EventDecision, d, d.CurrentStep(), fmt.Sprintf("%s resolves deploy #%d: keeping %s; checking it answers.", user, d.ID, serverNames(keep)))
	dep.launch(svc, d, false)
	return d, nil
}

// finishResolve carries out a person's resolve decision; who chose which
// set, and what could not be deleted, is the deploy's Aftermath.
func (dep *Deployer) finishResolve(ctx context.Context, svc *Service, d Deployment) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Switch+svc.Timeouts.Retire)
	defer cancel()
	target, keep := TrafficOld, d.Old
	if d.Resolve.Kind == DecisionResolveNew {
		target, keep = TrafficNext, d.Next
	}
	spec := svc.Check
	spec.Passes, spec.MaxRounds = 1, 2
	if report := svc.Checker.Check(cctx, ownTargets(keep), spec); !report.OK {
		return dep.resolveFailed(ctx, svc, d, fmt.Sprintf("%s does not answer: %s", serverNames(keep), strings.Join(report.Problems, "; ")), nil)
	}
	if err := dep.moveTraffic(cctx, svc, &d, target); err != nil {
		if _, ok := errors.AsType[*storeError](err); ok {
			return err
		}
		return dep.resolveFailed(ctx, svc, d, ErrorMessage(err), err)
	}
	var live *ServiceState
	note := ""
	if target == TrafficOld {
		note = dep.deleteNext(cctx, svc, d)
	} else {
		if _, err := dep.forEach(cctx, d.Old, func(ctx context.Context, s Server) (Server, error) {
			return s, svc.Cloud.Delete(ctx, s)
		}); err != nil {
			dep.log.Error("resolve left servers of the old set behind", "deploy", d.ID, "service", svc.Name, "err", err)
			note = fmt.Sprintf("Could not delete every server of the old set (%s); the reconciler will report them.", ErrorMessage(err))
		}
		relabelled, err := dep.forEach(cctx, d.Next, func(ctx context.Context, s Server) (Server, error) {
			return svc.Cloud.Relabel(ctx, s, s.Role)
		})
		if err == nil {
			d.Next = relabelled
		}
		live = &ServiceState{Service: svc.Name, Image: d.ImageNew, Servers: cloneServers(d.Next), DeployID: d.ID, Updated: dep.clock.Now()}
	}
	by := d.Resolve.By
	d, err := dep.store.FinishDeployment(d.ID, func(x *Deployment) error {
		x.Updated, x.Finished = dep.clock.Now(), dep.clock.Now()
		skipPending(x)
		x.Aftermath = fmt.Sprintf("Resolved by %s: %s stays on %s.", by, x.Service, serverNames(keep))
		if note != "" {
			x.Aftermath += " " + note
		}
		if target == TrafficNext {
			x.Next = cloneServers(live.Servers)
			x.Phase = PhaseSucceeded
		} else {
			x.Phase = PhaseFailed
		}
		return nil
	}, live)
	if err != nil {
		return &storeError{err}
	}
	dep.ended(ctx, d, "")
	return nil
}

// resolveFailed puts a deploy whose resolve could not be carried out back
// in PhaseNeedsAttention, keeping what went wrong: why for people, and its
// cause (nil when there is none beyond why) logged here once.
func (dep *Deployer) resolveFailed(ctx context.Context, svc *Service, d Deployment, why string, cause error) error {
	attrs := []any{"deploy", d.ID, "service", svc.Name, "why", why}
	if cause != nil {
		attrs = append(attrs, "err", cause)
	}
	dep.log.Error("resolve failed; the deploy still needs attention", attrs...)
	attempt := fmt.Sprintf("%s chose the %s set at %s, but %s", d.Resolve.By, map[DecisionKind]string{DecisionResolveOld: "old", DecisionResolveNew: "new"}[d.Resolve.Kind], TimeOfDay(d.Resolve.At), why)
	d, err := dep.update(d.ID, func(x *Deployment) {
		x.Resolve = nil
		x.Phase = PhaseNeedsAttention
		if x.Attention == nil {
			x.Attention = &Attention{Since: dep.clock.Now(), Reason: x.Error}
		}
		x.Attention.Attempts = append(x.Attention.Attempts, attempt)
	})
	if err != nil {
		return err
	}
	dep.setPhase(d.ID, d.Phase)
	dep.emit(context.WithoutCancel(ctx), EventProblem, d, d.CurrentStep(), AttentionText(d))
	return nil
}
