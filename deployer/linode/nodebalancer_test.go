package linode

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/linode/linodego"
	"github.com/miekg/dns"
)

// nbEnv is a NodeBalancerSwitch on a NodeBalancer of its own fake API.
type nbEnv struct {
	*env
	nb linodetest.NodeBalancer
	sw *NodeBalancerSwitch
}

// newNBEnv starts a fake API with one NodeBalancer and a switch on it. The
// switch waits on clock (nil: the env's skipClock); opts may adjust it.
func newNBEnv(t *testing.T, clock deployer.Clock, opts ...func(*NodeBalancerOptions)) *nbEnv {
	t.Helper()
	e := newEnv(t, linodetest.Options{})
	nb := e.api.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb"})
	// The sets' addresses are private addresses of instances in the
	// NodeBalancer's region, as the API demands of nodes.
	for _, s := range slices.Concat(nbBlue, nbGreen) {
		host, _, _ := net.SplitHostPort(s.Addr)
		e.api.AddInstance(linodetest.Instance{Label: s.Name, Region: nb.Region, PrivateIPv4: host})
	}
	if clock == nil {
		clock = e.clock
	}
	o := NodeBalancerOptions{
		Client:         e.api.NewClient(testToken),
		NodeBalancerID: nb.ID,
		Endpoints:      []string{net.JoinHostPort(nb.IPv4, "53")},
		CallOptions:    e.callOptions(clock),
	}
	for _, f := range opts {
		f(&o)
	}
	sw, err := NewNodeBalancerSwitch(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), testToken) {
			t.Error("the API token is in the logs")
		}
	})
	return &nbEnv{env: e, nb: nb, sw: sw}
}

// Two sets of servers that are not Linode instances: the node address is
// their Addr.
var (
	blueSet = []deployer.Server{
		{Name: "ns1-6", Role: "ns1", Addr: "192.0.2.16:53"},
		{Name: "ns2-6", Role: "ns2", Addr: "192.0.2.26:53"},
	}
	greenSet = []deployer.Server{
		{Name: "ns1-7", Role: "ns1", Addr: "192.0.2.17:53"},
		{Name: "ns2-7", Role: "ns2", Addr: "192.0.2.27:53"},
	}
)

// The NodeBalancer's sets are known by address alone (no instance ID): the
// node address is their Addr, a private address newNBEnv gives an instance
// in the NodeBalancer's region, as the API demands of nodes.
var (
	nbBlue = []deployer.Server{
		{Name: "ns1-6", Role: "ns1", Addr: "192.168.128.16:53"},
		{Name: "ns2-6", Role: "ns2", Addr: "192.168.128.26:53"},
	}
	nbGreen = []deployer.Server{
		{Name: "ns1-7", Role: "ns1", Addr: "192.168.128.17:53"},
		{Name: "ns2-7", Role: "ns2", Addr: "192.168.128.27:53"},
	}
)

// nodeLines are the NodeBalancer's nodes as "protocol label address mode",
// sorted: a duplicate node shows as a repeated line.
func nodeLines(api *linodetest.Server, id int) []string {
	var out []string
	for _, n := range api.NodeBalancerNodes(id) {
		out = append(out, fmt.Sprintf("%s %s %s %s", n.Protocol, n.Label, n.Address, n.Mode))
	}
	slices.Sort(out)
	return out
}

// wantNodes are the lines nodeLines shows for accepting and draining sets,
// on both configs.
func wantNodes(accept, drain []deployer.Server) []string {
	var out []string
	for _, proto := range []string{"udp", "tcp"} {
		for _, set := range []struct {
			servers []deployer.Server
			mode    string
		}{{accept, "accept"}, {drain, "drain"}} {
			for _, s := range set.servers {
				out = append(out, fmt.Sprintf("%s %s %s %s", proto, s.Name, s.Addr, set.mode))
			}
		}
	}
	slices.Sort(out)
	return out
}

// nbWrites counts the requests that change the NodeBalancer.
func nbWrites(api *linodetest.Server) int {
	n := 0
	for _, r := range api.Requests() {
		if r.Method != "GET" && strings.Contains(r.Path, "/nodebalancers/") {
			n++
		}
	}
	return n
}

