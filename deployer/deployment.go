package deployer

import (
	"strconv"
	"strings"
	"time"
)

// Options are what the requester asked for beyond the service.
type Options struct {
	Image            string `json:"image,omitempty"` // explicit image; empty = newest golden
	AutoApprove      bool   `json:"auto_approve,omitempty"`
	DryRun           bool   `json:"dry_run,omitempty"`
	AllowLargeChange bool   `json:"allow_large_change,omitempty"`
	AllowSameSerial  bool   `json:"allow_same_serial,omitempty"` // ship changed zones whose serial did not grow
	OverrideFreeze   bool   `json:"override_freeze,omitempty"`   // an admin deploys during a freeze
}

// DecisionKind is what a person (or a deadline) decided.
type DecisionKind string

// Decisions.
const (
	DecisionApprove  DecisionKind = "approve"
	DecisionAbort    DecisionKind = "abort"
	DecisionRollback DecisionKind = "rollback"
	DecisionRetire   DecisionKind = "retire" // end the rollback window now
)

// Decisions that end a deploy that needs attention: which set keeps the traffic.
const (
	DecisionResolveOld DecisionKind = "resolve-old"
	DecisionResolveNew DecisionKind = "resolve-new"
)

// DecisionSource says what made a decision: a person, or greenlight on a
// person's behalf.
type DecisionSource string

// Decision sources. The zero value is a person.
const (
	SourcePerson      DecisionSource = ""
	SourceDeadline    DecisionSource = "deadline"     // the approval deadline passed
	SourceAutoApprove DecisionSource = "auto-approve" // the requester asked for --auto-approve
)

// Decision records who decided what and when. By is "deadline" when a timer decided.
type Decision struct {
	Kind   DecisionKind   `json:"kind"`
	By     string         `json:"by"`
	At     time.Time      `json:"at"`
	Reason string         `json:"reason,omitempty"`
	Source DecisionSource `json:"source,omitempty"`
}

// TrafficTarget names the set a deployment's clients should be on.
type TrafficTarget string

// Traffic targets. The zero value means the deploy has not touched traffic:
// clients are on the live set.
const (
	TrafficOld  TrafficTarget = "old"
	TrafficNext TrafficTarget = "next"
)

// Traffic is where a deployment has sent its service's clients. The intent
// (Target, Settled false) is written before the switch is asked to change
// anything, and Settled after every switch call for it succeeded, each in
// one transaction; Start follows it rather than guessing from step states.
type Traffic struct {
	Target TrafficTarget `json:"target,omitempty"`
	// Settled: the switch accepted Target's set and drained the other.
	// While it is false, clients may be on either set.
	Settled bool `json:"settled,omitempty"`
	// NextTouched: the next set was ever given traffic, so it may only be
	// deleted once traffic has settled on the old set.
	NextTouched bool      `json:"next_touched,omitempty"`
	Changed     time.Time `json:"changed,omitzero"`
}

// SettledOn reports whether clients are known to be on target's set alone.
func (t Traffic) SettledOn(target TrafficTarget) bool {
	if target == TrafficOld && t.Target == "" {
		return true // never moved
	}
	return t.Target == target && t.Settled
}

// Attention says why a deployment stopped in PhaseNeedsAttention, and how
// it ends: a person picks the set that keeps the traffic.
type Attention struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"` // for the chat
	// Attempts are resolves that were tried and failed, oldest first.
	Attempts []string `json:"attempts,omitempty"`
}

