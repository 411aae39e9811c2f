package deployer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// abortedError ends a deployment as aborted (a person, or the approval deadline).
type abortedError struct{ decision Decision }

func (e *abortedError) Error() string { return "aborted by " + e.decision.By }

// rolledBackError ends a deployment whose rollback has been carried out.
type rolledBackError struct{ text string }

func (e *rolledBackError) Error() string { return e.text }

// attentionError stops a deployment in PhaseNeedsAttention: greenlight
// cannot tell, or cannot bring, traffic to a known good set by itself.
type attentionError struct{ reason string }

func (e *attentionError) Error() string { return e.reason }

// storeError is a read or write of the store that failed. Nothing outside
// changed because of it, so the pipeline retries the step (every step is
// idempotent) instead of failing the deploy.
type storeError struct{ err error }

func (e *storeError) Error() string { return "store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// Retry limits of a pipeline.
const (
	// maxStepAttempts is how often a step may start without finishing
	// (crashes, restarts) before its deploy needs attention. The approval
	// gate and the rollback window wait for people and are not counted.
	maxStepAttempts = 5
	// maxStoreRetries is how many store errors in a row a pipeline waits
	// out before it asks for attention.
	maxStoreRetries = 8
	// maxBackoff bounds the wait between two tries of anything.
	maxBackoff = time.Minute
)

// backoff is the wait before try n (0-based): 1s, 2s, 4s … maxBackoff.
func backoff(n int) time.Duration {
	d := time.Second << min(n, 6)
	return min(d, maxBackoff)
}

// read returns deployment id; a failure is a storeError.
func (dep *Deployer) read(id uint64) (Deployment, error) {
	d, err := dep.store.Deployment(id)
	if err != nil {
		return d, &storeError{err}
	}
	return d, nil
}

// execute drives deployment id from its current step to the end. It returns
// when the deployment is final or needs attention, or when ctx ends
// (shutdown): the step it was on stays "running" and is re-run,
// idempotently, on the next Start. Store errors are waited out.
func (dep *Deployer) execute(ctx context.Context, svc *Service, id uint64, r *run) {
	storeFailures := 0
	for {
		err := dep.advance(ctx, svc, id, r)
		if err == nil {
			return
		}
		if _, ok := errors.AsType[*storeError](err); !ok {
			return
		}
		var ok bool
		if ctx, ok = dep.goOnAfter(ctx); !ok {
			return
		}
		storeFailures++
		dep.log.Error("store error; the pipeline tries again", "deploy", id, "tries", storeFailures, "err", err)
		if storeFailures == maxStoreRetries {
			// The store's error is in the log line above, not for the chat.
			if aerr := dep.needsAttention(ctx, svc, id, fmt.Sprintf("greenlight could not write its records %d times in a row", storeFailures)); aerr == nil {
				return
			}
		}
		dep.setPhase(id, PhaseRunning) // busy: the step is retried after the wait
		select {
		case <-dep.clock.After(backoff(storeFailures - 1)):
		case <-ctx.Done():
			if ctx, ok = dep.goOnAfter(ctx); !ok {
				return
			}
		}
	}
}

// goOnAfter decides whether a pipeline whose ctx may have ended goes on:
// an abort cancels the step it interrupts, not the cleanup still owed to
// it, which goes on under the Deployer's own context; a shutdown ends it.
func (dep *Deployer) goOnAfter(ctx context.Context) (context.Context, bool) {
	if ctx.Err() == nil {
		return ctx, true
	}
	dep.mu.Lock()
	base := dep.base
	dep.mu.Unlock()
	if !errors.Is(context.Cause(ctx), errAbortRequested) || base.Err() != nil {
		return ctx, false
	}
	return base, true
}

// advance runs steps until the deployment ends, waits for a person, or ctx
// ends (nil), or until the store fails (a storeError).
func (dep *Deployer) advance(ctx context.Context, svc *Service, id uint64, r *run) error {
	if err := dep.assertOnce(ctx, svc, id); err != nil {
		return err
	}
	for {
		d, err := dep.read(id)
		if err != nil {
			return err
		}
		switch {
		case d.Phase.Final() || d.Phase == PhaseNeedsAttention:
			dep.setPhase(id, d.Phase)
			return nil
		case d.Resolve != nil:
			return dep.finishResolve(ctx, svc, d)
		case d.Approval != nil && d.Approval.Kind == DecisionAbort:
			return dep.finishAborted(ctx, svc, d)
		case failedStep(d) != "":
			return dep.finishFailed(ctx, svc, d)
		case ctx.Err() != nil:
			return nil
		}
		name := d.CurrentStep()
		if name == "" {
			return dep.needsAttention(ctx, svc, id, "the deploy has no step left but did not end")
		}
		// Whether or not the step went on, the record says what comes next:
		// an abort cancels the step and is cleaned up on the next turn.
		if err := dep.runStep(ctx, svc, id, name, r); err != nil {
			return err
		}
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

// runStep runs one step with its state persisted before and after; what
// comes next is read from the record. An error is a storeError.
func (dep *Deployer) runStep(ctx context.Context, svc *Service, id uint64, name StepName, r *run) error {
	d, err := dep.update(id, func(d *Deployment) {
		st := d.Step(name)
		if st.Status != StatusRunning {
			st.Started = dep.clock.Now()
		}
		st.Status = StatusRunning
		st.Attempts++
	})
	if err != nil {
		return err
	}
	if st := d.Step(name); !waits(name) && st.Attempts > maxStepAttempts {
		return dep.needsAttention(ctx, svc, id, fmt.Sprintf("%s was started %d times without finishing", strings.ToLower(name.Title()), st.Attempts-1))
	}
	dep.log.Info("step started", "deploy", id, "service", svc.Name, "step", name)
	dep.emit(ctx, EventStep, d, name, "")

	stepCtx, cancel := ctx, context.CancelFunc(func() {})
	if t := svc.stepTimeout(name); t > 0 {
		stepCtx, cancel = context.WithTimeout(ctx, t)
	}
	detail, err := dep.callStep(stepCtx, svc, &d, name, r)
	timedOut := stepCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()

	switch {
	case err == nil && ctx.Err() == nil:
		return dep.completeStep(ctx, svc, id, name, detail)
	case errors.As(err, new(*rolledBackError)):
		// Recorded even during shutdown: the rollback has already happened.
		return dep.finishRolledBack(context.WithoutCancel(ctx), svc, id, err.(*rolledBackError).text)
	case errors.As(err, new(*attentionError)):
		return dep.needsAttention(ctx, svc, id, err.Error())
	case errors.As(err, new(*storeError)):
		return err
	case ctx.Err() != nil:
		return nil // shutdown or abort: the step is re-run or cleaned up later
	}
	if aborted, ok := errors.AsType[*abortedError](err); ok {
		_, uerr := dep.update(id, func(d *Deployment) { d.Step(name).Detail = "aborted by " + aborted.decision.By })
		return uerr // advance sees the persisted abort decision and cleans up
	}
	if timedOut {
		err = Wrapf(err, "%s did not finish within %s", strings.ToLower(name.Title()), svc.stepTimeout(name))
	}
	return dep.fail(ctx, svc, id, name, err)
}

// callStep runs a step's function; a panic fails the step, with the stack
// in the log, instead of ending greenlight.
func (dep *Deployer) callStep(ctx context.Context, svc *Service, d *Deployment, name StepName, r *run) (detail string, err error) {
	defer func() {
		if v := recover(); v != nil {
			dep.log.Error("step panicked", "deploy", d.ID, "service", svc.Name, "step", name, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("step %s panicked: %v", name, v) // a cause: the chat reads InternalMessage
		}
	}()
	if do := stepOf(name).do; do != nil {
		return do(dep, ctx, svc, d, r)
	}
	return "", nil // the lock: taken by Deploy
}

// completeStep records a step's success; retire also records the next set
// as live and releases the lock, in the same transaction.
func (dep *Deployer) completeStep(ctx context.Context, svc *Service, id uint64, name StepName, detail string) error {
	mark := func(d *Deployment) {
		st := d.Step(name)
		st.Status, st.Finished, st.Detail = StatusDone, dep.clock.Now(), detail
		d.Updated = st.Finished
	}
	var d Deployment
	var err error
	if name == StepRetire {
		live := &ServiceState{}
		d, err = dep.store.FinishDeployment(id, func(d *Deployment) error {
			mark(d)
			d.Phase, d.Finished = PhaseSucceeded, d.Updated
			*live = ServiceState{Service: svc.Name, Image: d.ImageNew, Servers: cloneServers(d.Next), DeployID: id, Updated: d.Updated}
			return nil
		}, live)
	} else {
		d, err = dep.store.UpdateDeployment(id, func(d *Deployment) error { mark(d); return nil })
	}
	if err != nil {
		return &storeError{err}
	}
	dep.log.Info("step finished", "deploy", id, "service", svc.Name, "step", name,
		"duration", d.Step(name).Duration(), "detail", detail)
	dep.emit(ctx, EventStep, d, name, "")
	if d.Phase.Final() {
		dep.ended(ctx, d, name)
	}
	return nil
}

// ended tells everyone a deployment reached its final phase.
func (dep *Deployer) ended(ctx context.Context, d Deployment, step StepName) {
	dep.setPhase(d.ID, d.Phase)
	dep.emit(context.WithoutCancel(ctx), EventFinished, d, step, summary(d, dep.clock.Now()))
	by := d.Requester
	if d.Phase == PhaseRolledBack && d.Rollback != nil {
		by = d.Rollback.By
	}
	detail := string(d.Phase)
	if d.Phase == PhaseFailed {
		detail += ": " + d.Outcome()
	}
	dep.audit(by, "deploy finished", d.Service, d.ID, detail)
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
	return fmt.Sprintf("Deploy #%d of %s failed after %s: %s", d.ID, d.Service, took, d.Outcome())
}

// fail records a step's failure, then puts traffic back and cleans up. The
// record and the chat get cause's message; the log, once, cause itself.
func (dep *Deployer) fail(ctx context.Context, svc *Service, id uint64, name StepName, cause error) error {
	msg := ErrorMessage(cause)
	d, err := dep.update(id, func(d *Deployment) {
		st := d.Step(name)
		st.Status, st.Finished, st.Detail = StatusFailed, dep.clock.Now(), msg
		d.Error = fmt.Sprintf("%s failed: %s", name.Title(), msg)
	})
	if err != nil {
		return err
	}
	dep.log.Warn("step failed", "deploy", id, "service", svc.Name, "step", name, "err", cause)
	dep.emit(ctx, EventStep, d, name, "")
	dep.emit(ctx, EventProblem, d, name, fmt.Sprintf("Deploy #%d failed at step %s: %s", id, name, msg))
	return dep.finishFailed(ctx, svc, d)
}

// finishFailed ends a deployment whose step failed, and records what was
// done about it as its Aftermath. It is also what a restart does with a
// failure recorded but not yet cleaned up, so it decides from the
// persisted traffic intent alone:
//   - retire failed with traffic on the next set: the next set is live;
//   - traffic never left the old set, or settled back on it: the next set
//     is deleted and the lock released;
//   - otherwise traffic is moved back to the old set first. When that is
//     impossible, or the failure came after the switch succeeded and no
//     check says the next set is bad (the rollback window), the deploy
//     needs attention: nothing is deleted.
func (dep *Deployer) finishFailed(ctx context.Context, svc *Service, d Deployment) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
	defer cancel()
	failed := failedStep(d)
	var live *ServiceState
	var aftermath string
	switch {
	case failed == StepRetire && d.Traffic.SettledOn(TrafficNext):
		live = &ServiceState{Service: svc.Name, Image: d.ImageNew, Servers: cloneServers(d.Next), DeployID: d.ID, Updated: dep.clock.Now()}
		aftermath = "Traffic is on the new set; leftover old servers will be reported by the reconciler."
	case failed == StepRetire, failed == StepRollbackWindow && !d.Traffic.SettledOn(TrafficOld):
		return dep.needsAttention(ctx, svc, d.ID, fmt.Sprintf("%s; traffic is on the new set (%s) and the old set (%s) is kept", d.Error, serverNames(d.Next), serverNames(d.Old)))
	default:
		if !d.Traffic.SettledOn(TrafficOld) {
			if err := dep.moveTraffic(cctx, svc, &d, TrafficOld); err != nil {
				if _, ok := errors.AsType[*storeError](err); ok {
					return err
				}
				dep.log.Error("switching traffic back failed", "deploy", d.ID, "service", svc.Name, "err", err)
				return dep.needsAttention(ctx, svc, d.ID, fmt.Sprintf("%s; switching traffic back to %s failed too: %s", d.Error, serverNames(d.Old), ErrorMessage(err)))
			}
			dep.emit(ctx, EventDecision, d, failed, fmt.Sprintf("Switched traffic back to %s.", serverNames(d.Old)))
		}
		where := fmt.Sprintf("Traffic never moved from %s", orNone(serverNames(d.Old)))
		if d.Traffic.NextTouched {
			where = fmt.Sprintf("Traffic is back on %s", orNone(serverNames(d.Old)))
		}
		aftermath = dep.deleteNextSaying(cctx, svc, d, where, "; the lock is released.")
	}
	d, err := dep.store.FinishDeployment(d.ID, func(x *Deployment) error {
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseFailed, dep.clock.Now(), dep.clock.Now()
		x.Aftermath = aftermath
		return nil
	}, live)
	if err != nil {
		return &storeError{err}
	}
	dep.ended(ctx, d, failed)
	return nil
}

// deleteNextSaying deletes d's next set and says, after where (where
// traffic is), what became of it and of the lock; nothing ends the sentence
// when there was no next set.
func (dep *Deployer) deleteNextSaying(ctx context.Context, svc *Service, d Deployment, where, nothing string) string {
	switch left := dep.deleteNext(ctx, svc, d); {
	case left != "":
		return where + ". " + left + " The lock is released."
	case len(d.Next) > 0:
		return fmt.Sprintf("%s; the next set (%s) was deleted and the lock released.", where, serverNames(d.Next))
	}
	return where + nothing
}

// finishAborted deletes the next set and ends the deployment as aborted,
// with who aborted it as its Error and what was done as its Aftermath.
// Abort is refused once approved, so traffic never reached the next set;
// should it have, the next set is kept and the deploy needs attention.
func (dep *Deployer) finishAborted(ctx context.Context, svc *Service, d Deployment) error {
	if !d.Traffic.SettledOn(TrafficOld) {
		return dep.needsAttention(ctx, svc, d.ID, "the deploy was aborted after traffic had moved")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
	defer cancel()
	stayed := "Traffic stayed on " + orNone(serverNames(d.Old))
	aftermath := dep.deleteNextSaying(cctx, svc, d, stayed, "; nothing had been built, and the lock is released.")
	d, err := dep.store.FinishDeployment(d.ID, func(x *Deployment) error {
		if st := x.Step(x.CurrentStep()); st != nil && st.Status == StatusRunning {
			st.Status, st.Finished = StatusFailed, dep.clock.Now()
			if st.Detail == "" {
				st.Detail = "aborted by " + x.Approval.By
			}
		}
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseAborted, dep.clock.Now(), dep.clock.Now()
		x.Error = fmt.Sprintf("aborted by %s", x.Approval.By)
		if x.Approval.Reason != "" {
			x.Error += ": " + x.Approval.Reason
		}
		x.Aftermath = aftermath
		return nil
	}, nil)
	if err != nil {
		return &storeError{err}
	}
	dep.emit(context.WithoutCancel(ctx), EventStep, d, "", "")
	dep.ended(ctx, d, "")
	return nil
}

func (dep *Deployer) finishRolledBack(ctx context.Context, svc *Service, id uint64, text string) error {
	d, err := dep.store.FinishDeployment(id, func(x *Deployment) error {
		st := x.Step(StepRollbackWindow)
		st.Status, st.Finished, st.Detail = StatusDone, dep.clock.Now(), text
		skipPending(x)
		x.Phase, x.Finished, x.Updated = PhaseRolledBack, dep.clock.Now(), dep.clock.Now()
		return nil
	}, nil)
	if err != nil {
		return &storeError{err}
	}
	dep.emit(ctx, EventStep, d, StepRollbackWindow, "")
	dep.ended(ctx, d, StepRollbackWindow)
	return nil
}

// needsAttention stops deployment id where it is: both sets and the lock
// are kept, and people are told how to end it.
func (dep *Deployer) needsAttention(ctx context.Context, svc *Service, id uint64, reason string) error {
	d, err := dep.update(id, func(x *Deployment) {
		if st := x.Step(x.CurrentStep()); st != nil && st.Status == StatusRunning {
			st.Status, st.Finished, st.Detail = StatusFailed, dep.clock.Now(), reason
		}
		if x.Attention == nil {
			x.Attention = &Attention{Since: dep.clock.Now()}
		}
		x.Attention.Reason = reason
		x.Phase = PhaseNeedsAttention
		if x.Error == "" {
			x.Error = reason
		}
	})
	if err != nil {
		return err
	}
	dep.setPhase(id, d.Phase)
	dep.log.Error("deploy needs attention", "deploy", id, "service", svc.Name, "reason", reason)
	dep.emit(context.WithoutCancel(ctx), EventProblem, d, d.CurrentStep(), AttentionText(d))
	dep.audit("greenlight", "needs attention", svc.Name, id, reason)
	return nil
}

// AttentionText says why a deploy needs attention, where traffic is, and
// the commands that end it.
func AttentionText(d Deployment) string {
	reason := d.Error
	if d.Attention != nil {
		reason = d.Attention.Reason
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Deploy #%d of %s needs attention: %s.", d.ID, d.Service, strings.TrimRight(reason, ". "))
	fmt.Fprintf(&b, " %s", d.Traffic.Where(d))
	fmt.Fprintf(&b, " Both sets and the lock are kept. Check which set answers, then end it with /deploy resolve %s --to old (keep %s) or /deploy resolve %s --to new (keep %s).",
		d.Service, orNone(serverNames(d.Old)), d.Service, orNone(serverNames(d.Next)))
	if d.Attention != nil && len(d.Attention.Attempts) > 0 {
		fmt.Fprintf(&b, " Last resolve: %s.", d.Attention.Attempts[len(d.Attention.Attempts)-1])
	}
	return b.String()
}

// Where says in words where d's traffic is.
func (t Traffic) Where(d Deployment) string {
	switch {
	case t.SettledOn(TrafficOld):
		return fmt.Sprintf("Traffic is on the old set (%s).", orNone(serverNames(d.Old)))
	case t.SettledOn(TrafficNext):
		return fmt.Sprintf("Traffic is on the new set (%s).", serverNames(d.Next))
	case t.Target == TrafficOld:
		return fmt.Sprintf("Traffic was being moved to the old set (%s) and may still reach the new set (%s).", orNone(serverNames(d.Old)), serverNames(d.Next))
	}
	return fmt.Sprintf("Traffic was being moved to the new set (%s) and may still reach the old set (%s).", serverNames(d.Next), orNone(serverNames(d.Old)))
}

func skipPending(d *Deployment) {
	for i := range d.Steps {
		if d.Steps[i].Status == StatusPending {
			d.Steps[i].Status = StatusSkipped
		}
	}
}
