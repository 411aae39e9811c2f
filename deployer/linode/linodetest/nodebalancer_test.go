package linodetest_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/linode/linodego"
	"github.com/miekg/dns"
)

// keys are an answer's top-level field names, sorted.
func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// idOf is the "id" of a decoded answer.
func idOf(m map[string]any) int {
	f, _ := m["id"].(float64)
	return int(f)
}

// The field names of the answers recorded in the fixtures
// (TestNodeBalancerConfig_UDP, TestNodeBalancerNode_Create, …).
var (
	nbKeys     = []string{"client_conn_throttle", "client_udp_sess_throttle", "created", "hostname", "id", "ipv4", "ipv6", "label", "lke_cluster", "region", "tags", "transfer", "type", "updated"}
	configKeys = []string{"algorithm", "check", "check_attempts", "check_body", "check_interval", "check_passive", "check_path", "check_timeout", "cipher_suite", "id", "nodebalancer_id", "nodes_status", "port", "protocol", "proxy_protocol", "ssl_cert", "ssl_commonname", "ssl_fingerprint", "ssl_key", "stickiness", "udp_check_port", "udp_session_timeout"}
	nodeKeys   = []string{"address", "config_id", "id", "label", "mode", "nodebalancer_id", "status", "vpc_config_id", "weight"}
)