// nodeIDs are the IDs of the NodeBalancer's nodes, sorted.
func nodeIDs(api *linodetest.Server, id int) []int {
	var out []int
	for _, n := range api.NodeBalancerNodes(id) {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

// waitOut runs fn, which is to wait on clock for exactly wait and then
// return. It checks fn is still waiting when the clock is a nanosecond
// short of wait (and, through stillWaiting, that nothing has happened yet),
// then moves the clock on and returns fn's error.
func waitOut(t *testing.T, clock *deployer.ManualClock, wait time.Duration, fn func() error, stillWaiting func()) error {
	t.Helper()
	before := clock.Waiters()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	eventually.True(t, "the switch waits on the clock", func() bool { return clock.Waiters() > before })
	clock.Advance(wait - time.Nanosecond)
	select {
	case err := <-done:
		t.Fatalf("returned (%v) before the clock reached %s", err, wait)
	default:
	}
	if clock.Waiters() <= before {
		t.Fatalf("stopped waiting before the clock reached %s", wait)
	}
	if stillWaiting != nil {
		stillWaiting()
	}
	clock.Advance(time.Nanosecond)
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("still waiting after the clock passed %s", wait)
		return nil
	}
}

// A deploy and a rollback through the NodeBalancer, step by step: the new
// set accepts before the old one drains, Drain waits DrainWait on the clock
// and removes only nodes that no longer accept, and switching back (Accept
// old, Drain new) restores the old set.
func TestNodeBalancerSwitchBlueGreen(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	const drainWait = 45 * time.Second
	e := newNBEnv(t, clock, func(o *NodeBalancerOptions) { o.DrainWait = drainWait })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	steps := []struct {
		name   string
		drain  bool // Drain servers, else Accept them
		set    []deployer.Server
		accept []deployer.Server // the nodes after the step
		drains []deployer.Server
		writes bool // whether the step changes the NodeBalancer
	}{
		{name: "accept blue on an empty NodeBalancer", set: nbBlue, accept: nbBlue, writes: true},
		{name: "accept blue again changes nothing", set: nbBlue, accept: nbBlue},
		{name: "accept green drains blue", set: nbGreen, accept: nbGreen, drains: nbBlue, writes: true},
		{name: "accept green again changes nothing", set: nbGreen, accept: nbGreen, drains: nbBlue},
		{name: "drain blue removes it", drain: true, set: nbBlue, accept: nbGreen, writes: true},
		{name: "switch back: accept blue", set: nbBlue, accept: nbBlue, drains: nbGreen, writes: true},
		{name: "switch back: drain green", drain: true, set: nbGreen, accept: nbBlue, writes: true},
		{name: "drain of the accepting set removes nothing", drain: true, set: nbBlue, accept: nbBlue},
	}
	for _, st := range steps {
		before := nodeLines(e.api, e.nb.ID)
		ids := nodeIDs(e.api, e.nb.ID)
		writes := nbWrites(e.api)
		var err error
		if st.drain {
			err = waitOut(t, clock, drainWait, func() error { return e.sw.Drain(ctx, st.set) }, func() {
				if got := nodeLines(e.api, e.nb.ID); !slices.Equal(got, before) {
					t.Errorf("%s: nodes changed before DrainWait was over:\n%s", st.name, strings.Join(got, "\n"))
				}
			})
		} else {
			err = e.sw.Accept(ctx, st.set)
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, want := nodeLines(e.api, e.nb.ID), wantNodes(st.accept, st.drains); !slices.Equal(got, want) {
			t.Errorf("%s: nodes\n%s\nwant\n%s", st.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if changed := nbWrites(e.api) - writes; (changed > 0) != st.writes {
			t.Errorf("%s: %d requests changed the NodeBalancer", st.name, changed)
		}
		if !st.writes && !slices.Equal(nodeIDs(e.api, e.nb.ID), ids) {
			t.Errorf("%s: node IDs went from %v to %v", st.name, ids, nodeIDs(e.api, e.nb.ID))
		}
	}

	cfgs := e.api.NodeBalancerConfigs(e.nb.ID)
	if len(cfgs) != 2 {
		t.Fatalf("configs: %+v, want one UDP and one TCP on port 53", cfgs)
	}
	for i, proto := range []string{"udp", "tcp"} {
		c := cfgs[i]
		if c.Protocol != proto || c.Port != 53 || c.Algorithm != "roundrobin" || c.Check != "connection" ||
			c.CheckInterval != 10 || c.CheckTimeout != 5 || c.CheckAttempts != 3 {
			t.Errorf("%s config: %+v", proto, c)
		}
	}
	if cfgs[0].UDPCheckPort != 53 || cfgs[0].CheckPassive || !cfgs[1].CheckPassive {
		t.Errorf("UDP checks on port %d passive %v; TCP passive %v: want 53, false; true",
			cfgs[0].UDPCheckPort, cfgs[0].CheckPassive, cfgs[1].CheckPassive)
	}
	for _, n := range e.api.NodeBalancerNodes(e.nb.ID) {
		if n.Weight != DefaultNodeWeight {
			t.Errorf("node %s has weight %d, want %d", n.Label, n.Weight, DefaultNodeWeight)
		}
	}
	if got := e.sw.Endpoints(); !slices.Equal(got, []string{net.JoinHostPort(e.nb.IPv4, "53")}) {
		t.Errorf("Endpoints = %v", got)
	}
}

// A stopped deploy stops Drain's wait: the nodes stay, drained, and the
// error says so.
func TestNodeBalancerSwitchDrainStopped(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newNBEnv(t, clock)
	ctx := context.Background()
	if err := e.sw.Accept(ctx, nbBlue); err != nil {
		t.Fatal(err)
	}
	if err := e.sw.Accept(ctx, nbGreen); err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.sw.Drain(stop, nbBlue) }()
	eventually.True(t, "Drain waits on the clock", func() bool { return clock.Waiters() > 0 })
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return when its context was cancelled")
	}
	want := fmt.Sprintf("stopped waiting for traffic on ns1-6, ns2-6 to finish (10s): the deploy was stopped; "+
		"they take no new traffic and stay on NodeBalancer %d in drain mode", e.nb.ID)
	if err == nil || deployer.ErrorMessage(err) != want || !errors.Is(err, context.Canceled) || deployer.ErrorCode(err) != deployer.CodeFailed {
		t.Errorf("Drain = %v, want %q", err, want)
	}
	if got, want := nodeLines(e.api, e.nb.ID), wantNodes(nbGreen, nbBlue); !slices.Equal(got, want) {
		t.Errorf("nodes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Failed calls are retried on the switch's clock (a skipClock: the waits are
// recorded, not slept), and a call whose answer is lost after Linode acted
// on it is not made twice.
func TestNodeBalancerSwitchRetries(t *testing.T) {
	const (
		configs   = "/nodebalancers/*/configs"
		nodes     = "/nodebalancers/*/configs/*/nodes"
		aNode     = "/nodebalancers/*/configs/*/nodes/*"
		drainWait = 10 * time.Second
	)
	type count struct {
		method, path string
		n            int
	}
	tests := []struct {
		name   string
		before []deployer.Server // accepted before the faults
		faults []linodetest.Fault
		drain  bool // after Accept(blue), Drain(before)
		waits  []time.Duration
		count  count
		drains bool // whether the before set is left drained, not removed
	}{
		{name: "429 with Retry-After on creating a config",
			faults: []linodetest.Fault{{Method: "POST", Path: configs, Status: 429, RetryAfter: 7 * time.Second}},
			waits:  []time.Duration{7 * time.Second}, count: count{"POST", configs, 3}},
		{name: "429 without Retry-After on listing configs",
			faults: []linodetest.Fault{{Method: "GET", Path: configs, Status: 429}},
			waits:  []time.Duration{time.Second}, count: count{"GET", configs, 2}},
		{name: "500 twice on adding a node",
			faults: []linodetest.Fault{{Method: "POST", Path: nodes, Status: 500, Times: 2}},
			waits:  []time.Duration{time.Second, 2 * time.Second}, count: count{"POST", nodes, 6}},
		{name: "503 on listing nodes",
			faults: []linodetest.Fault{{Method: "GET", Path: nodes, Status: 503}},
			waits:  []time.Duration{time.Second}, count: count{"GET", nodes, 3}},
		{name: "500 on draining the old set", before: nbGreen, drains: true,
			faults: []linodetest.Fault{{Method: "PUT", Path: aNode, Status: 500}},
			waits:  []time.Duration{time.Second}, count: count{"PUT", aNode, 5}},
		{name: "config created but the answer lost",
			faults: []linodetest.Fault{{Method: "POST", Path: configs, Status: 500, AfterHandling: true}},
			waits:  []time.Duration{time.Second}, count: count{"POST", configs, 2}},
		{name: "both configs created but the answers lost",
			faults: []linodetest.Fault{{Method: "POST", Path: configs, Status: 502, Times: 2, AfterHandling: true}},
			waits:  []time.Duration{time.Second, time.Second}, count: count{"POST", configs, 2}},
		{name: "node added but the answer lost",
			faults: []linodetest.Fault{{Method: "POST", Path: nodes, Status: 500, AfterHandling: true}},
			waits:  []time.Duration{time.Second}, count: count{"POST", nodes, 4}},
		{name: "node drained but the answer lost", before: nbGreen, drains: true,
			faults: []linodetest.Fault{{Method: "PUT", Path: aNode, Status: 504, AfterHandling: true}},
			waits:  []time.Duration{time.Second}, count: count{"PUT", aNode, 5}},
		{name: "node removed but the answer lost", before: nbGreen, drain: true,
			faults: []linodetest.Fault{{Method: "DELETE", Path: aNode, Status: 500, AfterHandling: true}},
			waits:  []time.Duration{drainWait, time.Second}, count: count{"DELETE", aNode, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNBEnv(t, nil)
			ctx := context.Background()
			if tt.before != nil {
				if err := e.sw.Accept(ctx, tt.before); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.drain {
				for _, f := range tt.faults {
					e.api.Inject(f)
				}
			}
			waited := len(e.clock.Waits())
			if err := e.sw.Accept(ctx, nbBlue); err != nil {
				t.Fatalf("Accept = %v", err)
			}
			if tt.drain {
				for _, f := range tt.faults {
					e.api.Inject(f)
				}
				if err := e.sw.Drain(ctx, tt.before); err != nil {
					t.Fatalf("Drain = %v", err)
				}
			}
			if got := e.clock.Waits()[waited:]; !slices.Equal(got, tt.waits) {
				t.Errorf("waited %v, want %v", got, tt.waits)
			}
			if got := e.api.Count(tt.count.method, tt.count.path); got != tt.count.n {
				t.Errorf("%d %s %s requests, want %d", got, tt.count.method, tt.count.path, tt.count.n)
			}
			var drained []deployer.Server
			if tt.drains {
				drained = tt.before
			}
			if got, want := nodeLines(e.api, e.nb.ID), wantNodes(nbBlue, drained); !slices.Equal(got, want) {
				t.Errorf("nodes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if cfgs := e.api.NodeBalancerConfigs(e.nb.ID); len(cfgs) != 2 {
				t.Errorf("%d configs, want 2: %+v", len(cfgs), cfgs)
			}
		})
	}
}

// What is on port 53 already decides what Accept creates: a UDP config
// there is used as it is, other ports are left alone, and an HTTP or HTTPS
// config on the port is a conflict Accept refuses without changing
// anything.
func TestNodeBalancerSwitchPort53Configs(t *testing.T) {
	tests := []struct {
		name     string
		existing []linodego.NodeBalancerConfigCreateOptions
		want     []string // "protocol port" of the configs after Accept
		wantErr  string   // %d: the ID of the first existing config
	}{
		{name: "none", want: []string{"udp 53", "tcp 53"}},
		{name: "UDP on 53 is used",
			existing: []linodego.NodeBalancerConfigCreateOptions{{Port: 53, Protocol: linodego.ProtocolUDP, Algorithm: linodego.AlgorithmSource}},
			want:     []string{"udp 53", "tcp 53"}},
		{name: "HTTP on 80 is left alone",
			existing: []linodego.NodeBalancerConfigCreateOptions{{Port: 80, Protocol: linodego.ProtocolHTTP}},
			want:     []string{"http 80", "udp 53", "tcp 53"}},
		{name: "HTTP on 53 is a conflict",
			existing: []linodego.NodeBalancerConfigCreateOptions{{Port: 53, Protocol: linodego.ProtocolHTTP}},
			want:     []string{"http 53"},
			wantErr:  "NodeBalancer %d's port 53 is configured for HTTP (config %d); DNS needs tcp there: change or delete that config"},
		{name: "HTTPS on 53 is a conflict",
			existing: []linodego.NodeBalancerConfigCreateOptions{{Port: 53, Protocol: linodego.ProtocolHTTPS}},
			want:     []string{"https 53"},
			wantErr:  "NodeBalancer %d's port 53 is configured for HTTPS (config %d); DNS needs tcp there: change or delete that config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNBEnv(t, nil)
			ctx := context.Background()
			client := e.api.NewClient(testToken)
			var firstID int
			for i, o := range tt.existing {
				c, err := client.CreateNodeBalancerConfig(ctx, e.nb.ID, o)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					firstID = c.ID
				}
			}
			err := e.sw.Accept(ctx, nbBlue)
			if tt.wantErr != "" {
				want := fmt.Sprintf(tt.wantErr, e.nb.ID, firstID)
				if err == nil || deployer.ErrorMessage(err) != want || deployer.ErrorCode(err) != deployer.CodeConflict {
					t.Errorf("Accept = %v, want %q", err, want)
				}
				if n := len(e.api.NodeBalancerNodes(e.nb.ID)); n != 0 {
					t.Errorf("%d nodes were added", n)
				}
			} else if err != nil {
				t.Fatalf("Accept = %v", err)
			}
			var got []string
			for _, c := range e.api.NodeBalancerConfigs(e.nb.ID) {
				got = append(got, fmt.Sprintf("%s %d", c.Protocol, c.Port))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("configs %v, want %v", got, tt.want)
			}
			if len(tt.existing) > 0 && tt.wantErr == "" {
				if cfgs := e.api.NodeBalancerConfigs(e.nb.ID); cfgs[0].ID != firstID {
					t.Errorf("the existing config %d was replaced: %+v", firstID, cfgs)
				}
			}
		})
	}
}

// A NodeBalancer ID that is not in the account is said in plain words, by
// Accept and by Drain.
func TestNodeBalancerSwitchUnknownNodeBalancer(t *testing.T) {
	var missing int
	e := newNBEnv(t, nil, func(o *NodeBalancerOptions) {
		missing = o.NodeBalancerID + 1000
		o.NodeBalancerID = missing
	})
	want := fmt.Sprintf("Linode has no NodeBalancer %d in this account (is nodebalancer_id right?)", missing)
	ctx := context.Background()
	for what, call := range map[string]func() error{
		"Accept": func() error { return e.sw.Accept(ctx, nbBlue) },
		"Drain":  func() error { return e.sw.Drain(ctx, nbBlue) },
	} {
		err := call()
		if err == nil || deployer.ErrorMessage(err) != want || deployer.ErrorCode(err) != deployer.CodeNotFound {
			t.Errorf("%s = %v, want %q", what, err, want)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("%s's error has the token in it", what)
		}
	}
	if len(e.api.NodeBalancerConfigs(e.nb.ID)) != 0 {
		t.Error("configs were created on the other NodeBalancer")
	}
}

// nameServer is a small authoritative DNS server on loopback answering SOA
// queries for example.test. with its name as EDNS NSID.
type nameServer struct {
	name string
	addr string // 127.0.0.1:port, the same port over UDP and TCP
	srvs []*dns.Server
	once sync.Once
}

func startNameServer(t *testing.T, name string) *nameServer {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeSOA && r.Question[0].Name == "example.test." {
			soa, _ := dns.NewRR("example.test. 300 IN SOA " + name + ".example.test. hostmaster.example.test. 7 3600 600 86400 300")
			m.Answer = append(m.Answer, soa)
		} else {
			m.Rcode = dns.RcodeRefused
		}
		if r.IsEdns0() != nil {
			m.SetEdns0(1232, false)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString([]byte(name))})
		}
		w.WriteMsg(m)
	})
	for range 8 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			u.Close()
			continue
		}
		ns := &nameServer{name: name, addr: u.LocalAddr().String(),
			srvs: []*dns.Server{{PacketConn: u, Handler: h}, {Listener: l, Handler: h}}}
		for _, srv := range ns.srvs {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ActivateAndServe()
			<-started
		}
		t.Cleanup(ns.stop)
		return ns
	}
	t.Fatal("no port free on 127.0.0.1 for both UDP and TCP")
	return nil
}

