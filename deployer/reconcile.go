package deployer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BakeTagPrefix marks an image builder ("bake:20261123-0400"): it belongs to
// a bake, which deletes it itself, not to a deploy.
const BakeTagPrefix = "bake:"

// DefaultOrphanGrace is how long after a deploy ends its servers are left
// to its own cleanup before the reconciler calls them orphans.
const DefaultOrphanGrace = 10 * time.Minute

// Orphan is a server greenlight made that no deploy owns any more.
type Orphan struct {
	Server   Server
	Service  string
	DeployID uint64 // 0 when the server names no deploy
	Why      string // for the chat: "deploy #7 was aborted"
	Deleted  bool
	Kept     string // why it was not deleted
	Err      error  // why deleting it failed
}

// ReconcileReport is what one pass found.
type ReconcileReport struct {
	Checked int // servers tagged greenlight
	Orphans []Orphan
}

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	Delete bool          // delete orphans of configured services
	Grace  time.Duration // default DefaultOrphanGrace
}

// Reconcile lists the servers tagged greenlight in each service's cloud and
// finds those no deploy owns: not in the live set, not in a deploy in
// flight, and made by a deploy that ended (more than Grace ago), or by none
// this greenlight knows. With Delete it deletes those of configured
// services; servers of services this greenlight does not run are reported
// but never deleted (another greenlight may share the account). Image
// builders (tag bake:…) are left to their bake.
func (dep *Deployer) Reconcile(ctx context.Context, opts ReconcileOptions) (ReconcileReport, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultOrphanGrace
	}
	var report ReconcileReport
	var clouds []Cloud
	for _, name := range dep.names {
		if c := dep.services[name].Cloud; c != nil && !slices.Contains(clouds, c) {
			clouds = append(clouds, c)
		}
	}
	active, err := dep.store.ActiveDeployments()
	if err != nil {
		return report, err
	}
	// The live sets, read once per pass rather than once per server.
	live := map[string][]Server{}
	for _, name := range dep.names {
		st, err := dep.store.Service(name)
		if err != nil {
			return report, err
		}
		live[name] = st.Servers
	}
	var errs []error
	for _, cloud := range clouds {
		servers, err := cloud.ListByTag(ctx, TagGreenlight)
		if err != nil {
			errs = append(errs, fmt.Errorf("list the servers tagged %s: %w", TagGreenlight, err))
			continue
		}
		report.Checked += len(servers)
		for _, s := range servers {
			o, owned, err := dep.owner(s, live, opts.Grace)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if owned {
				continue
			}
			if containsAny(active, s) {
				continue
			}
			svc, ok := dep.services[o.Service]
			switch {
			case !ok || svc.Cloud != cloud:
				o.Kept = "not a service of this greenlight"
			case !opts.Delete:
				o.Kept = "reconcile.delete_orphans is off"
			}
			if o.Kept == "" {
				if o.Err = cloud.Delete(ctx, s); o.Err == nil {
					o.Deleted = true
					dep.log.Info("orphan deleted", "server", s.Name, "id", s.ID, "service", o.Service, "why", o.Why)
				} else {
					dep.log.Warn("could not delete an orphan", "server", s.Name, "id", s.ID, "err", o.Err)
				}
			} else {
				dep.log.Warn("orphan found", "server", s.Name, "id", s.ID, "service", o.Service, "why", o.Why)
			}
			report.Orphans = append(report.Orphans, o)
		}
	}
	return report, errors.Join(errs...)
}

// owner decides whether s belongs to a live set or a deploy, and if not,
// says why it is an orphan.
func (dep *Deployer) owner(s Server, live map[string][]Server, grace time.Duration) (Orphan, bool, error) {
	o := Orphan{Server: s}
	hasDeploy := false
	for _, t := range s.Tags {
		if strings.HasPrefix(t, BakeTagPrefix) {
			return o, true, nil
		}
		if v, ok := strings.CutPrefix(t, "service:"); ok {
			o.Service = v
		}
		if v, ok := strings.CutPrefix(t, "deploy:"); ok {
			if id, err := strconv.ParseUint(v, 10, 64); err == nil {
				o.DeployID, hasDeploy = id, true
			}
		}
	}
	if _, known := dep.services[o.Service]; !known {
		if o.Service == "" {
			o.Why = "it names no service"
		} else {
			o.Why = fmt.Sprintf("this greenlight runs no service %q", o.Service)
		}
		return o, false, nil
	}
	if containsServer(live[o.Service], s) {
		return o, true, nil
	}
	if !hasDeploy {
		o.Why = "it names no deploy and is not in the live set"
		return o, false, nil
	}
	if o.DeployID == 0 {
		o.Why = "it was part of the first set, which is no longer live"
		return o, false, nil
	}
	d, err := dep.store.Deployment(o.DeployID)
	if _, missing := errors.AsType[*NotFoundError](err); missing {
		o.Why = fmt.Sprintf("no deploy #%d is known to this greenlight", o.DeployID)
		return o, false, nil
	}
	if err != nil {
		return o, false, err
	}
	if d.Service != o.Service {
		o.Why = fmt.Sprintf("deploy #%d was of %s, not %s", d.ID, d.Service, o.Service)
		return o, false, nil
	}
	if !d.Phase.Final() {
		return o, true, nil
	}
	if !d.Finished.IsZero() && dep.clock.Now().Sub(d.Finished) < grace {
		return o, true, nil // its own cleanup may still be at work
	}
	switch d.Phase {
	case PhaseAborted:
		o.Why = fmt.Sprintf("deploy #%d was aborted", d.ID)
	case PhaseFailed:
		o.Why = fmt.Sprintf("deploy #%d failed", d.ID)
	case PhaseRolledBack:
		o.Why = fmt.Sprintf("deploy #%d was rolled back", d.ID)
	default:
		o.Why = fmt.Sprintf("deploy #%d %s and the server is not in the live set", d.ID, d.Phase)
	}
	return o, false, nil
}

// containsAny reports whether s is in the old or next set of a deploy in flight.
func containsAny(active []Deployment, s Server) bool {
	return slices.ContainsFunc(active, func(d Deployment) bool {
		return containsServer(d.Old, s) || containsServer(d.Next, s)
	})
}

func containsServer(set []Server, s Server) bool {
	return slices.ContainsFunc(set, func(x Server) bool {
		return (s.ID != "" && x.ID == s.ID) || (s.ID == "" && x.Name == s.Name)
	})
}

// Summary is the report in a few words for the chat.
func (r ReconcileReport) Summary() string {
	if len(r.Orphans) == 0 {
		return fmt.Sprintf("no orphans among %d servers tagged %s", r.Checked, TagGreenlight)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d servers tagged %s belong to no deploy:", len(r.Orphans), r.Checked, TagGreenlight)
	for _, o := range r.Orphans {
		fmt.Fprintf(&b, "\n• %s (%s): %s", o.Server.Name, o.Server.ID, o.Why)
		switch {
		case o.Deleted:
			b.WriteString(" — deleted")
		case o.Err != nil:
			fmt.Fprintf(&b, " — could not delete it: %s", ErrorMessage(o.Err))
		case o.Kept != "":
			b.WriteString(" — kept: " + o.Kept)
		}
	}
	return b.String()
}
