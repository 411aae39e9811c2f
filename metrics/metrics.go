// Package metrics exposes greenlight's state and activity as Prometheus
// metrics. It is a deployer.Reporter decorator (deploy outcomes, step
// durations, approval waits, check failures, counted from the pipeline's
// events), collectors that read each service's status when scraped (lock,
// deploy in flight, needs attention, live servers) and the local
// balancers' counters, and plain methods the chat, cloud, refresh and
// reconcile code call. Each Metrics has its own registry.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

const namespace = "greenlight"

// Metrics holds greenlight's metrics and the registry that serves them.
type Metrics struct {
	Registry *prometheus.Registry

	deploys          *prometheus.CounterVec
	stepDuration     *prometheus.HistogramVec
	approvalWait     *prometheus.HistogramVec
	checkFailures    *prometheus.CounterVec
	chatRequests     *prometheus.CounterVec
	chatAck          *prometheus.HistogramVec
	chatConnected    *prometheus.GaugeVec
	cloudRequests    *prometheus.CounterVec
	cloudRetries     *prometheus.CounterVec
	imageBakes       *prometheus.CounterVec
	reconcileOrphans *prometheus.GaugeVec
	lockLimit        *prometheus.GaugeVec

	mu       sync.Mutex
	observed map[uint64]map[deployer.StepName]bool // steps whose duration was observed, per deploy in flight
}

// New returns metrics on a new registry that also holds the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "deploys_total",
			Help: "Deploys that ended, by outcome: succeeded, failed, aborted, rolled_back.",
		}, []string{"service", "outcome"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "deploy_step_duration_seconds",
			Help:    "How long each pipeline step ran, done or failed.",
			Buckets: []float64{0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"service", "step"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "approval_wait_seconds",
			Help:    "How long a deploy waited at the approval gate for a decision.",
			Buckets: []float64{1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400},
		}, []string{"service"}),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "check_failures_total",
			Help: "DNS checks that failed, by kind: check-next (the next set), check-live (through the load balancer).",
		}, []string{"service", "kind"}),
		chatRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "chat_requests_total",
			Help: "Requests from chat, by adapter, kind (command, click, mention) and result (ok, refused, busy, error).",
		}, []string{"adapter", "kind", "result"}),
		chatAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "chat_ack_seconds",
			Help:    "Time from receiving a chat request to acknowledging it.",
			Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3},
		}, []string{"adapter"}),
		chatConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "chat_connected",
			Help: "1 while the chat adapter is connected and serving, 0 otherwise.",
		}, []string{"adapter"}),
		cloudRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cloud_api_requests_total",
			Help: "Cloud API requests, by cloud, operation (method and path template) and HTTP status code (0 for no answer).",
		}, []string{"cloud", "operation", "code"}),
		cloudRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cloud_api_retries_total",
			Help: "Cloud API requests sent again after a 429, a 5xx or a dropped connection.",
		}, []string{"cloud", "operation"}),
		imageBakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "image_bakes_total",
			Help: "Golden image bakes that ended, by outcome: succeeded, failed.",
		}, []string{"service", "outcome"}),
		reconcileOrphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "reconcile_orphans",
			Help: "Servers the last reconcile pass found that no live set or deploy owns.",
		}, []string{"service"}),
		lockLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "lock_held_limit_seconds",
			Help: "How long a deploy may hold the lock when nobody waits: approval timeout + rollback window + step timeouts.",
		}, []string{"service"}),
		observed: map[uint64]map[deployer.StepName]bool{},
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.deploys, m.stepDuration, m.approvalWait, m.checkFailures,
		m.chatRequests, m.chatAck, m.chatConnected,
		m.cloudRequests, m.cloudRetries, m.imageBakes, m.reconcileOrphans, m.lockLimit,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Outcome is the deploys_total outcome of a final phase, "" for one that
// is not an outcome (a dry run).
func Outcome(p deployer.Phase) string {
	switch p {
	case deployer.PhaseSucceeded:
		return "succeeded"
	case deployer.PhaseFailed:
		return "failed"
	case deployer.PhaseAborted:
		return "aborted"
	case deployer.PhaseRolledBack:
		return "rolled_back"
	}
	return ""
}

