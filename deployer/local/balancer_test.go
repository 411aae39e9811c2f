package local

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/logbuf"
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
	// phaseB when its socket opened after Accept(B) returned, else in
	// phaseSwitch.
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
	// Each UDP query goes from a fresh socket. A TCP connection carries up
	// to tcpQueries queries, all to the server it was sent to when it
	// opened, so connections to A stay open across the switch and Drain
	// waits for them (and the test leaves few sockets in TIME_WAIT, which
	// would keep later listeners off their ports).
	const tcpQueries = 20
	for w := range 4 {
		network := []string{"udp", "tcp"}[w%2]
		queries := map[string]int{"udp": 1, "tcp": tcpQueries}[network]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := phase.Load() // when the socket opened
				co, err := dns.DialTimeout(network, b.Addr(), 2*time.Second)
				if err != nil {
					mu.Lock()
					failed = append(failed, network+": "+err.Error())
					mu.Unlock()
					total.Add(1)
					continue
				}
				for range queries {
					q := newQuery("example.test", dns.TypeSOA)
					co.SetDeadline(time.Now().Add(2 * time.Second))
					err := co.WriteMsg(q)
					var r *dns.Msg
					if err == nil {
						r, err = co.ReadMsg()
					}
					p := began
					if ended := phase.Load(); began == phaseA && ended != phaseA {
						p = phaseSwitch
					}
					mu.Lock()
					switch {
					case err != nil:
						failed = append(failed, network+": "+err.Error())
					case r.Id != q.Id || r.Rcode != dns.RcodeSuccess || nsid(r) == "":
						failed = append(failed, fmt.Sprintf("%s: id %d for %d, %s, NSID %q", network, r.Id, q.Id, dns.RcodeToString[r.Rcode], nsid(r)))
					default:
						seen[p][nsid(r)]++
					}
					mu.Unlock()
					total.Add(1)
					if p == phaseB {
						afterB.Add(1)
					}
					if err != nil || isStopped(stop) {
						break
					}
				}
				co.Close()
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	deadline := time.Now().Add(10 * time.Second) // for the whole load
	eventually.Within(t, time.Until(deadline), "400 queries to set A", func() bool { return total.Load() >= 400 })
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
	eventually.Within(t, time.Until(deadline), "600 queries to set B", func() bool { return afterB.Load() >= 600 })
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
	waitDraining(t, b)

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
	var logs logbuf.Buffer
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

// BenchmarkBalancerUDP asks one server for its SOA straight and through the
// balancer, each on one UDP socket; the balancer sub-benchmark reports its
// time per query as a multiple of the direct one measured just before.
func BenchmarkBalancerUDP(b *testing.B) {
	c := newTestCloud(b, b.TempDir())
	s := startServers(b, c, server{"ns1-1", "local/ns-v1", true})[0]
	lb := newTestBalancer(b, nil)
	if err := lb.Accept(context.Background(), []deployer.Server{s}); err != nil {
		b.Fatal(err)
	}
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	q := newQuery("example.test", dns.TypeSOA)
	// run queries addr until the benchmark has enough and returns ns per query.
	run := func(b *testing.B, addr string) float64 {
		co, err := client.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		defer co.Close()
		for b.Loop() {
			q.Id = dns.Id()
			r, _, err := client.ExchangeWithConn(q, co)
			if err != nil || r.Rcode != dns.RcodeSuccess || nsid(r) != s.Name {
				b.Fatalf("%v %v", r, err)
			}
		}
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	var direct float64
	b.Run("direct", func(b *testing.B) { direct = run(b, s.Addr) })
	b.Run("balancer", func(b *testing.B) {
		via := run(b, lb.Addr())
		if direct > 0 {
			b.ReportMetric(via/direct, "x-direct")
		}
	})
}

func isStopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// waitDraining polls until a Drain is waiting on b.
func waitDraining(t *testing.T, b *Balancer) {
	t.Helper()
	eventually.True(t, "Drain to wait", func() bool {
		return b.waiters.Load() > 0
	})
}

// heldServer is a UDP DNS "server" that answers a query only when the test
// says so, to hold a query in flight through the balancer.
type heldServer struct {
	conn    net.PacketConn
	queries chan heldQuery
}

type heldQuery struct {
	msg  *dns.Msg
	from net.Addr
}

func newHeldServer(t *testing.T) *heldServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &heldServer{conn: conn, queries: make(chan heldQuery, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			select {
			case h.queries <- heldQuery{m, from}:
			default: // the test does not want it
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return h
}

func (h *heldServer) server() deployer.Server {
	return deployer.Server{Name: "held", Addr: h.conn.LocalAddr().String()}
}

// next is the next query the server received.
func (h *heldServer) next(t *testing.T) heldQuery {
	t.Helper()
	select {
	case q := <-h.queries:
		return q
	case <-time.After(5 * time.Second):
		t.Fatal("the held server received no query")
		return heldQuery{}
	}
}

func (h *heldServer) answer(t *testing.T, q heldQuery) {
	t.Helper()
	r := new(dns.Msg).SetReply(q.msg)
	r.Authoritative = true
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.conn.WriteTo(b, q.from); err != nil {
		t.Fatal(err)
	}
}

// A UDP query on its way through an old server: Drain waits for its answer,
// and when Drain's context ends first the query is cut and the client gets
// SERVFAIL. New queries meanwhile go to the new set.
func TestBalancerDrainUDP(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	next := startServers(t, c, server{"ns1-2", "local/ns-v2", true})
	tests := []struct {
		name   string
		answer bool // the old server answers while Drain waits; else Drain's ctx ends
		rcode  int  // what the client gets
	}{
		{"answered", true, dns.RcodeSuccess},
		{"cut", false, dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := newHeldServer(t)
			old := []deployer.Server{held.server()}
			b := newTestBalancer(t, nil)
			ctx := context.Background()
			if err := b.Accept(ctx, old); err != nil {
				t.Fatal(err)
			}
			type reply struct {
				r   *dns.Msg
				err error
			}
			replied := make(chan reply, 1)
			go func() {
				r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA)
				replied <- reply{r, err}
			}()
			q := held.next(t)
			if err := b.Accept(ctx, next); err != nil {
				t.Fatal(err)
			}
			dctx, cancel := context.WithCancel(ctx)
			defer cancel()
			drained := make(chan error, 1)
			go func() { drained <- b.Drain(dctx, old) }()
			waitDraining(t, b)

			if r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA); err != nil || nsid(r) != "ns1-2" {
				t.Fatalf("a new query during Drain: %v %v; want ns1-2", r, err)
			}
			select {
			case err := <-drained:
				t.Fatalf("Drain returned (%v) with a query in flight", err)
			default:
			}
			if tt.answer {
				held.answer(t, q)
			} else {
				cancel()
			}
			select {
			case err := <-drained:
				if err != nil {
					t.Fatalf("Drain = %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Drain did not return")
			}
			got := <-replied
			if got.err != nil || got.r.Rcode != tt.rcode {
				t.Fatalf("the client got %v %v, want %s", got.r, got.err, dns.RcodeToString[tt.rcode])
			}
			if stats := b.Stats(); stats[old[0].Addr] != 1 || stats[next[0].Addr] != 1 {
				t.Errorf("Stats %v, want 1 query each", stats)
			}
		})
	}
}

// FuzzServfail: whatever a client sends, servfail does not panic; it answers
// nil exactly when the packet is not a query, and otherwise a SERVFAIL with
// the query's ID and question, with EDNS when the query had it.
func FuzzServfail(f *testing.F) {
	for _, m := range []*dns.Msg{
		newQuery("example.test", dns.TypeSOA),
		new(dns.Msg).SetQuestion("www.example.test.", dns.TypeA),
		new(dns.Msg).SetNotify("example.test."),
		new(dns.Msg).SetQuestion(strings.Repeat("a.", 120), dns.TypeTXT),
		new(dns.Msg).SetReply(new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(header(1, 0, 1, 0, 0, 0))
	f.Add(header(1, 0, 0, 0, 0, 0))
	f.Add([]byte("not dns"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, query []byte) {
		out := servfail(query)
		q := new(dns.Msg)
		isQuery := q.Unpack(query) == nil && !q.Response && len(q.Question) > 0
		if out == nil {
			if isQuery {
				t.Fatalf("no SERVFAIL for the query\n%s", q)
			}
			return
		}
		if !isQuery {
			t.Fatalf("a SERVFAIL for a packet that is not a query: %x", query)
		}
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Fatalf("the SERVFAIL does not parse: %v", err)
		}
		if r.Id != q.Id || !r.Response || r.Rcode != dns.RcodeServerFailure || len(r.Question) != 1 {
			t.Fatalf("reply\n%s\nto query\n%s", r, q)
		}
		if (q.IsEdns0() == nil) != (r.IsEdns0() == nil) {
			t.Fatalf("query EDNS %v, reply EDNS %v", q.IsEdns0() != nil, r.IsEdns0() != nil)
		}
	})
}
