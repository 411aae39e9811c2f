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

	Started time.Time // when the bake began
	Channel string    // where to announce it; "" = the default channel
	// PruneErr says which old images could not be deleted and why; the bake
	// itself succeeded.
	PruneErr error
	// DeployErr says why auto_deploy could not start a deploy of the new
	// image (the lock is held, say); the bake itself succeeded.
	DeployErr error
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

	Started    time.Time // when the running bake began; zero when none runs
	LastImage  string    // the image the last run baked; "" when it failed
	Keep       int       // golden images kept
	AutoDeploy bool
}
