package linode

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/eventually"
)

func TestNewNeedsClientRegionAndType(t *testing.T) {
	_, err := New(Options{})
	if err == nil || err.Error() != "the Linode cloud needs a linodego client, a region, an instance type" {
		t.Fatalf("New(Options{}) = %v", err)
	}
	if deployer.ErrorCode(err) != deployer.CodeInvalid {
		t.Errorf("code = %q", deployer.ErrorCode(err))
	}
}

// The next set is created in parallel and waited for through provisioning
// and booting, as the pipeline's create and wait-running steps do. The fake
// ages its instances on a manual clock, moved on only once the Cloud has
// seen each status, so the sequence is the same however slow the machine.
func TestCreateInParallelThenWaitRunning(t *testing.T) {
	var mu sync.Mutex
	var hooked []string
	apiClock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, linodetest.Options{
		Clock:        apiClock,
		Provisioning: 40 * time.Second,
		Booting:      80 * time.Second,
		IPv4:         linodetest.Loopback,
		OnRunning: func(in linodetest.Instance) error {
			mu.Lock()
			defer mu.Unlock()
			hooked = append(hooked, in.Label)
			return nil
		},
	}, realClock, func(o *Options) {
		o.UserData = func(_ context.Context, s deployer.ServerSpec) ([]byte, error) {
			return []byte("#cloud-config\nhostname: " + s.Name + "\n"), nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	specs := []deployer.ServerSpec{spec("ns1", 7), spec("ns2", 7)}
	created := make([]deployer.Server, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Go(func() { created[i], errs[i] = e.cloud.Create(ctx, sp) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, s := range created {
		if s.Status != "provisioning" || s.Name != specs[i].Name || s.Role != specs[i].Role || s.Label != specs[i].Label {
			t.Errorf("Create(%s) = %+v, want a provisioning %s with role %s and label %s", specs[i].Name, s, specs[i].Name, specs[i].Role, specs[i].Label)
		}
	}

	running := make([]deployer.Server, len(created))
	for i, s := range created {
		wg.Go(func() { running[i], errs[i] = e.cloud.WaitRunning(ctx, s) })
	}
	// Each status is answered at least once before the clock moves on.
	seen := func(status string, polls int) func() bool {
		return func() bool {
			for _, in := range e.api.Instances() {
				if in.Statuses[len(in.Statuses)-1] != status {
					return false
				}
			}
			return e.api.Count("GET", "/linode/instances/*") >= polls
		}
	}
	eventually.True(t, "both instances polled while provisioning", seen("provisioning", 2))
	apiClock.Advance(40 * time.Second)
	eventually.True(t, "both instances seen booting", seen("booting", 4))
	apiClock.Advance(80 * time.Second)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	addrs := map[string]bool{}
	for i, s := range running {
		host, port, err := net.SplitHostPort(s.Addr)
		if err != nil || port != "53" || !net.ParseIP(host).IsLoopback() {
			t.Errorf("%s: Addr = %q, want a loopback address on port 53", s.Name, s.Addr)
		}
		addrs[s.Addr] = true
		if s.Status != "running" || s.ID != created[i].ID || s.Name != specs[i].Name || s.Label != specs[i].Label || s.Image != "linode/debian12" {
			t.Errorf("WaitRunning(%s) = %+v", specs[i].Name, s)
		}
		in, ok := e.api.Instance(mustAtoi(t, s.ID))
		if !ok {
			t.Fatalf("the fake has no instance %s", s.ID)
		}
		if want := []string{"provisioning", "booting", "running"}; !slices.Equal(in.Statuses, want) {
			t.Errorf("%s went through %q, want %q", s.Name, in.Statuses, want)
		}
	}
	if len(addrs) != 2 {
		t.Errorf("the two servers share an address: %+v", running)
	}
	mu.Lock()
	slices.Sort(hooked)
	if !slices.Equal(hooked, []string{"ns1-7", "ns2-7"}) {
		t.Errorf("OnRunning ran for %q", hooked)
	}
	mu.Unlock()

	bodies := creates(t, e.api)
	if len(bodies) != 2 {
		t.Fatalf("%d create requests, want 2", len(bodies))
	}
	slices.SortFunc(bodies, func(a, b createBody) int { return strings.Compare(a.Label, b.Label) })
	for i, b := range bodies {
		role := specs[i].Role
		wantTags := []string{"greenlight", "service:ns", "deploy:7", "role:" + role, "label:" + role + "-next", "dns"}
		if b.Label != specs[i].Name || b.Region != "us-east" || b.Type != "g6-nanode-1" || b.Image != "linode/debian12" ||
			b.FirewallID != 31337 || !slices.Equal(b.Tags, wantTags) || len(b.AuthorizedKeys) != 1 {
			t.Errorf("create body %+v, want label %s and tags %q", b, specs[i].Name, wantTags)
		}
		ud, err := base64.StdEncoding.DecodeString(b.Metadata.UserData)
		if err != nil || string(ud) != "#cloud-config\nhostname: "+specs[i].Name+"\n" {
			t.Errorf("%s: user data %q (%v)", b.Label, ud, err)
		}
		if len(b.RootPass) != 40 {
			t.Errorf("%s: root password of %d characters, want 40", b.Label, len(b.RootPass))
		}
	}
	if bodies[0].RootPass == bodies[1].RootPass {
		t.Error("both servers got the same root password")
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a Linode ID", s)
	}
	return n
}

func TestCreateIsIdempotent(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *env)
		twice   bool   // call Create a second time
		posts   int    // create requests expected
		wantErr string // "" for success
		code    deployer.Code
	}{
		{name: "second call returns the first instance", twice: true, posts: 1},
		{
			name: "answer lost after the instance was made",
			setup: func(e *env) {
				e.api.Inject(linodetest.Fault{Method: "POST", Path: "/linode/instances", Status: 500, AfterHandling: true})
			},
			posts: 1,
		},
		{
			name: "label taken by an instance of another deploy",
			setup: func(e *env) {
				e.api.AddInstance(linodetest.Instance{Label: "ns1-7", Tags: []string{"greenlight", "deploy:6"}})
			},
			wantErr: "Linode already has an instance labelled ns1-7 (id 82372941) that is not deploy #7's; rename or delete it",
			code:    deployer.CodeConflict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{})
			if tt.setup != nil {
				tt.setup(e)
			}
			ctx := context.Background()
			first, err := e.cloud.Create(ctx, spec("ns1", 7))
			if tt.wantErr != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.wantErr || deployer.ErrorCode(err) != tt.code {
					t.Fatalf("Create = %v (code %q), want %q (code %q)", err, deployer.ErrorCode(err), tt.wantErr, tt.code)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.twice {
				second, err := e.cloud.Create(ctx, spec("ns1", 7))
				if err != nil || second.ID != first.ID {
					t.Fatalf("second Create = %+v, %v; want instance %s again", second, err, first.ID)
				}
			}
			if got := e.api.Count("POST", "/linode/instances"); got != tt.posts {
				t.Errorf("%d create requests, want %d", got, tt.posts)
			}
			var mine int
			for _, in := range e.api.Instances() {
				if slices.Contains(in.Tags, "deploy:7") {
					mine++
				}
			}
			if mine != tt.posts {
				t.Errorf("%d instances of deploy 7 exist, want %d", mine, tt.posts)
			}
		})
	}
}

func TestCreateNeedsNameAndImage(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	noImage := spec("ns1", 7)
	noImage.Image = ""
	for _, tt := range []struct {
		spec deployer.ServerSpec
		want string
	}{
		{deployer.ServerSpec{Image: "linode/debian12"}, "a server needs a name"},
		{noImage, "no image to create ns1-7 from"},
	} {
		_, err := e.cloud.Create(context.Background(), tt.spec)
		if err == nil || err.Error() != tt.want || deployer.ErrorCode(err) != deployer.CodeInvalid {
			t.Errorf("Create(%+v) = %v, want %q", tt.spec, err, tt.want)
		}
	}
	if n := len(e.api.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid specs", n)
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *env, s *deployer.Server)
		keeps   bool // ns1-7 is not the server deleted
		wantErr string
	}{
		{name: "running instance"},
		{name: "already deleted", setup: func(e *env, s *deployer.Server) {
			if err := e.cloud.Delete(context.Background(), *s); err != nil {
				panic(err)
			}
		}},
		{name: "API answers 404", setup: func(e *env, s *deployer.Server) {
			e.api.Inject(linodetest.Fault{Method: "DELETE", Path: "/linode/instances/*", Status: 404, AfterHandling: true})
		}},
		{name: "known only by name", setup: func(e *env, s *deployer.Server) { s.ID = "" }},
		{name: "never created", setup: func(e *env, s *deployer.Server) { *s = deployer.Server{Name: "ns9-7"} }, keeps: true},
		{name: "500 then success", setup: func(e *env, s *deployer.Server) {
			e.api.Inject(linodetest.Fault{Method: "DELETE", Path: "/linode/instances/*", Status: 500})
		}},
		{name: "refused", setup: func(e *env, s *deployer.Server) {
			e.api.Inject(linodetest.Fault{Method: "DELETE", Path: "/linode/instances/*", Status: 400,
				Errors: []linodetest.Reason{{Reason: "Linode busy with a migration; delete it later"}}})
		}, wantErr: "Linode refused to delete ns1-7: linode busy with a migration; delete it later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var deleted []string
			var mu sync.Mutex
			e := newEnv(t, linodetest.Options{OnDeleted: func(in linodetest.Instance) {
				mu.Lock()
				defer mu.Unlock()
				deleted = append(deleted, in.Label)
			}})
			ctx := context.Background()
			s, err := e.cloud.Create(ctx, spec("ns1", 7))
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(e, &s)
			}
			err = e.cloud.Delete(ctx, s)
			if tt.wantErr != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.wantErr {
					t.Fatalf("Delete = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete = %v", err)
			}
			want, left := []string{"ns1-7"}, 0
			if tt.keeps {
				want, left = nil, 1
				if n := e.api.Count("DELETE", "/linode/instances/*"); n != 0 {
					t.Errorf("%d delete requests for a server that never existed", n)
				}
			}
			if n := len(e.api.Instances()); n != left {
				t.Errorf("%d instances left, want %d", n, left)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(deleted, want) {
				t.Errorf("OnDeleted ran for %q, want %q", deleted, want)
			}
		})
	}
}

