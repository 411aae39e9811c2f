// Package deployer is greenlight's domain: deployments, their steps, the
// blue/green pipeline, and the interfaces of the things a deploy drives
// (clouds, provisioners, traffic switches, health checkers, storage, chat).
//
// It imports nothing that speaks to Slack, Linode or bbolt; sub-packages and
// sibling packages implement its interfaces and main wires them together.
package deployer

import (
	"context"
	"time"
)

// StepStatus is where a step stands.
type StepStatus string

// Step statuses.
const (
	StatusPending StepStatus = "pending"
	StatusRunning StepStatus = "running"
	StatusDone    StepStatus = "done"
	StatusFailed  StepStatus = "failed"
	StatusSkipped StepStatus = "skipped"
)

// StepState is one step's persisted record.
type StepState struct {
	Name     StepName   `json:"name"`
	Status   StepStatus `json:"status"`
	Started  time.Time  `json:"started,omitzero"`
	Finished time.Time  `json:"finished,omitzero"`
	Detail   string     `json:"detail,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
}

// Duration is how long the step ran, or 0 when it has not finished.
func (s StepState) Duration() time.Duration {
	if s.Started.IsZero() || s.Finished.IsZero() {
		return 0
	}
	return s.Finished.Sub(s.Started)
}

// Phase is where a whole deployment stands.
type Phase string

// Deployment phases. Running, AwaitingApproval, RollbackWindow and
// NeedsAttention hold the service's lock; the others are final.
const (
	PhaseRunning          Phase = "running"
	PhaseAwaitingApproval Phase = "awaiting-approval"
	PhaseRollbackWindow   Phase = "rollback-window"
	// PhaseNeedsAttention: greenlight could not bring traffic to a known
	// good state. Both sets and the lock are kept, no pipeline runs, the
	// reconciler leaves its servers alone, and only a person ends it with
	// /deploy resolve.
	PhaseNeedsAttention Phase = "needs-attention"
	PhaseSucceeded      Phase = "succeeded"
	PhaseFailed         Phase = "failed"
	PhaseAborted        Phase = "aborted"
	PhaseRolledBack     Phase = "rolled-back"
	PhasePlanned        Phase = "planned" // a dry run: nothing was created or recorded
)

// Final reports whether the deployment has ended.
func (p Phase) Final() bool {
	switch p {
	case PhaseRunning, PhaseAwaitingApproval, PhaseRollbackWindow, PhaseNeedsAttention:
		return false
	}
	return true
}

// Server is one machine of a set.
type Server struct {
	ID     string   `json:"id"`              // the cloud's identifier
	Name   string   `json:"name"`            // host name, also its EDNS NSID: "ns1-7"
	Role   string   `json:"role"`            // the slot it fills: "ns1"
	Label  string   `json:"label,omitempty"` // the cloud's label: "ns1-next" while next, "ns1" once live
	Addr   string   `json:"addr,omitempty"`  // where it answers DNS, host:port
	Image  string   `json:"image,omitempty"`
	Tags   []string `json:"tags,omitempty"`
	Status string   `json:"status,omitempty"` // the cloud's word: provisioning, booting, running
}

// Image is a bootable image a set can be built from.
type Image struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	Golden      bool      `json:"golden"` // a baked image the service may deploy by default
}

// ServerSpec asks a cloud for one server of the next set.
type ServerSpec struct {
	Service  string
	Role     string
	Name     string // host name and NSID
	Label    string
	Image    string
	Tags     []string
	DeployID uint64
	// Zones is the zone content the server must serve, as the deploy
	// recorded it; nil when the service has no zones source.
	Zones *ZoneContent
}

// Tags greenlight puts on every server it creates, so a reconciler can find
// servers whose deploy no longer owns them.
const TagGreenlight = "greenlight"

// ServiceTag and DeployTag name a server's service and the deploy that made it.
func ServiceTag(service string) string { return "service:" + service }

// DeployTag is the tag of every server created by deploy id.
func DeployTag(id uint64) string { return "deploy:" + uitoa(id) }

// Cloud creates and destroys servers. Every method is idempotent: deleting a
// server that is gone, or relabelling one to the label it has, succeeds.
type Cloud interface {
	Create(ctx context.Context, spec ServerSpec) (Server, error)
	// WaitRunning returns once the server is running, or ctx ends.
	WaitRunning(ctx context.Context, s Server) (Server, error)
	Delete(ctx context.Context, s Server) error
	Relabel(ctx context.Context, s Server, label string) (Server, error)
	ListByTag(ctx context.Context, tag string) ([]Server, error)
	Images(ctx context.Context, service string) ([]Image, error)
}

// BakeSpec asks a cloud to bake a golden image of a service.
type BakeSpec struct {
	Service     string
	BaseImage   string // what the builder boots: "linode/debian12"
	UserData    []byte // the builder's cloud-init; it powers the builder off when done
	Label       string // "<service>-golden-20261123-0400"
	Description string // base image and build ID, for people reading the image list
	BuildID     string
}

// Baker bakes golden images and deletes old ones. A bake deletes whatever
// it built on the way (a builder instance), on success and on failure.
type Baker interface {
	Bake(ctx context.Context, spec BakeSpec) (Image, error)
	DeleteImage(ctx context.Context, id string) error
}

// Pricer is a Cloud that knows what its servers cost; a dry run shows it.
type Pricer interface {
	// Price is what count servers cost, in US dollars per hour and per month.
	Price(ctx context.Context, count int) (hourly, monthly float64, err error)
}

// Provisioner turns a running server into one that serves the service.
type Provisioner interface {
	Provision(ctx context.Context, s Server) error
}

// Switch moves client traffic between sets. Switching back is Accept of the
// old set followed by Drain of the new one.
type Switch interface {
	// Accept sends new client traffic to servers, and only to them.
	Accept(ctx context.Context, servers []Server) error
	// Drain waits, bounded by ctx, for traffic already on servers to finish.
	Drain(ctx context.Context, servers []Server) error
	// Endpoints are the addresses clients use, checked after a switch.
	Endpoints() []string
}

// CheckTarget is one address to check.
type CheckTarget struct {
	Name  string   // for messages: "ns1-7", "load balancer 127.0.0.1:5300"
	Addr  string   // host:port
	NSIDs []string // acceptable EDNS NSID answers; empty means not checked
}

// ExpectedRecord is a record a healthy server must serve.
type ExpectedRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"` // rdata as in a zone file; empty = any
}

