package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	_ "time/tzdata" // CRON_TZ=Europe/Berlin on machines without a zone database

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/storage"
)

// waitLimit bounds every wait for a bake or a deploy to get somewhere.
const waitLimit = 15 * time.Second

// monday is 2026-11-23 03:00 UTC, an hour before "0 4 * * 1" fires.
var monday = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openDB opens a real store in dir (a fresh temporary one when dir is "").
func openDB(t *testing.T, dir string, clock deployer.Clock) *storage.DB {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	db, err := storage.Open(filepath.Join(dir, "greenlight.db"), storage.Options{Clock: clock})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fakeBaker bakes images in memory and lists them like a cloud, newest
// first. It records every call.
type fakeBaker struct {
	clock deployer.Clock

	mu         sync.Mutex
	specs      []deployer.BakeSpec
	images     []deployer.Image // newest first
	deleted    []string
	n          int
	gate       chan struct{}    // when set, Bake waits until it is closed
	bakeErr    error            // Bake fails with it
	failDelete map[string]error // DeleteImage fails for these IDs
}

func (b *fakeBaker) Bake(ctx context.Context, spec deployer.BakeSpec) (deployer.Image, error) {
	b.mu.Lock()
	b.specs = append(b.specs, spec)
	gate, bakeErr := b.gate, b.bakeErr
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return deployer.Image{}, fmt.Errorf("builder of %s stopped: %w", spec.Label, ctx.Err())
		}
	}
	if bakeErr != nil {
		return deployer.Image{}, bakeErr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	img := deployer.Image{ID: fmt.Sprintf("private/%d", 100+b.n), Label: spec.Label, Description: spec.Description,
		Created: b.clock.Now(), Golden: true}
	b.images = append([]deployer.Image{img}, b.images...)
	return img, nil
}

func (b *fakeBaker) DeleteImage(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.failDelete[id]; err != nil {
		return err
	}
	b.deleted = append(b.deleted, id)
	b.images = slices.DeleteFunc(b.images, func(im deployer.Image) bool { return im.ID == id })
	return nil
}

func (b *fakeBaker) Images(ctx context.Context, service string) ([]deployer.Image, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.images), nil
}

func (b *fakeBaker) calls() []deployer.BakeSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.specs)
}

func (b *fakeBaker) deletedIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.deleted)
}

// fakeDeploys answers InUse with a fixed list and records deploys.
type fakeDeploys struct {
	mu        sync.Mutex
	inUse     []string
	inUseErr  error
	deployErr error
	requests  []DeployRequest
}

func (d *fakeDeploys) InUse(ctx context.Context, service string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.inUse), d.inUseErr
}

func (d *fakeDeploys) Deploy(ctx context.Context, req DeployRequest) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, req)
	if d.deployErr != nil {
		return 0, d.deployErr
	}
	return uint64(6 + len(d.requests)), nil
}

// events is a Reporter that hands events to the test in order.
type events struct{ ch chan Event }

func newEvents() *events { return &events{ch: make(chan Event, 64)} }

func (e *events) Refresh(_ context.Context, ev Event) { e.ch <- ev }

// next returns the next event, which must be of kind want.
func (e *events) next(t *testing.T, want EventKind) Event {
	t.Helper()
	select {
	case ev := <-e.ch:
		if ev.Kind != want {
			t.Fatalf("event %s of %s (err %v), want %s", ev.Kind, ev.Service, ev.Err, want)
		}
		return ev
	case <-time.After(waitLimit):
		t.Fatalf("no %s event within %s", want, waitLimit)
	}
	return Event{}
}

// none fails when an event is waiting.
func (e *events) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-e.ch:
		t.Fatalf("unexpected %s event of %s (build %s, trigger %s)", ev.Kind, ev.Service, ev.BuildID, ev.Trigger)
	default:
	}
}

// running is a Refresher whose Run goroutine the test stops with stop.
type running struct {
	*Refresher
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// run starts r.Run and registers its stop as a cleanup.
func run(t *testing.T, r *Refresher) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{Refresher: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	t.Cleanup(rr.stop)
	return rr
}

// stop ends Run and waits for it and every bake. Calling it again does nothing.
func (rr *running) stop() {
	rr.once.Do(func() {
		rr.cancel()
		<-rr.done
		rr.Wait()
	})
}

// waitLoops waits until n schedule loops wait on the clock.
func waitLoops(t *testing.T, clock *deployer.ManualClock, n int) {
	t.Helper()
	eventually.Within(t, waitLimit, fmt.Sprintf("%d waiters on the clock", n), func() bool { return clock.Waiters() >= n })
}

func ids(images []deployer.Image) []string {
	out := []string{}
	for _, im := range images {
		out = append(out, im.ID)
	}
	return out
}
