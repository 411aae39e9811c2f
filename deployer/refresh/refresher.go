package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/greenlight/greenlight/deployer"
)

// Triggers of runs that no person asked for.
const (
	TriggerSchedule = "schedule"
	TriggerCatchUp  = "catch-up"
)

// StateStore keeps each service's last run as JSON (storage.DB).
type StateStore interface {
	ScheduleState(service string) ([]byte, error)
	SetScheduleState(service string, v []byte) error
}

// ImageLister lists a service's images, newest first (a deployer.Cloud).
type ImageLister interface {
	Images(ctx context.Context, service string) ([]deployer.Image, error)
}

// Options wire a Refresher.
type Options struct {
	Jobs     []Job
	Baker    deployer.Baker
	Images   ImageLister
	State    StateStore
	Deploys  Deploys  // FromDeployer(d) in production
	Reporter Reporter // default: discard
	Clock    deployer.Clock
	Logger   *slog.Logger
}

// Refresher bakes each service's golden image on its schedule and on
// demand, one bake per service at a time, and prunes old images. A bake
// never takes the deploy lock: a deploy started during one uses the images
// there were before it.
type Refresher struct {
	jobs     map[string]*jobState
	names    []string
	baker    deployer.Baker
	images   ImageLister
	state    StateStore
	deploys  Deploys
	reporter Reporter
	clock    deployer.Clock
	log      *slog.Logger

	mu      sync.Mutex
	base    context.Context // bakes run under it; set by Run
	started bool            // Run was called
	bakes   sync.WaitGroup
}

// jobState is one job and its bake in progress.
type jobState struct {
	job   Job
	sched cron.Schedule // nil: on demand only

	// Under Refresher.mu.
	running   *Event // the started event of the bake in progress
	lastBuild string // the build ID of the last bake started, "" until one starts
}

// lastRun is what is persisted of a service's last run.
type lastRun struct {
	At       time.Time `json:"at"` // when it started
	Finished time.Time `json:"finished,omitzero"`
	Trigger  string    `json:"trigger,omitempty"`
	BuildID  string    `json:"build_id"`
	OK       bool      `json:"ok"`
	Image    string    `json:"image,omitempty"`
	Label    string    `json:"label,omitempty"`
	Error    string    `json:"error,omitempty"`
	DeployID uint64    `json:"deploy_id,omitempty"`
}

// New checks the jobs and returns a Refresher. Call Run to start the schedules.
func New(opts Options) (*Refresher, error) {
	switch {
	case opts.Baker == nil:
		return nil, errors.New("image refresh: no baker")
	case opts.Images == nil:
		return nil, errors.New("image refresh: no image lister")
	case opts.State == nil:
		return nil, errors.New("image refresh: no state store")
	case opts.Deploys == nil:
		return nil, errors.New("image refresh: no deployer to ask which images are in use")
	}
	r := &Refresher{
		jobs:     map[string]*jobState{},
		baker:    opts.Baker,
		images:   opts.Images,
		state:    opts.State,
		deploys:  opts.Deploys,
		reporter: opts.Reporter,
		clock:    opts.Clock,
		log:      opts.Logger,
		base:     context.Background(),
	}
	if r.reporter == nil {
		r.reporter = ReporterFunc(func(context.Context, Event) {})
	}
	if r.clock == nil {
		r.clock = deployer.SystemClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, j := range opts.Jobs {
		if err := j.Validate(); err != nil {
			return nil, err
		}
		if _, dup := r.jobs[j.Service]; dup {
			return nil, fmt.Errorf("services.%s.refresh is configured twice", j.Service)
		}
		sched, _ := ParseSchedule(j.Service, j.Schedule)
		r.jobs[j.Service] = &jobState{job: j, sched: sched}
		r.names = append(r.names, j.Service)
	}
	slices.Sort(r.names)
	return r, nil
}

// ReporterFunc adapts a function to a Reporter.
type ReporterFunc func(ctx context.Context, ev Event)

// Refresh calls f.
func (f ReporterFunc) Refresh(ctx context.Context, ev Event) { f(ctx, ev) }

// Run catches up on runs missed while greenlight was down (once per service
// whose job has CatchUp), then runs each schedule until ctx ends. Bakes run
// under ctx; Wait waits for them.
func (r *Refresher) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("image refresh: Run was already called")
	}
	r.started, r.base = true, ctx
	r.mu.Unlock()

	now := r.clock.Now()
	var loops sync.WaitGroup
	for _, name := range r.names {
		js := r.jobs[name]
		if js.sched == nil {
			continue
		}
		if js.job.CatchUp && r.missed(js, now) {
			if _, err := r.start(js, TriggerCatchUp); err != nil {
				r.log.Warn("missed image refresh not caught up", "service", name, "err", err)
			}
		}
		loops.Go(func() { r.loop(ctx, js) })
	}
	loops.Wait()
	return nil
}

