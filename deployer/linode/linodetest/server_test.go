package linodetest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/linode/linodego"
)

const token = "test-token"

// call sends a raw request and decodes the JSON answer.
func call(t *testing.T, s *linodetest.Server, method, path, filter, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if filter != "" {
		req.Header.Set("X-Filter", filter)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s answered %q: %v", method, path, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, resp.Header, out
}

func labels(page map[string]any) []string {
	var out []string
	for _, d := range page["data"].([]any) {
		out = append(out, d.(map[string]any)["label"].(string))
	}
	return out
}

func TestListsArePagedAndFiltered(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{PageSize: 2})
	defer s.Close()
	for _, in := range []linodetest.Instance{
		{Label: "ns1-7", Tags: []string{"greenlight", "deploy:7"}},
		{Label: "ns2-7", Tags: []string{"greenlight", "deploy:7"}},
		{Label: "ns1-8", Tags: []string{"greenlight", "deploy:8"}},
		{Label: "bastion", Tags: []string{"ops"}},
		{Label: "web1-7", Tags: []string{"greenlight", "deploy:7"}},
	} {
		s.AddInstance(in)
	}
	tests := []struct {
		path, filter string
		want         []string
		page, pages  float64
		results      float64
	}{
		{"/v4/linode/instances", "", []string{"ns1-7", "ns2-7"}, 1, 3, 5},
		{"/v4/linode/instances?page=3", "", []string{"web1-7"}, 3, 3, 5},
		{"/v4/linode/instances?page=2&page_size=3", "", []string{"bastion", "web1-7"}, 2, 2, 5},
		{"/v4beta/linode/instances?page=2", `{"+and":[{"tags":"greenlight"},{"tags":"deploy:7"}]}`, []string{"web1-7"}, 2, 2, 3},
		{"/v4/linode/instances", `{"label":"ns1-8"}`, []string{"ns1-8"}, 1, 1, 1},
		{"/v4/linode/instances", `{"+or":[{"label":"bastion"},{"tags":{"+contains":"DEPLOY:8"}}]}`, []string{"ns1-8", "bastion"}, 1, 1, 2},
		{"/v4/linode/instances", `{"tags":"greenlight","+order_by":"label","+order":"desc"}`, []string{"web1-7", "ns2-7"}, 1, 2, 4},
		{"/v4/linode/instances", `{"label":"nothing"}`, nil, 1, 1, 0},
	}
	for _, tt := range tests {
		status, _, page := call(t, s, "GET", tt.path, tt.filter, "")
		if status != 200 || !slices.Equal(labels(page), tt.want) || page["page"] != tt.page || page["pages"] != tt.pages || page["results"] != tt.results {
			t.Errorf("GET %s X-Filter %s = %d %v; want %q page %v of %v, %v results", tt.path, tt.filter, status, page, tt.want, tt.page, tt.pages, tt.results)
		}
	}
	status, _, body := call(t, s, "GET", "/v4/linode/instances", `{"colour":"blue"}`, "")
	if status != 400 || body["errors"].([]any)[0].(map[string]any)["reason"] != "Cannot filter on colour" {
		t.Errorf("filter on an unknown field = %d %v", status, body)
	}
}

func TestErrorShapesAndFaults(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()

	req, _ := http.NewRequest("GET", s.URL+"/v4/linode/instances", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}

	status, _, body := call(t, s, "GET", "/v4/linode/instances/4242", "", "")
	if status != 404 || !equalJSON(body, `{"errors":[{"reason":"Not found"}]}`) {
		t.Errorf("missing instance = %d %v", status, body)
	}
	status, _, body = call(t, s, "POST", "/v4/linode/instances", "",
		`{"region":"us-east","type":"g6-nanode-9","label":"ns1-7","image":"linode/debian12","root_pass":"short"}`)
	want := `{"errors":[{"reason":"A valid plan type by that ID was not found","field":"type"},
		{"reason":"Password does not meet strength requirement","field":"root_pass"}]}`
	if status != 400 || !equalJSON(body, want) {
		t.Errorf("bad create = %d %v", status, body)
	}

	s.Inject(linodetest.Fault{Method: "GET", Path: "/linode/instances", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 2})
	s.Inject(linodetest.Fault{Path: "/linode/*", Status: 500})
	for i, want := range []int{429, 429, 500, 200} {
		status, h, body := call(t, s, "GET", "/v4/linode/instances", "", "")
		if status != want {
			t.Errorf("request %d: %d %v, want %d", i, status, body, want)
		}
		if ra := h.Get("Retry-After"); (want == 429) != (ra == "2") {
			t.Errorf("request %d: Retry-After %q", i, ra)
		}
	}
	if n := s.Count("GET", "/linode/instances"); n != 5 { // the unauthenticated one counts too
		t.Errorf("Count = %d, want 5", n)
	}
	if got := s.Requests(); got[len(got)-1].Status != 200 || got[len(got)-2].Status != 500 {
		t.Errorf("recorded statuses wrong: %+v", got[len(got)-2:])
	}
}

