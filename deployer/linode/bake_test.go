package linode

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
)

const bakeUserData = "#cloud-config\npackages: [nsd]\npower_state:\n  mode: poweroff\n"

func bakeSpec() deployer.BakeSpec {
	return deployer.BakeSpec{
		Service:     "ns",
		BaseImage:   "linode/debian12",
		UserData:    []byte(bakeUserData),
		Label:       "ns-golden-20261123-0400",
		Description: "ns from linode/debian12, build 20261123-0400",
		BuildID:     "20261123-0400",
	}
}

// bakeEnv is a Cloud and its fake API sharing one manual clock, which only
// moves while the Cloud waits on it (see runBake).
type bakeEnv struct {
	*env
	manual  *deployer.ManualClock
	mu      sync.Mutex
	deleted []linodetest.Instance // as the fake last saw them
}

func newBakeEnv(t *testing.T, apiOpts linodetest.Options, opts ...func(*Options)) *bakeEnv {
	t.Helper()
	b := &bakeEnv{manual: deployer.NewManualClock(time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC))}
	apiOpts.Clock = b.manual
	apiOpts.OnDeleted = func(in linodetest.Instance) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.deleted = append(b.deleted, in)
	}
	opts = append([]func(*Options){func(o *Options) {
		o.Clock = b.manual
		o.PollInterval = 5 * time.Second
	}}, opts...)
	b.env = newEnv(t, apiOpts, opts...)
	return b
}

func (b *bakeEnv) Deleted() []linodetest.Instance {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.deleted)
}

// runBake runs Bake and moves the clock on by a second at a time while the
// Cloud waits on it, so every poll and retry happens at a known time.
// tick, if set, runs between moves (to cancel the bake, for example).
func (b *bakeEnv) runBake(t *testing.T, ctx context.Context, spec deployer.BakeSpec, tick func()) (deployer.Image, error) {
	t.Helper()
	var img deployer.Image
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		img, err = b.cloud.Bake(ctx, spec)
	}()
	deadline := time.Now().Add(20 * time.Second) // only against a hang
	for {
		select {
		case <-done:
			return img, err
		default:
		}
		if tick != nil {
			tick()
		}
		if b.manual.Waiters() > 0 {
			b.manual.Advance(time.Second)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bake still running at %s on the clock", b.manual.Now())
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// privateImages are the account's own images in the fake.
func privateImages(api *linodetest.Server) []linodetest.Image {
	var out []linodetest.Image
	for _, im := range api.Images() {
		if !im.Public {
			out = append(out, im)
		}
	}
	return out
}

// requestIndex is the position of the first request matching method and
// pattern, or -1.
func requestIndex(api *linodetest.Server, method, pattern string) int {
	for i, r := range api.Requests() {
		p := r.Path
		if _, after, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/"); ok {
			p = "/" + after
		}
		if ok, _ := path.Match(pattern, p); ok && r.Method == method {
			return i
		}
	}
	return -1
}

type imageBody struct {
	DiskID      int      `json:"disk_id"`
	Label       string   `json:"label"`
	Description string   `json:"description"`
	CloudInit   bool     `json:"cloud_init"`
	Tags        []string `json:"tags"`
}

func imagePosts(t *testing.T, api *linodetest.Server) []imageBody {
	t.Helper()
	var out []imageBody
	for _, r := range api.Requests() {
		if r.Method != "POST" || !strings.HasSuffix(r.Path, "/images") {
			continue
		}
		var b imageBody
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			t.Fatalf("image body %q: %v", r.Body, err)
		}
		out = append(out, b)
	}
	return out
}

