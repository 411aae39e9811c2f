package deployer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Approve approves the deployment waiting at the gate. id 0 means the one
// deployment of service awaiting approval (service "" = of any service).
func (dep *Deployer) Approve(ctx context.Context, service string, id uint64, user string) (Deployment, error) {
	d, err := dep.resolve(service, id, PhaseAwaitingApproval)
	if err != nil {
		return Deployment{}, err
	}
	svc, err := dep.Service(d.Service)
	if err != nil {
		return Deployment{}, err
	}
	d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Approval != nil || x.Phase != PhaseAwaitingApproval {
			return notWaiting(x, "approval")
		}
		if svc.FourEyes && user == x.Requester {
			return Errorf(CodeForbidden, "four-eyes rule: %s cannot approve their own deploy #%d; ask another approver", user, x.ID)
		}
		x.Approval = &Decision{Kind: DecisionApprove, By: user, At: dep.clock.Now()}
		x.Phase = PhaseRunning
		if open, next, loc := windowAt(svc.DeployWindows, dep.clock.Now()); !open && !next.IsZero() {
			x.SwitchAt, x.SwitchZone = next, loc.String()
		}
		x.Updated = dep.clock.Now()
		return nil
	})
	if err != nil {
		dep.audit(user, "refused approve", service, id, err.Error())
		return Deployment{}, err
	}
	dep.audit(user, "approve", d.Service, d.ID, "")
	dep.decided(d.ID)
	return d, nil
}

// Abort stops a deployment before its traffic moves: the next set is deleted
// and the lock released. After approval it is refused; rollback is the way back.
func (dep *Deployer) Abort(ctx context.Context, service string, id uint64, user, reason string) (Deployment, error) {
	d, err := dep.resolve(service, id, "")
	if err != nil {
		return Deployment{}, err
	}
	d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Phase.Final() {
			return Errorf(CodeConflict, "deploy #%d already ended: %s", x.ID, x.Phase)
		}
		if x.Phase == PhaseNeedsAttention || x.Resolve != nil {
			return Errorf(CodeConflict, "deploy #%d needs attention; end it with /deploy resolve %s --to old or --to new", x.ID, x.Service)
		}
		if x.Approval != nil {
			if x.Approval.Kind == DecisionAbort {
				return Errorf(CodeConflict, "deploy #%d was already aborted by %s at %s", x.ID, x.Approval.By, TimeOfDay(x.Approval.At))
			}
			if x.Phase == PhaseRollbackWindow {
				return Errorf(CodeConflict, "deploy #%d is live (approved by %s at %s), so there is nothing to abort; /deploy rollback %s switches back to %s", x.ID, x.Approval.By, TimeOfDay(x.Approval.At), x.Service, serverNames(x.Old))
			}
			if !x.SwitchAt.IsZero() && x.Traffic.Target == "" {
				return Errorf(CodeConflict, "deploy #%d was approved by %s at %s and waits for %s's deploy window (it switches at %s); an approved deploy is not aborted: once it is live, /deploy rollback %s switches back",
					x.ID, x.Approval.By, TimeOfDay(x.Approval.At), x.Service, SwitchTime(x.SwitchAt, x.SwitchZone), x.Service)
			}
			return Errorf(CodeConflict, "deploy #%d was approved by %s at %s and traffic is moving; use /deploy rollback %s once it is live", x.ID, x.Approval.By, TimeOfDay(x.Approval.At), x.Service)
		}
		x.Approval = &Decision{Kind: DecisionAbort, By: user, At: dep.clock.Now(), Reason: reason}
		x.Updated = dep.clock.Now()
		return nil
	})
	if err != nil {
		dep.audit(user, "refused abort", service, id, err.Error())
		return Deployment{}, err
	}
	dep.audit(user, "abort", d.Service, d.ID, reason)
	dep.emit(ctx, EventDecision, d, d.CurrentStep(), fmt.Sprintf("Aborted by %s; deleting the next set.", user))
	dep.decided(d.ID) // busy until the next set is deleted
	dep.mu.Lock()
	if r, ok := dep.runs[d.ID]; ok {
		r.cancel(errAbortRequested)
	}
	dep.mu.Unlock()
	return d, nil
}

