package local

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/miekg/dns"
)

func newTestBalancer(t testing.TB, log *slog.Logger) *Balancer {
	t.Helper()
	if log == nil {
		log = discard()
	}
	b, err := NewBalancer("127.0.0.1:0", BalancerOptions{Logger: log, QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if got := b.Endpoints(); len(got) != 1 || got[0] != b.Addr() {
		t.Fatalf("Endpoints = %q, Addr %q", got, b.Addr())
	}
	return b
}

// twoSets starts set A (ns1-1, ns2-1 on v1) and set B (ns1-2, ns2-2 on v2).
func twoSets(t testing.TB) (a, b []deployer.Server) {
	c := newTestCloud(t, t.TempDir())
	ss := startServers(t, c,
		server{"ns1-1", "local/ns-v1", true}, server{"ns2-1", "local/ns-v1", true},
		server{"ns1-2", "local/ns-v2", true}, server{"ns2-2", "local/ns-v2", true})
	return ss[:2], ss[2:]
}

func names(servers []deployer.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.Name)
	}
	return out
}

func TestBalancerNoBackend(t *testing.T) {
	b := newTestBalancer(t, nil)
	for _, network := range []string{"udp", "tcp"} {
		r, err := ask(network, b.Addr(), "example.test", dns.TypeSOA)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if r.Rcode != dns.RcodeServerFailure || len(r.Question) != 1 || r.Question[0].Name != "example.test." {
			t.Errorf("%s: want SERVFAIL for example.test., got\n%s", network, r)
		}
	}
	if servfail([]byte("not dns")) != nil {
		t.Error("servfail answered a packet that is not DNS")
	}
	// Garbage is dropped and the balancer keeps answering.
	conn, err := net.Dial("udp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte{0xde, 0xad})
	co := &dns.Conn{Conn: conn}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
	if err := co.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	r, err := co.ReadMsg()
	if err != nil || r.Id != q.Id || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("after garbage: %v %v", r, err)
	}
}

func TestBalancerAcceptErrors(t *testing.T) {
	b := newTestBalancer(t, nil)
	ctx := context.Background()
	tests := []struct {
		servers []deployer.Server
		want    string
	}{
		{nil, "the load balancer needs at least one server to send traffic to"},
		{[]deployer.Server{{Name: "ns1-7"}}, "ns1-7 has no address to send traffic to; is it running?"},
	}
	for i, tt := range tests {
		if err := b.Accept(ctx, tt.servers); err == nil || err.Error() != tt.want {
			t.Errorf("#%d: Accept = %v, want %q", i, err, tt.want)
		}
	}
}

