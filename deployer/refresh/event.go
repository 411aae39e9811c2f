// Package refresh bakes golden images on a schedule, prunes old ones and
// announces them, so a fresh image is always one click from a deploy.
package refresh

import (
	"context"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// EventKind says where a bake stands.
type EventKind string

// The kinds of Event.
const (
	EventStarted  EventKind = "started"
	EventFinished EventKind = "finished"
	EventFailed   EventKind = "failed"
)

// Event is one moment of a bake, for announcements.
type Event struct {
	Service string
	Kind    EventKind
	BuildID string
	Trigger string // "schedule", "catch-up", or the user ID who asked
	Base    string // the base image baked from
	Image   deployer.Image
	Took    time.Duration
	Pruned  []deployer.Image // golden images deleted after the bake
	Err     error            // why it failed, phrased for chat
	// DeployID is the deploy auto_deploy started with the new image; 0 when none.
	DeployID uint64
}

// Reporter shows bake events to people (bot.Notifier in production).
type Reporter interface {
	Refresh(ctx context.Context, ev Event)
}

// Status is one service's schedule as /deploy schedule shows it.
type Status struct {
	Service    string
	Schedule   string // as configured; "" means no schedule (refresh on demand only)
	Next       time.Time
	LastRun    time.Time
	LastResult string // "ok: ns-golden-20261123-0400", "failed: …", "" when never run
	Running    bool
}
