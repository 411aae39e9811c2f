package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/deployer/nginx"
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
	took, udp, tcp, err := cutoverDeploy(ctx, o, localSwitch(log), log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-36s %8s %58s %58s\n", "greenlight deploy (local balancer)", took.Round(time.Millisecond), udp, tcp)
	if took, udp, tcp, err = cutoverDeploy(ctx, o, nginxSwitch(log), log); err != nil {
		fmt.Fprintf(out, "%-36s %v\n", "greenlight deploy (nginx stream)", err)
	} else {
		fmt.Fprintf(out, "%-36s %8s %58s %58s\n", "greenlight deploy (nginx stream)", took.Round(time.Millisecond), udp, tcp)
	}
	took, udp, tcp, err = cutoverRestart(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-36s %8s %58s %58s\n", fmt.Sprintf("restart in place (down %v)", o.Gap), took.Round(time.Millisecond), udp, tcp)
	return nil
}

// switchFor builds the switch a cutover run moves traffic with, in dir, and
// returns it with the address clients query.
type switchFor func(dir string) (sw deployer.Switch, addr string, stop func(), err error)

// localSwitch is greenlight's own balancer.
func localSwitch(log *slog.Logger) switchFor {
	return func(string) (deployer.Switch, string, func(), error) {
		lb, err := local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: log})
		if err != nil {
			return nil, "", nil, err
		}
		return lb, lb.Addr(), func() {
			fmt.Fprintf(os.Stderr, "balancer counters: %+v\n", lb.Counters())
			lb.Close()
		}, nil
	}
}

// nginxSwitch is a real nginx (master and two workers) in dir, driven by
// the nginx stream switch over the local executor.
func nginxSwitch(log *slog.Logger) switchFor {
	return func(dir string) (deployer.Switch, string, func(), error) {
		bin, err := exec.LookPath("nginx")
		if err != nil {
			return nil, "", nil, fmt.Errorf("nginx is not installed (apt-get install nginx libnginx-mod-stream)")
		}
		addr, err := freeAddr()
		if err != nil {
			return nil, "", nil, err
		}
		userLine := ""
		if os.Geteuid() == 0 {
			group := "nobody"
			if _, err := user.LookupGroup("nogroup"); err == nil {
				group = "nogroup"
			}
			userLine = "user nobody " + group + ";"
		}
		conf, stream, pid := filepath.Join(dir, "nginx.conf"), filepath.Join(dir, "stream.conf"), filepath.Join(dir, "nginx.pid")
		body := fmt.Sprintf("load_module %s;\n%s\ndaemon off;\nmaster_process on;\nworker_processes 2;\npid %s;\nerror_log %s warn;\n"+
			"events { worker_connections 1024; }\nstream {\n    include %s;\n}\n",
			streamModule, userLine, pid, filepath.Join(dir, "nginx-error.log"), stream)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return nil, "", nil, err
		}
		if err := os.WriteFile(stream, []byte("# empty until the first switch\n"), 0o644); err != nil {
			return nil, "", nil, err
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, "", nil, err
		}
		cmd := exec.Command(bin, "-p", dir+"/", "-c", conf)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			return nil, "", nil, err
		}
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		for i := 0; ; i++ {
			if _, err := os.Stat(pid); err == nil {
				break
			}
			if i == 200 {
				stop()
				return nil, "", nil, fmt.Errorf("nginx did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, port, _ := net.SplitHostPort(addr)
		sw, err := nginx.New(nginx.Options{
			Hosts:      []nginx.Host{{Name: "lb1", Executor: nginx.LocalExecutor{}, Endpoint: addr}},
			ConfigPath: stream, TemplateFS: configs.Files, TemplatePath: "nginx/stream.conf.tmpl",
			NginxBinary: bin, NginxArgs: []string{"-p", dir + "/", "-c", conf}, PIDFile: pid,
			Listen: "127.0.0.1:" + port, Logger: log,
		})
		if err != nil {
			stop()
			return nil, "", nil, err
		}
		return sw, addr, stop, nil
	}
}

func cutoverDeploy(ctx context.Context, o cutoverOptions, mk switchFor, log *slog.Logger) (time.Duration, *loadStats, *loadStats, error) {
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
	sw, addr, stopSwitch, err := mk(dir)
	if err != nil {
		return 0, nil, nil, err
	}
	defer stopSwitch()
	checker := dnscheck.New(dnscheck.Options{Logger: log})
	svc := &deployer.Service{
		Name: "ns", Roles: []string{"ns1", "ns2"},
		Check:          deployer.CheckSpec{Zones: []string{"example.test"}, Passes: 3, MaxRounds: 5, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second},
		RollbackWindow: 2 * time.Second,
		Cloud:          cloud, Provisioner: cloud, Switch: sw, Checker: checker,
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
	udp, tcp, wait := load(lctx, addr, o.UDPRate, o.TCPRate)
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