func TestBalancerRoundRobin(t *testing.T) {
	a, _ := twoSets(t)
	b := newTestBalancer(t, nil)
	if err := b.Accept(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := range 10 {
		network := []string{"udp", "tcp"}[i%2]
		r, err := ask(network, b.Addr(), "www.example.test", dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || rdatas(r.Answer)[0] != "192.0.2.10" {
			t.Fatalf("through the balancer:\n%s", r)
		}
		seen[nsid(r)]++
	}
	if seen["ns1-1"] != 5 || seen["ns2-1"] != 5 {
		t.Errorf("NSIDs %v, want 5 each", seen)
	}
	stats := b.Stats()
	if stats[a[0].Addr] != 5 || stats[a[1].Addr] != 5 {
		t.Errorf("Stats %v", stats)
	}
}

// The deploy's switch under load: no query fails, answers move from A to B,
// and Drain returns.
func TestBalancerSwitchUnderLoad(t *testing.T) {
	a, bset := twoSets(t)
	b := newTestBalancer(t, nil)
	ctx := context.Background()
	if err := b.Accept(ctx, a); err != nil {
		t.Fatal(err)
	}

	// A query is in phaseA when it ended before Accept(B) was called, in
	// phaseB when it began after Accept(B) returned, else in phaseSwitch.
	const (
		phaseA      = 0
		phaseSwitch = 1
		phaseB      = 2
	)
	var (
		phase  atomic.Int32
		total  atomic.Int64
		afterB atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		mu     sync.Mutex
		seen   = [3]map[string]int{{}, {}, {}}
		failed []string
	)
	for w := range 4 {
		network := []string{"udp", "tcp"}[w%2]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := phase.Load()
				r, err := ask(network, b.Addr(), "example.test", dns.TypeSOA)
				p := began
				if ended := phase.Load(); began == phaseA && ended != phaseA {
					p = phaseSwitch
				}
				mu.Lock()
				switch {
				case err != nil:
					failed = append(failed, network+": "+err.Error())
				case r.Rcode != dns.RcodeSuccess || nsid(r) == "":
					failed = append(failed, network+": "+dns.RcodeToString[r.Rcode]+" NSID "+nsid(r))
				default:
					seen[p][nsid(r)]++
				}
				mu.Unlock()
				total.Add(1)
				if p == phaseB {
					afterB.Add(1)
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	waitFor(t, 10*time.Second, "400 queries to set A", func() bool { return total.Load() >= 400 })
	phase.Store(phaseSwitch)
	if err := b.Accept(ctx, bset); err != nil {
		t.Fatal(err)
	}
	phase.Store(phaseB)
	statsA := b.Stats()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Drain(dctx, a); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	drained := time.Since(start)
	if dctx.Err() != nil {
		t.Fatalf("Drain took until its deadline (%v)", drained)
	}
	waitFor(t, 10*time.Second, "600 queries to set B", func() bool { return afterB.Load() >= 600 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d queries (%d after the switch), Drain took %v; answers before %v, across %v, after %v; stats %v",
		total.Load(), afterB.Load(), drained, seen[phaseA], seen[phaseSwitch], seen[phaseB], b.Stats())
	if len(failed) > 0 {
		t.Fatalf("%d queries failed, first: %s", len(failed), failed[0])
	}
	want := func(p int, set []deployer.Server) {
		got := slices.Sorted(func(yield func(string) bool) {
			for n := range seen[p] {
				if !yield(n) {
					return
				}
			}
		})
		if !slices.Equal(got, names(set)) {
			t.Errorf("phase %d: answers came from %v, want %v", p, got, names(set))
		}
	}
	want(phaseA, a)
	want(phaseB, bset)
	stats := b.Stats()
	for _, s := range a {
		if stats[s.Addr] != statsA[s.Addr] {
			t.Errorf("%s got %d queries after the switch", s.Name, stats[s.Addr]-statsA[s.Addr])
		}
	}
	for _, s := range bset {
		if stats[s.Addr] == 0 {
			t.Errorf("%s got no traffic", s.Name)
		}
	}
}

// dialTCP opens a client TCP connection to the balancer.
func dialTCP(t *testing.T, addr string) *dns.Conn {
	t.Helper()
	co, err := dns.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	return co
}

// askOn sends a query on an open connection and returns the NSID.
func askOn(co *dns.Conn) (string, error) {
	co.SetDeadline(time.Now().Add(2 * time.Second))
	if err := co.WriteMsg(newQuery("example.test", dns.TypeSOA)); err != nil {
		return "", err
	}
	r, err := co.ReadMsg()
	if err != nil {
		return "", err
	}
	return nsid(r), nil
}

// A TCP connection opened on A keeps working after Accept(B), and Drain
// waits for it until the client closes it.
func TestBalancerDrainWaitsForTCP(t *testing.T) {
	a, bset := twoSets(t)
	b := newTestBalancer(t, nil)
	ctx := context.Background()
	if err := b.Accept(ctx, a); err != nil {
		t.Fatal(err)
	}
	co := dialTCP(t, b.Addr())
	first, err := askOn(co)
	if err != nil || !slices.Contains(names(a), first) {
		t.Fatalf("first answer from %q, %v; want set A", first, err)
	}
	if err := b.Accept(ctx, bset); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.Drain(dctx, a) }()

	for i := range 3 {
		if got, err := askOn(co); err != nil || got != first {
			t.Fatalf("old connection, query %d: from %q, %v; want %s", i, got, err, first)
		}
		r, err := ask("tcp", b.Addr(), "example.test", dns.TypeSOA)
		if err != nil || !slices.Contains(names(bset), nsid(r)) {
			t.Fatalf("new connection answered by %q, %v; want set B", nsid(r), err)
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a connection to A was open", err)
	default:
	}
	co.Close()
	select {
	case err := <-drained:
		if err != nil || dctx.Err() != nil {
			t.Fatalf("Drain = %v, ctx %v", err, dctx.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return after the client closed its connection")
	}
}

// When Drain's context ends first, it cuts the connection and says so.
func TestBalancerDrainCutsAtDeadline(t *testing.T) {
	a, bset := twoSets(t)
	var logs logBuffer
	b := newTestBalancer(t, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	if err := b.Accept(ctx, a); err != nil {
		t.Fatal(err)
	}
	co := dialTCP(t, b.Addr())
	if _, err := askOn(co); err != nil {
		t.Fatal(err)
	}
	if err := b.Accept(ctx, bset); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Drain(dctx, a); err != nil {
		t.Fatalf("Drain = %v, want nil", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Drain returned after %v, before its deadline", d)
	}
	if !strings.Contains(logs.String(), "cut=1") {
		t.Errorf("log does not say one connection was cut:\n%s", logs.String())
	}
	if got, err := askOn(co); err == nil {
		t.Errorf("the cut connection still answers (from %s)", got)
	}
	if r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA); err != nil || !slices.Contains(names(bset), nsid(r)) {
		t.Errorf("after the cut: %v %v", r, err)
	}
}

// Close cuts open connections and returns.
func TestBalancerClose(t *testing.T) {
	a, _ := twoSets(t)
	b, err := NewBalancer("127.0.0.1:0", BalancerOptions{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Accept(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	co := dialTCP(t, b.Addr())
	if _, err := askOn(co); err != nil {
		t.Fatal(err)
	}
	idle := dialTCP(t, b.Addr()) // accepted, no query yet
	_ = idle
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on open connections")
	}
	if _, err := askOn(co); err == nil {
		t.Error("a connection still answers after Close")
	}
}

// BenchmarkBalancerUDP asks the same server directly and through the
// balancer, alternately, and reports both and their ratio.
func BenchmarkBalancerUDP(b *testing.B) {
	c := newTestCloud(b, b.TempDir())
	s := startServers(b, c, server{"ns1-1", "local/ns-v1", true})[0]
	lb := newTestBalancer(b, nil)
	if err := lb.Accept(context.Background(), []deployer.Server{s}); err != nil {
		b.Fatal(err)
	}
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	dial := func(addr string) *dns.Conn {
		co, err := client.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { co.Close() })
		return co
	}
	direct, via := dial(s.Addr), dial(lb.Addr())
	q := newQuery("example.test", dns.TypeSOA)
	exchange := func(co *dns.Conn) time.Duration {
		q.Id = dns.Id()
		r, rtt, err := client.ExchangeWithConn(q, co)
		if err != nil || r.Rcode != dns.RcodeSuccess {
			b.Fatalf("%v %v", r, err)
		}
		return rtt
	}
	var tDirect, tVia time.Duration
	n := 0
	for b.Loop() {
		tDirect += exchange(direct)
		tVia += exchange(via)
		n++
	}
	b.ReportMetric(float64(tDirect.Nanoseconds())/float64(n), "direct-ns/query")
	b.ReportMetric(float64(tVia.Nanoseconds())/float64(n), "balancer-ns/query")
	b.ReportMetric(float64(tVia)/float64(tDirect), "overhead-x")
}