// A bake boots a builder with the build's user data and tags, waits for it
// to run and power itself off, images its boot disk, waits for the image,
// and deletes the builder.
func TestBake(t *testing.T) {
	e := newBakeEnv(t, linodetest.Options{
		Provisioning:  20 * time.Second,
		Booting:       30 * time.Second,
		PowerOffAfter: 4 * time.Minute,
		ImageCreating: 2 * time.Minute,
	})
	start := e.manual.Now()
	img, err := e.runBake(t, context.Background(), bakeSpec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sp := bakeSpec()
	if !strings.HasPrefix(img.ID, "private/") || img.Label != sp.Label || img.Description != sp.Description ||
		!img.Golden || img.Created.IsZero() {
		t.Errorf("Bake = %+v, want golden private image %s described %q", img, sp.Label, sp.Description)
	}

	bodies := creates(t, e.api)
	if len(bodies) != 1 {
		t.Fatalf("%d create requests, want 1", len(bodies))
	}
	b := bodies[0]
	wantTags := []string{"greenlight", "service:ns", "bake:20261123-0400", "dns"}
	if b.Label != "ns-build-20261123-0400" || b.Image != "linode/debian12" || b.Region != "us-east" ||
		b.Type != "g6-nanode-1" || b.FirewallID != 31337 || len(b.AuthorizedKeys) != 1 || !slices.Equal(b.Tags, wantTags) {
		t.Errorf("builder create body %+v, want label ns-build-20261123-0400 and tags %q", b, wantTags)
	}
	if ud, err := base64.StdEncoding.DecodeString(b.Metadata.UserData); err != nil || string(ud) != bakeUserData {
		t.Errorf("builder user data %q (%v)", ud, err)
	}
	if len(b.RootPass) != 40 {
		t.Errorf("builder root password of %d characters, want 40", len(b.RootPass))
	}

	if n := len(e.api.Instances()); n != 0 {
		t.Errorf("%d instances left, want the builder deleted", n)
	}
	deleted := e.Deleted()
	if len(deleted) != 1 {
		t.Fatalf("deleted %d instances, want the builder", len(deleted))
	}
	builder := deleted[0]
	if want := []string{"provisioning", "booting", "running", "offline"}; !slices.Equal(builder.Statuses, want) {
		t.Errorf("the builder went through %q, want %q", builder.Statuses, want)
	}

	posts := imagePosts(t, e.api)
	if len(posts) != 1 {
		t.Fatalf("%d image creations, want 1", len(posts))
	}
	want := imageBody{DiskID: 2 * builder.ID, Label: sp.Label, Description: sp.Description, CloudInit: true}
	if p := posts[0]; p.DiskID != want.DiskID || p.Label != want.Label || p.Description != want.Description || !p.CloudInit {
		t.Errorf("image created from %+v, want %+v", p, want)
	}
	post := requestIndex(e.api, "POST", "/images")
	del := requestIndex(e.api, "DELETE", "/linode/instances/*")
	if post < 0 || del < post {
		t.Errorf("the image was made at request %d and the builder deleted at %d", post, del)
	}
	if n := e.api.Count("GET", "/images/private/*"); n < 2 {
		t.Errorf("the image was checked %d times, want it seen creating then available", n)
	}
	images := privateImages(e.api)
	if len(images) != 1 || images[0].ID != img.ID || images[0].Status != "available" || images[0].DiskID != 2*builder.ID {
		t.Errorf("private images %+v, want %s available", images, img.ID)
	}
	// 50s to boot, 4m building, 2m imaging, polled at most every 30s.
	if took := e.manual.Now().Sub(start); took < 6*time.Minute+50*time.Second || took > 10*time.Minute {
		t.Errorf("the bake took %s on the clock", took)
	}

	listed, err := e.cloud.Images(context.Background(), "ns")
	if err != nil || len(listed) == 0 || listed[0].ID != img.ID || !listed[0].Golden {
		t.Errorf("Images(ns) = %+v, %v; want the new image first, golden", listed, err)
	}
	logs := e.logs.String()
	for _, secret := range []string{b.RootPass, b.Metadata.UserData, "packages: [nsd]", testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if !strings.Contains(logs, "image builder created") || !strings.Contains(logs, "bake done") {
		t.Errorf("the log misses the bake:\n%s", logs)
	}
}

// Whatever goes wrong, the builder is deleted, and so is a half-made
// image; the error says what happened and what was cleaned up.
func TestBakeFailures(t *testing.T) {
	tests := []struct {
		name    string
		api     linodetest.Options
		setup   func(e *bakeEnv)
		base    string // default linode/debian12
		want    string
		code    deployer.Code
		minWait time.Duration // on the clock
		posts   int           // image creations
		created int           // builder creations asked for
		deletes int           // instances deleted
	}{
		{
			name:    "builder never powers off",
			api:     linodetest.Options{Provisioning: 20 * time.Second},
			want:    "the builder ns-build-20261123-0400 did not power off within 30m: cloud-init may have failed; it was deleted",
			code:    deployer.CodeFailed,
			minWait: 30 * time.Minute, created: 1, deletes: 1,
		},
		{
			name:    "builder never starts",
			api:     linodetest.Options{PowerOffAfter: time.Minute},
			setup:   func(e *bakeEnv) { e.api.Hold("ns-build-20261123-0400", "provisioning") },
			want:    "the builder ns-build-20261123-0400 did not start within 30m (Linode still says provisioning); it was deleted",
			code:    deployer.CodeFailed,
			minWait: 30 * time.Minute, created: 1, deletes: 1,
		},
		{
			name:    "builder offline before it ran",
			api:     linodetest.Options{PowerOffAfter: time.Minute},
			setup:   func(e *bakeEnv) { e.api.Hold("ns-build-20261123-0400", "offline") },
			want:    "the builder ns-build-20261123-0400 went offline before greenlight saw it running: it may have failed to boot linode/debian12; it was deleted",
			code:    deployer.CodeFailed,
			created: 1, deletes: 1,
		},
		{
			name:    "image never available",
			api:     linodetest.Options{PowerOffAfter: time.Minute, ImageCreating: 2 * time.Hour},
			want:    "Linode did not finish making the image ns-golden-20261123-0400 within 30m (it still says creating); the image private/86101 and the builder ns-build-20261123-0400 were deleted",
			code:    deployer.CodeFailed,
			minWait: 31 * time.Minute, posts: 1, created: 1, deletes: 1,
		},
		{
			name: "image label taken",
			api:  linodetest.Options{PowerOffAfter: time.Minute},
			setup: func(e *bakeEnv) {
				e.api.AddImage(linodetest.Image{ID: "private/4242", Label: "ns-golden-20261123-0400"})
			},
			want: "Linode already has an image labelled ns-golden-20261123-0400 (private/4242); delete it, or bake again with another build ID",
			code: deployer.CodeConflict,
		},
		{
			name: "builder label taken",
			api:  linodetest.Options{PowerOffAfter: time.Minute},
			setup: func(e *bakeEnv) {
				e.api.AddInstance(linodetest.Instance{Label: "ns-build-20261123-0400", Tags: []string{"bake:20261123-0400"}})
			},
			want: "Linode already has an instance labelled ns-build-20261123-0400 (id 82372941); delete it, or bake again with another build ID",
			code: deployer.CodeConflict,
		},
		{
			name:    "Linode refuses the base image",
			api:     linodetest.Options{PowerOffAfter: time.Minute},
			base:    "linode/debian99",
			want:    "Linode refused image linode/debian99: no image exists with id linode/debian99",
			code:    deployer.CodeInvalid,
			created: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBakeEnv(t, tt.api)
			if tt.setup != nil {
				tt.setup(e)
			}
			before := len(e.api.Instances())
			sp := bakeSpec()
			if tt.base != "" {
				sp.BaseImage = tt.base
			}
			start := e.manual.Now()
			img, err := e.runBake(t, context.Background(), sp, nil)
			if err == nil || deployer.ErrorMessage(err) != tt.want {
				t.Fatalf("Bake = %+v, %v\nwant error %q", img, err, tt.want)
			}
			if got := deployer.ErrorCode(err); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if took := e.manual.Now().Sub(start); took < tt.minWait {
				t.Errorf("gave up after %s on the clock, want at least %s", took, tt.minWait)
			}
			if n := len(e.api.Instances()); n != before {
				t.Errorf("%d instances left, want %d", n, before)
			}
			if n := len(creates(t, e.api)); n != tt.created {
				t.Errorf("%d builders created, want %d", n, tt.created)
			}
			if n := len(e.Deleted()); n != tt.deletes {
				t.Errorf("%d instances deleted, want %d", n, tt.deletes)
			}
			if n := len(imagePosts(t, e.api)); n != tt.posts {
				t.Errorf("%d image creations, want %d", n, tt.posts)
			}
			for _, im := range privateImages(e.api) {
				if im.ID != "private/4242" {
					t.Errorf("image %s (%s) left behind", im.ID, im.Status)
				}
			}
		})
	}
}

// Image creation is retried like every call: a 500 within the retry budget
// is waited out, one beyond it fails the bake, and an answer lost after
// Linode began the image does not make a second one.
func TestBakeRetriesImageCreation(t *testing.T) {
	imageFault := func(times int, after bool) linodetest.Fault {
		return linodetest.Fault{Method: "POST", Path: "/images", Status: 500, Times: times, AfterHandling: after}
	}
	tests := []struct {
		name    string
		faults  []linodetest.Fault
		posts   int
		deletes int // DELETE requests for the builder; 0 means 1
		want    string
	}{
		{name: "500 twice, then success", faults: []linodetest.Fault{imageFault(2, false)}, posts: 3},
		{name: "answer lost after the image was made", faults: []linodetest.Fault{imageFault(1, true)}, posts: 1},
		{name: "500 beyond the budget", faults: []linodetest.Fault{imageFault(100, false)}, posts: 4,
			want: "Linode kept failing (500: An unexpected error occurred; please try again later) while trying to " +
				"make the image ns-golden-20261123-0400 from the builder ns-build-20261123-0400: gave up after 4 attempts in 7s; " +
				"the builder ns-build-20261123-0400 was deleted"},
		{name: "builder creation retried", faults: []linodetest.Fault{{Method: "POST", Path: "/linode/instances", Status: 503, Times: 2}}, posts: 1},
		{name: "builder deletion retried", faults: []linodetest.Fault{{Method: "DELETE", Path: "/linode/instances/*", Status: 502, Times: 2}},
			posts: 1, deletes: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBakeEnv(t, linodetest.Options{Provisioning: 10 * time.Second, PowerOffAfter: 2 * time.Minute})
			for _, f := range tt.faults {
				e.api.Inject(f)
			}
			img, err := e.runBake(t, context.Background(), bakeSpec(), nil)
			if tt.want != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.want || deployer.ErrorCode(err) != deployer.CodeFailed {
					t.Fatalf("Bake = %+v, %v\nwant %q", img, err, tt.want)
				}
			} else if err != nil || !img.Golden {
				t.Fatalf("Bake = %+v, %v", img, err)
			}
			if got := e.api.Count("POST", "/images"); got != tt.posts {
				t.Errorf("%d image creations, want %d", got, tt.posts)
			}
			if got, want := e.api.Count("DELETE", "/linode/instances/*"), max(tt.deletes, 1); got != want {
				t.Errorf("%d builder deletions asked for, want %d", got, want)
			}
			if n := len(e.api.Instances()); n != 0 {
				t.Errorf("%d instances left, want the builder deleted", n)
			}
			if n := len(creates(t, e.api)); n < 1 || len(e.Deleted()) != 1 {
				t.Errorf("%d builder creates, %d deletes; want one builder, deleted", n, len(e.Deleted()))
			}
			images := privateImages(e.api)
			if wantImages := map[bool]int{true: 0, false: 1}[tt.want != ""]; len(images) != wantImages {
				t.Errorf("private images %+v, want %d", images, wantImages)
			}
			if tt.want == "" && images[0].ID != img.ID {
				t.Errorf("Bake returned %s, the account has %s", img.ID, images[0].ID)
			}
		})
	}
}