func TestNodeBalancerAPIHasTheRecordedShape(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()
	nb := s.AddNodeBalancer(linodetest.NodeBalancer{Label: "go-test-def", Region: "ap-west"})

	status, _, body := call(t, s, "GET", fmt.Sprintf("/v4/nodebalancers/%d", nb.ID), "", "")
	if status != 200 || !slices.Equal(keys(body), nbKeys) || body["label"] != "go-test-def" || body["type"] != "common" {
		t.Errorf("GET nodebalancer: %d %v", status, body)
	}

	base := fmt.Sprintf("/v4beta/nodebalancers/%d/configs", nb.ID)
	status, _, udp := call(t, s, "POST", base, "", `{"port":80,"protocol":"udp","algorithm":"roundrobin","check_interval":60,"udp_check_port":1234}`)
	if status != 200 || !slices.Equal(keys(udp), configKeys) {
		t.Fatalf("create UDP config: %d %v", status, udp)
	}
	for k, want := range map[string]any{"protocol": "udp", "stickiness": "session", "check": "none", "check_passive": false,
		"cipher_suite": "none", "udp_check_port": 1234.0, "udp_session_timeout": 16.0, "check_timeout": 30.0,
		"check_attempts": 3.0, "proxy_protocol": "none", "nodebalancer_id": float64(nb.ID)} {
		if udp[k] != want {
			t.Errorf("UDP config %s = %v, want %v", k, udp[k], want)
		}
	}
	status, _, tcp := call(t, s, "POST", base, "", `{"port":80,"protocol":"http","algorithm":"roundrobin","check_interval":60}`)
	if status != 200 || tcp["stickiness"] != "none" || tcp["check_passive"] != true || tcp["cipher_suite"] != "recommended" || tcp["udp_check_port"] != 80.0 {
		t.Errorf("create HTTP config beside the UDP one on the same port: %d %v", status, tcp)
	}
	status, _, body = call(t, s, "POST", base, "", `{"port":80,"protocol":"tcp"}`)
	if status != 400 || !equalJSON(body, `{"errors":[{"reason":"Port 80 is already in use by another config","field":"port"}]}`) {
		t.Errorf("second TCP-side config on a port: %d %v", status, body)
	}
	cfgPath := fmt.Sprintf("%s/%d", base, idOf(tcp))
	status, _, body = call(t, s, "PUT", cfgPath, "", `{"port":8080,"protocol":"tcp","proxy_protocol":"v2","algorithm":"leastconn"}`)
	if status != 200 || body["port"] != 8080.0 || body["protocol"] != "tcp" || body["algorithm"] != "leastconn" || body["check_interval"] != 60.0 {
		t.Errorf("update config: %d %v", status, body)
	}

	nodes := fmt.Sprintf("%s/%d/nodes", base, idOf(udp))
	s.AddInstance(linodetest.Instance{Label: "backend", Region: nb.Region, PrivateIPv4: "192.168.128.10"})
	status, _, node := call(t, s, "POST", nodes, "", `{"address":"192.168.128.10:8080","label":"go-node-test-def","weight":10,"mode":"accept"}`)
	if status != 200 || !slices.Equal(keys(node), nodeKeys) || node["status"] != "Unknown" || node["vpc_config_id"] != nil ||
		node["config_id"] != udp["id"] || node["mode"] != "accept" {
		t.Fatalf("create node: %d %v", status, node)
	}
	status, _, body = call(t, s, "POST", nodes, "", `{"address":"192.168.128.10:8080","label":"again"}`)
	if status != 400 || body["errors"].([]any)[0].(map[string]any)["field"] != "address" {
		t.Errorf("second node with the same address: %d %v", status, body)
	}
	status, _, body = call(t, s, "POST", nodes, "", `{"address":"not-an-ip","label":"x","weight":0,"mode":"sideways"}`)
	if status != 400 || len(body["errors"].([]any)) != 4 {
		t.Errorf("bad node: %d %v", status, body)
	}
	nodePath := fmt.Sprintf("%s/%d", nodes, idOf(node))
	status, _, body = call(t, s, "PUT", nodePath, "", `{"label":"go-node-test-def_r","weight":100,"mode":"drain"}`)
	if status != 200 || body["mode"] != "drain" || body["weight"] != 100.0 || body["address"] != "192.168.128.10:8080" {
		t.Errorf("update node: %d %v", status, body)
	}
	status, _, body = call(t, s, "GET", nodes, "", "")
	if status != 200 || body["results"] != 1.0 || body["pages"] != 1.0 || len(body["data"].([]any)) != 1 {
		t.Errorf("list nodes: %d %v", status, body)
	}
	if status, _, body = call(t, s, "DELETE", nodePath, "", ""); status != 200 || len(body) != 0 {
		t.Errorf("delete node: %d %v", status, body)
	}
	if status, _, _ = call(t, s, "DELETE", nodePath, "", ""); status != 404 {
		t.Errorf("delete the node again: %d, want 404", status)
	}
	if status, _, _ = call(t, s, "GET", "/v4/nodebalancers/999/configs", "", ""); status != 404 {
		t.Errorf("configs of a NodeBalancer that does not exist: %d, want 404", status)
	}
	if got := s.NodeBalancerConfigs(nb.ID); len(got) != 2 || got[0].Protocol != "udp" || got[1].Port != 8080 {
		t.Errorf("NodeBalancerConfigs = %+v", got)
	}
}

// startNS serves DNS on ip (UDP and TCP on one free port), answering every
// query with its NSID.
func startNS(t *testing.T, ip, nsid string) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		if r.IsEdns0() != nil {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString([]byte(nsid))})
		}
		w.WriteMsg(m)
	})
	for range 8 {
		u, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			u.Close()
			continue
		}
		for _, srv := range []*dns.Server{{PacketConn: u, Handler: h}, {Listener: l, Handler: h}} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ActivateAndServe()
			<-started
			t.Cleanup(func() { srv.Shutdown() })
		}
		return u.LocalAddr().String()
	}
	t.Fatalf("no port free on %s for both UDP and TCP", ip)
	return ""
}

// twoNameServers starts name servers "a" and "b" as instances in nb's
// region and returns the node addresses that reach them. Each instance's
// public address is its loopback one, where its server answers; the node
// address is its private address at the server's port.
func twoNameServers(t *testing.T, s *linodetest.Server, nb linodetest.NodeBalancer) (a, b string) {
	t.Helper()
	private := func(addr, label, ip string) string {
		host, port, _ := net.SplitHostPort(addr)
		s.AddInstance(linodetest.Instance{Label: label, Region: nb.Region, IPv4: host, PrivateIPv4: ip})
		return net.JoinHostPort(ip, port)
	}
	return private(startNS(t, "127.0.0.2", "a"), "ns-a", "192.168.128.2"),
		private(startNS(t, "127.0.0.3", "b"), "ns-b", "192.168.128.3")
}

