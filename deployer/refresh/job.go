package refresh

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/greenlight/greenlight/deployer"
)

// Defaults for a Job's fields left at zero.
const (
	DefaultKeep        = 5
	DefaultBakeTimeout = time.Hour
)

// Job is one service's image refresh, as configured under
// services.<name>.refresh.
type Job struct {
	Service string
	// Schedule is a cron spec: five fields ("0 4 * * 1"), or a descriptor
	// ("@weekly"), optionally after CRON_TZ=Zone. Without CRON_TZ it is read
	// in UTC. "" means no schedule: the service is refreshed on demand only.
	Schedule  string
	Keep      int    // golden images to keep; 0 means DefaultKeep
	BaseImage string // what the builder boots: "linode/debian12"
	// UserData is the builder's cloud-init. RenderUserData, when set, is
	// called instead for every bake, with the bake's build ID.
	UserData       []byte
	RenderUserData func(ctx context.Context, service, buildID string) ([]byte, error)
	// RenderBake, when set, is called instead of RenderUserData: the user
	// data also writes the zone files into the image, and zones (nil when
	// it does not) is their content, recorded in the image's description.
	RenderBake  func(ctx context.Context, service, buildID string) (userData []byte, zones *deployer.ZoneContent, err error)
	AutoDeploy  bool          // start a deploy of each new image; it stops at the approval gate
	CatchUp     bool          // at start-up, run once when a scheduled run was missed
	Channel     string        // where announcements go; "" = the default channel
	BakeTimeout time.Duration // 0 means DefaultBakeTimeout
}

// scheduleParser reads five-field specs and descriptors; it honours CRON_TZ.
func scheduleParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseSchedule parses a service's refresh schedule. "" gives a nil
// schedule and no error. The error names the configuration field:
// services.ns.refresh.schedule: "0 4 * *" is not a cron schedule: ….
func ParseSchedule(service, spec string) (cron.Schedule, error) {
	if spec == "" {
		return nil, nil
	}
	s, err := scheduleParser().Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a cron schedule: %w", field(service, "schedule"), spec, err)
	}
	return s, nil
}

// Validate checks the job as configuration loading does at start-up.
func (j Job) Validate() error {
	if j.Service == "" {
		return fmt.Errorf("an image refresh has no service")
	}
	if _, err := ParseSchedule(j.Service, j.Schedule); err != nil {
		return err
	}
	if j.Keep < 0 {
		return fmt.Errorf("%s: %d is negative; keep at least 1 golden image (0 means %d)", field(j.Service, "keep"), j.Keep, DefaultKeep)
	}
	if j.BakeTimeout < 0 {
		return fmt.Errorf("%s: %s is negative", field(j.Service, "bake_timeout"), j.BakeTimeout)
	}
	return nil
}

func field(service, name string) string { return "services." + service + ".refresh." + name }

func (j Job) keep() int {
	if j.Keep <= 0 {
		return DefaultKeep
	}
	return j.Keep
}

func (j Job) bakeTimeout() time.Duration {
	if j.BakeTimeout <= 0 {
		return DefaultBakeTimeout
	}
	return j.BakeTimeout
}

func (j Job) userData(ctx context.Context, buildID string) ([]byte, *deployer.ZoneContent, error) {
	if j.RenderBake != nil {
		b, zones, err := j.RenderBake(ctx, j.Service, buildID)
		if err != nil {
			return nil, nil, deployer.Wrapf(err, "render the builder's user data")
		}
		return b, zones, nil
	}
	b, err := j.renderUserData(ctx, buildID)
	return b, nil, err
}

func (j Job) renderUserData(ctx context.Context, buildID string) ([]byte, error) {
	if j.RenderUserData == nil {
		return j.UserData, nil
	}
	b, err := j.RenderUserData(ctx, j.Service, buildID)
	if err != nil {
		return nil, deployer.Wrapf(err, "render the builder's user data")
	}
	return b, nil
}

// next is the first scheduled time after t. A schedule without CRON_TZ is
// read in UTC, whatever the machine's zone.
func next(s cron.Schedule, t time.Time) time.Time { return s.Next(t.UTC()) }