func TestRelabel(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	ctx := context.Background()
	s, err := e.cloud.Create(ctx, spec("ns1", 7))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.cloud.Relabel(ctx, s, "ns1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Label != "ns1" || got.Name != "ns1-7" || got.Role != "ns1" || got.ID != s.ID {
		t.Errorf("Relabel = %+v, want ns1-7 labelled ns1", got)
	}
	in, _ := e.api.Instance(mustAtoi(t, s.ID))
	want := []string{"greenlight", "service:ns", "deploy:7", "role:ns1", "dns", "label:ns1"}
	if in.Label != "ns1-7" || !slices.Equal(in.Tags, want) {
		t.Errorf("instance label %q tags %q, want ns1-7 with %q", in.Label, in.Tags, want)
	}
	if n := e.api.Count("PUT", "/linode/instances/*"); n != 1 {
		t.Errorf("%d updates, want 1", n)
	}

	// Relabelling to the label it has changes nothing.
	if again, err := e.cloud.Relabel(ctx, got, "ns1"); err != nil || again.Label != "ns1" {
		t.Errorf("second Relabel = %+v, %v", again, err)
	}
	if n := e.api.Count("PUT", "/linode/instances/*"); n != 1 {
		t.Errorf("%d updates after relabelling to the same label, want 1", n)
	}

	if err := e.cloud.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	_, err = e.cloud.Relabel(ctx, s, "ns1")
	if deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("Relabel of a deleted server = %v, want not found", err)
	}
}