// nsidQuery asks for a SOA and the answering server's NSID.
func nsidQuery() *dns.Msg {
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return q
}

// nsidOf is the NSID r carries, or "".
func nsidOf(r *dns.Msg) string {
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				b, _ := hex.DecodeString(n.Nsid)
				return string(b)
			}
		}
	}
	return ""
}

// ask sends one NSID query over network and returns the NSID and rcode.
func ask(t *testing.T, network, addr string) (string, int) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(nsidQuery(), addr)
	if err != nil {
		t.Fatalf("%s query to %s: %v", network, addr, err)
	}
	return nsidOf(r), r.Rcode
}

// askOn sends one NSID query on an open connection and returns the NSID.
func askOn(co *dns.Conn) (string, error) {
	if err := co.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return "", err
	}
	if err := co.WriteMsg(nsidQuery()); err != nil {
		return "", err
	}
	r, err := co.ReadMsg()
	if err != nil {
		return "", err
	}
	return nsidOf(r), nil
}

func TestNodeBalancerFrontendForwardsToAcceptingNodes(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{})
	defer s.Close()
	nb := s.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb"})
	front := s.NodeBalancerFrontend(nb.ID)
	if again := s.NodeBalancerFrontend(nb.ID); again != front {
		t.Errorf("second frontend %s, want the first, %s", again, front)
	}
	a, b := twoNameServers(t, s, nb)

	for _, network := range []string{"udp", "tcp"} {
		if nsid, rcode := ask(t, network, front); rcode != dns.RcodeServerFailure || nsid != "" {
			t.Errorf("%s without configs: rcode %d nsid %q, want SERVFAIL", network, rcode, nsid)
		}
	}

	ctx := context.Background()
	c := s.NewClient(token)
	ids := map[string]map[string]int{} // protocol → address → node ID
	cfgs := map[string]int{}
	for _, proto := range []linodego.ConfigProtocol{linodego.ProtocolUDP, linodego.ProtocolTCP} {
		cfg, err := c.CreateNodeBalancerConfig(ctx, nb.ID, linodego.NodeBalancerConfigCreateOptions{Port: 53, Protocol: proto})
		if err != nil {
			t.Fatal(err)
		}
		cfgs[string(proto)] = cfg.ID
		ids[string(proto)] = map[string]int{}
		for i, addr := range []string{a, b} {
			n, err := c.CreateNodeBalancerNode(ctx, nb.ID, cfg.ID, linodego.NodeBalancerNodeCreateOptions{
				Address: addr, Label: fmt.Sprintf("node-%d", i), Mode: linodego.ModeAccept})
			if err != nil {
				t.Fatal(err)
			}
			ids[string(proto)][addr] = n.ID
		}
	}

	for _, network := range []string{"udp", "tcp"} {
		var got []string
		for range 4 {
			nsid, rcode := ask(t, network, front)
			if rcode != dns.RcodeSuccess {
				t.Fatalf("%s: rcode %d", network, rcode)
			}
			got = append(got, nsid)
		}
		if !slices.Equal(got, []string{"a", "b", "a", "b"}) {
			t.Errorf("%s answers %v, want round robin a b a b", network, got)
		}
	}

	// a drains over UDP only: UDP goes to b alone, TCP still to both.
	if _, err := c.UpdateNodeBalancerNode(ctx, nb.ID, cfgs["udp"], ids["udp"][a], linodego.NodeBalancerNodeUpdateOptions{Mode: linodego.ModeDrain}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if nsid, _ := ask(t, "udp", front); nsid != "b" {
			t.Errorf("UDP answered by %q with a draining, want b", nsid)
		}
	}
	tcp := map[string]bool{}
	for range 4 {
		nsid, _ := ask(t, "tcp", front)
		tcp[nsid] = true
	}
	if !tcp["a"] || !tcp["b"] {
		t.Errorf("TCP answered by %v, want both", tcp)
	}
	if err := c.DeleteNodeBalancerNode(ctx, nb.ID, cfgs["udp"], ids["udp"][b]); err != nil {
		t.Fatal(err)
	}
	if nsid, rcode := ask(t, "udp", front); rcode != dns.RcodeServerFailure {
		t.Errorf("UDP with no accepting node answered %q rcode %d, want SERVFAIL", nsid, rcode)
	}
	fw := s.NodeBalancerForwarded(nb.ID)
	if fw[a].UDP != 2 || fw[b].UDP != 6 || fw[a].TCP+fw[b].TCP != 8 {
		t.Errorf("forwarded %+v", fw)
	}
}

