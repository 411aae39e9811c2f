package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/zones"
)

var (
	_ deployer.Cloud       = (*Cloud)(nil)
	_ deployer.Provisioner = (*Cloud)(nil)
	_ deployer.Baker       = (*Cloud)(nil)
)

// DefaultBootDelay is how long a server takes to boot when Options.BootDelay is 0.
const DefaultBootDelay = 2 * time.Second

// Options configure a local Cloud.
type Options struct {
	Dir       string         // data directory; the inventory is Dir/local-cloud.json
	Host      string         // where servers listen; default "127.0.0.1"
	BootDelay time.Duration  // how long a server takes to boot; 0 means DefaultBootDelay, negative means none
	Clock     deployer.Clock // default deployer.SystemClock
	Logger    *slog.Logger   // default slog.Default()
	Zones     fs.FS          // zone templates in zones/*.zone; default configs.Files
}

// Cloud is the embedded cloud: its servers are in-process authoritative DNS
// servers on loopback. It is a deployer.Cloud and a deployer.Provisioner.
type Cloud struct {
	dir       string // Options.Dir
	path      string // the inventory file
	host      string
	bootDelay time.Duration
	clock     deployer.Clock
	log       *slog.Logger
	zones     []zoneTemplate

	mu  sync.Mutex
	inv inventory
	gen uint64 // inventory changes so far

	flushMu sync.Mutex   // one inventory write at a time
	flushed uint64       // the change the file on disk includes; flushMu guards it
	writes  atomic.Int64 // inventory files written, for tests

	live    map[string]*instance     // by server ID
	shipped map[string]zones.Options // by service: ShipZones
	closed  bool
	done    chan struct{} // closed by Close
	boots   sync.WaitGroup
}

// instance is a server's life in this process.
type instance struct {
	cancel  chan struct{} // closed by Delete and Close: stop booting
	settled chan struct{} // closed once the server runs, or failed to start
	err     error         // why it failed to start; written before settled closes
	h       *handler
	ns      *nameserver // nil until running
}

func newInstance() *instance {
	return &instance{cancel: make(chan struct{}), settled: make(chan struct{})}
}

func (in *instance) canceled() bool {
	select {
	case <-in.cancel:
		return true
	default:
		return false
	}
}