// Rollback asks the deployment in its rollback window to switch back to the
// old set. The pipeline checks the old set still answers before it does.
func (dep *Deployer) Rollback(ctx context.Context, service string, id uint64, user string) (Deployment, error) {
	d, err := dep.resolve(service, id, PhaseRollbackWindow)
	if err != nil {
		return Deployment{}, err
	}
	d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Phase != PhaseRollbackWindow {
			return notWaiting(x, "rollback")
		}
		if x.Rollback != nil {
			return Errorf(CodeConflict, "a rollback of deploy #%d was already requested by %s at %s", x.ID, x.Rollback.By, TimeOfDay(x.Rollback.At))
		}
		if x.Retire != nil {
			return Errorf(CodeConflict, "%s ended the rollback window of deploy #%d at %s and its old set (%s) is being retired; deploy the old image with /deploy %s --image %s",
				x.Retire.By, x.ID, TimeOfDay(x.Retire.At), serverNames(x.Old), x.Service, x.ImageOld)
		}
		if !dep.clock.Now().Before(x.RollbackDeadline) {
			return Errorf(CodeConflict, "the rollback window of deploy #%d closed at %s", x.ID, TimeOfDay(x.RollbackDeadline))
		}
		x.Rollback = &Decision{Kind: DecisionRollback, By: user, At: dep.clock.Now()}
		x.Updated = dep.clock.Now()
		return nil
	})
	if err != nil {
		dep.audit(user, "refused rollback", service, id, err.Error())
		return Deployment{}, err
	}
	dep.audit(user, "rollback", d.Service, d.ID, "")
	dep.decided(d.ID)
	return d, nil
}

// Retire ends the rollback window of a live deployment now: the old set is
// retired and the lock released without waiting for the deadline. It needs
// traffic settled on the new set and no rollback asked for.
func (dep *Deployer) Retire(ctx context.Context, service string, id uint64, user string) (Deployment, error) {
	d, err := dep.resolve(service, id, PhaseRollbackWindow)
	if err != nil {
		return Deployment{}, err
	}
	d, err = dep.store.UpdateDeployment(d.ID, func(x *Deployment) error {
		if x.Retire != nil {
			return Errorf(CodeConflict, "deploy #%d's old set (%s) was already retired early by %s at %s", x.ID, serverNames(x.Old), x.Retire.By, TimeOfDay(x.Retire.At))
		}
		if x.Phase != PhaseRollbackWindow {
			return notWaiting(x, "retire")
		}
		if x.Rollback != nil {
			return Errorf(CodeConflict, "a rollback of deploy #%d was already requested by %s at %s; it goes first", x.ID, x.Rollback.By, TimeOfDay(x.Rollback.At))
		}
		if !x.Traffic.SettledOn(TrafficNext) {
			return Errorf(CodeConflict, "deploy #%d cannot retire its old set: %s", x.ID, x.Traffic.Where(*x))
		}
		if !dep.clock.Now().Before(x.RollbackDeadline) {
			return Errorf(CodeConflict, "the rollback window of deploy #%d closed at %s; its old set (%s) is being retired", x.ID, TimeOfDay(x.RollbackDeadline), serverNames(x.Old))
		}
		x.Retire = &Decision{Kind: DecisionRetire, By: user, At: dep.clock.Now()}
		x.Updated = dep.clock.Now()
		return nil
	})
	if err != nil {
		dep.audit(user, "refused retire", service, id, err.Error())
		return Deployment{}, err
	}
	dep.audit(user, "retire", d.Service, d.ID, fmt.Sprintf("rollback window ended early; retiring %s", serverNames(d.Old)))
	dep.decided(d.ID)
	return d, nil
}