// The frontend follows Linode's node modes: a backup node takes traffic
// only when no node accepts; a drained node takes no new connection while
// the one it has carries on; a rejected node's connection is cut; with the
// config gone, queries are answered SERVFAIL.
func TestNodeBalancerFrontendFollowsNodeModes(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{})
	defer s.Close()
	nb := s.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb"})
	front := s.NodeBalancerFrontend(nb.ID)
	a, b := twoNameServers(t, s, nb)

	ctx := context.Background()
	c := s.NewClient(token)
	cfg, err := c.CreateNodeBalancerConfig(ctx, nb.ID, linodego.NodeBalancerConfigCreateOptions{Port: 53, Protocol: linodego.ProtocolTCP})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for addr, mode := range map[string]linodego.NodeMode{a: linodego.ModeAccept, b: linodego.ModeBackup} {
		n, err := c.CreateNodeBalancerNode(ctx, nb.ID, cfg.ID, linodego.NodeBalancerNodeCreateOptions{
			Address: addr, Label: "node-" + string(mode), Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		ids[addr] = n.ID
	}
	setMode := func(addr string, mode linodego.NodeMode) {
		t.Helper()
		if _, err := c.UpdateNodeBalancerNode(ctx, nb.ID, cfg.ID, ids[addr], linodego.NodeBalancerNodeUpdateOptions{Mode: mode}); err != nil {
			t.Fatal(err)
		}
	}
	answers := func() map[string]int {
		got := map[string]int{}
		for range 4 {
			nsid, _ := ask(t, "tcp", front)
			got[nsid]++
		}
		return got
	}
	if got := answers(); got["a"] != 4 {
		t.Errorf("with a accepting and b backup, answers came from %v, want a alone", got)
	}

	held, err := dns.DialTimeout("tcp", front, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if nsid, err := askOn(held); err != nil || nsid != "a" {
		t.Fatalf("held connection answered by %q, %v; want a", nsid, err)
	}
	setMode(a, linodego.ModeDrain)
	if got := answers(); got["b"] != 4 {
		t.Errorf("with a draining and b backup, answers came from %v, want b alone", got)
	}
	if nsid, err := askOn(held); err != nil || nsid != "a" {
		t.Errorf("held connection to the draining node answered by %q, %v; want a still", nsid, err)
	}
	setMode(a, linodego.ModeReject)
	if nsid, err := askOn(held); err == nil {
		t.Errorf("held connection to the rejecting node answered by %q, want it cut", nsid)
	}

	if err := c.DeleteNodeBalancerConfig(ctx, nb.ID, cfg.ID); err != nil {
		t.Fatal(err)
	}
	if nsid, rcode := ask(t, "tcp", front); rcode != dns.RcodeServerFailure {
		t.Errorf("with the config deleted, answered by %q rcode %d, want SERVFAIL", nsid, rcode)
	}
	if fw := s.NodeBalancerForwarded(nb.ID); fw[a].TCP != 5 || fw[b].TCP != 4 || len(fw) != 2 {
		t.Errorf("forwarded %+v, want 5 connections to a and 4 to b", fw)
	}
}
