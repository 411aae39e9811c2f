package nginx

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/nginx/nginxtest"
	"github.com/miekg/dns"
)

// streamModule is where Debian's libnginx-mod-stream puts the module.
const streamModule = nginxtest.StreamModule

// testZone is the zone every test backend serves.
const testZone = "example.test."

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// nginxBinary returns the nginx to test with, or stops the test when nginx
// or its stream module is missing.
func nginxBinary(t testing.TB) string { return nginxtest.Binary(t) }

// testNginx is a real nginx with its own prefix directory, started by a
// test, serving a stream config file the switch writes.
type testNginx struct {
	bin        string
	dir        string
	conf       string // nginx.conf
	pidFile    string
	streamConf string // the switch's ConfigPath
	addr       string // 127.0.0.1:port, UDP and TCP
}

// startNginx starts nginx with an empty stream config, listening nowhere
// until the switch's first Accept.
func startNginx(t testing.TB) *testNginx {
	t.Helper()
	n := nginxtest.Start(t)
	return &testNginx{bin: n.Bin, dir: n.Dir, conf: n.Conf, pidFile: n.PIDFile, streamConf: n.StreamConf, addr: n.Addr}
}

// args are the command-line flags that point nginx at this instance.
func (n *testNginx) args() []string {
	return []string{"-p", n.dir + "/", "-c", n.conf}
}

// options are switch options for this nginx, reached through exec, with
// the project's template.
func (n *testNginx) options(t testing.TB, exec Executor) Options {
	return Options{
		Hosts:        []Host{{Name: "lb1", Executor: exec, Endpoint: n.addr}},
		ConfigPath:   n.streamConf,
		TemplateFS:   os.DirFS("../../configs"),
		TemplatePath: "nginx/stream.conf.tmpl",
		NginxBinary:  n.bin,
		NginxArgs:    n.args(),
		PIDFile:      n.pidFile,
		Listen:       n.addr,
		Upstream:     "greenlight_ns",
		Logger:       testLogger(t),
	}
}

func newSwitch(t testing.TB, opts Options) *Switch {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// freeAddr returns a loopback address whose port is free for UDP and TCP.
func freeAddr(t testing.TB) string { return nginxtest.FreeAddr(t) }

// startBackends starts an authoritative DNS server for each name, on
// 127.0.0.1 with the same port for UDP and TCP, answering SOA for
// example.test. with its name as EDNS NSID.
func startBackends(t testing.TB, names ...string) []deployer.Server {
	t.Helper()
	var out []deployer.Server
	for _, name := range names {
		out = append(out, startBackend(t, name))
	}
	return out
}

func startBackend(t testing.TB, name string) deployer.Server {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 && r.Question[0].Name == testZone && r.Question[0].Qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, &dns.SOA{
				Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
				Ns:  "ns1." + testZone, Mbox: "hostmaster." + testZone,
				Serial: 2026110101, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300,
			})
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
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ActivateAndServe()
			<-started
			t.Cleanup(func() { srv.Shutdown() })
		}
		return deployer.Server{ID: name, Name: name, Role: strings.Split(name, "-")[0], Addr: pc.LocalAddr().String()}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return deployer.Server{}
}

// query asks addr for example.test. SOA over network with the NSID option
// and returns the NSID of the answer.
func query(network, addr string) (string, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(soaQuery(), addr)
	if err != nil {
		return "", err
	}
	return answerNSID(r)
}

func soaQuery() *dns.Msg {
	m := new(dns.Msg).SetQuestion(testZone, dns.TypeSOA)
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return m
}

// answerNSID checks r is an authoritative SOA answer and returns its NSID.
func answerNSID(r *dns.Msg) (string, error) {
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		return "", fmt.Errorf("bad answer: rcode %s, aa %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
	}
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				b, err := hex.DecodeString(n.Nsid)
				return string(b), err
			}
		}
	}
	return "", errors.New("answer carries no NSID")
}

// answeredBy asks addr once over UDP and once over TCP and fails the test
// unless both answers come from one of servers.
func answeredBy(t testing.TB, addr string, servers []deployer.Server) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		got, err := query(network, addr)
		if err != nil {
			t.Fatalf("%s query through nginx: %v", network, err)
		}
		if !isOneOf(got, servers) {
			t.Fatalf("%s query through nginx answered by %q, want one of %s", network, got, names(servers))
		}
	}
}

func isOneOf(name string, servers []deployer.Server) bool {
	for _, s := range servers {
		if s.Name == name {
			return true
		}
	}
	return false
}
