package nginx

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/miekg/dns"
)

// result is one query of the load.
type result struct {
	network    string
	start, end time.Time
	nsid       string
	err        error
	retried    bool // the first UDP datagram went unanswered
}

// udpFirstTry is how long the load's UDP client waits before it sends a
// query again, as every DNS client does: nginx drops the UDP queries an
// old worker still waits on when a reload tells it to shut down (it logs
// "disconnected on shutdown"), so a reload costs a client that was
// unlucky one retry.
const udpFirstTry = time.Second

// resolve asks like a stub resolver: over UDP, one more try after a
// timeout; over TCP, once.
func resolve(network, addr string) (nsid string, retried bool, err error) {
	if network == "tcp" {
		nsid, err = query("tcp", addr)
		return nsid, false, err
	}
	c := &dns.Client{Net: "udp", Timeout: udpFirstTry}
	r, _, err := c.Exchange(soaQuery(), addr)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		retried = true
		c.Timeout = 2 * time.Second
		r, _, err = c.Exchange(soaQuery(), addr)
	}
	if err != nil {
		return "", retried, err
	}
	nsid, err = answerNSID(r)
	return nsid, retried, err
}

// load sends SOA queries to addr from udpWorkers and tcpWorkers (a new TCP
// connection per query) until stop is closed or ctx ends.
type load struct {
	mu      sync.Mutex
	results []result
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startLoad(ctx context.Context, addr string, udpWorkers, tcpWorkers int) *load {
	l := &load{stop: make(chan struct{})}
	worker := func(network string) {
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			r := result{network: network, start: time.Now()}
			r.nsid, r.retried, r.err = resolve(network, addr)
			r.end = time.Now()
			l.mu.Lock()
			l.results = append(l.results, r)
			l.mu.Unlock()
		}
	}
	for range udpWorkers {
		l.wg.Go(func() { worker("udp") })
	}
	for range tcpWorkers {
		l.wg.Go(func() { worker("tcp") })
	}
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.results)
}

// finish stops the workers and returns every result.
func (l *load) finish() []result {
	close(l.stop)
	l.wg.Wait()
	return l.results
}

// TestSwitchUnderLoad moves traffic from set A to set B while UDP and TCP
// queries run through a real nginx: no query fails, and answers move from
// A's servers to B's. A UDP query nginx dropped at the reload counts as
// answered when the client's retry is; the test allows such retries only
// while Accept reloads nginx, at most one per UDP worker.
func TestSwitchUnderLoad(t *testing.T) {
	ng := startNginx(t)
	a := startBackends(t, "ns1-1", "ns2-1")
	b := startBackends(t, "ns1-2", "ns2-2")
	sw := newSwitch(t, ng.options(t, LocalExecutor{}))
	if got := sw.Endpoints(); len(got) != 1 || got[0] != ng.addr {
		t.Fatalf("Endpoints = %q, want [%s]", got, ng.addr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // the hard cap
	defer cancel()

	if err := sw.Accept(ctx, a); err != nil {
		t.Fatalf("Accept(A): %v", err)
	}
	answeredBy(t, ng.addr, a)

	const udpWorkers, tcpWorkers = 3, 3
	l := startLoad(ctx, ng.addr, udpWorkers, tcpWorkers)
	began := time.Now()
	eventually.True(t, "300 queries before the switch", func() bool { return l.count() >= 300 })

	acceptStart := time.Now()
	if err := sw.Accept(ctx, b); err != nil {
		l.finish()
		t.Fatalf("Accept(B): %v", err)
	}
	acceptEnd := time.Now()
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	err := sw.Drain(dctx, a)
	dcancel()
	if err != nil {
		t.Errorf("Drain(A): %v", err)
	}
	drained := time.Now()
	after := l.count()
	eventually.True(t, "600 more queries after the switch", func() bool {
		return l.count() >= after+600 && time.Since(began) >= time.Second
	})
	results := l.finish()
	if ctx.Err() != nil {
		t.Fatalf("the load hit its 10s cap: %v", ctx.Err())
	}

	perServer := map[string]int{}
	var failed, udp, tcp, beforeFromB, afterFromA, retried int
	for _, r := range results {
		if r.network == "udp" {
			udp++
		} else {
			tcp++
		}
		if r.retried {
			retried++
			if r.start.Before(acceptStart) || r.start.After(acceptEnd) {
				t.Errorf("a UDP query at +%v needed a retry outside the switch (+%v to +%v)", r.start.Sub(began).Round(time.Millisecond),
					acceptStart.Sub(began).Round(time.Millisecond), acceptEnd.Sub(began).Round(time.Millisecond))
			}
		}
		if r.err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("%s query at +%v failed: %v", r.network, r.start.Sub(began).Round(time.Millisecond), r.err)
			}
			continue
		}
		perServer[r.nsid]++
		switch {
		case r.end.Before(acceptStart) && !isOneOf(r.nsid, a):
			beforeFromB++
		case r.start.After(acceptEnd) && !isOneOf(r.nsid, b):
			afterFromA++
		}
	}
	t.Logf("%d queries (%d UDP, %d TCP) in %v, %d failed, %d UDP retried after the reload dropped them; switch took %v, drain %v; answers per server: %v",
		len(results), udp, tcp, time.Since(began).Round(time.Millisecond), failed, retried,
		acceptEnd.Sub(acceptStart).Round(time.Millisecond), drained.Sub(acceptEnd).Round(time.Millisecond), perServer)
	if failed > 0 {
		t.Errorf("%d of %d queries failed", failed, len(results))
	}
	if retried > udpWorkers {
		t.Errorf("%d UDP queries needed a retry; a reload should drop at most the %d in flight", retried, udpWorkers)
	}
	if len(results) < 1000 {
		t.Errorf("only %d queries ran; want at least 1000", len(results))
	}
	if beforeFromB > 0 {
		t.Errorf("%d queries answered before the switch came from a server not in A", beforeFromB)
	}
	if afterFromA > 0 {
		t.Errorf("%d queries sent after Accept(B) returned were answered by a server not in B", afterFromA)
	}
	for _, s := range append(a, b...) {
		if perServer[s.Name] == 0 {
			t.Errorf("%s answered no query; want the load spread over A, then over B", s.Name)
		}
	}
	answeredBy(t, ng.addr, b)
}

