package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode"
	"github.com/greenlight/greenlight/deployer/refresh"
	"github.com/greenlight/greenlight/deployer/zones"
)

// RefreshConfig is a service's scheduled image refresh.
type RefreshConfig struct {
	Schedule   string   `yaml:"schedule"`    // cron: "CRON_TZ=UTC 0 4 * * 1" or @weekly; "" = on demand only
	Keep       int      `yaml:"keep"`        // golden images kept; default 5
	BaseImage  string   `yaml:"base_image"`  // what the builder boots; default linode.image
	UserData   string   `yaml:"user_data"`   // the builder's cloud-init template; default configs/cloud-init/bake-nsd.yaml
	AutoDeploy bool     `yaml:"auto_deploy"` // deploy each new image (it still waits for approval)
	CatchUp    *bool    `yaml:"catch_up"`    // run once at start-up when a run was missed; default true
	Channel    string   `yaml:"channel"`     // announcements; default slack.channel
	Timeout    Duration `yaml:"timeout"`     // of one bake; default 1h
}

// validate checks the schedule at start-up, naming the service and field.
func (r *RefreshConfig) validate(key, service string) error {
	if r == nil {
		return nil
	}
	if _, err := refresh.ParseSchedule(service, r.Schedule); err != nil {
		msg := strings.TrimPrefix(err.Error(), key+".refresh.schedule: ")
		return &keyError{key + ".refresh.schedule", msg}
	}
	if r.Keep < 0 {
		return &keyError{key + ".refresh.keep", "keep at least 1 golden image"}
	}
	return nil
}

// bakeVars are what the builder's cloud-init template may use.
type bakeVars struct {
	Service, BuildID, BaseImage string
	Zones                       []string
	// With zones.dir: the files written into the image (see
	// configs/cloud-init/nsd.yaml for their fields), their digest, and
	// nsd.conf's zone clauses.
	ZoneFiles   []linode.ZoneFileVars
	ZonesDigest string
	Served      []linode.ServedZone
}

// refreshJob is the refresh job of svc. A service without a refresh section
// still refreshes on demand (/deploy refresh), with the defaults.
func refreshJob(svc *deployer.Service, sc *ServiceConfig) (refresh.Job, error) {
	rc := sc.Refresh
	if rc == nil {
		rc = &RefreshConfig{}
	}
	job := refresh.Job{Service: svc.Name, Schedule: rc.Schedule, Keep: rc.Keep, BaseImage: rc.BaseImage,
		AutoDeploy: rc.AutoDeploy, CatchUp: rc.CatchUp == nil || *rc.CatchUp, Channel: rc.Channel,
		BakeTimeout: time.Duration(rc.Timeout)}
	if job.BaseImage == "" {
		job.BaseImage = svc.BaseImage
	}
	name, src, err := readTemplate(rc.UserData, "cloud-init/bake-nsd.yaml")
	if err != nil {
		return job, fmt.Errorf("services.%s.refresh.user_data: %w", svc.Name, err)
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return job, fmt.Errorf("services.%s.refresh.user_data: %w", svc.Name, err)
	}
	zoneNames := slices.Clone(svc.Check.Zones)
	zo := sc.zonesOptions()
	render := func(ctx context.Context, service, buildID string, set *zones.Set) ([]byte, error) {
		vars := bakeVars{Service: service, BuildID: buildID, BaseImage: job.BaseImage, Zones: zoneNames}
		if set != nil {
			var err error
			if vars.ZoneFiles, vars.Served, err = linode.ZoneFilesOf(set); err != nil {
				return nil, err
			}
			vars.ZonesDigest = set.Content.Digest
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		if sc.Cloud == "linode" && b.Len() > linode.UserDataLimit {
			return nil, fmt.Errorf("the builder's user data is %d bytes, %d more than Linode's limit of %d: leave zones.dir out of the bake and ship the zones with provisioner kind: command",
				b.Len(), b.Len()-linode.UserDataLimit, linode.UserDataLimit)
		}
		return b.Bytes(), nil
	}
	// A template that does not render is a start-up error, not a failed bake at 4am.
	if _, err := render(context.Background(), svc.Name, "20260101-0000", nil); err != nil {
		return job, fmt.Errorf("services.%s.refresh.user_data: %w", svc.Name, err)
	}
	job.RenderBake = func(ctx context.Context, service, buildID string) ([]byte, *deployer.ZoneContent, error) {
		if zo == nil {
			b, err := render(ctx, service, buildID, nil)
			return b, nil, err
		}
		set, err := zones.Load(ctx, *zo)
		if err != nil {
			return nil, nil, err
		}
		b, err := render(ctx, service, buildID, set)
		return b, &set.Content, err
	}
	return job, nil
}

// refreshers are the services' image refreshes, one Refresher per service
// (each bakes in its own cloud), answering the router as one.
type refreshers map[string]*refresh.Refresher

// RunNow starts a bake of service now.
func (r refreshers) RunNow(ctx context.Context, service, trigger string) (refresh.Event, error) {
	one, ok := r[service]
	if !ok {
		return refresh.Event{}, fmt.Errorf("%s has no image refresh in this greenlight", service)
	}
	return one.RunNow(ctx, service, trigger)
}

// Schedules lists every service's schedule, by service name.
func (r refreshers) Schedules(ctx context.Context) []refresh.Status {
	var out []refresh.Status
	for _, name := range slices.Sorted(maps.Keys(r)) {
		out = append(out, r[name].Schedules(ctx)...)
	}
	return out
}

// openRefresh builds each service's image refresh and gives it to the router.
func (m *Main) openRefresh(services []*deployer.Service) error {
	m.running.refresh = refreshers{}
	for _, svc := range services {
		baker, ok := m.running.bakers[svc.Name]
		if !ok {
			continue
		}
		job, err := refreshJob(svc, m.Config.Services[svc.Name])
		if err != nil {
			return err
		}
		r, err := refresh.New(refresh.Options{Jobs: []refresh.Job{job}, Baker: baker, Images: svc.Cloud, State: m.running.db,
			Deploys: refresh.FromDeployer(m.running.deployer), Reporter: m.running.metrics.Refresh(m.running.notifier), Clock: m.Clock,
			Logger: m.Log.With("service", svc.Name, "job", "refresh")})
		if err != nil {
			return err
		}
		m.running.refresh[svc.Name] = r
	}
	m.running.router.Refresher = m.running.refresh
	return nil
}
