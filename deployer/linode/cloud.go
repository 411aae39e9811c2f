// Package linode runs greenlight's servers on Linode, through linodego.
//
// Cloud is a deployer.Cloud. Its instances carry the tags greenlight finds
// them by: "greenlight", "service:<name>", "deploy:<id>", and two of its own,
// "role:<slot>" (ns1) and "label:<label>" (ns1-next while next, ns1 once
// live).
//
// # Labels
//
// Linode wants an instance's label to be unique in the account, so the
// instance's Linode label is the server's Name ("ns1-7"), which no other
// deploy uses, and the role label the pipeline moves ("ns1-next" → "ns1")
// lives in the "label:" tag. Using "ns1-next" and "ns1" as Linode labels
// would make a deploy fail whenever an earlier one left a server of that
// label behind (a half-finished cleanup, a server an operator keeps for
// forensics), and would make renaming next → current depend on the old
// server being gone first; with names, creating is never blocked by
// another deploy's servers and relabelling is a tag change that cannot
// collide. The Linode console shows "ns1-7" with the tag "label:ns1"; the
// Name is also the host name and the EDNS NSID, so the console, the logs
// and `dig +nsid` all say the same thing.
//
// # Failures
//
// Every call is retried on 429 (waiting as long as Retry-After asks), on
// 5xx and on dropped connections, with exponential backoff on the Cloud's
// Clock, for at most CallOptions.RetryBudget. Any other 4xx fails at once, said
// in plain words for the chat: "Linode refused type g6-nanode-9: a valid
// plan type by that ID was not found". No error or log line carries the API
// token, an instance's root password or its user data.
package linode

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

var _ deployer.Cloud = (*Cloud)(nil)

// Defaults for Options.
const (
	DefaultPort         = 53
	DefaultPollInterval = 5 * time.Second
	DefaultRetryBudget  = 2 * time.Minute
	DefaultRetryWait    = time.Second
)

// Tag prefixes of the tags Cloud adds to the deployer's.
const (
	RoleTagPrefix  = "role:"
	LabelTagPrefix = "label:"
)

// CallOptions are how the Cloud and the switches use the Linode API: the
// clock every wait is on (retries, polls, drains), the log, and how long a
// call is retried. Options, NodeBalancerOptions and DNSRecordOptions embed
// them.
type CallOptions struct {
	Clock       deployer.Clock // default deployer.SystemClock
	Logger      *slog.Logger   // default slog.Default()
	RetryBudget time.Duration  // how long one call may be retried; default 2m
	RetryWait   time.Duration  // first backoff after a 5xx; default 1s, doubling
}

