package local

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/miekg/dns"
)

// Serials of the sample zone per image.
const (
	serialStale = 2026110100
	serialV1    = 2026110101
	serialV2    = 2026110102
	serialV3    = 2026110103
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestCloud opens a local cloud in dir whose servers boot at once.
func newTestCloud(t testing.TB, dir string, edit ...func(*Options)) *Cloud {
	t.Helper()
	opts := Options{Dir: dir, BootDelay: -1, Logger: discard()}
	for _, e := range edit {
		e(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// server is one server a test wants: name and image; provision says whether
// to load its zones.
type server struct {
	name, image string
	provision   bool
}

// startServers creates the servers, waits until they run and provisions
// those that ask for it.
func startServers(t testing.TB, c *Cloud, want ...server) []deployer.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]deployer.Server, 0, len(want))
	for _, w := range want {
		s, err := c.Create(ctx, deployer.ServerSpec{
			Service: "ns", Role: strings.Split(w.name, "-")[0], Name: w.name, Image: w.image,
			Tags: []string{deployer.TagGreenlight, deployer.ServiceTag("ns")},
		})
		if err != nil {
			t.Fatalf("Create %s: %v", w.name, err)
		}
		if s, err = c.WaitRunning(ctx, s); err != nil {
			t.Fatalf("WaitRunning %s: %v", w.name, err)
		}
		if w.provision {
			if err := c.Provision(ctx, s); err != nil {
				t.Fatalf("Provision %s: %v", w.name, err)
			}
		}
		out = append(out, s)
	}
	return out
}

// newQuery asks for name/qtype with EDNS and the NSID option.
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return m
}

// ask sends newQuery(name, qtype) to addr over network ("udp" or "tcp").
func ask(network, addr, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(newQuery(name, qtype), addr)
	return r, err
}

// nsid is the server name a reply's NSID option carries, or "".
func nsid(m *dns.Msg) string {
	opt := m.IsEdns0()
	if opt == nil {
		return ""
	}
	for _, o := range opt.Option {
		if n, ok := o.(*dns.EDNS0_NSID); ok {
			b, err := hex.DecodeString(n.Nsid)
			if err != nil {
				return "bad hex " + n.Nsid
			}
			return string(b)
		}
	}
	return ""
}

// rdata is a record's data as a zone file has it: "192.0.2.10".
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

func rdatas(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rdata(rr))
	}
	return out
}

func soaSerial(t testing.TB, m *dns.Msg) uint32 {
	t.Helper()
	for _, rr := range m.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	t.Fatalf("no SOA in answer:\n%s", m)
	return 0
}

// header is a bare 12-byte DNS header with the given section counts.
func header(id, bits, qd, an, ns, ar uint16) []byte {
	var b []byte
	for _, v := range []uint16{id, bits, qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// askRaw sends packet as it is to addr over network ("tcp" adds the length
// prefix) and reads one reply.
func askRaw(network, addr string, packet []byte) (*dns.Msg, error) {
	co, err := dns.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	co.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := co.Write(packet); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// recorder is a dns.ResponseWriter that keeps what a handler writes, for
// calling a handler without a socket.
type recorder struct {
	tcp  bool
	msgs []*dns.Msg
}

func (w *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }

func (w *recorder) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	w.msgs = append(w.msgs, m)
	return nil
}

func (w *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), w.WriteMsg(m)
}

func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}