// A bake stopped while it runs deletes what it made, on a context of its
// own, and says where it was stopped.
func TestBakeStopped(t *testing.T) {
	tests := []struct {
		name  string
		when  func(e *bakeEnv) bool
		want  string
		posts int
	}{
		{
			name: "while the builder builds",
			when: func(e *bakeEnv) bool {
				in := e.api.Instances()
				return len(in) == 1 && slices.Contains(in[0].Statuses, "running")
			},
			want: "the bake of ns-golden-20261123-0400 was stopped while its builder ns-build-20261123-0400 was building; " +
				"the builder ns-build-20261123-0400 was deleted",
		},
		{
			name: "while Linode makes the image",
			when: func(e *bakeEnv) bool { return e.api.Count("GET", "/images/private/*") >= 2 },
			want: "the bake of ns-golden-20261123-0400 was stopped while Linode was making the image; " +
				"the image private/86101 and the builder ns-build-20261123-0400 were deleted",
			posts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBakeEnv(t, linodetest.Options{Booting: 10 * time.Second, PowerOffAfter: 10 * time.Minute, ImageCreating: time.Hour})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := e.runBake(t, ctx, bakeSpec(), func() {
				if tt.when(e) {
					cancel()
				}
			})
			if err == nil || deployer.ErrorMessage(err) != tt.want {
				t.Fatalf("Bake = %v\nwant %q", err, tt.want)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%v does not wrap context.Canceled", err)
			}
			if strings.Contains(deployer.ErrorMessage(err), "context") {
				t.Errorf("%q speaks Go, not chat", err)
			}
			if n := len(e.api.Instances()); n != 0 || len(e.Deleted()) != 1 {
				t.Errorf("%d instances left, %d deleted; want the builder deleted", n, len(e.Deleted()))
			}
			if n := e.api.Count("POST", "/images"); n != tt.posts {
				t.Errorf("%d image creations, want %d", n, tt.posts)
			}
			if images := privateImages(e.api); len(images) != 0 {
				t.Errorf("images left: %+v", images)
			}
		})
	}
}