// withDefaults returns o with a default for each setting left out.
func (o CallOptions) withDefaults() CallOptions {
	if o.Clock == nil {
		o.Clock = deployer.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RetryBudget <= 0 {
		o.RetryBudget = DefaultRetryBudget
	}
	if o.RetryWait <= 0 {
		o.RetryWait = DefaultRetryWait
	}
	return o
}

// Options configure a Cloud.
type Options struct {
	// Client talks to the API: built by the caller with linodego.NewClient
	// and SetToken (LINODE_URL, read by NewClient, or SetBaseURL points it
	// elsewhere). New changes two things on it: linodego's own retries are
	// turned off (SetRetryCount(0)), since the Cloud retries itself, on its
	// Clock and within RetryBudget, so a 429 is not waited out twice; and
	// so is its debug logging (LINODE_DEBUG), which would log request
	// bodies, root passwords included. Give other users their own client.
	Client *linodego.Client
	Region string // "us-east": every server's, unless Regions names another
	// Regions puts a role's servers in a region of its own ("ns1" →
	// "us-east", "ns2" → "eu-central"): globally distributed servers.
	Regions map[string]string
	Type    string // "g6-nanode-1"
	// Image is the base image golden images are baked from ("linode/debian12").
	// Images lists it, so a deploy may name it; Create always uses the
	// image the deploy chose.
	Image          string
	AuthorizedKeys []string // SSH public keys for root
	Tags           []string // added to every instance, after greenlight's own
	FirewallID     int      // 0: none
	// PrivateIP gives every instance a private IPv4 address: a NodeBalancer
	// reaches its nodes only on the private network of its region.
	PrivateIP bool
	Port      int // where servers answer DNS; default 53
	// UserData renders a server's cloud-init user data, sent as Linode
	// Metadata when the instance is created; nil sends none.
	UserData     func(ctx context.Context, spec deployer.ServerSpec) ([]byte, error)
	PollInterval time.Duration // first wait between status polls; default 5s, growing to 6×
	// BakeTimeout bounds how long an image builder may take to boot, build
	// and power itself off; default 30m.
	BakeTimeout time.Duration
	// ImageTimeout bounds how long Linode may take to make an image of the
	// builder's disk; default 30m.
	ImageTimeout time.Duration

	CallOptions
}

// Cloud creates and destroys servers on Linode. It is safe for concurrent use.
type Cloud struct {
	client *linodego.Client
	opts   Options
	clock  deployer.Clock
	log    *slog.Logger
}

// New returns a Cloud for opts.
func New(opts Options) (*Cloud, error) {
	var missing []string
	if opts.Client == nil {
		missing = append(missing, "a linodego client")
	}
	if opts.Region == "" {
		missing = append(missing, "a region")
	}
	if opts.Type == "" {
		missing = append(missing, "an instance type")
	}
	if len(missing) > 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "the Linode cloud needs %s", strings.Join(missing, ", "))
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	opts.CallOptions = opts.CallOptions.withDefaults()
	opts.Regions = maps.Clone(opts.Regions)
	opts.AuthorizedKeys = slices.Clone(opts.AuthorizedKeys)
	opts.Tags = slices.Clone(opts.Tags)
	opts.Client.SetRetryCount(0)
	opts.Client.SetDebug(false)
	return &Cloud{
		client: opts.Client,
		opts:   opts,
		clock:  opts.Clock,
		log:    opts.Logger.With("cloud", "linode", "region", opts.Region),
	}, nil
}

// Create creates the server's instance, booting spec.Image, and returns at
// once (status "provisioning"). An instance that already has the label
// spec.Name and this deploy's tag is returned instead: Create may be re-run
// after a crash, or after an answer was lost, without making a second one.
func (c *Cloud) Create(ctx context.Context, spec deployer.ServerSpec) (deployer.Server, error) {
	if spec.Name == "" {
		return deployer.Server{}, deployer.Errorf(deployer.CodeInvalid, "a server needs a name")
	}
	if spec.Image == "" {
		return deployer.Server{}, deployer.Errorf(deployer.CodeInvalid, "no image to create %s from", spec.Name)
	}
	tags := c.tags(spec)
	deployTag := deployer.DeployTag(spec.DeployID)
	region := c.RegionOf(spec.Role)
	create := linodego.InstanceCreateOptions{
		Region:         region,
		Type:           c.opts.Type,
		Label:          spec.Name,
		Image:          spec.Image,
		AuthorizedKeys: slices.Clone(c.opts.AuthorizedKeys),
		Tags:           tags,
		FirewallID:     c.opts.FirewallID,
		PrivateIP:      c.opts.PrivateIP,
	}
	if c.opts.UserData != nil {
		data, err := c.opts.UserData(ctx, spec)
		if err != nil {
			// The renderer's messages are for people (a zone file's line,
			// the size limit); they carry neither user data nor secrets.
			return deployer.Server{}, deployer.Wrapf(err, "cannot render the cloud-init user data of %s", spec.Name)
		}
		if len(data) > 0 {
			create.Metadata = &linodego.InstanceMetadataOptions{UserData: base64.StdEncoding.EncodeToString(data)}
		}
	}
	create.RootPass = rootPassword()

	op := operation{what: "create " + spec.Name, values: map[string]string{
		"label": spec.Name, "region": region, "type": c.opts.Type, "image": spec.Image,
		"tags": strings.Join(tags, ", "), "firewall_id": strconv.Itoa(c.opts.FirewallID),
		"private_ip": strconv.FormatBool(c.opts.PrivateIP),
	}}
	var got *linodego.Instance
	reused := false
	err := c.call(ctx, op, func(ctx context.Context) error {
		// Look first, on every attempt: a create whose answer was lost
		// may have made the instance anyway.
		in, err := c.findByLabel(ctx, spec.Name)
		if err != nil {
			return err
		}
		if in != nil {
			if !slices.Contains(in.Tags, deployTag) {
				return deployer.Errorf(deployer.CodeConflict,
					"Linode already has an instance labelled %s (id %d) that is not deploy #%d's; rename or delete it",
					spec.Name, in.ID, spec.DeployID)
			}
			got, reused = in, true
			return nil
		}
		got, err = c.client.CreateInstance(ctx, create)
		return err
	})
	if err != nil {
		return deployer.Server{}, err
	}
	s := c.server(got)
	if reused {
		c.log.Info("instance exists already", "server", s.Name, "id", s.ID, "status", s.Status)
	} else {
		c.log.Info("instance created", "server", s.Name, "id", s.ID, "type", c.opts.Type, "in", region,
			"image", spec.Image, "addr", s.Addr, "tags", tags)
	}
	return s, nil
}

