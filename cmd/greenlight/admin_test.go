package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// sample finds the value of the series name{labels} in an exposition.
func sample(t *testing.T, body, series string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// A real local deploy, then a scrape: the deploy is counted as succeeded,
// every step's duration was observed once, and the gauges say the lock is
// free and two servers are live.
func TestMetricsAfterLocalDeploy(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(conf, []byte(`log: {level: warn}
local: {boot_delay: 20ms}
services:
  ns:
    servers: [ns1, ns2]
    listen: 127.0.0.1:0
    rollback_window: 200ms
    check: {zones: [example.test], passes: 2, interval: 50ms, timeout: 1s, max_rounds: 4}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMain(t, nil, "--config", conf, "--data", t.TempDir(), "--admin", "127.0.0.1:0")
	base := "http://" + p.m.AdminAddr()
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	waitMetric(t, base, `greenlight_deploys_total{outcome="succeeded",service="ns"}`, 1)

	_, body := get(t, base+"/metrics")
	for _, step := range deployer.Steps() {
		if step == deployer.StepLock {
			continue // taken with the deploy, not run as a step
		}
		series := `greenlight_deploy_step_duration_seconds_count{service="ns",step="` + string(step) + `"}`
		if v, ok := sample(t, body, series); !ok || v != 1 {
			t.Errorf("%s = %v (found %v), want 1", series, v, ok)
		}
	}
	for series, want := range map[string]float64{
		`greenlight_deploys_total{outcome="failed",service="ns"}`:         0,
		`greenlight_approval_wait_seconds_count{service="ns"}`:            1,
		`greenlight_lock_held{service="ns"}`:                              0,
		`greenlight_needs_attention{service="ns"}`:                        0,
		`greenlight_live_servers{service="ns"}`:                           2,
		`greenlight_deploy_in_flight{service="ns",step="approval"}`:       0,
		`greenlight_check_failures_total{kind="check-next",service="ns"}`: 0,
	} {
		if v, ok := sample(t, body, series); !ok || v != want {
			t.Errorf("%s = %v (found %v), want %v", series, v, ok, want)
		}
	}
	if v, ok := sample(t, body, `greenlight_lb_queries_total{proto="udp",result="answered",service="ns"}`); !ok || v == 0 {
		t.Errorf("the balancer's answered UDP queries = %v (found %v); the live check asks through it", v, ok)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !regexp.MustCompile(`(?m)^` + name + ` `).MatchString(body) {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	promtoolCheck(t, body)
}

// waitMetric scrapes until series reaches want (bounded).
func waitMetric(t *testing.T, base, series string, want float64) {
	t.Helper()
	var body string
	reached := eventually.Holds(waitLimit, func() bool {
		_, body = get(t, base+"/metrics")
		v, ok := sample(t, body, series)
		return ok && v == want
	})
	if !reached {
		t.Fatalf("%s never reached %v:\n%s", series, want, body)
	}
}

// promtoolCheck runs promtool check metrics on an exposition when promtool
// is installed (CI installs it).
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus)")
		}
		t.Log("promtool not installed; skipping promtool check metrics")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// /readyz names what is not ready with a 503 until start-up is done.
func TestReadyzNamesWhatIsNotReady(t *testing.T) {
	m := &Main{}
	m.running.ready = newReadiness()
	m.running.ready.wait("store", "not open yet")
	m.running.ready.wait("switch ns", "traffic not pointed at the live set yet")
	m.running.ready.done("store")
	m.running.ready.set("chat", false, "Slack not connected")
	tests := []struct {
		name string
		edit func()
		code int
		want []string
	}{
		{"pending", func() {}, http.StatusServiceUnavailable, []string{"chat: Slack not connected", "switch ns: traffic not pointed at the live set yet"}},
		{"ready", func() { m.running.ready.done("switch ns"); m.running.ready.set("chat", true, "") }, http.StatusOK, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.edit()
			rec := httptest.NewRecorder()
			m.readyzHandler(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.code, rec.Body.String())
			}
			var got struct {
				Status   string   `json:"status"`
				NotReady []string `json:"not_ready"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.NotReady, "|") != strings.Join(tt.want, "|") {
				t.Errorf("not_ready %q, want %q", got.NotReady, tt.want)
			}
		})
	}
}
