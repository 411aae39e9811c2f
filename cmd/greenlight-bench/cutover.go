package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/storage"
)

type cutoverOptions struct {
	UDPRate, TCPRate int
	Gap              time.Duration // the baseline's restart: how long the server is down
}

// loadStats counts what a load run saw.
type loadStats struct {
	sent, lost, bad atomic.Int64
	slowest         atomic.Int64 // nanoseconds
}

func (s *loadStats) String() string {
	return fmt.Sprintf("%d sent, %d lost, %d not NOERROR, slowest %v", s.sent.Load(), s.lost.Load(), s.bad.Load(),
		time.Duration(s.slowest.Load()).Round(time.Millisecond))
}

func (s *loadStats) took(d time.Duration) {
	for {
		old := s.slowest.Load()
		if int64(d) <= old || s.slowest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// load sends SOA queries to addr at udpRate and tcpRate queries per second
// until ctx ends, and returns a wait that returns once the last query has
// its answer or is lost. UDP queries go from 4 sockets; TCP queries on 2
// connections, each redialled every 20 queries.
func load(ctx context.Context, addr string, udpRate, tcpRate int) (udp, tcp *loadStats, wait func()) {
	udp, tcp = &loadStats{}, &loadStats{}
	var wg sync.WaitGroup
	pace := func(rate, workers int, fn func()) {
		for range workers {
			wg.Go(func() {
				t := time.NewTicker(time.Second * time.Duration(workers) / time.Duration(rate))
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						fn()
					}
				}
			})
		}
	}
	ask := func(co *dns.Conn, st *loadStats) error {
		st.sent.Add(1)
		q := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
		start := time.Now()
		co.SetDeadline(start.Add(2 * time.Second))
		if err := co.WriteMsg(q); err != nil {
			st.lost.Add(1)
			return err
		}
		for {
			r, err := co.ReadMsg()
			if err != nil {
				st.lost.Add(1)
				return err
			}
			if r.Id != q.Id {
				continue
			}
			st.took(time.Since(start))
			if r.Rcode != dns.RcodeSuccess {
				st.bad.Add(1)
			}
			return nil
		}
	}
	udpConns := make(chan *dns.Conn, 4)
	for range 4 {
		co, err := dns.Dial("udp", addr)
		if err != nil {
			panic(err)
		}
		udpConns <- co
	}
	pace(udpRate, 4, func() {
		co := <-udpConns
		ask(co, udp)
		udpConns <- co
	})
	for range 2 {
		var co *dns.Conn
		n := 0
		pace(tcpRate, 1, func() {
			if co == nil || n >= 20 {
				if co != nil {
					co.Close()
				}
				var err error
				if co, err = dns.DialTimeout("tcp", addr, time.Second); err != nil {
					tcp.sent.Add(1)
					tcp.lost.Add(1)
					co = nil
					return
				}
				n = 0
			}
			n++
			if ask(co, tcp) != nil {
				co.Close()
				co = nil
			}
		})
	}
	return udp, tcp, func() {
		<-ctx.Done()
		wg.Wait()
		close(udpConns)
		for co := range udpConns {
			co.Close()
		}
	}
}