// TestSwitchRejectedConfig: when nginx -t rejects what a switch renders,
// Accept says what nginx complained of, puts the previous file back, and
// the old servers keep answering.
func TestSwitchRejectedConfig(t *testing.T) {
	ng := startNginx(t)
	a := startBackends(t, "ns1-1", "ns2-1")
	b := startBackends(t, "ns1-2", "ns2-2")
	opts := ng.options(t, LocalExecutor{})
	sw := newSwitch(t, opts)
	ctx := t.Context()
	if err := sw.Accept(ctx, a); err != nil {
		t.Fatalf("Accept(A): %v", err)
	}
	answeredBy(t, ng.addr, a)
	good, err := os.ReadFile(ng.streamConf)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../../configs/nginx/stream.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}

	broken := opts
	broken.TemplateFS, broken.TemplatePath = nil, ""
	broken.Template = strings.Replace(string(tmpl), "proxy_responses", "proxy_respones", 1)
	unresolvable := append([]deployer.Server{{Name: "ns3-2", Addr: "ns3-2.invalid:53"}}, b...)

	for i, tc := range []struct {
		name    string
		sw      *Switch
		servers []deployer.Server
		want    string // in the error, from nginx
	}{
		{"template with a typo", newSwitch(t, broken), b, `unknown directive "proxy_respones"`},
		{"server nginx cannot resolve", sw, unresolvable, `host not found in upstream "ns3-2.invalid:53"`},
	} {
		err := tc.sw.Accept(ctx, tc.servers)
		if err == nil {
			t.Fatalf("%d %s: Accept succeeded; want nginx -t to reject it", i, tc.name)
		}
		msg := deployer.ErrorMessage(err)
		for _, want := range []string{"nginx on lb1 rejected the new config", tc.want, "old servers keep serving"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%d %s: error %q does not say %q", i, tc.name, msg, want)
			}
		}
		if strings.Contains(msg, "putting the previous config back failed") {
			t.Errorf("%d %s: %v", i, tc.name, err)
		}
		if code := deployer.ErrorCode(err); code != deployer.CodeFailed {
			t.Errorf("%d %s: error code %q, want %q", i, tc.name, code, deployer.CodeFailed)
		}
		if now, _ := os.ReadFile(ng.streamConf); string(now) != string(good) {
			t.Errorf("%d %s: the stream config was not put back; it holds:\n%s", i, tc.name, now)
		}
		answeredBy(t, ng.addr, a)
	}

	// Nothing was reloaded in between: the next good switch still works.
	if err := sw.Accept(ctx, b); err != nil {
		t.Fatalf("Accept(B) after the rejected ones: %v", err)
	}
	answeredBy(t, ng.addr, b)
}