// Deployment is one run of the pipeline for one service. It is persisted
// before and after every step, so a restart can pick it up.
type Deployment struct {
	ID        uint64      `json:"id"`
	Service   string      `json:"service"`
	Requester string      `json:"requester"`
	Reason    string      `json:"reason,omitempty"`
	Options   Options     `json:"options"`
	ImageOld  string      `json:"image_old,omitempty"`
	ImageNew  string      `json:"image_new,omitempty"`
	Old       []Server    `json:"old,omitempty"`  // the set live when the deploy began
	Next      []Server    `json:"next,omitempty"` // the set this deploy builds
	Steps     []StepState `json:"steps"`
	Phase     Phase       `json:"phase"`
	Error     string      `json:"error,omitempty"` // why it failed or was aborted, for the chat
	// Aftermath is what greenlight did about a failure, an abort or a
	// resolve, for the chat: where traffic is, what was deleted or kept,
	// whether the lock is free. It is written in the transaction that ends
	// the deploy; Error stays why. Records written before it have it at
	// the end of Error instead.
	Aftermath string     `json:"aftermath,omitempty"`
	Checks    []string   `json:"checks,omitempty"` // the last check summaries shown to the approver
	Diffs     []ZoneDiff `json:"diffs,omitempty"`  // what the switch changes in each zone
	// Zones is the zone content the deploy ships (a service with a zones
	// directory): its digest and every file's serial.
	Zones *ZoneContent `json:"zones,omitempty"`

	Approval *Decision `json:"approval,omitempty"` // approve or abort at the gate
	Rollback *Decision `json:"rollback,omitempty"`
	// Retire is a person ending the rollback window early: the old set is
	// retired at once.
	Retire *Decision `json:"retire,omitempty"`
	// RefusedRollbacks are rollbacks that could not be carried out (the
	// old set stopped answering); the window stays open after one.
	RefusedRollbacks []Decision `json:"refused_rollbacks,omitempty"`
	// Resolve is a person's decision ending PhaseNeedsAttention.
	Resolve *Decision `json:"resolve,omitempty"`

	Traffic   Traffic    `json:"traffic,omitzero"`
	Attention *Attention `json:"attention,omitempty"`

	// SwitchAt is when an approved deploy switches, set when it was
	// approved outside the service's deploy windows; SwitchZone is the
	// window's time zone, to show it.
	SwitchAt   time.Time `json:"switch_at,omitzero"`
	SwitchZone string    `json:"switch_zone,omitempty"`

	ApprovalDeadline time.Time `json:"approval_deadline,omitzero"`
	RollbackDeadline time.Time `json:"rollback_deadline,omitzero"`

	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated,omitzero"`
	Finished time.Time `json:"finished,omitzero"`

	// Refs are chat adapters' references (a Slack thread's channel and
	// timestamps), kept so a restart updates the same messages.
	Refs map[string]string `json:"refs,omitempty"`
}

// NewSteps returns every step, pending.
func NewSteps() []StepState {
	names := Steps()
	out := make([]StepState, len(names))
	for i, n := range names {
		out[i] = StepState{Name: n, Status: StatusPending}
	}
	return out
}

// Step returns the named step's state, or nil.
func (d *Deployment) Step(name StepName) *StepState {
	for i := range d.Steps {
		if d.Steps[i].Name == name {
			return &d.Steps[i]
		}
	}
	return nil
}

// CurrentStep is the first step that is not done or skipped, or "" when all are.
func (d *Deployment) CurrentStep() StepName {
	for _, s := range d.Steps {
		if s.Status != StatusDone && s.Status != StatusSkipped {
			return s.Name
		}
	}
	return ""
}

// Outcome is Error and Aftermath in one text: why the deploy ended as it
// did, then what was done about it, for a line that says both.
func (d *Deployment) Outcome() string {
	switch {
	case d.Aftermath == "":
		return d.Error
	case d.Error == "":
		return d.Aftermath
	}
	return strings.TrimRight(d.Error, ". ") + ". " + d.Aftermath
}

// Duration is how long the deployment took, or has taken until now.
func (d *Deployment) Duration(now time.Time) time.Duration {
	end := d.Finished
	if end.IsZero() {
		end = now
	}
	return end.Sub(d.Created)
}

// Clone returns a deep copy, safe to hand to another goroutine.
func (d *Deployment) Clone() Deployment {
	c := *d
	c.Old = cloneServers(d.Old)
	c.Next = cloneServers(d.Next)
	c.Steps = append([]StepState(nil), d.Steps...)
	c.Checks = append([]string(nil), d.Checks...)
	c.Diffs = append([]ZoneDiff(nil), d.Diffs...)
	c.Zones = d.Zones.Clone()
	if d.Approval != nil {
		a := *d.Approval
		c.Approval = &a
	}
	if d.Rollback != nil {
		r := *d.Rollback
		c.Rollback = &r
	}
	if d.Retire != nil {
		r := *d.Retire
		c.Retire = &r
	}
	c.RefusedRollbacks = append([]Decision(nil), d.RefusedRollbacks...)
	if d.Resolve != nil {
		r := *d.Resolve
		c.Resolve = &r
	}
	if d.Attention != nil {
		a := *d.Attention
		a.Attempts = append([]string(nil), d.Attention.Attempts...)
		c.Attention = &a
	}
	if d.Refs != nil {
		c.Refs = make(map[string]string, len(d.Refs))
		for k, v := range d.Refs {
			c.Refs[k] = v
		}
	}
	return c
}