// benchCutover runs a whole deploy (create, checks, switch, rollback
// window, retire) under load through greenlight's balancer, then the same
// load against one server restarted in place.
func benchCutover(ctx context.Context, o cutoverOptions, out io.Writer, log *slog.Logger) error {
	fmt.Fprintf(out, "cutover: %d UDP + %d TCP queries/s; %d cores\n", o.UDPRate, o.TCPRate, numCPU())
	fmt.Fprintf(out, "(a query is lost when no answer comes within 2s)\n")
	fmt.Fprintf(out, "%-36s %8s %58s %58s\n", "run", "took", "UDP", "TCP")
	took, udp, tcp, err := cutoverDeploy(ctx, o, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-36s %8s %58s %58s\n", "greenlight deploy (local balancer)", took.Round(time.Millisecond), udp, tcp)
	took, udp, tcp, err = cutoverRestart(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-36s %8s %58s %58s\n", fmt.Sprintf("restart in place (down %v)", o.Gap), took.Round(time.Millisecond), udp, tcp)
	return nil
}

func cutoverDeploy(ctx context.Context, o cutoverOptions, log *slog.Logger) (time.Duration, *loadStats, *loadStats, error) {
	dir, err := os.MkdirTemp("", "greenlight-cutover-")
	if err != nil {
		return 0, nil, nil, err
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(filepath.Join(dir, "greenlight.db"), storage.Options{})
	if err != nil {
		return 0, nil, nil, err
	}
	defer db.Close()
	cloud, err := local.New(local.Options{Dir: dir, BootDelay: 500 * time.Millisecond, Logger: log})
	if err != nil {
		return 0, nil, nil, err
	}
	defer cloud.Close()
	lb, err := local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: log})
	if err != nil {
		return 0, nil, nil, err
	}
	defer lb.Close()
	checker := dnscheck.New(dnscheck.Options{Logger: log})
	svc := &deployer.Service{
		Name: "ns", Roles: []string{"ns1", "ns2"},
		Check:          deployer.CheckSpec{Zones: []string{"example.test"}, Passes: 3, MaxRounds: 5, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second},
		RollbackWindow: 2 * time.Second,
		Cloud:          cloud, Provisioner: cloud, Switch: lb, Checker: checker,
		Compare: checker.Comparer(dnscheck.CompareOptions{}),
	}
	done := make(chan deployer.Deployment, 1)
	rep := deployer.ReporterFunc(func(_ context.Context, ev deployer.Event) {
		if ev.Kind == deployer.EventFinished {
			done <- ev.Deployment
		}
	})
	d, err := deployer.New(deployer.Config{Store: db, Reporter: rep, Logger: log, Services: []*deployer.Service{svc}})
	if err != nil {
		return 0, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		return 0, nil, nil, err
	}
	defer d.Wait()
	defer cancel()
	if _, err := d.Seed(ctx, "ns", ""); err != nil {
		return 0, nil, nil, err
	}
	lctx, cancelLoad := context.WithCancel(ctx)
	udp, tcp, wait := load(lctx, lb.Addr(), o.UDPRate, o.TCPRate)
	stop := func() { cancelLoad(); wait() }
	time.Sleep(time.Second) // load on the first set before the deploy
	start := time.Now()
	if _, err := d.Deploy(ctx, deployer.Request{Service: "ns", User: "bench", Options: deployer.Options{AutoApprove: true}}); err != nil {
		stop()
		return 0, nil, nil, err
	}
	var got deployer.Deployment
	select {
	case got = <-done:
	case <-ctx.Done():
		stop()
		return 0, nil, nil, ctx.Err()
	}
	took := time.Since(start)
	time.Sleep(time.Second) // and on the new set after it
	stop()
	fmt.Fprintf(os.Stderr, "balancer counters: %+v\n", lb.Counters())
	if got.Phase != deployer.PhaseSucceeded {
		return 0, nil, nil, fmt.Errorf("the deploy ended %s: %s", got.Phase, got.Error)
	}
	return took, udp, tcp, nil
}

// cutoverRestart serves the SOA from one DNS server, stops it, waits the
// gap and starts it again on the same port, under the same load.
func cutoverRestart(ctx context.Context, o cutoverOptions) (time.Duration, *loadStats, *loadStats, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, nil, err
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return 0, nil, nil, err
	}
	soa, _ := dns.NewRR("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300")
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{soa}
		w.WriteMsg(m)
	})
	serve := func(pc net.PacketConn, ln net.Listener) (stop func()) {
		u, t := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h}
		go u.ActivateAndServe()
		go t.ActivateAndServe()
		return func() { u.Shutdown(); t.Shutdown() }
	}
	stopServer := serve(pc, ln)
	lctx, cancelLoad := context.WithCancel(ctx)
	udp, tcp, wait := load(lctx, addr, o.UDPRate, o.TCPRate)
	stop := func() { cancelLoad(); wait() }
	time.Sleep(time.Second)
	start := time.Now()
	stopServer()
	time.Sleep(o.Gap)
	for range 50 { // the old sockets may take a moment to let go of the port
		if pc, err = net.ListenPacket("udp", addr); err == nil {
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			pc.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		stop()
		return 0, nil, nil, fmt.Errorf("restart on %s: %w", addr, err)
	}
	stopServer = serve(pc, ln)
	took := time.Since(start)
	time.Sleep(time.Second)
	stop()
	stopServer()
	return took, udp, tcp, nil
}