// missed reports whether a scheduled run fell between the last run and now.
// A service never run has missed nothing.
func (r *Refresher) missed(js *jobState, now time.Time) bool {
	last, err := r.last(js.job.Service)
	if err != nil {
		r.log.Error("cannot read the last image refresh", "service", js.job.Service, "err", err)
		return false
	}
	if last == nil || last.At.IsZero() {
		return false
	}
	due := next(js.sched, last.At)
	return !due.IsZero() && !due.After(now)
}

// loop waits on the clock for each scheduled time and starts a bake then.
func (r *Refresher) loop(ctx context.Context, js *jobState) {
	var prev time.Time
	for {
		now := r.clock.Now()
		from := now
		if from.Before(prev) { // never fire the same time twice
			from = prev
		}
		at := next(js.sched, from)
		if at.IsZero() {
			r.log.Warn("image refresh schedule never fires", "service", js.job.Service, "schedule", js.job.Schedule)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(at.Sub(now)):
		}
		if ctx.Err() != nil {
			return
		}
		prev = at
		if _, err := r.start(js, TriggerSchedule); err != nil {
			r.log.Warn("scheduled image refresh skipped", "service", js.job.Service, "err", err)
		}
	}
}

// RunNow starts a bake of service at once, for `/deploy refresh`; trigger
// is who asked. It returns the started event, or an error when the service
// has no refresh configured or a bake of it is already running.
func (r *Refresher) RunNow(ctx context.Context, service, trigger string) (Event, error) {
	js, ok := r.jobs[service]
	if !ok {
		if len(r.names) == 0 {
			return Event{}, deployer.Errorf(deployer.CodeNotFound, "no service has an image refresh configured")
		}
		return Event{}, deployer.Errorf(deployer.CodeNotFound, "%q has no image refresh configured; services with one: %s",
			service, strings.Join(r.names, ", "))
	}
	return r.start(js, trigger)
}

// start claims the service's bake slot and runs the bake in the background.
func (r *Refresher) start(js *jobState, trigger string) (Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := js.running; cur != nil {
		return Event{}, deployer.Errorf(deployer.CodeConflict, "a bake of %s is already running (started %s)",
			js.job.Service, cur.Started.UTC().Format("15:04 MST"))
	}
	now := r.clock.Now()
	if js.lastBuild == "" {
		if last, err := r.last(js.job.Service); err == nil && last != nil {
			js.lastBuild = last.BuildID
		}
	}
	buildID := nextBuildID(now, js.lastBuild)
	js.lastBuild = buildID
	ev := Event{
		Service: js.job.Service,
		Kind:    EventStarted,
		BuildID: buildID,
		Trigger: trigger,
		Base:    js.job.BaseImage,
		Started: now,
		Channel: js.job.Channel,
	}
	js.running = &ev
	base := r.base
	r.bakes.Add(1)
	go r.run(base, js, ev)
	return ev, nil
}

// nextBuildID names a bake started at now: "20261123-0400", or
// "20261123-0400-2" when the last bake started in the same minute, so
// labels stay unique.
func nextBuildID(now time.Time, last string) string {
	id := now.UTC().Format("20060102-1504")
	if last == id {
		return id + "-2"
	}
	if rest, ok := strings.CutPrefix(last, id+"-"); ok {
		if n, err := strconv.Atoi(rest); err == nil {
			return id + "-" + strconv.Itoa(n+1)
		}
	}
	return id
}

// run is one bake: bake, prune, auto deploy, announce and persist.
func (r *Refresher) run(ctx context.Context, js *jobState, ev Event) {
	defer r.bakes.Done()
	job := js.job
	log := r.log.With("service", job.Service, "build", ev.BuildID)
	log.Info("image refresh started", "trigger", ev.Trigger, "base", job.BaseImage)
	r.reporter.Refresh(ctx, ev)

	img, err := r.bake(ctx, job, ev)
	ev.Took = r.clock.Now().Sub(ev.Started)
	rec := lastRun{At: ev.Started, Finished: r.clock.Now(), Trigger: ev.Trigger, BuildID: ev.BuildID}
	if err != nil {
		ev.Kind, ev.Err = EventFailed, err
		if ctx.Err() != nil {
			// Not recorded, so the next start catches up on it.
			ev.Err = deployer.Wrapf(err, "greenlight stopped during the bake of %s", job.Service)
		} else {
			rec.Error = deployer.ErrorMessage(err)
			r.save(job.Service, rec)
		}
		log.Error("image refresh failed", "err", ev.Err)
		r.finish(context.WithoutCancel(ctx), js, ev)
		return
	}
	ev.Image = img
	ev.Pruned, ev.PruneErr = r.prune(ctx, job)
	if ev.PruneErr != nil {
		log.Warn("pruning old images failed", "err", ev.PruneErr)
	}
	if job.AutoDeploy {
		ev.DeployID, ev.DeployErr = r.deploys.Deploy(ctx, DeployRequest{
			Service:   job.Service,
			Image:     img.ID,
			Requester: Requester,
			Reason:    "new golden image " + img.Label,
			Channel:   job.Channel,
		})
		if ev.DeployErr != nil {
			ev.DeployErr = deployer.Wrapf(ev.DeployErr, "could not start a deploy of %s", img.ID)
			log.Warn("auto deploy did not start", "image", img.ID, "err", ev.DeployErr)
		}
	}
	rec.OK, rec.Image, rec.Label, rec.DeployID = true, img.ID, img.Label, ev.DeployID
	r.save(job.Service, rec)
	ev.Kind = EventFinished
	log.Info("image refresh finished", "image", img.ID, "label", img.Label, "took", ev.Took,
		"pruned", len(ev.Pruned), "deploy", ev.DeployID)
	r.finish(ctx, js, ev)
}

