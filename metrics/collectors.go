package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/local"
)

// StatusSource is what the service collector reads on each scrape;
// *deployer.Deployer is one.
type StatusSource interface {
	Services() []string
	Status(ctx context.Context, service string) (deployer.Status, error)
	Now() time.Time
}

// NeedsAttention reports whether a service's status needs a person: a
// deploy recorded as needing attention, or a lock still held by a deploy
// that has ended (left by an older greenlight).
func NeedsAttention(st deployer.Status) bool {
	if st.Active != nil && st.Active.Phase == deployer.PhaseNeedsAttention {
		return true
	}
	if st.Lock == nil || st.Lock.DeployID == 0 {
		return false
	}
	return st.Active == nil || st.Active.ID != st.Lock.DeployID
}

var (
	lockHeldDesc = prometheus.NewDesc(namespace+"_lock_held",
		"1 while the service's deploy lock is held (by a deploy or by hand).", []string{"service"}, nil)
	lockHeldSecondsDesc = prometheus.NewDesc(namespace+"_lock_held_seconds",
		"How long the service's deploy lock has been held; 0 when free.", []string{"service"}, nil)
	inFlightDesc = prometheus.NewDesc(namespace+"_deploy_in_flight",
		"1 for the step a deploy in flight is on.", []string{"service", "step"}, nil)
	needsAttentionDesc = prometheus.NewDesc(namespace+"_needs_attention",
		"1 while a deploy of the service needs a person to end it.", []string{"service"}, nil)
	liveServersDesc = prometheus.NewDesc(namespace+"_live_servers",
		"Servers in the service's live set.", []string{"service"}, nil)
	statusErrorsDesc = prometheus.NewDesc(namespace+"_status_read_errors",
		"1 when the service's status could not be read from the store during this scrape.", []string{"service"}, nil)
)

// serviceCollector reads each service's status when scraped.
type serviceCollector struct {
	src     StatusSource
	timeout time.Duration
}

// WatchServices registers a collector of each service's lock, deploy in
// flight, needs-attention state and live servers, read from src on every
// scrape.
func (m *Metrics) WatchServices(src StatusSource) {
	m.Registry.MustRegister(&serviceCollector{src: src, timeout: 5 * time.Second})
}

func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lockHeldDesc, lockHeldSecondsDesc, inFlightDesc, needsAttentionDesc, liveServersDesc, statusErrorsDesc} {
		ch <- d
	}
}

func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	now := c.src.Now()
	for _, svc := range c.src.Services() {
		st, err := c.src.Status(ctx, svc)
		ch <- prometheus.MustNewConstMetric(statusErrorsDesc, prometheus.GaugeValue, b2f(err != nil), svc)
		if err != nil {
			continue
		}
		held, since := 0.0, 0.0
		if st.Lock != nil {
			held = 1
			since = max(0, now.Sub(st.Lock.Since).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(lockHeldDesc, prometheus.GaugeValue, held, svc)
		ch <- prometheus.MustNewConstMetric(lockHeldSecondsDesc, prometheus.GaugeValue, since, svc)
		ch <- prometheus.MustNewConstMetric(needsAttentionDesc, prometheus.GaugeValue, b2f(NeedsAttention(st)), svc)
		ch <- prometheus.MustNewConstMetric(liveServersDesc, prometheus.GaugeValue, float64(len(st.Live.Servers)), svc)
		for _, step := range deployer.Steps() {
			v := 0.0
			if d := st.Active; d != nil && !d.Phase.Final() && currentStep(d) == step {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, v, svc, string(step))
		}
	}
}

func currentStep(d *deployer.Deployment) deployer.StepName {
	if d.Phase == deployer.PhaseAwaitingApproval {
		return deployer.StepApproval
	}
	return d.CurrentStep()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// BalancerCounters is what the balancer collector reads; *local.Balancer is
// one.
type BalancerCounters interface {
	Counters() local.BalancerCounters
}

var lbQueriesDesc = prometheus.NewDesc(namespace+"_lb_queries_total",
	"Queries through the local load balancer, by protocol and result: answered (by a server), servfail (by the balancer), "+
		"retried (sent again to another server, UDP), resent (sent again after the server closed, TCP), dropped (not a query).",
	[]string{"service", "proto", "result"}, nil)

var lbConnsDesc = prometheus.NewDesc(namespace+"_lb_tcp_connections_closed_total",
	"Client TCP connections the local load balancer closed itself, by reason: rejected (too many open), idle.",
	[]string{"service", "reason"}, nil)

type balancerCollector struct {
	service string
	lb      BalancerCounters
}

// WatchBalancer registers the counters of service's local load balancer.
func (m *Metrics) WatchBalancer(service string, lb BalancerCounters) {
	m.Registry.MustRegister(&balancerCollector{service: service, lb: lb})
}

func (c *balancerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lbQueriesDesc
	ch <- lbConnsDesc
}

func (c *balancerCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.lb.Counters()
	for _, v := range []struct {
		proto, result string
		n             uint64
	}{
		{"udp", "answered", n.UDPAnswered}, {"udp", "servfail", n.UDPServfail},
		{"udp", "retried", n.UDPRetried}, {"udp", "dropped", n.UDPDropped},
		{"tcp", "answered", n.TCPAnswered}, {"tcp", "servfail", n.TCPServfail}, {"tcp", "resent", n.TCPResent},
	} {
		ch <- prometheus.MustNewConstMetric(lbQueriesDesc, prometheus.CounterValue, float64(v.n), c.service, v.proto, v.result)
	}
	ch <- prometheus.MustNewConstMetric(lbConnsDesc, prometheus.CounterValue, float64(n.TCPRejected), c.service, "rejected")
	ch <- prometheus.MustNewConstMetric(lbConnsDesc, prometheus.CounterValue, float64(n.TCPIdle), c.service, "idle")
}
