package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// waitLimit bounds every wait for greenlight to get somewhere, a whole
// deploy included.
const waitLimit = 20 * time.Second

// program is greenlight running in-process, fed through a pipe as a person
// would type into it.
type program struct {
	t      *testing.T
	m      *Main
	in     *io.PipeWriter
	out    *logbuf.Buffer
	errOut *logbuf.Buffer
	done   chan int
}

func start(t *testing.T, data string, extra ...string) *program {
	t.Helper()
	args := append([]string{"--data", data, "--listen", "127.0.0.1:0", "--boot-delay", "50ms", "--log-level", "warn"}, extra...)
	return startMain(t, nil, args...)
}

// startMain runs greenlight with args; edit, when set, changes Main first
// (its environment, for instance).
func startMain(t *testing.T, edit func(*Main), args ...string) *program {
	t.Helper()
	r, w := io.Pipe()
	p := &program{t: t, in: w, out: &logbuf.Buffer{}, errOut: &logbuf.Buffer{}, done: make(chan int, 1)}
	p.m = &Main{Stdin: r, Stdout: p.out, Stderr: p.errOut, User: "alice", Clock: deployer.SystemClock{}}
	if edit != nil {
		edit(p.m)
	}
	if err := p.m.ParseFlags(args); err != nil {
		t.Fatalf("flags: %v", err)
	}
	if err := p.m.Open(context.Background()); err != nil {
		p.m.Close()
		t.Fatalf("open: %v\n%s", err, p.errOut)
	}
	go func() {
		err := p.m.Run(context.Background())
		code := 0
		if err != nil {
			code = 1
		}
		p.m.Close()
		p.done <- code
	}()
	t.Cleanup(func() {
		w.Close()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("greenlight did not stop after its input closed")
		}
	})
	return p
}

func (p *program) addr() string { return p.m.running.lbs[0].Addr() }

func (p *program) typeLine(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("type %q: %v", line, err)
	}
}

// waitOutput polls until the output matches re (bounded).
func (p *program) waitOutput(re string) {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	if !eventually.Holds(waitLimit, func() bool { return rx.MatchString(p.out.String()) }) {
		p.t.Fatalf("output never matched %q; output:\n%s\nstderr:\n%s", re, p.out, p.errOut)
	}
}

// nsid asks the load balancer for example.test's SOA over proto and returns
// the NSID of the server that answered.
func nsid(t *testing.T, addr, proto string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeSOA)
	m.SetEdns0(1232, false)
	o := m.IsEdns0()
	o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s over %s: %v", addr, proto, err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Fatalf("query %s over %s: rcode %s, aa %v", addr, proto, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	if id := dnscheck.NSIDOf(r); id != "" {
		return id
	}
	t.Fatalf("no NSID in the answer from %s", addr)
	return ""
}

// digNSID runs the real dig, as an operator watching a deploy would.
func digNSID(t *testing.T, addr string) string {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dig is not installed (apt-get install bind9-dnsutils)")
		}
		t.Logf("dig not installed (apt-get install bind9-dnsutils); checking with the miekg/dns client only")
		return nsid(t, addr, "udp")
	}
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("dig", "@"+host, "-p", port, "example.test", "SOA", "+nsid", "+tries=1", "+time=2").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "status: NOERROR") || !strings.Contains(string(out), " aa") {
		t.Fatalf("dig did not get an authoritative NOERROR:\n%s", out)
	}
	m := regexp.MustCompile(`NSID: .*\("([^"]+)"\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("dig shows no NSID:\n%s", out)
	}
	return m[1]
}

// The operator's runbook: deploy, watch the checklist, approve, see the new
// set answer through the load balancer, roll back, see the old set again.
func TestLocalDeployApproveRollback(t *testing.T) {
	p := start(t, t.TempDir())
	p.waitOutput(`ns: 127\.0\.0\.1:\d+ serves ns1-0, ns2-0`)
	if got := digNSID(t, p.addr()); !strings.HasPrefix(got, "ns") || !strings.HasSuffix(got, "-0") {
		t.Fatalf("before the deploy, NSID %q; want the first set", got)
	}

	p.typeLine("/deploy ns --reason 'weekly image'")
	p.waitOutput(`(?s)Deploy #1 of ns by alice.*✓ Check the next set answers.*\[Approve\] type: /deploy approve ns #1`)
	// The approver sees what changes for clients: v2 adds api and changes the version TXT.
	p.waitOutput(`(?s)ready to switch.*example\.test\.: serial 2026110101 → 2026110102 · 1 added · 1 changed.*\+ api\.example\.test\.\s+300\s+IN\s+A\s+192\.0\.2\.20`)
	p.typeLine("/deploy diff ns")
	p.waitOutput(`(?s)Deploy #1 of ns: local/ns-v1 → local/ns-v2 \(waiting for approval\)\nexample\.test\.: serial .*\(AXFR\)\n\+ api\.example\.test\..*\n- version\.example\.test\..*"image v1"\n\+ version\.example\.test\..*"image v2"`)
	if got := nsid(t, p.addr(), "tcp"); !strings.HasSuffix(got, "-0") {
		t.Fatalf("before approval, traffic reached %q", got)
	}

	p.typeLine("/deploy ns")
	p.waitOutput(`ns is locked by deploy #1 by alice since .*now at Approval`)

	p.typeLine("approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	for _, proto := range []string{"udp", "tcp"} {
		if got := nsid(t, p.addr(), proto); !strings.HasSuffix(got, "-1") {
			t.Fatalf("after approval, %s answer came from %q; want the new set", proto, got)
		}
	}
	if got := digNSID(t, p.addr()); !strings.HasSuffix(got, "-1") {
		t.Fatalf("dig after approval: NSID %q", got)
	}

	p.typeLine("/deploy status ns")
	p.waitOutput(`ns: traffic on ns1-1 \(127\.0\.0\.1:\d+\), ns2-1 \(127\.0\.0\.1:\d+\), image local/ns-v2 \(deploy #1\)\n  kept for rollback until \d\d:\d\d:\d\d UTC: ns1-0, ns2-0, image local/ns-v1 \(/deploy rollback ns switches back\)\n`)
	p.waitOutput(`in flight: deploy #1 by alice, local/ns-v1 → local/ns-v2, live, in its rollback window`)

	p.typeLine("rollback")
	p.waitOutput(`Rolled back by alice: traffic is on ns1-0, ns2-0 again`)
	p.waitOutput(`Deploy #1 of ns was rolled back`)
	if got := digNSID(t, p.addr()); !strings.HasSuffix(got, "-0") {
		t.Fatalf("after rollback, NSID %q; want the old set", got)
	}

	p.typeLine("/deploy history ns")
	p.waitOutput(`#1 .* ns by alice, local/ns-v1 → local/ns-v2, rolled back in \d`)
	p.typeLine("/deploy rollback ns")
	p.waitOutput(`deploy #1 was already rolled back by alice`)
	p.typeLine("/deploy stauts")
	p.waitOutput(`did you mean status\?`)
}

