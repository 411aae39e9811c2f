package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/deployer/nginx/nginxtest"
	"github.com/greenlight/greenlight/internal/eventually"
)

const linodeToken = "test-token-not-a-secret"

// linodeAccount is a fake Linode account whose instances are real DNS
// servers on loopback, and a NodeBalancer that really forwards to them.
type linodeAccount struct {
	api      *linodetest.Server
	ns       *linodetest.NameServers
	nb       int
	frontend string // the NodeBalancer's address, UDP and TCP
}

func newLinodeAccount(t *testing.T, edit ...func(*linodetest.Options)) *linodeAccount {
	t.Helper()
	ns, err := linodetest.NewNameServers("example.test")
	if err != nil {
		t.Fatal(err)
	}
	opts := linodetest.Options{Token: linodeToken, IPv4: linodetest.Loopback, OnRunning: ns.OnRunning, OnDeleted: ns.OnDeleted}
	for _, e := range edit {
		e(&opts)
	}
	api := linodetest.NewServer(opts)
	t.Cleanup(ns.Close)
	t.Cleanup(api.Close)
	nb := api.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb", Region: "us-east"})
	return &linodeAccount{api: api, ns: ns, nb: nb.ID, frontend: api.NodeBalancerFrontend(nb.ID)}
}

// config writes a greenlight config for service ns on this account with
// the given provisioner and switch sections (YAML flow maps).
func (a *linodeAccount) config(t *testing.T, provisioner, sw string) string {
	t.Helper()
	if sw == "" {
		sw = fmt.Sprintf("{kind: nodebalancer, nodebalancer_id: %d, endpoints: [%q], drain_wait: 100ms}", a.nb, a.frontend)
	}
	conf := fmt.Sprintf(`log: {level: warn}
reconcile: {delete_orphans: true}
services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    rollback_window: 300ms
    timeouts: {wait_running: 3s, provision: 5s, check: 5s}
    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12, poll_interval: 20ms}
    provisioner: %s
    switch: %s
    check: {zones: [example.test], port: %d, passes: 2, interval: 50ms, timeout: 1s, max_rounds: 4, compare_zones: false}
`, provisioner, sw, a.ns.Port)
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (a *linodeAccount) start(t *testing.T, config string) *program {
	t.Helper()
	env := map[string]string{EnvLinodeToken: linodeToken, EnvLinodeURL: a.api.URL}
	return startMain(t, func(m *Main) { m.Getenv = func(k string) string { return env[k] } },
		"--config", config, "--data", t.TempDir())
}

// instances lists the fake's instances as "label[tags]", sorted.
func (a *linodeAccount) instances() []string {
	var out []string
	for _, in := range a.api.Instances() {
		out = append(out, in.Label+"["+strings.Join(in.Tags, ",")+"]")
	}
	slices.Sort(out)
	return out
}

// tagged counts the instances carrying tag.
func (a *linodeAccount) tagged(tag string) int {
	n := 0
	for _, in := range a.api.Instances() {
		if slices.Contains(in.Tags, tag) {
			n++
		}
	}
	return n
}

// load queries addr over UDP and TCP until stopped and counts what
// answered: a query is failed when it gets no authoritative NOERROR, after
// one retry over UDP (what every DNS client does).
type load struct {
	udp, tcp, retried, failed atomic.Int64
	mu                        sync.Mutex
	nsids                     map[string]int
	firstErr                  string
	stop                      context.CancelFunc
	wg                        sync.WaitGroup
}

func startLoad(addr string) *load {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	l := &load{nsids: map[string]int{}, stop: cancel}
	for _, network := range []string{"udp", "udp", "tcp"} {
		l.wg.Go(func() {
			c := &dns.Client{Net: network, Timeout: 500 * time.Millisecond}
			for i := 0; ctx.Err() == nil && i < 20000; i++ {
				m := new(dns.Msg)
				m.SetQuestion("example.test.", dns.TypeSOA)
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
				r, _, err := c.Exchange(m, addr)
				if err != nil && network == "udp" {
					l.retried.Add(1)
					r, _, err = c.Exchange(m, addr)
				}
				if network == "udp" {
					l.udp.Add(1)
				} else {
					l.tcp.Add(1)
				}
				l.mu.Lock()
				switch {
				case err != nil:
					l.failed.Add(1)
					if l.firstErr == "" {
						l.firstErr = err.Error()
					}
				case r.Rcode != dns.RcodeSuccess || !r.Authoritative:
					l.failed.Add(1)
					if l.firstErr == "" {
						l.firstErr = "rcode " + dns.RcodeToString[r.Rcode]
					}
				default:
					l.nsids[dnscheck.NSIDOf(r)]++
				}
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	t.Logf("queries through the load balancer: %d UDP + %d TCP, %d UDP retried, %d failed; answered by %v",
		l.udp.Load(), l.tcp.Load(), l.retried.Load(), l.failed.Load(), l.nsids)
	if l.failed.Load() > 0 {
		t.Errorf("%d queries failed through the load balancer (first: %s)", l.failed.Load(), l.firstErr)
	}
}

// TestLinodeDeploy deploys ns against the fake Linode API, with the
// NodeBalancer switch and with the nginx switch, while queries run through
// the load balancer: none fails, the old instances are deleted, the new
// ones carry the current labels.
func TestLinodeDeploy(t *testing.T) {
	cases := []struct {
		name string
		sw   func(t *testing.T, a *linodeAccount) (yaml, endpoint string)
	}{
		{"nodebalancer", func(t *testing.T, a *linodeAccount) (string, string) { return "", a.frontend }},
		{"nginx", func(t *testing.T, a *linodeAccount) (string, string) {
			ng := nginxtest.Start(t)
			cmd := append([]string{ng.Bin}, ng.Args()...)
			return fmt.Sprintf("{kind: nginx, hosts: [{name: lb1, endpoint: %q}], listen: %q, config_path: %q, pid_file: %q, nginx_command: [%s]}",
				ng.Addr, ng.Addr, ng.StreamConf, ng.PIDFile, quoteAll(cmd)), ng.Addr
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newLinodeAccount(t)
			sw, endpoint := tc.sw(t, a)
			p := a.start(t, a.config(t, "{kind: cloud-init}", sw))
			p.waitOutput(`ns: .* serves ns1-0, ns2-0 on image linode/debian12`)
			if got := nsid(t, endpoint, "tcp"); !strings.HasSuffix(got, "-0") {
				t.Fatalf("before the deploy, %s answered from %q", endpoint, got)
			}
			// A freshly baked image: the new set serves a newer serial.
			a.api.AddImage(linodetest.Image{ID: "private/7", Label: "ns-golden-20261123-0400", Created: time.Now()})

			l := startLoad(endpoint)
			p.typeLine("/deploy ns --auto-approve")
			p.waitOutput(`ns is live on ns1-1, ns2-1`)
			p.waitOutput(`(?s)Deploy #1 of ns.*✓ Retire the old set`)
			l.finish(t)
			for _, proto := range []string{"udp", "tcp"} {
				if got := nsid(t, endpoint, proto); !strings.HasSuffix(got, "-1") {
					t.Errorf("after the deploy, %s answer from %q; want the new set", proto, got)
				}
			}
			if l.nsids["ns1-1"]+l.nsids["ns2-1"] == 0 || l.nsids["ns1-0"]+l.nsids["ns2-0"] == 0 {
				t.Errorf("the load saw answers from %v; want both sets", l.nsids)
			}
			want := []string{
				"ns1-1[greenlight,service:ns,deploy:1,role:ns1,label:ns1]",
				"ns2-1[greenlight,service:ns,deploy:1,role:ns2,label:ns2]",
			}
			eventually.Within(t, waitLimit, "the old instances to be deleted", func() bool { return slices.Equal(a.instances(), want) })
			for _, in := range a.api.Instances() {
				if !strings.HasPrefix(string(in.UserData), "#cloud-config") || !strings.Contains(string(in.UserData), in.Label) {
					t.Errorf("%s user data is not its cloud-init: %.80q", in.Label, in.UserData)
				}
				if in.Image != "private/7" {
					t.Errorf("%s booted %s, want the golden image private/7", in.Label, in.Image)
				}
			}
			if tc.name == "nodebalancer" {
				var nodes []string
				for _, n := range a.api.NodeBalancerNodes(a.nb) {
					nodes = append(nodes, n.Protocol+" "+n.Label+" "+n.Mode)
				}
				slices.Sort(nodes)
				if want := []string{"tcp ns1-1 accept", "tcp ns2-1 accept", "udp ns1-1 accept", "udp ns2-1 accept"}; !slices.Equal(nodes, want) {
					t.Errorf("NodeBalancer nodes = %v, want %v", nodes, want)
				}
			}
			if strings.Contains(p.out.String()+p.errOut.String(), linodeToken) {
				t.Errorf("the Linode token reached the output")
			}
		})
	}
}

// TestLinodeDeployFailures: whatever stops a deploy before the switch, no
// traffic moves, every instance the deploy made is deleted, the lock is
// released and the chat says why.
func TestLinodeDeployFailures(t *testing.T) {
	cases := []struct {
		name        string
		provisioner string
		setup       func(a *linodeAccount)
		says        string // regexp
		abort       bool   // abort at the approval gate instead of auto-approving
	}{
		{"an instance never runs", "{kind: none}",
			func(a *linodeAccount) { a.api.Hold("ns2-1", "provisioning") },
			`ns2-1 .*(provisioning|running)`, false},
		{"the provisioner fails", `{kind: command, command: [sh, -c, "case {{.Name}} in *-0) exit 0;; esac; echo installing nsd; echo 'E: Unable to locate package nsd' >&2; exit 100"]}`,
			nil, `(?s)exit(ed| status) 100.*Unable to locate package nsd`, false},
		{"the check fails only over TCP", "{kind: none}",
			func(a *linodeAccount) {
				a.api.AddImage(linodetest.Image{ID: "private/8", Label: "ns-golden-20261123-0500", Created: time.Now()})
				a.ns.BreakTCP("private/8")
			},
			`(?i)over TCP`, false},
		{"aborted at the gate", "{kind: cloud-init}", nil, `(?s)Aborted by alice.*Deploy #1 of ns was aborted`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newLinodeAccount(t)
			p := a.start(t, a.config(t, tc.provisioner, ""))
			p.waitOutput(`serves ns1-0, ns2-0`)
			before := a.api.NodeBalancerNodes(a.nb)
			a.api.AddImage(linodetest.Image{ID: "private/7", Label: "ns-golden-20261123-0400", Created: time.Now().Add(-time.Hour)})
			if tc.setup != nil {
				tc.setup(a)
			}
			l := startLoad(a.frontend)
			if tc.abort {
				p.typeLine("/deploy ns")
				p.waitOutput(`\[Approve\]`)
				p.typeLine("abort")
				p.waitOutput(`Deploy #1 of ns was aborted`)
			} else {
				p.typeLine("/deploy ns --auto-approve")
				p.waitOutput(`Deploy #1 of ns failed`)
			}
			l.finish(t)
			if !regexp.MustCompile(tc.says).MatchString(p.out.String()) {
				t.Errorf("the chat does not say why (%s):\n%s", tc.says, p.out)
			}
			eventually.Within(t, waitLimit, "every instance of deploy #1 to be deleted", func() bool { return a.tagged(deployer.DeployTag(1)) == 0 })
			if got := a.api.NodeBalancerNodes(a.nb); !slices.Equal(got, before) {
				t.Errorf("NodeBalancer nodes changed: %v, want %v", got, before)
			}
			if got := l.nsids["ns1-1"] + l.nsids["ns2-1"]; got > 0 {
				t.Errorf("%d queries reached the failed set", got)
			}
			p.typeLine("/deploy status ns")
			p.waitOutput(`(?s)status.*ns.*(unlocked|not locked|lock: free|free)`)
		})
	}
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, ", ")
}

// TestLinodeReconcileAtStartup: instances greenlight tagged that no deploy
// owns are announced at start-up and deleted (delete_orphans is on); an
// image builder is not touched.
func TestLinodeReconcileAtStartup(t *testing.T) {
	a := newLinodeAccount(t)
	for _, in := range []linodetest.Instance{
		{Label: "ns1-99", Tags: []string{"greenlight", "service:ns", "deploy:99", "role:ns1"}},
		{Label: "ns-build-20261123-0400", Tags: []string{"greenlight", "service:ns", "bake:20261123-0400"}},
		{Label: "mail1", Tags: []string{"mail"}},
	} {
		in.Region, in.Type, in.Image = "us-east", "g6-nanode-1", "linode/debian12"
		a.api.AddInstance(in)
	}
	p := a.start(t, a.config(t, "{kind: none}", ""))
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.waitOutput(`1 of 4 servers tagged greenlight belong to no deploy:\n• ns1-99 \(\d+\): no deploy #99 is known to this greenlight — deleted`)
	var left []string
	for _, in := range a.api.Instances() {
		left = append(left, in.Label)
	}
	slices.Sort(left)
	if want := []string{"mail1", "ns-build-20261123-0400", "ns1-0", "ns2-0"}; !slices.Equal(left, want) {
		t.Errorf("instances after reconciling = %v, want %v", left, want)
	}
}

// TestLinodeDryRunPrice: a dry run shows the plan and what the next set
// costs, from Linode's types API, and creates nothing.
func TestLinodeDryRunPrice(t *testing.T) {
	a := newLinodeAccount(t)
	a.api.AddImage(linodetest.Image{ID: "private/7", Label: "ns-golden-20261123-0400", Created: time.Now()})
	p := a.start(t, a.config(t, "{kind: none}", ""))
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns --dry-run")
	p.waitOutput(`Dry run of ns: image private/7 → private/7 .*the next set costs \$0\.015/hour, \$10\.00/month`)
	if n := len(a.api.Instances()); n != 2 {
		t.Errorf("a dry run left %d instances, want the 2 live ones", n)
	}
}

// TestLinodeRefreshThenDeploy: /deploy refresh bakes a golden image on the
// fake Linode (builder boots, powers itself off, image made from its disk,
// builder deleted), announces it, and a deploy of it goes live.
func TestLinodeRefreshThenDeploy(t *testing.T) {
	a := newLinodeAccount(t, func(o *linodetest.Options) {
		o.PowerOffAfter, o.ImageCreating = 100*time.Millisecond, 100*time.Millisecond
	})
	p := a.start(t, a.config(t, "{kind: none}", ""))
	p.waitOutput(`serves ns1-0, ns2-0 on image linode/debian12`)
	p.typeLine("/deploy refresh ns")
	p.waitOutput(`Baking a new image of ns from linode/debian12`)
	p.waitOutput(`Image private/\d+ ready: ns-golden-\d{8}-\d{4}, built in`)
	p.waitOutput(`type /deploy ns --image private/\d+ to deploy it`)
	image := regexp.MustCompile(`type /deploy ns --image (private/\d+) to deploy it`).FindStringSubmatch(p.out.String())
	var builders []string
	for _, in := range a.api.Instances() {
		if strings.Contains(in.Label, "build") {
			builders = append(builders, in.Label)
		}
	}
	if len(builders) > 0 {
		t.Errorf("builders left after the bake: %v", builders)
	}
	p.typeLine("/deploy ns --auto-approve --image " + image[1])
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	if got, want := soaSerial(t, a.frontend), linodetest.Serial(image[1]); got != want {
		t.Errorf("serial through the NodeBalancer = %d, want %d (the baked image's)", got, want)
	}
}

// TestStartsWhenTheCloudRefuses: a first set the cloud will not build does
// not stop greenlight from starting; it says so and keeps answering.
func TestStartsWhenTheCloudRefuses(t *testing.T) {
	a := newLinodeAccount(t)
	a.api.Inject(linodetest.Fault{Method: "POST", Path: "/linode/instances", Times: 2, Status: 403})
	p := a.start(t, a.config(t, "{kind: none}", ""))
	p.waitOutput(`Could not build the first set of ns: .*greenlight tries again every few minutes`)
	p.typeLine("/deploy status ns")
	p.waitOutput(`ns: no live set yet`)
}