// notWaiting explains why a deployment does not take a decision now.
func notWaiting(x *Deployment, what string) error {
	switch {
	case what == "approval" && x.Approval != nil:
		verb := "approved"
		if x.Approval.Kind == DecisionAbort {
			verb = "aborted"
		}
		return Errorf(CodeConflict, "deploy #%d was already %s by %s at %s", x.ID, verb, x.Approval.By, TimeOfDay(x.Approval.At))
	case what == "rollback" && x.Phase == PhaseRolledBack && x.Rollback != nil:
		return Errorf(CodeConflict, "deploy #%d was already rolled back by %s at %s", x.ID, x.Rollback.By, TimeOfDay(x.Rollback.At))
	case what == "rollback" && x.Phase == PhaseSucceeded && x.Retire != nil:
		return Errorf(CodeConflict, "%s retired the old set (%s) of deploy #%d early at %s; deploy the old image with /deploy %s --image %s",
			x.Retire.By, serverNames(x.Old), x.ID, TimeOfDay(x.Retire.At), x.Service, x.ImageOld)
	case what == "rollback" && x.Phase == PhaseSucceeded && !x.RollbackDeadline.IsZero():
		return Errorf(CodeConflict, "the rollback window of deploy #%d closed at %s and its old set (%s) was retired; deploy the old image with /deploy %s --image %s",
			x.ID, TimeOfDay(x.RollbackDeadline), serverNames(x.Old), x.Service, x.ImageOld)
	case what == "retire" && x.Phase == PhaseSucceeded && !x.RollbackDeadline.IsZero():
		return Errorf(CodeConflict, "the rollback window of deploy #%d closed at %s and its old set (%s) was already retired", x.ID, TimeOfDay(x.RollbackDeadline), serverNames(x.Old))
	case what == "retire" && x.Phase == PhaseRolledBack && x.Rollback != nil:
		return Errorf(CodeConflict, "deploy #%d was rolled back by %s at %s; there is no old set to retire", x.ID, x.Rollback.By, TimeOfDay(x.Rollback.At))
	case x.Phase.Final():
		return Errorf(CodeConflict, "deploy #%d already ended: %s", x.ID, x.Phase)
	case (what == "rollback" || what == "retire") && x.Step(StepSwitch).Status == StatusPending:
		return Errorf(CodeConflict, "deploy #%d has not switched traffic yet (it is at %s); use /deploy abort %s", x.ID, x.CurrentStep().Title(), x.Service)
	}
	return Errorf(CodeConflict, "deploy #%d is not waiting for %s; it is at %s", x.ID, what, x.CurrentStep().Title())
}

// resolve finds the deployment a decision is about: id when given, else the
// one active deployment of service (preferring one in phase want).
func (dep *Deployer) resolve(service string, id uint64, want Phase) (Deployment, error) {
	if service != "" {
		if _, err := dep.Service(service); err != nil {
			return Deployment{}, err
		}
	}
	if id != 0 {
		d, err := dep.store.Deployment(id)
		if err != nil {
			return Deployment{}, err
		}
		if service != "" && d.Service != service {
			return Deployment{}, Errorf(CodeInvalid, "deploy #%d is of %s, not %s", id, d.Service, service)
		}
		return d, nil
	}
	active, err := dep.store.ActiveDeployments()
	if err != nil {
		return Deployment{}, err
	}
	active = slices.DeleteFunc(active, func(d Deployment) bool { return service != "" && d.Service != service })
	if want != "" {
		if waiting := slices.DeleteFunc(slices.Clone(active), func(d Deployment) bool { return d.Phase != want }); len(waiting) > 0 {
			active = waiting
		}
	}
	switch len(active) {
	case 1:
		return active[0], nil
	case 0:
		if service == "" {
			return Deployment{}, Errorf(CodeNotFound, "no deploy is in flight")
		}
		if want == PhaseRollbackWindow {
			if last, err := dep.store.Deployments(service, 1); err == nil && len(last) == 1 {
				return last[0], nil // its own phase explains why it cannot roll back
			}
		}
		return Deployment{}, Errorf(CodeNotFound, "no deploy of %s is in flight", service)
	}
	var names []string
	for _, d := range active {
		names = append(names, fmt.Sprintf("#%d (%s)", d.ID, d.Service))
	}
	return Deployment{}, Errorf(CodeInvalid, "%d deploys are in flight: %s; name the service or the deploy", len(active), strings.Join(names, ", "))
}