func TestBakeNeedsItsSpec(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	_, err := e.cloud.Bake(context.Background(), deployer.BakeSpec{Service: "ns"})
	want := "a bake needs a base image, an image label, cloud-init user data that powers the builder off"
	if err == nil || deployer.ErrorMessage(err) != want || deployer.ErrorCode(err) != deployer.CodeInvalid {
		t.Fatalf("Bake = %v, want %q", err, want)
	}
	if n := len(e.api.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestBuilderLabel(t *testing.T) {
	tests := []struct {
		service, build, want string
	}{
		{"ns", "20261123-0400", "ns-build-20261123-0400"},
		{"ns", "2026-11-23T04:00:00Z", "ns-build-2026-11-23T04-00-00Z"},
		{"ns", "weekly run #3", "ns-build-weekly-run-3"},
		{"_ns", "a..b__", "ns-build-a.b"},
		{"ns", strings.Repeat("x", 80), "ns-build-" + strings.Repeat("x", 55)},
		{"ns", strings.Repeat("x", 54) + "-y", "ns-build-" + strings.Repeat("x", 54)},
	}
	for _, tt := range tests {
		got := builderLabel(tt.service, tt.build)
		if got != tt.want || len(got) > 64 {
			t.Errorf("builderLabel(%q, %q) = %q, want %q", tt.service, tt.build, got, tt.want)
		}
	}
}

func TestDeleteImage(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		fault   *linodetest.Fault
		want    string
		code    deployer.Code
		deletes int // DELETE requests sent
	}{
		{name: "private image", id: "private/86101", deletes: 1},
		{name: "already gone", id: "private/999", deletes: 1},
		{name: "after a 500", id: "private/86101", deletes: 2,
			fault: &linodetest.Fault{Method: "DELETE", Path: "/images/private/*", Status: 500}},
		{name: "public image", id: "linode/debian12",
			want: "linode/debian12 is not one of the account's own images (private/…); greenlight deletes only those", code: deployer.CodeInvalid},
		{name: "no ID", want: "which image? the image ID is empty", code: deployer.CodeInvalid},
		{name: "refused", id: "private/86101", fault: &linodetest.Fault{Method: "DELETE", Path: "/images/private/*", Status: 403,
			Errors: []linodetest.Reason{{Reason: "Unauthorized"}}},
			want: "Linode refused to delete the image private/86101: unauthorized (the token may lack the scope this needs, e.g. linodes:read_write)",
			code: deployer.CodeForbidden, deletes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{})
			e.api.AddImage(linodetest.Image{Label: "ns-golden-20261116-0400"}) // private/86101
			if tt.fault != nil {
				e.api.Inject(*tt.fault)
			}
			err := e.cloud.DeleteImage(context.Background(), tt.id)
			if n := e.api.Count("DELETE", "/images/private/*"); n != tt.deletes {
				t.Errorf("%d DELETE requests, want %d", n, tt.deletes)
			}
			if tt.want != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.want || deployer.ErrorCode(err) != tt.code {
					t.Fatalf("DeleteImage(%q) = %v, want %q", tt.id, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("DeleteImage(%q) = %v", tt.id, err)
			}
			for _, im := range privateImages(e.api) {
				if im.ID == tt.id {
					t.Errorf("%s is still there", tt.id)
				}
			}
		})
	}
}