// TestDrainWaitsForOpenConnections: a TCP connection opened before the
// switch stays with the old server, and Drain returns once it closes.
func TestDrainWaitsForOpenConnections(t *testing.T) {
	ng := startNginx(t)
	a := startBackends(t, "ns1-1")
	b := startBackends(t, "ns1-2")
	sw := newSwitch(t, ng.options(t, LocalExecutor{}))
	ctx := t.Context()
	if err := sw.Accept(ctx, a); err != nil {
		t.Fatalf("Accept(A): %v", err)
	}
	conn, err := dns.Dial("tcp", ng.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func() string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if err := conn.WriteMsg(soaQuery()); err != nil {
			t.Fatal(err)
		}
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		nsid, err := answerNSID(r)
		if err != nil {
			t.Fatal(err)
		}
		return nsid
	}
	if got := ask(); got != "ns1-1" {
		t.Fatalf("open connection answered by %q, want ns1-1", got)
	}

	if err := sw.Accept(ctx, b); err != nil {
		t.Fatalf("Accept(B): %v", err)
	}
	answeredBy(t, ng.addr, b)
	if got := ask(); got != "ns1-1" {
		t.Fatalf("after the switch the open connection is answered by %q, want ns1-1 still", got)
	}

	// A drain whose deadline passes first returns nil: the switch happened.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := sw.Drain(short, a); err != nil {
		t.Errorf("Drain with a short deadline: %v, want nil", err)
	}

	done := make(chan error, 1)
	dctx, dcancel := context.WithTimeout(ctx, 8*time.Second)
	defer dcancel()
	go func() { done <- sw.Drain(dctx, a) }()
	select {
	case err := <-done:
		t.Fatalf("Drain returned (%v) while a connection to ns1-1 is still open", err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := ask(); got != "ns1-1" {
		t.Fatalf("during the drain the open connection is answered by %q, want ns1-1", got)
	}
	closed := time.Now()
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
		t.Logf("Drain returned %v after the connection closed", time.Since(closed).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return within 5s of the last old connection closing")
	}
	if dctx.Err() != nil {
		t.Fatal("Drain returned only because its deadline passed")
	}
}

// TestAcceptNeedsRunningNginx: with no nginx running, Accept says so and
// leaves the old file.
func TestAcceptNeedsRunningNginx(t *testing.T) {
	bin := nginxBinary(t)
	dir := t.TempDir()
	conf := dir + "/stream.conf"
	nginxConf := dir + "/nginx.conf"
	os.WriteFile(conf, []byte("# before\n"), 0o644)
	os.WriteFile(nginxConf, []byte("load_module "+streamModule+";\npid "+dir+"/nginx.pid;\nerror_log "+dir+"/error.log;\nevents {}\nstream { include "+conf+"; }\n"), 0o644)
	a := startBackends(t, "ns1-1")
	sw := newSwitch(t, Options{
		Hosts:      []Host{{Name: "lb1", Executor: LocalExecutor{}, Endpoint: "127.0.0.1:53"}},
		ConfigPath: conf, Template: "upstream u { server {{(index .Servers 0).Addr}}; }\n",
		NginxBinary: bin, NginxArgs: []string{"-p", dir + "/", "-c", nginxConf},
		PIDFile: dir + "/nginx.pid", Listen: "53", Logger: testLogger(t),
	})
	err := sw.Accept(t.Context(), a)
	if err == nil || !strings.Contains(deployer.ErrorMessage(err), "nginx does not seem to run on lb1") {
		t.Fatalf("Accept with no nginx running: %v", err)
	}
	if b, _ := os.ReadFile(conf); string(b) != "# before\n" {
		t.Errorf("stream config after the failed Accept:\n%s", b)
	}
}

// TestAcceptListenAddressTaken: nginx -t does not bind, so a listen
// address another process holds passes the test and fails the reload;
// Accept says so, and the old config keeps serving.
func TestAcceptListenAddressTaken(t *testing.T) {
	ng := startNginx(t)
	a := startBackends(t, "ns1-1")
	sw := newSwitch(t, ng.options(t, LocalExecutor{}))
	if err := sw.Accept(t.Context(), a); err != nil {
		t.Fatalf("Accept(A): %v", err)
	}
	taken := freeAddr(t)
	l, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before, err := os.ReadFile(ng.streamConf)
	if err != nil {
		t.Fatal(err)
	}
	opts := ng.options(t, LocalExecutor{})
	opts.Listen = taken
	opts.ReloadTimeout = time.Second
	err = newSwitch(t, opts).Accept(t.Context(), startBackends(t, "ns1-2"))
	want := "nginx did not reload, so nothing was switched: nginx on lb1 did not start workers with the new config within 1s"
	if err == nil || !strings.HasPrefix(deployer.ErrorMessage(err), want) {
		t.Fatalf("Accept with a taken listen address: %v\nwant: %s…", err, want)
	}
	if now, _ := os.ReadFile(ng.streamConf); string(now) != string(before) {
		t.Errorf("the config nginx could not load stayed on disk:\n%s", now)
	}
	answeredBy(t, ng.addr, a)
}