// Lock takes a service's lock by hand, so no deploy starts until Unlock.
func (dep *Deployer) Lock(ctx context.Context, service, user, reason string) (Lock, error) {
	if _, err := dep.Service(service); err != nil {
		return Lock{}, err
	}
	l := Lock{Service: service, Holder: user, Since: dep.clock.Now(), Reason: reason}
	if err := dep.store.Lock(l); err != nil {
		return Lock{}, dep.explainLocked(err)
	}
	dep.audit(user, "lock", service, 0, reason)
	return l, nil
}

// Unlock releases a service's lock. Without force only the holder of a lock
// taken by hand may. With force any lock goes, except that of a deployment
// still running here: that one must be aborted or rolled back.
func (dep *Deployer) Unlock(ctx context.Context, service, user string, force bool) (Lock, error) {
	if _, err := dep.Service(service); err != nil {
		return Lock{}, err
	}
	l, err := dep.store.Unlock(service, user, force)
	if err != nil {
		dep.audit(user, "refused unlock", service, 0, err.Error())
		return Lock{}, err
	}
	action := "unlock"
	if force {
		action = "unlock --force"
	}
	dep.audit(user, action, service, l.DeployID, fmt.Sprintf("released lock held by %s since %s", l.Holder, l.Since.UTC().Format(time.RFC3339)))
	return l, nil
}

// Status is what /deploy status shows for one service.
type Status struct {
	Service string
	Live    ServiceState
	Lock    *Lock
	Active  *Deployment
	Last    *Deployment // the newest deployment that ended
	// Frozen are the freezes in force, the longest first; NextFreeze is the
	// next one of the config.
	Frozen     []Freeze
	NextFreeze *Freeze
}

// Status reports a service's live set, lock, deployment in flight and last one.
func (dep *Deployer) Status(ctx context.Context, service string) (Status, error) {
	if _, err := dep.Service(service); err != nil {
		return Status{}, err
	}
	st := Status{Service: service}
	var err error
	if st.Live, err = dep.store.Service(service); err != nil {
		return Status{}, err
	}
	if st.Lock, err = dep.store.CurrentLock(service); err != nil {
		return Status{}, err
	}
	if st.Frozen, st.NextFreeze, err = dep.Frozen(service, dep.clock.Now()); err != nil {
		return Status{}, err
	}
	recent, err := dep.store.Deployments(service, 20)
	if err != nil {
		return Status{}, err
	}
	for i := range recent {
		d := recent[i]
		if !d.Phase.Final() && st.Active == nil {
			st.Active = &d
		}
		if d.Phase.Final() && st.Last == nil {
			st.Last = &d
		}
	}
	return st, nil
}

// History returns up to n deployments of service ("" = all), newest first.
func (dep *Deployer) History(ctx context.Context, service string, n int) ([]Deployment, error) {
	if service != "" {
		if _, err := dep.Service(service); err != nil {
			return nil, err
		}
	}
	return dep.store.Deployments(service, n)
}

// Deployment returns one deployment.
func (dep *Deployer) Deployment(ctx context.Context, id uint64) (Deployment, error) {
	return dep.store.Deployment(id)
}

// Now is the deployer's clock reading, for adapters rendering durations.
func (dep *Deployer) Now() time.Time { return dep.clock.Now() }