func equalJSON(got map[string]any, want string) bool {
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		panic(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(w)
	return string(a) == string(b)
}

// On a manual clock an instance is provisioning, then booting, then
// running; OnRunning runs once, before anyone sees it running.
func TestLifecycleOnManualClock(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var started, stopped []string
	var s *linodetest.Server
	s = linodetest.NewServer(linodetest.Options{
		Clock:        clock,
		Provisioning: 30 * time.Second,
		Booting:      20 * time.Second,
		IPv4:         linodetest.Loopback,
		OnRunning: func(in linodetest.Instance) error {
			mu.Lock()
			defer mu.Unlock()
			started = append(started, in.Label+" "+in.IPv4)
			if got, _ := s.Instance(in.ID); got.Status != "booting" {
				t.Errorf("while OnRunning runs, %s says %q", in.Label, got.Status)
			}
			return nil
		},
		OnDeleted: func(in linodetest.Instance) {
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, in.Label)
		},
	})
	defer s.Close()
	c := s.NewClient(token)
	ctx := context.Background()
	in, err := c.CreateInstance(ctx, linodego.InstanceCreateOptions{Region: "us-east", Type: "g6-nanode-1",
		Label: "ns1-7", Image: "linode/debian12", RootPass: "Corr3ct-Horse-Battery", Tags: []string{"greenlight"}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != linodego.InstanceProvisioning || in.IPv4[0].String() != "127.0.0.2" || in.Created == nil {
		t.Fatalf("created %+v", in)
	}
	for _, step := range []struct {
		advance time.Duration
		want    linodego.InstanceStatus
	}{
		{10 * time.Second, linodego.InstanceProvisioning},
		{20 * time.Second, linodego.InstanceBooting},
		{19 * time.Second, linodego.InstanceBooting},
		{time.Second, linodego.InstanceRunning},
		{time.Hour, linodego.InstanceRunning},
	} {
		clock.Advance(step.advance)
		got, err := c.GetInstance(ctx, in.ID)
		if err != nil || got.Status != step.want {
			t.Fatalf("after %v more: %v, %v; want %s", step.advance, got, err, step.want)
		}
	}
	s.Hold("ns1-7", "offline")
	if got, _ := c.GetInstance(ctx, in.ID); got.Status != linodego.InstanceOffline {
		t.Errorf("held: %s", got.Status)
	}
	s.Hold("ns1-7", "")
	if got, _ := c.GetInstance(ctx, in.ID); got.Status != linodego.InstanceRunning {
		t.Errorf("released: %s", got.Status)
	}
	if err := c.DeleteInstance(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetInstance(ctx, in.ID); !linodego.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(started, []string{"ns1-7 127.0.0.2"}) || !slices.Equal(stopped, []string{"ns1-7"}) {
		t.Errorf("OnRunning ran for %q, OnDeleted for %q", started, stopped)
	}
	rec, _ := json.Marshal(s.Requests()[0])
	if !strings.Contains(string(rec), "Corr3ct-Horse-Battery") {
		t.Errorf("the request log lacks the create body: %s", rec)
	}
}

// linodego reads the fake's instances, images and types into its own types.
func TestLinodegoReadsTheFake(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{PageSize: 2})
	defer s.Close()
	c := s.NewClient(token)
	ctx := context.Background()
	created := time.Date(2026, 2, 1, 4, 0, 0, 0, time.UTC)
	golden := s.AddImage(linodetest.Image{Label: "ns-golden-20260201", Created: created, Description: "nsd 4.10"})
	live := s.AddInstance(linodetest.Instance{Label: "ns1", Tags: []string{"greenlight", "label:ns1"}})

	in, err := c.GetInstance(ctx, live.ID)
	if err != nil || in.Label != "ns1" || in.Status != linodego.InstanceRunning || in.IPv4[0].String() != "192.0.2.1" ||
		in.Specs == nil || in.Specs.Memory != 1024 || !slices.Equal(in.Tags, []string{"greenlight", "label:ns1"}) {
		t.Errorf("GetInstance = %+v, %v", in, err)
	}
	renamed, err := c.UpdateInstance(ctx, live.ID, linodego.InstanceUpdateOptions{Label: "ns1-old", Tags: &[]string{"greenlight"}})
	if err != nil || renamed.Label != "ns1-old" || !slices.Equal(renamed.Tags, []string{"greenlight"}) {
		t.Errorf("UpdateInstance = %+v, %v", renamed, err)
	}

	images, err := c.ListImages(ctx, nil)
	if err != nil || len(images) != 4 {
		t.Fatalf("ListImages = %d images, %v", len(images), err)
	}
	im, err := c.GetImage(ctx, golden.ID)
	if err != nil || im.Label != golden.Label || im.IsPublic || im.Created == nil || !im.Created.Equal(created) || im.Status != linodego.ImageStatusAvailable {
		t.Errorf("GetImage(%s) = %+v, %v", golden.ID, im, err)
	}
	if _, err := c.GetImage(ctx, "private/1"); !linodego.IsNotFound(err) {
		t.Errorf("GetImage of a missing image: %v", err)
	}
	typ, err := c.GetType(ctx, "g6-standard-1")
	if err != nil || typ.Price.Monthly != 12 || typ.Price.Hourly != 0.018 || len(typ.RegionPrices) != 2 || typ.RegionPrices[0].ID != "br-gru" {
		t.Errorf("GetType = %+v, %v", typ, err)
	}
	types, err := c.ListTypes(ctx, nil)
	if err != nil || len(types) != 3 {
		t.Errorf("ListTypes = %d, %v", len(types), err)
	}
}

// Routes a test adds get the fake's authentication, faults and request log.
func TestHandleFuncExtendsTheAPI(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()
	s.HandleFunc("GET /nodebalancers/{id}", func(w http.ResponseWriter, r *http.Request) {
		linodetest.WriteJSON(w, 200, map[string]any{"id": 12345, "label": "ns-lb", "ipv4": "127.0.0.1"})
	})
	s.Inject(linodetest.Fault{Path: "/nodebalancers/*", Status: 503, RetryAfter: time.Second})
	if status, _, _ := call(t, s, "GET", "/v4/nodebalancers/12345", "", ""); status != 503 {
		t.Errorf("first call %d, want the injected 503", status)
	}
	status, _, body := call(t, s, "GET", "/v4/nodebalancers/12345", "", "")
	if status != 200 || body["label"] != "ns-lb" {
		t.Errorf("second call %d %v", status, body)
	}
	if n := s.Count("GET", "/nodebalancers/*"); n != 2 {
		t.Errorf("Count = %d", n)
	}
	status, _, body = call(t, s, "POST", "/v4/linode/instances", "", `{"region":"us-east","type":"g6-nanode-1","label":"x"}`)
	if status != 400 || !equalJSON(body, `{"errors":[{"reason":"Length must be 3-64 characters","field":"label"}]}`) {
		t.Errorf("short label: %d %v", status, body)
	}
	s.AddInstance(linodetest.Instance{Label: "ns1-7"})
	status, _, body = call(t, s, "POST", "/v4/linode/instances", "", `{"region":"us-east","type":"g6-nanode-1","label":"ns1-7"}`)
	if status != 400 || !equalJSON(body, `{"errors":[{"reason":"Label must be unique among your linodes","field":"label"}]}`) {
		t.Errorf("duplicate label: %d %v", status, body)
	}
}
