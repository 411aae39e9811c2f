package metrics

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/greenlight/greenlight/deployer"
)

func deployment(id uint64, phase deployer.Phase, steps ...deployer.StepState) deployer.Deployment {
	return deployer.Deployment{ID: id, Service: "ns", Phase: phase, Steps: steps}
}

func step(name deployer.StepName, status deployer.StepStatus, took time.Duration) deployer.StepState {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return deployer.StepState{Name: name, Status: status, Started: t0, Finished: t0.Add(took)}
}

// Each ended deploy is counted once by outcome; a step's duration is
// observed once however often its end is reported; a failed check counts
// as a check failure.
func TestReporterCounts(t *testing.T) {
	tests := []struct {
		name      string
		events    []deployer.Event
		outcome   string
		steps     int // observations of check-next's duration
		checkFail float64
	}{
		{"succeeded", []deployer.Event{
			{Kind: deployer.EventStep, Step: deployer.StepCheckNext, Deployment: deployment(1, deployer.PhaseRunning, step(deployer.StepCheckNext, deployer.StatusRunning, 0))},
			{Kind: deployer.EventStep, Step: deployer.StepCheckNext, Deployment: deployment(1, deployer.PhaseRunning, step(deployer.StepCheckNext, deployer.StatusDone, time.Second))},
			{Kind: deployer.EventStep, Step: deployer.StepCheckNext, Deployment: deployment(1, deployer.PhaseRunning, step(deployer.StepCheckNext, deployer.StatusDone, time.Second))},
			{Kind: deployer.EventFinished, Deployment: deployment(1, deployer.PhaseSucceeded)},
		}, "succeeded", 1, 0},
		{"check failed", []deployer.Event{
			{Kind: deployer.EventStep, Step: deployer.StepCheckNext, Deployment: deployment(2, deployer.PhaseRunning, step(deployer.StepCheckNext, deployer.StatusFailed, time.Second))},
			{Kind: deployer.EventFinished, Deployment: deployment(2, deployer.PhaseFailed)},
		}, "failed", 1, 1},
		{"rolled back", []deployer.Event{
			{Kind: deployer.EventFinished, Deployment: deployment(3, deployer.PhaseRolledBack)},
		}, "rolled_back", 0, 0},
		{"aborted", []deployer.Event{
			{Kind: deployer.EventFinished, Deployment: deployment(4, deployer.PhaseAborted)},
		}, "aborted", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			m.ServiceNames([]string{"ns"})
			var passed int
			r := m.Reporter(deployer.ReporterFunc(func(context.Context, deployer.Event) { passed++ }))
			for _, ev := range tt.events {
				r.Report(context.Background(), ev)
			}
			if passed != len(tt.events) {
				t.Errorf("%d events reached the wrapped reporter, want %d", passed, len(tt.events))
			}
			for _, o := range []string{"succeeded", "failed", "aborted", "rolled_back"} {
				want := 0.0
				if o == tt.outcome {
					want = 1
				}
				if got := testutil.ToFloat64(m.deploys.WithLabelValues("ns", o)); got != want {
					t.Errorf("deploys_total{outcome=%s} = %v, want %v", o, got, want)
				}
			}
			if got := testutil.CollectAndCount(m.stepDuration); got != min(tt.steps, 1) {
				t.Errorf("step duration series = %d, want %d", got, min(tt.steps, 1))
			}
			if got := testutil.ToFloat64(m.checkFailures.WithLabelValues("ns", "check-next")); got != tt.checkFail {
				t.Errorf("check failures = %v, want %v", got, tt.checkFail)
			}
		})
	}
}

func TestNeedsAttention(t *testing.T) {
	running := deployment(7, deployer.PhaseRunning)
	failed := deployment(7, deployer.PhaseFailed)
	attention := deployment(7, deployer.PhaseNeedsAttention)
	tests := []struct {
		name string
		st   deployer.Status
		want bool
	}{
		{"idle", deployer.Status{}, false},
		{"locked by hand", deployer.Status{Lock: &deployer.Lock{Holder: "alice"}}, false},
		{"deploy in flight", deployer.Status{Lock: &deployer.Lock{DeployID: 7}, Active: &running}, false},
		{"lock kept after the deploy ended", deployer.Status{Lock: &deployer.Lock{DeployID: 7}, Last: &failed}, true},
		{"recorded as needing attention", deployer.Status{Lock: &deployer.Lock{DeployID: 7}, Active: &attention}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsAttention(tt.st); got != tt.want {
				t.Errorf("NeedsAttention = %v, want %v", got, tt.want)
			}
		})
	}
}

// Every metric greenlight defines, with a series each, passes promtool's
// lint when promtool is installed.
func TestPromtoolCheckMetrics(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed")
	}
	m := New()
	m.ServiceNames([]string{"ns"})
	r := m.Reporter(nil)
	r.Report(context.Background(), deployer.Event{Kind: deployer.EventStep, Step: deployer.StepApproval,
		Deployment: deployment(1, deployer.PhaseRunning, step(deployer.StepApproval, deployer.StatusDone, time.Minute))})
	m.ChatRequest("slack", "command", "ok")
	m.ChatAck("slack", time.Millisecond)
	m.ChatConnected("slack", true)
	m.CloudRequest("linode", "GET /linode/instances/{id}", 200)
	m.CloudRetry("linode", "GET /linode/instances/{id}")
	m.Orphans("ns", 0)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(rec.Body.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