// The README's piped demo: it prints the checklist and exits 0 once the new
// set serves.
func TestPipedDemo(t *testing.T) {
	out, errOut := &logbuf.Buffer{}, &logbuf.Buffer{}
	m := &Main{Stdin: strings.NewReader("/deploy ns --auto-approve\n"), Stdout: out, Stderr: errOut, User: "alice", Clock: deployer.SystemClock{}}
	code := m.Main(context.Background(), []string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--boot-delay", "20ms"})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"✓ Switch traffic", "✓ Check through the load balancer", "ns is live on ns1-1, ns2-1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A broken image never gets traffic; the pipe exits non-zero naming the check.
func TestPipedBrokenImageFails(t *testing.T) {
	data := t.TempDir()
	out, errOut := &logbuf.Buffer{}, &logbuf.Buffer{}
	m := &Main{Stdin: strings.NewReader("/deploy ns --image local/ns-broken --auto-approve\n/deploy status ns\n"), Stdout: out, Stderr: errOut, User: "alice", Clock: deployer.SystemClock{}}
	code := m.Main(context.Background(), []string{"--data", data, "--listen", "127.0.0.1:0", "--boot-delay", "20ms"})
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"✗ Check the next set answers", "SERVFAIL", "Deploy #1 of ns failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut.String(), "deploy #1 ended failed") {
		t.Errorf("stderr lacks the failure: %s", errOut)
	}
}

// A second greenlight on the same data directory fails fast and says why.
func TestSecondInstanceRefused(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	p.waitOutput(`serves ns1-0, ns2-0`)
	errOut := &logbuf.Buffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: errOut, User: "bob", Clock: deployer.SystemClock{}}
	code := m.Main(context.Background(), []string{"--data", data, "--listen", "127.0.0.1:0"})
	if code == 0 || !strings.Contains(errOut.String(), "another greenlight is using it") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming the other greenlight", code, errOut)
	}
}

// The image refresh in local mode: /deploy refresh bakes a new local image
// and announces it with the command that deploys it; the deploy of that
// image serves its newer serial; /deploy schedule shows the run.
func TestLocalRefreshThenDeploy(t *testing.T) {
	p := start(t, t.TempDir())
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy schedule")
	p.waitOutput(`(?s)ns.*CRON_TZ=UTC 0 4 \* \* 1.*next`)
	p.typeLine("/deploy refresh ns")
	p.waitOutput(`Image local/ns-v3 ready: ns-golden-\d{8}-\d{4}, built in`)
	p.waitOutput(`type /deploy ns --image local/ns-v3 to deploy it`)
	p.typeLine("/deploy ns --image local/ns-v3 --auto-approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	if got := soaSerial(t, p.addr()); got != 2026110103 {
		t.Errorf("serial after deploying the baked image = %d, want 2026110103", got)
	}
	p.typeLine("/deploy schedule")
	p.waitOutput(`(?s)last.*ok.*local/ns-v3|ns-golden`)
}

func soaSerial(t *testing.T, addr string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeSOA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("SOA from %s: %v %v", addr, err, r)
	}
	return r.Answer[0].(*dns.SOA).Serial
}
