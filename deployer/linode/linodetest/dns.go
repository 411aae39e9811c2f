package linodetest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// BaseSerial is the SOA serial of servers booted from a distribution image;
// a private image "private/N" serves BaseSerial+N, so newer images serve
// newer zones.
const BaseSerial = 2026110100

// NameServers runs a real authoritative DNS server, UDP and TCP, for every
// running instance of a fake, on the instance's address (give the fake
// Options.IPv4 = Loopback) and Port: the fake's OnRunning and OnDeleted
// hooks. Each answers for Zones with SOA, NS and an A record, sets AA, and
// gives its instance's label as EDNS NSID, like nsd on a provisioned server.
//
// An instance whose cloud-init user data writes zone files and an nsd.conf
// naming them (configs/cloud-init/nsd.yaml with zones.dir) serves exactly
// those files instead, and allows AXFR as the nsd.conf's provide-xfr lines
// say (TSIG-signed when they name a key); user data whose zone files do not
// load makes the instance fail to boot, as nsd would not start.
type NameServers struct {
	Port  int
	Zones []string

	mu       sync.Mutex
	servers  map[int][]*dns.Server // by instance ID
	tcpDown  map[string]bool       // images whose servers do not answer over TCP
	answered atomic.Int64
	closed   bool
}

// NewNameServers picks a free port for the servers of zones.
func NewNameServers(zones ...string) (*NameServers, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for i, z := range zones {
		zones[i] = dns.Fqdn(strings.ToLower(z))
	}
	return &NameServers{Port: port, Zones: zones, servers: map[int][]*dns.Server{}, tcpDown: map[string]bool{}}, nil
}

// BreakTCP makes servers booted from image answer only over UDP, as a
// server whose firewall forgets TCP port 53 does.
func (n *NameServers) BreakTCP(image string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tcpDown[image] = true
}

// Answered is how many queries the servers have answered.
func (n *NameServers) Answered() int64 { return n.answered.Load() }

// Serial is the SOA serial a server booted from image serves.
func Serial(image string) uint32 {
	if v, ok := strings.CutPrefix(image, "private/"); ok {
		if id, err := strconv.Atoi(v); err == nil {
			return BaseSerial + uint32(id)
		}
	}
	return BaseSerial
}

// OnRunning starts in's server; use it as Options.OnRunning.
func (n *NameServers) OnRunning(in Instance) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("the name servers are closed")
	}
	addr := net.JoinHostPort(in.IPv4, strconv.Itoa(n.Port))
	served, err := zonesFromUserData(in.UserData)
	if err != nil {
		return fmt.Errorf("%s cannot serve its user data's zones: %w", in.Label, err)
	}
	h := &nameServer{label: in.Label, serial: Serial(in.Image), zones: n.Zones, answered: &n.answered, served: served}
	nets := []string{"udp", "tcp"}
	if n.tcpDown[in.Image] {
		nets = nets[:1]
	}
	var started []*dns.Server
	for _, network := range nets {
		ready := make(chan error, 1)
		srv := &dns.Server{Addr: addr, Net: network, Handler: h, NotifyStartedFunc: func() { ready <- nil }}
		if served != nil && len(served.keys) > 0 {
			srv.TsigSecret = served.keys
		}
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				select {
				case ready <- err:
				default:
				}
			}
		}()
		if err := <-ready; err != nil {
			for _, s := range started {
				s.Shutdown()
			}
			return fmt.Errorf("start the DNS server of %s on %s/%s: %w", in.Label, addr, network, err)
		}
		started = append(started, srv)
	}
	n.servers[in.ID] = started
	return nil
}

// OnDeleted stops in's server; use it as Options.OnDeleted.
func (n *NameServers) OnDeleted(in Instance) {
	n.mu.Lock()
	servers := n.servers[in.ID]
	delete(n.servers, in.ID)
	n.mu.Unlock()
	for _, s := range servers {
		s.Shutdown()
	}
}

// Close stops every server.
func (n *NameServers) Close() {
	n.mu.Lock()
	n.closed = true
	all := n.servers
	n.servers = map[int][]*dns.Server{}
	n.mu.Unlock()
	for _, servers := range all {
		for _, s := range servers {
			s.Shutdown()
		}
	}
}

type nameServer struct {
	label    string
	serial   uint32
	zones    []string
	answered *atomic.Int64
	served   *servedZones // nil: the built-in zones
}

// serveFiles answers from the zone files the user data carried.
func (h *nameServer) serveFiles(w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) {
	q := r.Question[0]
	zone := h.served.find(dns.CanonicalName(q.Name))
	switch {
	case zone == "":
		m.SetRcode(r, dns.RcodeRefused)
	case q.Qtype == dns.TypeAXFR:
		key, tsigOK := "", false
		if t := r.IsTsig(); t != nil {
			key, tsigOK = t.Hdr.Name, w.TsigStatus() == nil
		}
		_, isTCP := w.RemoteAddr().(*net.TCPAddr)
		if !isTCP || dns.CanonicalName(q.Name) != zone || !h.served.mayTransfer(w.RemoteAddr(), key, tsigOK) {
			m.SetRcode(r, dns.RcodeRefused)
			break
		}
		zd := h.served.zones[zone]
		m.Authoritative = true
		m.Answer = append(m.Answer, dns.Copy(zd.soa))
		for _, rr := range zd.all {
			if rr.Header().Rrtype != dns.TypeSOA {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		m.Answer = append(m.Answer, dns.Copy(zd.soa))
	case q.Qtype == dns.TypeIXFR:
		m.SetRcode(r, dns.RcodeRefused)
	default:
		h.served.zones[zone].answer(m, q)
	}
}

func (h *nameServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	if h.served != nil {
		h.serveFiles(w, r, m)
		h.reply(w, r, m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	zone := ""
	for _, z := range h.zones {
		if name == z || strings.HasSuffix(name, "."+z) {
			zone = z
		}
	}
	switch {
	case zone == "" || q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.SetRcode(r, dns.RcodeRefused)
	default:
		m.Authoritative = true
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
			Ns: "ns1." + zone, Mbox: "hostmaster." + zone, Serial: h.serial, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}
		switch {
		case name == zone && q.Qtype == dns.TypeSOA:
			m.Answer = append(m.Answer, soa)
		case name == zone && q.Qtype == dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns1." + zone})
		case name == "ns1."+zone && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 53)})
		case name == zone || name == "ns1."+zone:
			m.Ns = append(m.Ns, soa)
		default:
			m.SetRcode(r, dns.RcodeNameError)
			m.Ns = append(m.Ns, soa)
		}
	}
	h.reply(w, r, m)
}

// reply adds the NSID when asked for, and sends m.
func (h *nameServer) reply(w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) {
	if opt := r.IsEdns0(); opt != nil {
		reply := m.SetEdns0(opt.UDPSize(), false).IsEdns0()
		for _, o := range opt.Option {
			if o.Option() == dns.EDNS0NSID {
				reply.Option = append(reply.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: fmt.Sprintf("%x", h.label)})
			}
		}
	}
	h.answered.Add(1)
	// A signed request gets a signed answer; TSIG goes last, after the OPT.
	if t := r.IsTsig(); t != nil && w.TsigStatus() == nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
	w.WriteMsg(m)
}