// CheckSpec says what a healthy set answers.
type CheckSpec struct {
	Zones     []string
	MinSerial map[string]uint32 // per zone; a missing zone has no floor
	Expect    []ExpectedRecord
	Passes    int           // consecutive passing rounds needed (at least 1)
	MaxRounds int           // give up after this many rounds (at least Passes)
	Interval  time.Duration // between rounds
	Timeout   time.Duration // per query
}

// CheckReport is the outcome of a check. Problems are phrased for the chat:
// "ns2-7: SOA example.test. over TCP timed out after 2s".
type CheckReport struct {
	OK       bool
	Passes   int               // consecutive passing rounds reached
	Problems []string          // from the last failing round
	Serials  map[string]uint32 // zone → serial answered (lowest seen)
	NSIDs    map[string]string // target name → NSID answered last
	Answered []string          // every NSID any answer carried, sorted
	Summary  string            // one line for the checklist
}

// Checker proves servers answer.
type Checker interface {
	Check(ctx context.Context, targets []CheckTarget, spec CheckSpec) CheckReport
	// Serials asks one target for each zone's SOA serial.
	Serials(ctx context.Context, target CheckTarget, zones []string, timeout time.Duration) (map[string]uint32, error)
}

// Clock is the time source, injected so tests control deadlines.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// EventKind says what happened to a deployment.
type EventKind string

// Event kinds a Reporter receives.
const (
	EventStep     EventKind = "step"     // a step started, finished or failed: re-render the checklist
	EventApproval EventKind = "approval" // the deploy waits for Approve/Abort
	EventDecision EventKind = "decision" // someone approved, aborted, rolled back, or a deadline passed
	EventRollback EventKind = "rollback" // the rollback window opened
	EventProblem  EventKind = "problem"  // a failure, with its reason
	EventFinished EventKind = "finished" // the deploy ended; Deployment.Phase says how
	EventInfo     EventKind = "info"     // anything else worth a thread reply
)

// Event is one thing a Reporter is told. Deployment is a snapshot.
type Event struct {
	Kind       EventKind
	Deployment Deployment
	Step       StepName
	Text       string
}

// Reporter renders events for people. It must not block the pipeline for long.
type Reporter interface {
	Report(ctx context.Context, ev Event)
}

// ReporterFunc adapts a function to a Reporter.
type ReporterFunc func(ctx context.Context, ev Event)

// Report calls f.
func (f ReporterFunc) Report(ctx context.Context, ev Event) { f(ctx, ev) }

// ZoneDiff is what a switch changes for clients in one zone, as a deployment
// keeps it and the approver sees it: the counts, a summary line and the
// diff's lines of a ZoneComparer's comparison of the zone the live set
// serves with the one the next set serves.
type ZoneDiff struct {
	Zone       string   `json:"zone"`
	OldSerial  uint32   `json:"old_serial"`
	NewSerial  uint32   `json:"new_serial"`
	Summary    string   `json:"summary"` // "example.test.: serial 1 → 2 · 3 added · 1 removed"
	Lines      []string `json:"lines,omitempty"`
	Added      int      `json:"added"`   // records only the next set serves
	Removed    int      `json:"removed"` // records only the live set serves
	Changed    int      `json:"changed"` // RRsets both serve differently
	LiveRRsets int      `json:"live_rrsets"`
	UpdatedPct float64  `json:"updated_pct"` // changed RRsets as a share of the live ones
	DeletedPct float64  `json:"deleted_pct"`
	Method     string   `json:"method,omitempty"` // "AXFR", or how it fell back
}

// Changes reports whether the zone's content differs at all.
func (z ZoneDiff) Changes() bool { return z.Added+z.Removed+z.Changed > 0 }

// ZoneComparer fetches each zone from one live server and from every next
// server. It fails when the next servers do not serve identical content.
type ZoneComparer interface {
	CompareZones(ctx context.Context, live CheckTarget, next []CheckTarget, zones []string) ([]ZoneDiff, error)
}

// ZoneComparerFunc adapts a function to a ZoneComparer (and fakes one in tests).
type ZoneComparerFunc func(ctx context.Context, live CheckTarget, next []CheckTarget, zones []string) ([]ZoneDiff, error)

// CompareZones calls f.
func (f ZoneComparerFunc) CompareZones(ctx context.Context, live CheckTarget, next []CheckTarget, zones []string) ([]ZoneDiff, error) {
	return f(ctx, live, next, zones)
}
