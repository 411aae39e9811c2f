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
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/local"
)

type lbOptions struct {
	Length           time.Duration
	Rounds           int
	Clients, Threads int
	Only             string
	UDPSockets       int
	CPUProfile       string
}

// target is one address dnsperf is pointed at.
type target struct {
	name string
	addr string
	pid  int // the proxy's process, when it runs in its own
	qps  []float64
	cpu  []float64 // this process's CPU µs per UDP query
	lost []float64
}

// benchLB starts one local DNS server, greenlight's balancer in front of
// it, and dnsdist and nginx in front of it when they are installed, then
// runs dnsperf against each in turn, once per round.
func benchLB(ctx context.Context, o lbOptions, out io.Writer, log *slog.Logger) error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return fmt.Errorf("dnsperf is not installed (apt-get install dnsperf)")
	}
	dir, err := os.MkdirTemp("", "greenlight-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cloud, err := local.New(local.Options{Dir: dir, BootDelay: -1, Logger: log})
	if err != nil {
		return err
	}
	defer cloud.Close()
	s, err := startServer(ctx, cloud)
	if err != nil {
		return err
	}
	lb, err := local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: log, UDPSockets: o.UDPSockets})
	if err != nil {
		return err
	}
	defer lb.Close()
	if err := lb.Accept(ctx, []deployer.Server{s}); err != nil {
		return err
	}
	targets := []*target{{name: "direct", addr: s.Addr}, {name: "greenlight", addr: lb.Addr()}}
	if h, err := startDnsdist(dir, s.Addr); err != nil {
		fmt.Fprintf(out, "dnsdist: %v\n", err)
	} else {
		defer h.stop()
		targets = append(targets, &target{name: "dnsdist", addr: h.addr, pid: h.pid})
	}
	if h, err := startNginx(dir, s.Addr); err != nil {
		fmt.Fprintf(out, "nginx: %v\n", err)
	} else {
		defer h.stop()
		targets = append(targets, &target{name: "nginx", addr: h.addr, pid: h.pid})
	}
	data := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(data, []byte("example.test SOA\nwww.example.test A\nexample.test NS\n"), 0o644); err != nil {
		return err
	}
	if o.Only != "" {
		targets = slices.DeleteFunc(targets, func(t *target) bool {
			return t.name != "direct" && !slices.Contains(strings.Split(o.Only, ","), t.name)
		})
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "dnsperf -c %d -T %d -l %d, %d rounds, median; %d cores\n", o.Clients, o.Threads, int(o.Length.Seconds()), o.Rounds, numCPU())
	for round := range o.Rounds {
		for _, t := range targets {
			for _, mode := range []string{"udp", "tcp"} {
				before, switched := selfUsage()
				before += treeCPU(t.pid)
				r, err := dnsperf(ctx, data, t.addr, mode, o)
				for try := 2; err != nil && try <= dnsperfTries && ctx.Err() == nil; try++ {
					// dnsperf itself sometimes fails ("failed to receive
					// packet: Bad file descriptor") when nginx closes its TCP
					// connections; the run is done again.
					fmt.Fprintf(os.Stderr, "round %d %s %s failed, running it again: %v\n", round+1, t.name, mode, errorLine(err))
					before, switched = selfUsage()
					before += treeCPU(t.pid)
					r, err = dnsperf(ctx, data, t.addr, mode, o)
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", t.name, mode, err)
				}
				after, switchedAfter := selfUsage()
				cpu := float64((after + treeCPU(t.pid) - before).Microseconds()) / max(r.completed, 1)
				switches := float64(switchedAfter-switched) / max(r.completed, 1)
				if mode == "udp" {
					t.qps = append(t.qps, r.qps)
					t.cpu = append(t.cpu, cpu)
				} else {
					t.lost = append(t.lost, r.lost)
				}
				fmt.Fprintf(os.Stderr, "round %d %s %s: %.0f qps, %.0f lost, %.1f µs CPU/query (dnsperf's own %.1f), %.2f context switches/query here\n",
					round+1, t.name, mode, r.qps, r.lost, cpu, float64(r.cpu.Microseconds())/max(r.completed, 1), switches)
			}
		}
	}
	// Each target's ratio is taken against the direct run of the same round,
	// seconds apart, so a busy neighbour slows both sides of a ratio alike.
	// CPU is the user and system time over a UDP run, per query completed,
	// of this process (the server, and greenlight's balancer) and of the
	// proxy's processes (dnsdist, nginx's master and workers): a busy
	// machine moves it less than it moves queries per second.
	fmt.Fprintf(out, "%-11s %12s %9s %-24s %13s %15s\n", "target", "UDP qps", "× direct", "(each round)", "CPU µs/query", "TCP lost/run")
	for _, t := range targets {
		var ratios []float64
		var each []string
		for i := range t.qps {
			r := t.qps[i] / targets[0].qps[i]
			ratios = append(ratios, r)
			each = append(each, fmt.Sprintf("%.2f", r))
		}
		fmt.Fprintf(out, "%-11s %12.0f %9.2f %-24s %13.1f %15.0f\n", t.name, median(t.qps), median(ratios), strings.Join(each, " "), median(t.cpu), median(t.lost))
	}
	return nil
}