// finish frees the service's bake slot, then announces ev, so whoever reads
// the announcement can start the next bake.
func (r *Refresher) finish(ctx context.Context, js *jobState, ev Event) {
	r.mu.Lock()
	js.running = nil
	r.mu.Unlock()
	r.reporter.Refresh(ctx, ev)
}

// bake asks the Baker for the image, bounded by the job's bake timeout.
func (r *Refresher) bake(ctx context.Context, job Job, ev Event) (deployer.Image, error) {
	timeout := job.bakeTimeout()
	bctx, cancel := context.WithTimeoutCause(ctx, timeout,
		deployer.Errorf(deployer.CodeFailed, "the bake of %s took longer than %s", job.Service, timeout))
	defer cancel()
	userData, zones, err := job.userData(bctx, ev.BuildID)
	if err != nil {
		return deployer.Image{}, err
	}
	description := fmt.Sprintf("baked from %s by greenlight build %s", baseName(job.BaseImage), ev.BuildID)
	if zones != nil {
		description += "; " + zones.Summary()
	}
	img, err := r.baker.Bake(bctx, deployer.BakeSpec{
		Service:     job.Service,
		BaseImage:   job.BaseImage,
		UserData:    userData,
		Label:       fmt.Sprintf("%s-golden-%s", job.Service, ev.BuildID),
		Description: description,
		BuildID:     ev.BuildID,
	})
	if err != nil && ctx.Err() == nil && bctx.Err() != nil {
		return deployer.Image{}, fmt.Errorf("%w: %w", context.Cause(bctx), err)
	}
	return img, err
}

func baseName(base string) string {
	if base == "" {
		return "the cloud's default image"
	}
	return base
}

// save persists the service's last run; a failure is logged, since the bake
// is done either way.
func (r *Refresher) save(service string, rec lastRun) {
	b, err := json.Marshal(rec)
	if err == nil {
		err = r.state.SetScheduleState(service, b)
	}
	if err != nil {
		r.log.Error("cannot record the last image refresh; a restart may bake again", "service", service, "err", err)
	}
}

// last reads the service's last run; nil when it never ran.
func (r *Refresher) last(service string) (*lastRun, error) {
	b, err := r.state.ScheduleState(service)
	if err != nil || len(b) == 0 {
		return nil, err
	}
	var rec lastRun
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("the recorded last image refresh of %s is damaged: %w", service, err)
	}
	return &rec, nil
}

// Schedules reports each service's schedule, next and last run, sorted by
// service, for `/deploy schedule`.
func (r *Refresher) Schedules(ctx context.Context) []Status {
	now := r.clock.Now()
	out := make([]Status, 0, len(r.names))
	for _, name := range r.names {
		js := r.jobs[name]
		st := Status{Service: name, Schedule: js.job.Schedule, Keep: js.job.keep(), AutoDeploy: js.job.AutoDeploy}
		if js.sched != nil {
			st.Next = next(js.sched, now)
		}
		r.mu.Lock()
		if js.running != nil {
			st.Running, st.Started = true, js.running.Started
		}
		r.mu.Unlock()
		last, err := r.last(name)
		switch {
		case err != nil:
			r.log.Error("cannot read the last image refresh", "service", name, "err", err)
			st.LastResult = "unknown: " + deployer.ErrorMessage(err)
		case last != nil:
			st.LastRun = last.At
			if last.OK {
				st.LastResult, st.LastImage = "ok: "+last.Label, last.Image
			} else {
				st.LastResult = "failed: " + last.Error
			}
		}
		out = append(out, st)
	}
	return out
}

// Wait returns once every bake has ended (after Run's ctx ends, they are
// canceled), for a clean shutdown.
func (r *Refresher) Wait() { r.bakes.Wait() }