// New opens the local cloud whose data lives in opts.Dir. Servers the
// inventory says were running start again, on their old port when it is
// free; provisioned ones serve their zones at once.
func New(opts Options) (*Cloud, error) {
	if opts.Dir == "" {
		return nil, errors.New("local cloud: Options.Dir is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch {
	case opts.BootDelay == 0:
		opts.BootDelay = DefaultBootDelay
	case opts.BootDelay < 0:
		opts.BootDelay = 0
	}
	if opts.Clock == nil {
		opts.Clock = deployer.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Zones == nil {
		opts.Zones = configs.Files
	}
	zones, err := loadZoneTemplates(opts.Zones)
	if err != nil {
		return nil, fmt.Errorf("local cloud: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("local cloud: %w", err)
	}
	path := filepath.Join(opts.Dir, InventoryFile)
	inv, err := loadInventory(path)
	if err != nil {
		return nil, err
	}
	c := &Cloud{
		dir:       opts.Dir,
		path:      path,
		host:      opts.Host,
		bootDelay: opts.BootDelay,
		clock:     opts.Clock,
		log:       opts.Logger.With("cloud", "local"),
		zones:     zones,
		inv:       inv,
		live:      map[string]*instance{},
		done:      make(chan struct{}),
	}
	c.mu.Lock()
	for i := range c.inv.Servers {
		c.resume(&c.inv.Servers[i])
	}
	c.save()
	c.mu.Unlock()
	if err = c.persist(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// resume brings back a server from the inventory.
func (c *Cloud) resume(rec *serverRecord) {
	if rec.Status != statusRunning {
		rec.Status = statusProvisioning
		c.boot(rec)
		return
	}
	in := newInstance()
	c.live[rec.ID] = in
	old := rec.Addr
	c.start(rec, in, net.JoinHostPort(c.host, port(old)))
	if rec.Status == statusRunning && rec.Addr != old {
		c.log.Warn("server's old port is taken; it answers on a new one", "server", rec.Name, "old", old, "addr", rec.Addr)
	}
}

// Close stops every server. The inventory keeps them: New on the same Dir
// starts them again.
func (c *Cloud) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	var running []*nameserver
	for _, in := range c.live {
		close(in.cancel)
		if in.ns != nil {
			running = append(running, in.ns)
		}
	}
	c.mu.Unlock()
	c.boots.Wait()
	var wg sync.WaitGroup
	for _, ns := range running {
		wg.Go(ns.stop)
	}
	wg.Wait()
	return nil
}

// Create records a server and boots it after the boot delay. It returns at
// once, with status "provisioning". A name that exists already returns the
// existing server.
func (c *Cloud) Create(ctx context.Context, spec deployer.ServerSpec) (_ deployer.Server, err error) {
	if err := ctx.Err(); err != nil {
		return deployer.Server{}, err
	}
	if spec.Name == "" {
		return deployer.Server{}, deployer.Errorf(deployer.CodeInvalid, "a server needs a name")
	}
	defer c.persistAfter(&err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return deployer.Server{}, err
	}
	if rec := c.find(deployer.Server{Name: spec.Name}); rec != nil {
		return rec.server(), nil
	}
	img, err := c.image(spec.Service, spec.Image)
	if err != nil {
		return deployer.Server{}, err
	}
	c.inv.LastID++
	id := "local-" + strconv.FormatUint(c.inv.LastID, 10)
	zoneFiles, err := c.copyZones(ctx, spec, id)
	if err != nil {
		c.removeZones(id)
		return deployer.Server{}, err
	}
	rec := serverRecord{
		Server: deployer.Server{
			ID:     id,
			Name:   spec.Name,
			Role:   spec.Role,
			Label:  spec.Label,
			Image:  img.ID,
			Tags:   slices.Clone(spec.Tags),
			Status: statusProvisioning,
		},
		Service:   img.Service,
		DeployID:  spec.DeployID,
		Created:   c.clock.Now(),
		ZoneFiles: zoneFiles,
	}
	c.inv.Servers = append(c.inv.Servers, rec)
	c.save()
	c.boot(&c.inv.Servers[len(c.inv.Servers)-1])
	c.log.Info("server created", "server", rec.Name, "id", rec.ID, "image", rec.Image)
	return rec.server(), nil
}

// boot starts rec after the boot delay, unless it is deleted or the cloud
// closes first. c.mu is held.
func (c *Cloud) boot(rec *serverRecord) {
	in := newInstance()
	c.live[rec.ID] = in
	id := rec.ID
	after := c.clock.After(c.bootDelay)
	c.boots.Go(func() {
		select {
		case <-after:
		case <-in.cancel:
			return
		}
		c.mu.Lock()
		if in.canceled() {
			c.mu.Unlock()
			return
		}
		if rec := c.find(deployer.Server{ID: id}); rec != nil {
			c.start(rec, in, net.JoinHostPort(c.host, "0"))
			c.save()
		}
		c.mu.Unlock()
		if err := c.persist(); err != nil {
			c.log.Error("cannot save the local cloud's inventory", "err", err)
		}
	})
}

// start makes rec answer on addr, or on any port when addr's is taken, and
// marks it running (or failed). c.mu is held.
func (c *Cloud) start(rec *serverRecord, in *instance, addr string) {
	defer close(in.settled)
	in.h = newHandler(rec.Name, c.log)
	if rec.Provisioned {
		ct, err := c.content(rec)
		if err != nil {
			c.fail(rec, in, err)
			return
		}
		in.h.serve(ct)
	}
	ns, err := startNameserver(addr, in.h)
	if err != nil && port(addr) != "0" {
		ns, err = startNameserver(net.JoinHostPort(c.host, "0"), in.h)
	}
	if err != nil {
		c.fail(rec, in, err)
		return
	}
	in.ns = ns
	rec.Addr = ns.addr
	rec.Status = statusRunning
	c.log.Info("server running", "server", rec.Name, "addr", rec.Addr, "provisioned", rec.Provisioned)
}

func (c *Cloud) fail(rec *serverRecord, in *instance, err error) {
	in.err = err
	rec.Status = statusFailed
	rec.Addr = ""
	c.log.Error("server failed to start", "server", rec.Name, "err", err)
}

// WaitRunning returns the server once it is running, or an error saying it
// did not start when ctx ends first.
func (c *Cloud) WaitRunning(ctx context.Context, s deployer.Server) (deployer.Server, error) {
	c.mu.Lock()
	if err := c.open(); err != nil {
		c.mu.Unlock()
		return s, err
	}
	rec := c.find(s)
	if rec == nil {
		c.mu.Unlock()
		return s, notFound(s)
	}
	in := c.live[rec.ID]
	name := rec.Name
	c.mu.Unlock()
	if in == nil { // closed
		return s, didNotStart(name, errClosed)
	}
	select {
	case <-in.settled:
	case <-in.cancel:
		return s, didNotStart(name, errors.New("it was deleted, or the local cloud closed"))
	case <-ctx.Done():
		return s, didNotStart(name, ctx.Err())
	}
	if in.err != nil {
		return s, didNotStart(name, in.err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rec = c.find(s); rec == nil {
		return s, didNotStart(name, errors.New("it was deleted"))
	}
	return rec.server(), nil
}

func didNotStart(name string, err error) error {
	return &deployer.Error{Code: deployer.CodeFailed, Message: name + " did not start", Err: err}
}

// Provision loads the zones of the server's image; from then on it answers
// them authoritatively (or, for a broken image, answers SERVFAIL).
func (c *Cloud) Provision(ctx context.Context, s deployer.Server) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer c.persistAfter(&err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return err
	}
	rec := c.find(s)
	if rec == nil {
		return notFound(s)
	}
	in := c.live[rec.ID]
	if rec.Status != statusRunning || in == nil || in.ns == nil {
		return deployer.Errorf(deployer.CodeFailed, "cannot provision %s: it is %s, not running", rec.Name, rec.Status)
	}
	ct, err := c.content(rec)
	if err != nil {
		return &deployer.Error{Code: deployer.CodeFailed, Message: "cannot provision " + rec.Name, Err: err}
	}
	in.h.serve(ct)
	rec.Provisioned = true
	c.log.Info("server provisioned", "server", rec.Name, "image", rec.Image)
	c.save()
	return nil
}

// content renders the zones rec's image serves.
func (c *Cloud) content(rec *serverRecord) (*content, error) {
	img, err := c.image(rec.Service, rec.Image)
	if err != nil {
		return nil, err
	}
	if img.Kind == kindBroken {
		return &content{broken: true}, nil
	}
	if len(rec.ZoneFiles) > 0 {
		return c.shippedContent(rec)
	}
	d := zoneData{Serial: serialFor(img.Version), Version: img.Version, Server: rec.Name}
	ct := &content{}
	for _, zt := range c.zones {
		z, err := zt.render(d)
		if err != nil {
			return nil, err
		}
		ct.zones = append(ct.zones, z)
	}
	return ct, nil
}

// Delete stops the server and forgets it. Deleting a server that does not
// exist succeeds.
func (c *Cloud) Delete(ctx context.Context, s deployer.Server) error {
	c.mu.Lock()
	if err := c.open(); err != nil {
		c.mu.Unlock()
		return err
	}
	rec := c.find(s)
	if rec == nil {
		c.mu.Unlock()
		return nil
	}
	id, name := rec.ID, rec.Name
	c.inv.Servers = slices.DeleteFunc(c.inv.Servers, func(r serverRecord) bool { return r.ID == id })
	in := c.live[id]
	delete(c.live, id)
	c.save()
	c.mu.Unlock()
	c.removeZones(id)
	err := c.persist()
	if in != nil {
		close(in.cancel)
		if in.ns != nil {
			in.ns.stop()
		}
	}
	c.log.Info("server deleted", "server", name, "id", id)
	return err
}

// Relabel changes the server's label.
func (c *Cloud) Relabel(ctx context.Context, s deployer.Server, label string) (_ deployer.Server, err error) {
	defer c.persistAfter(&err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return s, err
	}
	rec := c.find(s)
	if rec == nil {
		return s, notFound(s)
	}
	if rec.Label == label {
		return rec.server(), nil
	}
	rec.Label = label
	c.save()
	return rec.server(), nil
}

// ListByTag returns the servers carrying tag, oldest first.
func (c *Cloud) ListByTag(ctx context.Context, tag string) ([]deployer.Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return nil, err
	}
	var out []deployer.Server
	for i := range c.inv.Servers {
		if slices.Contains(c.inv.Servers[i].Tags, tag) {
			out = append(out, c.inv.Servers[i].server())
		}
	}
	return out, nil
}

// Images lists the service's images, newest first. A service's first call
// gives it golden v1 and v2 and the test images broken and stale.
func (c *Cloud) Images(ctx context.Context, service string) ([]deployer.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return nil, err
	}
	images, err := c.images(service)
	if err != nil {
		return nil, err
	}
	return newestFirst(images), nil
}

// Bake adds spec.Service's next golden image (v3, v4, …) and returns it.
// Its label and description are spec's when given; its servers serve the
// zones of the new version (a higher serial, a new version TXT).
func (c *Cloud) Bake(ctx context.Context, spec deployer.BakeSpec) (deployer.Image, error) {
	if err := ctx.Err(); err != nil {
		return deployer.Image{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return deployer.Image{}, err
	}
	images, err := c.images(spec.Service)
	if err != nil {
		return deployer.Image{}, err
	}
	img := goldenImage(spec.Service, nextGolden(images), c.clock.Now())
	if spec.Label != "" {
		img.Label = spec.Label
	}
	if spec.Description != "" {
		img.Description = spec.Description
	}
	c.inv.Images[spec.Service] = append(images, img)
	c.save()
	c.log.Info("image baked", "image", img.ID, "label", img.Label, "serial", serialFor(img.Version))
	return img.Image, nil
}

// DeleteImage forgets an image, of whichever service it is. Deleting an
// image that does not exist succeeds. Servers built from it keep answering
// until they stop, but cannot be provisioned or started again.
func (c *Cloud) DeleteImage(ctx context.Context, id string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer c.persistAfter(&err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return err
	}
	for svc, images := range c.inv.Images {
		i := slices.IndexFunc(images, func(im imageRecord) bool { return im.ID == id })
		if i < 0 {
			continue
		}
		kept := slices.Delete(slices.Clone(images), i, i+1)
		c.inv.Images[svc] = kept
		c.save()
		c.log.Info("image deleted", "image", id)
		return nil
	}
	return nil
}

// images returns the service's images oldest first, seeding a new service.
// c.mu is held.
func (c *Cloud) images(service string) ([]imageRecord, error) {
	if service == "" {
		return nil, deployer.Errorf(deployer.CodeInvalid, "which service's images? the service name is empty")
	}
	if images, ok := c.inv.Images[service]; ok {
		return images, nil
	}
	images := seedImages(service, c.clock.Now())
	c.inv.Images[service] = images
	c.save()
	return images, nil
}

// image finds an image by ID: among the service's images, or every
// service's when service is "". c.mu is held.
func (c *Cloud) image(service, id string) (imageRecord, error) {
	var images []imageRecord
	if service != "" {
		var err error
		if images, err = c.images(service); err != nil {
			return imageRecord{}, err
		}
	} else {
		for _, svc := range slices.Sorted(maps.Keys(c.inv.Images)) {
			images = append(images, c.inv.Images[svc]...)
		}
	}
	for _, im := range images {
		if im.ID == id {
			return im, nil
		}
	}
	return imageRecord{}, unknownImage(id, images)
}

// find returns the record of s, by ID or else by name. c.mu is held.
func (c *Cloud) find(s deployer.Server) *serverRecord {
	for i := range c.inv.Servers {
		r := &c.inv.Servers[i]
		if (s.ID != "" && r.ID == s.ID) || (s.ID == "" && s.Name != "" && r.Name == s.Name) {
			return r
		}
	}
	return nil
}

func notFound(s deployer.Server) error {
	what := s.Name
	if what == "" {
		what = s.ID
	}
	return &deployer.NotFoundError{What: "server " + what}
}

var errClosed = errors.New("the local cloud is closed")

// open fails once the cloud is closed. c.mu is held.
func (c *Cloud) open() error {
	if c.closed {
		return errClosed
	}
	return nil
}

// save records that the inventory changed; the change reaches the file
// with the next persist. c.mu is held.
func (c *Cloud) save() { c.gen++ }

// persist writes the inventory when it changed since the last write, and
// returns once the file holds every change made before the call. Writers
// queue on flushMu: whoever writes next takes every change made meanwhile,
// so concurrent callers share one write (group commit), and the inventory
// lock is held only while it is encoded, not while it is written and
// synced. c.mu is not held.
func (c *Cloud) persist() error {
	c.mu.Lock()
	want := c.gen
	c.mu.Unlock()
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if c.flushed >= want {
		return nil
	}
	c.mu.Lock()
	b, err := c.inv.encode()
	gen := c.gen
	c.mu.Unlock()
	if err == nil {
		err = writeInventory(c.path, b)
	}
	if err != nil {
		return err
	}
	c.writes.Add(1)
	c.flushed = gen
	return nil
}

// persistAfter persists the inventory at the end of a method that changed
// it, deferred before c.mu is taken so it runs after c.mu is released; a
// failure to write becomes the method's error.
func (c *Cloud) persistAfter(err *error) {
	if perr := c.persist(); perr != nil && *err == nil {
		*err = perr
	}
}