// RegionOf is the region role's servers are created in.
func (c *Cloud) RegionOf(role string) string {
	if r, ok := c.opts.Regions[role]; ok && r != "" {
		return r
	}
	return c.opts.Region
}

// Regions are every region the Cloud creates servers in, the default
// region first, then the others sorted.
func (c *Cloud) Regions() []string {
	out := []string{c.opts.Region}
	for _, r := range slices.Sorted(maps.Values(c.opts.Regions)) {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// tags are the instance tags of spec: greenlight's, the server's role and
// label, the deploy's own, then the configured ones, without repeats.
func (c *Cloud) tags(spec deployer.ServerSpec) []string {
	tags := []string{deployer.TagGreenlight}
	if spec.Service != "" {
		tags = append(tags, deployer.ServiceTag(spec.Service))
	}
	tags = append(tags, deployer.DeployTag(spec.DeployID))
	if spec.Role != "" {
		tags = append(tags, RoleTagPrefix+spec.Role)
	}
	if spec.Label != "" {
		tags = append(tags, LabelTagPrefix+spec.Label)
	}
	var out []string
	for _, t := range slices.Concat(tags, spec.Tags, c.opts.Tags) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// rootPassword is 40 random characters of [A-Za-z0-9_-] with at least one
// upper-case letter, one lower-case letter and one digit. It goes to Linode
// once and is never logged or kept: greenlight reaches its servers with the
// authorized keys.
func rootPassword() string {
	b := make([]byte, 30)
	for {
		rand.Read(b)
		p := base64.RawURLEncoding.EncodeToString(b)
		if strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(p, "0123456789") {
			return p
		}
	}
}

// findByLabel returns the instance labelled label, or nil. It makes one
// attempt: callers run it inside call.
func (c *Cloud) findByLabel(ctx context.Context, label string) (*linodego.Instance, error) {
	var f linodego.Filter
	f.AddField(linodego.Eq, "label", label)
	filter, err := f.MarshalJSON()
	if err != nil {
		return nil, err
	}
	list, err := c.client.ListInstances(ctx, &linodego.ListOptions{Filter: string(filter)})
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Label == label {
			return &list[i], nil
		}
	}
	return nil, nil
}

// instance reads s's instance, found by ID or else by name. It returns nil
// when there is none.
func (c *Cloud) instance(ctx context.Context, s deployer.Server, op operation) (*linodego.Instance, error) {
	var got *linodego.Instance
	err := c.call(ctx, op, func(ctx context.Context) error {
		if s.ID == "" {
			in, err := c.findByLabel(ctx, s.Name)
			got = in
			return err
		}
		id, err := instanceID(s)
		if err != nil {
			return err
		}
		in, err := c.client.GetInstance(ctx, id)
		if linodego.IsNotFound(err) {
			return nil
		}
		got = in
		return err
	})
	return got, err
}

func instanceID(s deployer.Server) (int, error) {
	id, err := strconv.Atoi(s.ID)
	if err != nil || id <= 0 {
		return 0, deployer.Errorf(deployer.CodeInvalid, "%s has no Linode instance ID (it says %q)", name(s), s.ID)
	}
	return id, nil
}

func name(s deployer.Server) string {
	if s.Name != "" {
		return s.Name
	}
	return "Linode instance " + s.ID
}

// Statuses WaitRunning keeps waiting through, and those that mean the
// instance will not run without someone's help.
var (
	transient = []linodego.InstanceStatus{linodego.InstanceProvisioning, linodego.InstanceBooting,
		linodego.InstanceRebooting, linodego.InstanceMigrating, linodego.InstanceRebuilding,
		linodego.InstanceCloning, linodego.InstanceRestoring, linodego.InstanceResizing}
	stopped = []linodego.InstanceStatus{linodego.InstanceOffline, linodego.InstanceShuttingDown,
		linodego.InstanceDeleting}
)

// WaitRunning polls the instance, more slowly as time goes by, until it is
// running. An instance that is offline, shutting down or being deleted is
// an error at once; so is one that no longer exists. When ctx ends first,
// the error says what the instance was still doing, and wraps ctx's error.
func (c *Cloud) WaitRunning(ctx context.Context, s deployer.Server) (deployer.Server, error) {
	start := c.clock.Now()
	wait := c.opts.PollInterval
	last := s.Status
	op := operation{what: "check on " + name(s), values: map[string]string{"label": s.Name}}
	for {
		in, err := c.instance(ctx, s, op)
		switch {
		case ctx.Err() != nil:
			return s, c.stoppedWaiting(ctx, s, last, start)
		case err != nil:
			return s, err
		case in == nil:
			return s, deployer.Errorf(deployer.CodeFailed, "%s no longer exists on Linode", name(s))
		}
		got := c.server(in)
		if got.Status != last {
			c.log.Info("instance status", "server", got.Name, "id", got.ID, "status", got.Status)
			last = got.Status
		}
		switch {
		case in.Status == linodego.InstanceRunning:
			return got, nil
		case slices.Contains(stopped, in.Status):
			return got, deployer.Errorf(deployer.CodeFailed, "Linode says %s is %s: it stopped or failed to boot",
				got.Name, strings.ReplaceAll(string(in.Status), "_", " "))
		case !slices.Contains(transient, in.Status):
			c.log.Warn("instance in a status greenlight does not know; still waiting", "server", got.Name, "status", in.Status)
		}
		select {
		case <-c.clock.After(wait):
		case <-ctx.Done():
			return got, c.stoppedWaiting(ctx, got, last, start)
		}
		wait = min(wait*3/2, 6*c.opts.PollInterval)
	}
}

func (c *Cloud) stoppedWaiting(ctx context.Context, s deployer.Server, status string, start time.Time) error {
	if status == "" {
		status = "not running"
	}
	elapsed := roughly(c.clock.Now().Sub(start))
	msg := fmt.Sprintf("%s was still %s on Linode when greenlight stopped waiting after %s", name(s), status, elapsed)
	if errors.Is(ctx.Err(), context.Canceled) {
		msg = fmt.Sprintf("stopped waiting for %s (still %s after %s): the deploy was stopped", name(s), status, elapsed)
	}
	return &deployer.Error{Code: deployer.CodeFailed, Message: msg, Err: ctx.Err()}
}

// roughly rounds d for people: to the second, or to 10ms below a second.
func roughly(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// Delete deletes the server's instance. One that is gone already, or was
// never created, counts as deleted.
func (c *Cloud) Delete(ctx context.Context, s deployer.Server) error {
	op := operation{what: "delete " + name(s), values: map[string]string{"label": s.Name}}
	id := 0
	if s.ID == "" {
		in, err := c.instance(ctx, s, op)
		if err != nil || in == nil {
			return err
		}
		id = in.ID
	} else {
		var err error
		if id, err = instanceID(s); err != nil {
			return err
		}
	}
	err := c.call(ctx, op, func(ctx context.Context) error {
		err := c.client.DeleteInstance(ctx, id)
		if linodego.IsNotFound(err) {
			c.log.Info("instance already gone", "server", s.Name, "id", id)
			return nil
		}
		return err
	})
	if err == nil {
		c.log.Info("instance deleted", "server", s.Name, "id", id)
	}
	return err
}

// Relabel gives the server the role label label ("ns1-next" → "ns1") by
// replacing its "label:" tag; its other tags and its Linode label stay.
func (c *Cloud) Relabel(ctx context.Context, s deployer.Server, label string) (deployer.Server, error) {
	if label == "" {
		return s, deployer.Errorf(deployer.CodeInvalid, "relabel %s to what? the label is empty", name(s))
	}
	op := operation{what: "relabel " + name(s) + " to " + label, values: map[string]string{"label": s.Name, "tags": LabelTagPrefix + label}}
	in, err := c.instance(ctx, s, op)
	if err != nil {
		return s, err
	}
	if in == nil {
		return s, &deployer.NotFoundError{What: "Linode instance " + name(s)}
	}
	want := LabelTagPrefix + label
	tags := slices.DeleteFunc(slices.Clone(in.Tags), func(t string) bool { return strings.HasPrefix(t, LabelTagPrefix) })
	if len(in.Tags)-len(tags) == 1 && slices.Contains(in.Tags, want) {
		return c.server(in), nil // already labelled so
	}
	tags = append(tags, want)
	var got *linodego.Instance
	err = c.call(ctx, op, func(ctx context.Context) error {
		var err error
		got, err = c.client.UpdateInstance(ctx, in.ID, linodego.InstanceUpdateOptions{Tags: &tags})
		return err
	})
	if err != nil {
		return s, err
	}
	out := c.server(got)
	c.log.Info("instance relabelled", "server", out.Name, "id", out.ID, "from", c.server(in).Label, "to", out.Label)
	return out, nil
}

// ListByTag returns greenlight's servers that carry tag, oldest first. The
// API filters them; pages are followed to the end.
func (c *Cloud) ListByTag(ctx context.Context, tag string) ([]deployer.Server, error) {
	f := linodego.Filter{Operator: "+and"}
	f.AddField(linodego.Eq, "tags", deployer.TagGreenlight)
	if tag != deployer.TagGreenlight {
		f.AddField(linodego.Eq, "tags", tag)
	}
	filter, err := f.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var list []linodego.Instance
	op := operation{what: "list the servers tagged " + tag, values: map[string]string{"tags": tag}}
	err = c.call(ctx, op, func(ctx context.Context) error {
		var err error
		// Fresh options each attempt: linodego keeps the page it reached in them.
		list, err = c.client.ListInstances(ctx, &linodego.ListOptions{Filter: string(filter)})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]deployer.Server, 0, len(list))
	for i := range list {
		if slices.Contains(list[i].Tags, deployer.TagGreenlight) && slices.Contains(list[i].Tags, tag) {
			out = append(out, c.server(&list[i]))
		}
	}
	slices.SortStableFunc(out, func(a, b deployer.Server) int {
		x, _ := strconv.Atoi(a.ID)
		y, _ := strconv.Atoi(b.ID)
		return x - y
	})
	return out, nil
}

// server is in as greenlight sees it.
func (c *Cloud) server(in *linodego.Instance) deployer.Server {
	s := deployer.Server{
		ID:     strconv.Itoa(in.ID),
		Name:   in.Label,
		Image:  in.Image,
		Tags:   slices.Clone(in.Tags),
		Status: string(in.Status),
	}
	for _, t := range in.Tags {
		if v, ok := strings.CutPrefix(t, RoleTagPrefix); ok {
			s.Role = v
		}
		if v, ok := strings.CutPrefix(t, LabelTagPrefix); ok {
			s.Label = v
		}
	}
	if ip := publicIPv4(in.IPv4); ip != "" {
		s.Addr = net.JoinHostPort(ip, strconv.Itoa(c.opts.Port))
	}
	return s
}

// publicIPv4 is the first address that is not in a private range (Linode
// lists private 192.168.x.x addresses beside public ones), or else the first.
func publicIPv4(ips []*net.IP) string {
	first := ""
	for _, ip := range ips {
		if ip == nil || ip.To4() == nil {
			continue
		}
		if !ip.IsPrivate() {
			return ip.String()
		}
		if first == "" {
			first = ip.String()
		}
	}
	return first
}