func cloneServers(in []Server) []Server {
	if in == nil {
		return nil
	}
	out := make([]Server, len(in))
	for i, s := range in {
		s.Tags = append([]string(nil), s.Tags...)
		out[i] = s
	}
	return out
}

// Lock is a service's deploy lock. DeployID is 0 for a lock taken by hand.
type Lock struct {
	Service  string    `json:"service"`
	DeployID uint64    `json:"deploy_id,omitempty"`
	Holder   string    `json:"holder"`
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason,omitempty"`
}

// ServiceState is the set that serves a service once no deploy is in flight.
type ServiceState struct {
	Service  string    `json:"service"`
	Image    string    `json:"image,omitempty"`
	Servers  []Server  `json:"servers,omitempty"`
	DeployID uint64    `json:"deploy_id,omitempty"` // the deploy that made it live; 0 = bootstrap
	Updated  time.Time `json:"updated,omitzero"`
}

// AuditEntry is one line of the append-only audit log.
type AuditEntry struct {
	At       time.Time `json:"at"`
	User     string    `json:"user"`
	Action   string    `json:"action"` // "deploy", "approve", "unlock --force", "refused approve", ...
	Service  string    `json:"service,omitempty"`
	DeployID uint64    `json:"deploy_id,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// Store persists locks, deployments, service state and the audit log. Every
// method that decides something does it in one transaction, so two racers
// cannot both win.
type Store interface {
	// BeginDeployment takes d.Service's lock for a new deployment and records
	// d under a new ID (set on d), in one transaction; init, when not nil,
	// may fill in what depends on the ID before the record is written. If
	// the lock is held it returns a *LockedError naming the holder.
	BeginDeployment(d *Deployment, init func(*Deployment)) error
	// UpdateDeployment loads deployment id, lets fn check and change it, and
	// saves it, in one transaction. An error from fn aborts the transaction
	// and is returned as it is.
	UpdateDeployment(id uint64, fn func(*Deployment) error) (Deployment, error)
	// FinishDeployment is UpdateDeployment that also, in the same
	// transaction, records live as the service's state when it is not nil and
	// releases the service's lock if deployment id holds it. live is read
	// after fn returns, so fn may fill it from the record it sees.
	FinishDeployment(id uint64, fn func(*Deployment) error, live *ServiceState) (Deployment, error)
	// Deployment returns deployment id, or a *NotFoundError.
	Deployment(id uint64) (Deployment, error)
	// Deployments returns up to limit deployments of service ("" = all), newest first.
	Deployments(service string, limit int) ([]Deployment, error)
	// ActiveDeployments returns the deployments whose phase is not final, oldest first.
	ActiveDeployments() ([]Deployment, error)

	// Lock takes a service's lock by hand; a held lock gives a *LockedError.
	Lock(l Lock) error
	// Unlock releases a service's lock. Without force only its holder may,
	// and a lock held by a deploy is refused; with force, a lock held by a
	// deploy that has not ended (or needs attention) is still refused, in
	// the same transaction. It returns the lock released.
	Unlock(service, user string, force bool) (Lock, error)
	// CurrentLock returns the service's lock, or nil when it is free.
	CurrentLock(service string) (*Lock, error)

	// Service returns the service's live state (zero value when never set).
	Service(name string) (ServiceState, error)
	// SetService records the service's live state.
	SetService(s ServiceState) error

	// Audit appends to the audit log.
	Audit(e AuditEntry) error
	// AuditLog returns up to limit entries, newest first.
	AuditLog(limit int) ([]AuditEntry, error)
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

// RefChannel is the Refs key of the chat channel a deployment was asked for in.
const RefChannel = "chat.channel"
