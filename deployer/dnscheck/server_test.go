package dnscheck_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// zoneText is the sample zone the test servers serve, with its serial left
// to fill in.
const zoneText = `$ORIGIN example.test.
$TTL 300
@       IN SOA ns1.example.test. hostmaster.example.test. ( %d 3600 600 1209600 300 )
        IN NS  ns1.example.test.
        IN NS  ns2.example.test.
ns1     IN A   127.0.0.1
ns2     IN A   127.0.0.1
www     IN A   192.0.2.10
version IN TXT "image v7"
`

const (
	origin     = "example.test."
	liveSerial = 2026110102
)

// zoneHandler is a tiny authoritative server for one zone, with knobs to
// make it misbehave the ways a broken deploy does.
type zoneHandler struct {
	origin      string
	records     []dns.RR
	nsid        string       // answered when asked for; "" answers none
	noAA        bool         // leave the AA flag clear
	rcode       int          // answer this instead of the zone, when not 0
	failFirst   atomic.Int64 // answer SERVFAIL to this many queries first
	truncateUDP bool         // answer every UDP query with TC set and no records
}

// newZoneHandler serves the sample zone with serial, answering as nsid.
func newZoneHandler(t *testing.T, serial uint32, nsid string) *zoneHandler {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf(zoneText, serial)), origin, "")
	h := &zoneHandler{origin: origin, nsid: nsid}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h.records = append(h.records, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone: %v", err)
	}
	return h
}

func (h *zoneHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = !h.noAA
	switch {
	case h.rcode != 0:
		m.Rcode = h.rcode
	case h.failFirst.Add(-1) >= 0:
		m.Rcode = dns.RcodeServerFailure
	case h.truncateUDP && w.LocalAddr().Network() == "udp":
		m.Truncated = true
	case len(r.Question) != 1 || !dns.IsSubDomain(h.origin, r.Question[0].Name):
		m.Authoritative = false
		m.Rcode = dns.RcodeRefused
	default:
		h.answer(m, r.Question[0])
	}
	h.edns(m, r)
	w.WriteMsg(m)
}

// answer fills in the records for q, NODATA, or NXDOMAIN.
func (h *zoneHandler) answer(m *dns.Msg, q dns.Question) {
	exists := false
	for _, rr := range h.records {
		if !strings.EqualFold(rr.Header().Name, q.Name) {
			continue
		}
		exists = true
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) > 0 {
		return
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, h.records[0]) // the SOA, for negative caching
}

// edns answers EDNS0 with EDNS0, and an asked-for NSID with h.nsid.
func (h *zoneHandler) edns(m, r *dns.Msg) {
	opt := r.IsEdns0()
	if opt == nil {
		return
	}
	m.SetEdns0(opt.UDPSize(), false)
	if h.nsid == "" {
		return
	}
	for _, o := range opt.Option {
		if o.Option() == dns.EDNS0NSID {
			reply := m.IsEdns0()
			reply.Option = append(reply.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: fmt.Sprintf("%x", h.nsid)})
		}
	}
}

// setup is how a test server listens.
type setup int

const (
	both     setup = iota // UDP and TCP answer
	tcpHangs              // UDP answers; TCP accepts and never answers
	udpDrops              // TCP answers; UDP reads and never answers
	allHang               // neither answers
	closed                // nothing listens
)

// serve starts h on 127.0.0.1 as s says, UDP and TCP on the same port, and
// returns the address.
func serve(t *testing.T, h dns.Handler, s setup) string {
	t.Helper()
	if s == closed {
		pc, l := listenPair(t)
		addr := pc.LocalAddr().String()
		pc.Close()
		l.Close()
		return addr
	}
	pc, l := listenPair(t)
	switch s {
	case both:
		start(t, &dns.Server{PacketConn: pc, Handler: h})
		start(t, &dns.Server{Listener: l, Handler: h})
	case tcpHangs:
		start(t, &dns.Server{PacketConn: pc, Handler: h})
		hang(t, l, nil)
	case udpDrops:
		drop(t, pc)
		start(t, &dns.Server{Listener: l, Handler: h})
	case allHang:
		drop(t, pc)
		hang(t, l, nil)
	}
	return pc.LocalAddr().String()
}

// listenPair listens on UDP and TCP on the same loopback port.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close() // the TCP port is taken; try another
	}
	t.Fatal("no loopback port is free for both UDP and TCP")
	return nil, nil
}

// start runs srv until the test ends, returning once it listens.
func start(t *testing.T, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
}

// hang accepts TCP connections and never answers on them; each accepted
// connection is announced on accepted, when not nil and someone listens.
func hang(t *testing.T, l net.Listener, accepted chan<- net.Conn) {
	var (
		conns   []net.Conn // owned by the accept loop until it ends
		readers sync.WaitGroup
	)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			readers.Go(func() { io.Copy(io.Discard, c) })
			select {
			case accepted <- c:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-acceptDone
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	})
}

// drop reads UDP queries and never answers them.
func drop(t *testing.T, pc net.PacketConn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
}
