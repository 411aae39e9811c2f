package metrics

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/local"
)

type fakeBalancer struct{}

func (fakeBalancer) Counters() local.BalancerCounters { return local.BalancerCounters{UDPAnswered: 1} }

type fakeSource struct{}

func (fakeSource) Services() []string { return []string{"ns"} }
func (fakeSource) Now() time.Time     { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) }
func (fakeSource) Status(context.Context, string) (deployer.Status, error) {
	return deployer.Status{Service: "ns"}, nil
}

// names is every metric family a fully wired Metrics exposes.
func names(t *testing.T) map[string]bool {
	t.Helper()
	m := New()
	m.ServiceNames([]string{"ns"})
	m.WatchServices(fakeSource{})
	m.WatchBalancer("ns", fakeBalancer{})
	m.Reporter(nil).Report(context.Background(), deployer.Event{Kind: deployer.EventStep, Step: deployer.StepApproval,
		Deployment: deployment(1, deployer.PhaseRunning, step(deployer.StepApproval, deployer.StatusDone, time.Minute))})
	m.ChatRequest("slack", "command", "ok")
	m.ChatAck("slack", time.Millisecond)
	m.ChatConnected("slack", true)
	m.CloudRequest("linode", "GET /linode/instances", 200)
	m.CloudRetry("linode", "GET /linode/instances")
	m.Orphans("ns", 0)
	m.LockLimit("ns", time.Hour)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range fams {
		out[f.GetName()] = true
	}
	return out
}

var metricName = regexp.MustCompile(`\b(greenlight_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)

// The alerting rules and the dashboard use only metrics greenlight
// exposes; the rules pass promtool check rules when promtool is installed.
func TestRulesAndDashboardUseExposedMetrics(t *testing.T) {
	have := names(t)
	rules, err := os.ReadFile("../configs/prometheus/greenlight-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile("../configs/grafana/greenlight.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, src := range []struct{ what, text string }{{"rules", string(rules)}, {"dashboard", strings.Join(exprs, "\n")}} {
		for _, n := range metricName.FindAllString(src.text, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				base = strings.TrimSuffix(base, suf)
			}
			if !have[n] && !have[base] {
				t.Errorf("the %s use %s, which greenlight does not expose", src.what, n)
			}
		}
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed")
	}
	if out, err := exec.Command(bin, "check", "rules", "../configs/prometheus/greenlight-rules.yaml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