func TestListByTagFollowsPages(t *testing.T) {
	e := newEnv(t, linodetest.Options{PageSize: 2})
	add := func(label string, tags ...string) string {
		return strconv.Itoa(e.api.AddInstance(linodetest.Instance{Label: label, Tags: tags}).ID)
	}
	ns17 := add("ns1-7", "greenlight", "service:ns", "deploy:7", "role:ns1", "label:ns1-next")
	ns18 := add("ns1-8", "greenlight", "service:ns", "deploy:8")
	ns27 := add("ns2-7", "greenlight", "service:ns", "deploy:7", "role:ns2", "label:ns2-next")
	add("bastion", "deploy:7") // an operator's instance, not greenlight's
	web17 := add("web1-7", "greenlight", "service:web", "deploy:7")
	ns16 := add("ns1-6", "greenlight", "service:ns", "deploy:6")

	tests := []struct {
		tag    string
		want   []string
		filter string
		pages  int
	}{
		{"deploy:7", []string{ns17, ns27, web17}, `{"+and":[{"tags":"greenlight"},{"tags":"deploy:7"}]}`, 2},
		{"greenlight", []string{ns17, ns18, ns27, web17, ns16}, `{"+and":[{"tags":"greenlight"}]}`, 3},
		{"service:ns", []string{ns17, ns18, ns27, ns16}, `{"+and":[{"tags":"greenlight"},{"tags":"service:ns"}]}`, 2},
		{"deploy:99", nil, `{"+and":[{"tags":"greenlight"},{"tags":"deploy:99"}]}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			before := len(e.api.Requests())
			got, err := e.cloud.ListByTag(context.Background(), tt.tag)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(serverIDs(got), tt.want) {
				t.Errorf("ListByTag(%q) = %q (%q), want %q", tt.tag, serverIDs(got), serverNames(got), tt.want)
			}
			reqs := e.api.Requests()[before:]
			if len(reqs) != tt.pages {
				t.Fatalf("%d requests, want %d pages", len(reqs), tt.pages)
			}
			for i, r := range reqs {
				if r.Method != "GET" || r.Path != "/v4/linode/instances" || r.Filter != tt.filter || r.Query != "page="+strconv.Itoa(i+1) {
					t.Errorf("request %d = %s %s?%s X-Filter %s; want page %d filtered by %s", i, r.Method, r.Path, r.Query, r.Filter, i+1, tt.filter)
				}
			}
		})
	}
	got, _ := e.cloud.ListByTag(context.Background(), "deploy:7")
	if got[0].Role != "ns1" || got[0].Label != "ns1-next" || got[0].Name != "ns1-7" {
		t.Errorf("listed server %+v lacks its role or label", got[0])
	}
}

func TestImagesSelectsGolden(t *testing.T) {
	e := newEnv(t, linodetest.Options{PageSize: 2})
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 4, 0, 0, 0, time.UTC) }
	jan := e.api.AddImage(linodetest.Image{Label: "ns-golden-20260101", Created: day(1, 1)})
	feb := e.api.AddImage(linodetest.Image{Label: "ns-golden-20260201", Created: day(2, 1)})
	mar := e.api.AddImage(linodetest.Image{Label: "ns-golden-20260301", Created: day(3, 1), Status: "creating"})
	debug := e.api.AddImage(linodetest.Image{Label: "ns-debug", Description: "for forensics", Created: day(1, 15)})
	web := e.api.AddImage(linodetest.Image{Label: "web-golden-20260115", Created: day(1, 15)})

	tests := []struct {
		service string
		want    []string
		golden  []string
	}{
		{"ns", []string{mar.ID, feb.ID, debug.ID, jan.ID, "linode/debian12"}, []string{feb.ID, jan.ID}},
		{"web", []string{web.ID, debug.ID, "linode/debian12"}, []string{web.ID}}, // same day: higher ID first
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			images, err := e.cloud.Images(context.Background(), tt.service)
			if err != nil {
				t.Fatal(err)
			}
			var ids, golden []string
			for _, im := range images {
				ids = append(ids, im.ID)
				if im.Golden {
					golden = append(golden, im.ID)
				}
			}
			if !slices.Equal(ids, tt.want) || !slices.Equal(golden, tt.golden) {
				t.Errorf("Images(%s) = %q golden %q; want %q golden %q", tt.service, ids, golden, tt.want, tt.golden)
			}
			for i := 1; i < len(images); i++ {
				if images[i].Created.After(images[i-1].Created) {
					t.Errorf("%s is listed after the older %s", images[i].ID, images[i-1].ID)
				}
			}
		})
	}
	images, _ := e.cloud.Images(context.Background(), "ns")
	if images[0].Description != "(creating)" || images[2].Description != "for forensics" || images[1].Label != "ns-golden-20260201" {
		t.Errorf("descriptions or labels wrong: %+v", images)
	}
	for _, r := range e.api.Requests() {
		if r.Path == "/v4/images" && r.Filter != `{"is_public":false}` {
			t.Errorf("images listed with X-Filter %s", r.Filter)
		}
	}
}

func TestImagesWithoutBaseImage(t *testing.T) {
	e := newEnv(t, linodetest.Options{}, func(o *Options) { o.Image = "linode/nosuch" })
	golden := e.api.AddImage(linodetest.Image{Label: "ns-golden-1"})
	images, err := e.cloud.Images(context.Background(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].ID != golden.ID || !images[0].Golden {
		t.Errorf("Images = %+v, want only %s", images, golden.ID)
	}
	if !strings.Contains(e.logs.String(), "the configured base image does not exist on Linode") {
		t.Errorf("no warning about the missing base image in %s", e.logs)
	}
}

func TestPrice(t *testing.T) {
	tests := []struct {
		region, typ     string
		count           int
		hourly, monthly float64
		wantErr         string
	}{
		{"us-east", "g6-nanode-1", 2, 0.015, 10, ""},
		{"id-cgk", "g6-nanode-1", 2, 0.018, 12, ""},
		{"us-east", "g6-standard-2", 3, 0.108, 72, ""},
		{"us-east", "g6-nanode-9", 2, 0, 0, "Linode has no instance type g6-nanode-9"},
	}
	for _, tt := range tests {
		t.Run(tt.region+"/"+tt.typ, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{}, func(o *Options) { o.Region, o.Type = tt.region, tt.typ })
			h, m, err := e.cloud.Price(context.Background(), tt.count)
			if tt.wantErr != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.wantErr || deployer.ErrorCode(err) != deployer.CodeNotFound {
					t.Fatalf("Price = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || h != tt.hourly || m != tt.monthly {
				t.Errorf("Price(%d) = %v/h %v/mo, %v; want %v/h %v/mo", tt.count, h, m, err, tt.hourly, tt.monthly)
			}
		})
	}
}

func TestWaitRunningFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *env, s deployer.Server)
		timeout time.Duration
		cancel  bool
		want    string
		isErr   error
	}{
		{
			name:    "never leaves provisioning",
			setup:   func(e *env, s deployer.Server) { e.api.Hold(s.Name, "provisioning") },
			timeout: 150 * time.Millisecond,
			want:    "ns1-7 was still provisioning on Linode when greenlight stopped waiting after ",
			isErr:   context.DeadlineExceeded,
		},
		{
			name:   "deploy stopped while booting",
			setup:  func(e *env, s deployer.Server) { e.api.Hold(s.Name, "booting") },
			cancel: true,
			want:   "stopped waiting for ns1-7 (still booting after ",
			isErr:  context.Canceled,
		},
		{
			name:  "offline",
			setup: func(e *env, s deployer.Server) { e.api.Hold(s.Name, "offline") },
			want:  "Linode says ns1-7 is offline: it stopped or failed to boot",
		},
		{
			name: "deleted while booting",
			setup: func(e *env, s deployer.Server) {
				if err := e.cloud.Delete(context.Background(), s); err != nil {
					panic(err)
				}
			},
			want: "ns1-7 no longer exists on Linode",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{Provisioning: 20 * time.Millisecond}, realClock)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := e.cloud.Create(ctx, spec("ns1", 7))
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(e, s)
			wctx := ctx
			if tt.timeout > 0 {
				var c context.CancelFunc
				wctx, c = context.WithTimeout(ctx, tt.timeout)
				defer c()
			}
			if tt.cancel {
				var c context.CancelFunc
				wctx, c = context.WithCancel(ctx)
				go func() {
					for e.api.Count("GET", "/linode/instances/*") < 3 {
						time.Sleep(time.Millisecond) // bounded: the test's context ends it
						if ctx.Err() != nil {
							return
						}
					}
					c()
				}()
			}
			_, err = e.cloud.WaitRunning(wctx, s)
			if err == nil || !strings.HasPrefix(deployer.ErrorMessage(err), tt.want) {
				t.Fatalf("WaitRunning = %v, want %q…", err, tt.want)
			}
			if strings.Contains(deployer.ErrorMessage(err), "context") {
				t.Errorf("%q speaks Go, not chat", err)
			}
			if deployer.ErrorCode(err) != deployer.CodeFailed {
				t.Errorf("code %q, want failed", deployer.ErrorCode(err))
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("%v does not wrap %v", err, tt.isErr)
			}
		})
	}
}

func TestWaitRunningFailsWhenOnRunningFails(t *testing.T) {
	e := newEnv(t, linodetest.Options{OnRunning: func(linodetest.Instance) error { return errors.New("no DNS server today") }})
	s, err := e.cloud.Create(context.Background(), spec("ns2", 7))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.cloud.WaitRunning(context.Background(), s)
	if err == nil || err.Error() != "Linode says ns2-7 is offline: it stopped or failed to boot" {
		t.Fatalf("WaitRunning = %v", err)
	}
}

func TestPublicIPv4(t *testing.T) {
	ip := func(s ...string) []*net.IP {
		var out []*net.IP
		for _, a := range s {
			p := net.ParseIP(a)
			out = append(out, &p)
		}
		return out
	}
	tests := []struct {
		ips  []*net.IP
		want string
	}{
		{ip("192.168.128.7", "203.0.113.9"), "203.0.113.9"},
		{ip("203.0.113.9", "192.168.128.7"), "203.0.113.9"},
		{ip("192.168.128.7"), "192.168.128.7"},
		{ip("2001:db8::1", "127.0.0.3"), "127.0.0.3"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := publicIPv4(tt.ips); got != tt.want {
			t.Errorf("publicIPv4(%v) = %q, want %q", tt.ips, got, tt.want)
		}
	}
}