func (ns *nameServer) stop() {
	ns.once.Do(func() {
		for _, srv := range ns.srvs {
			srv.Shutdown()
		}
	})
}

func (ns *nameServer) server(role string) deployer.Server {
	return deployer.Server{Name: ns.name, Role: role, Addr: ns.addr}
}

// askSOA sends one SOA query for example.test. over network and returns the
// NSID of the server that answered; any other outcome is an error.
func askSOA(network, addr string) (string, error) {
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		return "", fmt.Errorf("rcode %s, aa %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
	}
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				b, err := hex.DecodeString(n.Nsid)
				if err == nil && len(b) > 0 {
					return string(b), nil
				}
			}
		}
	}
	return "", errors.New("no NSID in the answer")
}

// answeredBy sends n queries over each of UDP and TCP to addr and returns
// how many each server answered; a failed query fails the test.
func answeredBy(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, network := range []string{"udp", "tcp"} {
		for range n {
			nsid, err := askSOA(network, addr)
			if err != nil {
				t.Fatalf("%s query through the NodeBalancer: %v", network, err)
			}
			out[nsid]++
		}
	}
	return out
}

// onlyFrom reports whether every answer came from one of names, and each of
// them answered.
func onlyFrom(got map[string]int, names ...string) bool {
	if len(got) != len(names) {
		return false
	}
	for _, n := range names {
		if got[n] == 0 {
			return false
		}
	}
	return true
}