func startServer(ctx context.Context, c *local.Cloud) (deployer.Server, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := c.Create(ctx, deployer.ServerSpec{Service: "ns", Role: "ns1", Name: "ns1-1", Image: "local/ns-v1",
		Tags: []string{deployer.TagGreenlight, deployer.ServiceTag("ns")}})
	if err != nil {
		return s, err
	}
	if s, err = c.WaitRunning(ctx, s); err != nil {
		return s, err
	}
	return s, c.Provision(ctx, s)
}

var (
	qpsLine       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	lostLine      = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
	completedLine = regexp.MustCompile(`Queries completed:\s+([0-9]+)`)
)

// dnsperfTries is how many times one run is tried before the benchmark
// gives up.
const dnsperfTries = 3

// errorLine is dnsperf's "Error:" line in err's message, or its first line.
func errorLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "Error:") {
			return l
		}
	}
	return lines[0]
}

// perfResult is what one dnsperf run reports.
type perfResult struct {
	qps, lost, completed float64
	cpu                  time.Duration // dnsperf's own user and system time
}

// selfUsage is the user and system CPU time this process has used, and how
// often its threads were switched out, by choice or not.
func selfUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

// dnsperf runs dnsperf once and returns its queries per second, lost
// queries and completed queries.
func dnsperf(ctx context.Context, data, addr, mode string, o lbOptions) (r perfResult, err error) {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(ctx, o.Length+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dnsperf", "-s", host, "-p", port, "-d", data, "-m", mode,
		"-c", strconv.Itoa(o.Clients), "-T", strconv.Itoa(o.Threads), "-l", strconv.Itoa(int(o.Length.Seconds())))
	b, err := cmd.CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("%v: %s", err, b)
	}
	m := qpsLine.FindSubmatch(b)
	l := lostLine.FindSubmatch(b)
	c := completedLine.FindSubmatch(b)
	if m == nil || l == nil || c == nil {
		return r, fmt.Errorf("no figures in dnsperf's output:\n%s", b)
	}
	r.qps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.lost, _ = strconv.ParseFloat(string(l[1]), 64)
	r.completed, _ = strconv.ParseFloat(string(c[1]), 64)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// freeAddr is a loopback address whose port is free for UDP and TCP now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// helper is a proxy running in its own process.
type helper struct {
	addr string
	pid  int
	stop func()
}

// startProcess runs a helper in the foreground and waits until it answers
// on addr over TCP.
func startProcess(addr string, name string, args ...string) (*helper, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &helper{addr: addr, pid: cmd.Process.Pid, stop: func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}}
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return h, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.stop()
	return nil, fmt.Errorf("%s did not start listening on %s", name, addr)
}

// clockTick is the unit of CPU times in /proc/PID/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// treeCPU is the user and system time used so far by process pid and its
// children (nginx's workers), 0 for pid 0 or when /proc cannot tell.
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	total := time.Duration(utime+stime) * clockTick
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(c); err == nil {
				total += treeCPU(child)
			}
		}
	}
	return total
}

func startDnsdist(dir, server string) (*helper, error) {
	bin, err := exec.LookPath("dnsdist")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install dnsdist)")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "dnsdist.conf")
	body := fmt.Sprintf("setLocal(%q)\nnewServer({address=%q})\nsetSecurityPollSuffix(\"\")\n", addr, server)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	return startProcess(addr, bin, "--supervised", "--disable-syslog", "-C", conf)
}

const streamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

func startNginx(dir, server string) (*helper, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install nginx libnginx-mod-stream)")
	}
	if _, err := os.Stat(streamModule); err != nil {
		return nil, fmt.Errorf("no stream module (apt-get install libnginx-mod-stream)")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	userLine := ""
	if os.Geteuid() == 0 {
		group := "nobody"
		if _, err := user.LookupGroup("nogroup"); err == nil {
			group = "nogroup"
		}
		userLine = "user nobody " + group + ";"
	}
	conf := filepath.Join(dir, "nginx.conf")
	body := fmt.Sprintf(`load_module %s;
%s
daemon off;
master_process on;
worker_processes 2;
pid %s;
error_log %s warn;
events { worker_connections 4096; }
stream {
    upstream dns { server %s; }
    server { listen %s udp; proxy_pass dns; proxy_responses 1; proxy_timeout 3s; }
    server { listen %s; proxy_pass dns; }
}
`, streamModule, userLine, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "nginx-error.log"), server, addr, addr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	return startProcess(addr, bin, "-p", dir+"/", "-c", conf)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func numCPU() int { return runtime.NumCPU() }