// Seed builds a first live set for a service that has none, from image (the
// oldest golden image when empty): the embedded local cloud's first start.
// It does nothing when the service already has a live set or a deploy in flight.
func (dep *Deployer) Seed(ctx context.Context, service, image string) (ServiceState, error) {
	svc, err := dep.Service(service)
	if err != nil {
		return ServiceState{}, err
	}
	live, err := dep.store.Service(service)
	if err != nil || len(live.Servers) > 0 {
		return live, err
	}
	if active, err := dep.store.ActiveDeployments(); err != nil || slices.ContainsFunc(active, func(d Deployment) bool { return d.Service == service }) {
		return live, err
	}
	if image == "" {
		images, err := svc.Cloud.Images(ctx, service)
		if err != nil {
			return live, fmt.Errorf("list images of %s: %w", service, err)
		}
		var first *Image
		for i, im := range images {
			// Images come newest first, so on equal times the later one is older.
			if im.Golden && (first == nil || !im.Created.After(first.Created)) {
				first = &images[i]
			}
		}
		if first != nil {
			image = first.ID
		} else {
			image = svc.BaseImage
		}
		if image == "" {
			return live, Errorf(CodeNotFound, "%s has no golden image to seed from", service)
		}
	}
	planned := make([]Server, len(svc.Roles))
	for i, role := range svc.Roles {
		planned[i] = Server{Name: role + "-0", Role: role, Label: role, Image: image,
			Tags: []string{TagGreenlight, ServiceTag(service), DeployTag(0)}}
	}
	// Bounded like the deploy steps it stands for: a first set whose
	// provisioning never answers must not hang start-up.
	limit := svc.Timeouts.Create + svc.Timeouts.WaitRunning + svc.Timeouts.Provision + svc.Timeouts.Check
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	servers, err := dep.seedSet(ctx, svc, image, planned)
	if err != nil {
		// Delete what was made, so the next try starts clean.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), svc.Timeouts.Retire)
		defer ccancel()
		if tagged, lerr := svc.Cloud.ListByTag(cctx, DeployTag(0)); lerr == nil {
			for _, s := range tagged {
				if derr := svc.Cloud.Delete(cctx, s); derr != nil {
					dep.log.Warn("could not delete a server of the failed first set", "server", s.Name, "err", derr)
				}
			}
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = Wrapf(err, "the first set was not ready within %s", limit)
		}
		return live, err
	}
	live = ServiceState{Service: service, Image: image, Servers: servers, Updated: dep.clock.Now()}
	if err := dep.store.SetService(live); err != nil {
		return live, err
	}
	dep.audit("greenlight", "seed", service, 0, fmt.Sprintf("first set %s on %s", serverNames(servers), image))
	return live, nil
}

// seedSet creates, boots, provisions and checks a first set and points
// traffic at it.
func (dep *Deployer) seedSet(ctx context.Context, svc *Service, image string, planned []Server) ([]Server, error) {
	service := svc.Name
	servers, err := dep.forEach(ctx, planned, func(ctx context.Context, s Server) (Server, error) {
		got, err := svc.Cloud.Create(ctx, ServerSpec{Service: service, Role: s.Role, Name: s.Name, Label: s.Label, Image: image, Tags: s.Tags})
		if err != nil {
			return s, fmt.Errorf("create %s: %w", s.Name, err)
		}
		if got, err = svc.Cloud.WaitRunning(ctx, got); err != nil {
			return s, fmt.Errorf("%s did not start: %w", s.Name, err)
		}
		if err := svc.Provisioner.Provision(ctx, got); err != nil {
			return s, fmt.Errorf("provision %s: %w", s.Name, err)
		}
		return got, nil
	})
	if err != nil {
		return nil, err
	}
	spec := svc.Check
	spec.Passes = 1
	if report := svc.Checker.Check(ctx, ownTargets(servers), spec); !report.OK {
		return nil, Errorf(CodeFailed, "the first set of %s failed its checks: %s", service, strings.Join(report.Problems, "; "))
	}
	if err := svc.Switch.Accept(ctx, servers); err != nil {
		return nil, err
	}
	return servers, nil
}

// SaveRefs merges chat references (a Slack thread's timestamps) into a
// deployment's record, so a restart updates the same messages.
func (dep *Deployer) SaveRefs(ctx context.Context, id uint64, refs map[string]string) error {
	_, err := dep.store.UpdateDeployment(id, func(x *Deployment) error {
		if x.Refs == nil {
			x.Refs = map[string]string{}
		}
		maps.Copy(x.Refs, refs)
		return nil
	})
	return err
}