// Reporter returns a deployer.Reporter that counts each event and then
// passes it to next.
func (m *Metrics) Reporter(next deployer.Reporter) deployer.Reporter {
	return deployer.ReporterFunc(func(ctx context.Context, ev deployer.Event) {
		m.observe(ev)
		if next != nil {
			next.Report(ctx, ev)
		}
	})
}

// ServiceNames lists the services the deploy metrics are kept for, so that
// every series exists from the start.
func (m *Metrics) ServiceNames(services []string) {
	for _, s := range services {
		for _, o := range []string{"succeeded", "failed", "aborted", "rolled_back"} {
			m.deploys.WithLabelValues(s, o)
		}
		for _, k := range []deployer.StepName{deployer.StepCheckNext, deployer.StepCheckLive} {
			m.checkFailures.WithLabelValues(s, string(k))
		}
		for _, o := range []string{"succeeded", "failed"} {
			m.imageBakes.WithLabelValues(s, o)
		}
	}
}

func (m *Metrics) observe(ev deployer.Event) {
	d := ev.Deployment
	switch ev.Kind {
	case deployer.EventStep:
		st := d.Step(ev.Step)
		if st == nil || (st.Status != deployer.StatusDone && st.Status != deployer.StatusFailed) {
			return
		}
		if !m.firstTime(d.ID, ev.Step) {
			return
		}
		m.stepDuration.WithLabelValues(d.Service, string(ev.Step)).Observe(st.Duration().Seconds())
		if ev.Step == deployer.StepApproval {
			m.approvalWait.WithLabelValues(d.Service).Observe(st.Duration().Seconds())
		}
		if st.Status == deployer.StatusFailed && (ev.Step == deployer.StepCheckNext || ev.Step == deployer.StepCheckLive) {
			m.checkFailures.WithLabelValues(d.Service, string(ev.Step)).Inc()
		}
	case deployer.EventFinished:
		m.mu.Lock()
		delete(m.observed, d.ID)
		m.mu.Unlock()
		if o := Outcome(d.Phase); o != "" {
			m.deploys.WithLabelValues(d.Service, o).Inc()
		}
	}
}

// firstTime reports whether step of deploy id was not observed before, and
// marks it.
func (m *Metrics) firstTime(id uint64, step deployer.StepName) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	steps := m.observed[id]
	if steps == nil {
		steps = map[deployer.StepName]bool{}
		m.observed[id] = steps
	}
	if steps[step] {
		return false
	}
	steps[step] = true
	return true
}

// ChatRequest counts one request from a chat adapter.
func (m *Metrics) ChatRequest(adapter, kind, result string) {
	m.chatRequests.WithLabelValues(adapter, kind, result).Inc()
}

// ChatAck observes how long an acknowledgement took.
func (m *Metrics) ChatAck(adapter string, d time.Duration) {
	m.chatAck.WithLabelValues(adapter).Observe(d.Seconds())
}

// ChatConnected records whether an adapter is connected.
func (m *Metrics) ChatConnected(adapter string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.chatConnected.WithLabelValues(adapter).Set(v)
}

// CloudRequest counts one cloud API request and its status code (0: no
// answer).
func (m *Metrics) CloudRequest(cloud, operation string, code int) {
	m.cloudRequests.WithLabelValues(cloud, operation, strconv.Itoa(code)).Inc()
}

// CloudRetry counts a cloud API request sent again.
func (m *Metrics) CloudRetry(cloud, operation string) {
	m.cloudRetries.WithLabelValues(cloud, operation).Inc()
}

// LockLimit records how long a deploy of service may hold its lock.
func (m *Metrics) LockLimit(service string, d time.Duration) {
	m.lockLimit.WithLabelValues(service).Set(d.Seconds())
}

// Orphans records what the last reconcile pass found for service.
func (m *Metrics) Orphans(service string, n int) {
	m.reconcileOrphans.WithLabelValues(service).Set(float64(n))
}

// Refresh returns a refresh.Reporter that counts ended bakes and then
// passes each event to next.
func (m *Metrics) Refresh(next refresh.Reporter) refresh.Reporter {
	return refresh.ReporterFunc(func(ctx context.Context, ev refresh.Event) {
		switch ev.Kind {
		case refresh.EventFinished:
			m.imageBakes.WithLabelValues(ev.Service, "succeeded").Inc()
		case refresh.EventFailed:
			m.imageBakes.WithLabelValues(ev.Service, "failed").Inc()
		}
		if next != nil {
			next.Refresh(ctx, ev)
		}
	})
}