// queryLoop sends queries through the NodeBalancer, UDP and TCP in turn,
// until stopped or max is reached, and counts answers by the phase the test
// was in when each query was sent.
type queryLoop struct {
	phase atomic.Int32
	total atomic.Int64
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	answers [2]map[string]int // phase → NSID → answers
	failed  int
	errs    []string // the first few failures
}

func startQueryLoop(addr string, max int) *queryLoop {
	l := &queryLoop{stop: make(chan struct{}), done: make(chan struct{}),
		answers: [2]map[string]int{{}, {}}}
	go func() {
		defer close(l.done)
		for i := range max {
			select {
			case <-l.stop:
				return
			default:
			}
			network := "udp"
			if i%2 == 1 {
				network = "tcp"
			}
			phase := l.phase.Load()
			nsid, err := askSOA(network, addr)
			l.mu.Lock()
			if err != nil {
				l.failed++
				if len(l.errs) < 5 {
					l.errs = append(l.errs, network+": "+err.Error())
				}
			} else {
				l.answers[phase][nsid]++
			}
			l.mu.Unlock()
			l.total.Add(1)
		}
	}()
	return l
}

func (l *queryLoop) finish() {
	close(l.stop)
	<-l.done
}

// The fake NodeBalancer forwards real DNS to its nodes: answers come only
// from accepting nodes, and a switch to another set, with a query loop
// running through it, loses no query.
func TestNodeBalancerSwitchForwardsDNS(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newNBEnv(t, clock)
	front := e.api.NodeBalancerFrontend(e.nb.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	b1, b2 := startNameServer(t, "ns1-6"), startNameServer(t, "ns2-6")
	g1, g2 := startNameServer(t, "ns1-7"), startNameServer(t, "ns2-7")
	// Each name server is an instance with a private address the
	// NodeBalancer reaches it on; its public address is its loopback one.
	private := map[string]string{}
	instance := func(ns *nameServer, role string) deployer.Server {
		sv := ns.server(role)
		host, _, _ := net.SplitHostPort(sv.Addr)
		private[sv.Name] = "192.168.130." + sv.Name[2:3] + sv.Name[4:]
		in := e.api.AddInstance(linodetest.Instance{Label: "lb-" + sv.Name, Region: e.nb.Region, IPv4: host, PrivateIPv4: private[sv.Name]})
		sv.ID = strconv.Itoa(in.ID)
		return sv
	}
	blue := []deployer.Server{instance(b1, "ns1"), instance(b2, "ns2")}
	green := []deployer.Server{instance(g1, "ns1"), instance(g2, "ns2")}

	if err := e.sw.Accept(ctx, blue); err != nil {
		t.Fatal(err)
	}
	if got := answeredBy(t, front, 10); !onlyFrom(got, "ns1-6", "ns2-6") {
		t.Fatalf("with blue accepting, answers came from %v", got)
	}

	const maxQueries = 20000
	loop := startQueryLoop(front, maxQueries)
	eventually.True(t, "queries through blue", func() bool { return loop.total.Load() >= 20 })

	if err := e.sw.Accept(ctx, green); err != nil {
		loop.finish()
		t.Fatal(err)
	}
	loop.phase.Store(1)
	// Blue's nodes are still there, in drain mode: new queries skip them.
	if got := answeredBy(t, front, 10); !onlyFrom(got, "ns1-7", "ns2-7") {
		t.Errorf("with green accepting and blue draining, answers came from %v", got)
	}
	if err := waitOut(t, clock, DefaultDrainWait, func() error { return e.sw.Drain(ctx, blue) }, nil); err != nil {
		loop.finish()
		t.Fatal(err)
	}
	// The old set is retired; queries still all go to green.
	b1.stop()
	b2.stop()
	after := loop.total.Load()
	eventually.True(t, "queries through green after the switch", func() bool { return loop.total.Load() >= after+20 })
	loop.finish()

	loop.mu.Lock()
	defer loop.mu.Unlock()
	t.Logf("query loop: %d queries, %d failed; before Accept(green) returned: %v; after: %v",
		loop.total.Load(), loop.failed, loop.answers[0], loop.answers[1])
	if loop.total.Load() >= maxQueries {
		t.Errorf("the loop ran out of queries (%d) before the switch was over", maxQueries)
	}
	if loop.failed != 0 {
		t.Errorf("%d queries failed during the switch: %v", loop.failed, loop.errs)
	}
	for phase, answers := range loop.answers {
		for nsid := range answers {
			known := []string{"ns1-6", "ns2-6", "ns1-7", "ns2-7"}
			if phase == 1 {
				known = known[2:]
			}
			if !slices.Contains(known, nsid) {
				t.Errorf("phase %d: an answer from %q", phase, nsid)
			}
		}
	}
	if loop.answers[1]["ns1-7"] == 0 || loop.answers[1]["ns2-7"] == 0 {
		t.Errorf("after the switch the loop's answers came from %v, want both green servers", loop.answers[1])
	}
	if got := answeredBy(t, front, 10); !onlyFrom(got, "ns1-7", "ns2-7") {
		t.Errorf("after draining blue, answers came from %v", got)
	}
	fwd := e.api.NodeBalancerForwarded(e.nb.ID)
	t.Logf("forwarded per node: %v", fwd)
	for _, s := range green {
		_, port, _ := net.SplitHostPort(s.Addr)
		if f := fwd[net.JoinHostPort(private[s.Name], port)]; f.UDP == 0 || f.TCP == 0 {
			t.Errorf("%s got %d UDP queries and %d TCP connections, want some of both", s.Name, f.UDP, f.TCP)
		}
	}
}
