package deployer

import "time"

// Service is one deployable service: what it is made of and what drives it.
type Service struct {
	Name  string
	Roles []string // one server per role: ns1, ns2
	// BaseImage is what the first set is built from when the service has no
	// golden image yet ("linode/debian12"); empty means a golden one is needed.
	BaseImage string

	Check CheckSpec // Zones, Expect, Passes, Interval, Timeout; MinSerial is filled per deploy

	// Zones, when set, is the zone content every deploy ships (a zones
	// directory), read and validated when the deploy is planned.
	Zones ZoneSource

	// Compare, when set, shows the approver what the switch changes in each
	// zone, and Limits refuse large changes unless --allow-large-change.
	Compare ZoneComparer
	Limits  ChangeLimits

	ApprovalTimeout time.Duration // the gate's deadline; default 30m
	AutoPromote     bool          // at the deadline promote instead of aborting
	FourEyes        bool          // the requester cannot approve their own deploy
	RollbackWindow  time.Duration // how long the old set is kept; default 15m
	// ApprovalTimeoutSet and RollbackWindowSet say the duration was given:
	// then 0 means zero (promote at once with AutoPromote; retire the old
	// set right after check-live) instead of the default.
	ApprovalTimeoutSet bool
	RollbackWindowSet  bool
	Timeouts           Timeouts
	// Freezes are the config's recurring freezes (the service's and the
	// top level's): deploys are refused inside them.
	Freezes []FreezeWindow
	// DeployWindows, when set, are the only times traffic is switched.
	DeployWindows []DeployWindow

	Cloud       Cloud
	Provisioner Provisioner
	Switch      Switch
	Checker     Checker
}

// Timeouts bound each step.
type Timeouts struct {
	Create      time.Duration // default 10m
	WaitRunning time.Duration // default 10m
	Provision   time.Duration // default 15m
	Check       time.Duration // default 5m
	Switch      time.Duration // default 5m; also bounds draining
	Retire      time.Duration // default 10m
}

// ChangeLimits bound how much of a zone one deploy may change.
type ChangeLimits struct {
	MaxUpdatePct    float64 // of the live RRsets; default 30
	MaxDeletePct    float64 // default 30
	MinRRsets       int     // zones with fewer live RRsets are not limited; default 10
	ExpectUnchanged bool    // any content change is a warning shown above Approve
}