// The fake's disks have the shape of the real API's: linodego reads them.
func TestFakeDisks(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	s, err := e.cloud.Create(context.Background(), spec("ns1", 7))
	if err != nil {
		t.Fatal(err)
	}
	id := mustAtoi(t, s.ID)
	disks, err := e.cloud.client.ListInstanceDisks(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(len(disks))
	for _, d := range disks {
		got += fmt.Sprintf(" %d %q %s %d %s", d.ID-2*id, d.Label, d.Filesystem, d.Size, d.Status)
	}
	want := `2 0 "Debian 12 Disk" ext4 25088 ready 1 "512 MB Swap Image" swap 512 ready`
	if got != want {
		t.Errorf("disks: %s\nwant   %s", got, want)
	}
}

// TestBakeReplicatesToEveryRegion: a service whose roles are in several
// regions gets its golden image in each (an image lives where it was made):
// without the replication an instance in the other region is refused.
func TestBakeReplicatesToEveryRegion(t *testing.T) {
	tests := []struct {
		name     string
		regions  map[string]string
		want     []string
		replicas int // POST /images/*/regions requests
	}{
		{name: "one region, no replication", want: []string{"us-east"}},
		{name: "two regions", regions: map[string]string{"ns1": "us-east", "ns2": "eu-central"}, want: []string{"us-east", "eu-central"}, replicas: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBakeEnv(t, linodetest.Options{PowerOffAfter: time.Minute}, func(o *Options) { o.Regions = tt.regions })
			img, err := e.runBake(t, context.Background(), bakeSpec(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, im := range privateImages(e.api) {
				if im.ID == img.ID {
					got = im.Regions
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("image regions %v, want %v", got, tt.want)
			}
			if n := e.api.Count("POST", "/images/*/*/regions"); n != tt.replicas {
				t.Errorf("%d replication requests, want %d", n, tt.replicas)
			}
			_, err = e.cloud.Create(context.Background(), deployer.ServerSpec{Service: "ns", Role: "ns2", Name: "ns2-1", Image: img.ID, DeployID: 1})
			if tt.replicas == 0 {
				return
			}
			if err != nil {
				t.Fatalf("an eu-central server from the replicated image: %v", err)
			}
		})
	}
	// The fake refuses an image in a region it was not replicated to.
	e := newBakeEnv(t, linodetest.Options{})
	e.api.AddImage(linodetest.Image{ID: "private/55", Label: "ns-golden-old", Regions: []string{"us-east"}})
	c, err := New(Options{Client: e.api.NewClient(testToken), Region: "us-east", Regions: map[string]string{"ns2": "eu-central"}, Type: "g6-nanode-1",
		CallOptions: CallOptions{Clock: e.manual, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(context.Background(), deployer.ServerSpec{Service: "ns", Role: "ns2", Name: "ns2-2", Image: "private/55", DeployID: 2})
	if err == nil || !strings.Contains(err.Error(), "not available in region eu-central") {
		t.Errorf("Create in a region without the image: %v", err)
	}
}
