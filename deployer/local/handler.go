package local

import (
	"encoding/hex"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/miekg/dns"
)

// maxUDPSize is the EDNS UDP payload size a server advertises.
const maxUDPSize = 1232

// axfrChunk is how many records go in one AXFR message.
const axfrChunk = 100

// handler answers DNS for one server. Until it is given content it answers
// REFUSED, as a machine with no zones loaded would.
type handler struct {
	name    string // the server's name
	nsid    string // name, hex-encoded for EDNS0_NSID
	log     *slog.Logger
	content atomic.Pointer[content]
}

// content is what a provisioned server serves.
type content struct {
	broken bool    // answer SERVFAIL to everything
	zones  []*zone //
}

func newHandler(name string, log *slog.Logger) *handler {
	return &handler{name: name, nsid: hex.EncodeToString([]byte(name)), log: log}
}

// serve replaces what the server answers from.
func (h *handler) serve(c *content) { h.content.Store(c) }

// ServeDNS implements dns.Handler.
func (h *handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	c := h.content.Load()
	tcp := isTCP(w)
	if z := c.transferZone(r); z != nil && tcp {
		h.transfer(w, r, z)
		return
	}
	m := respond(c, r)
	h.addEDNS(m, r)
	if !tcp {
		m.Truncate(udpSize(r))
	}
	if err := w.WriteMsg(m); err != nil {
		h.log.Debug("write DNS reply", "server", h.name, "err", err)
	}
}

// respond builds the reply to r, without EDNS.
func respond(c *content, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	switch {
	case r.Opcode != dns.OpcodeQuery:
		return m.SetRcode(r, dns.RcodeNotImplemented)
	case len(r.Question) != 1: // miekg/dns hands on a bare header that claims a question
		return m.SetRcodeFormatError(r)
	case c == nil: // not provisioned
		return m.SetRcode(r, dns.RcodeRefused)
	case c.broken:
		return m.SetRcode(r, dns.RcodeServerFailure)
	}
	q := r.Question[0]
	z := c.zoneFor(q.Name)
	if z == nil {
		return m.SetRcode(r, dns.RcodeRefused)
	}
	switch q.Qtype {
	case dns.TypeAXFR: // over UDP, or not at a zone's apex
		return m.SetRcode(r, dns.RcodeRefused)
	case dns.TypeIXFR:
		return m.SetRcode(r, dns.RcodeNotImplemented)
	}
	m.SetReply(r)
	m.Authoritative = true
	rrs, exists := z.lookup(q.Name, q.Qtype)
	switch {
	case len(rrs) > 0:
		m.Answer = rrs
	case exists: // NODATA
		m.Ns = z.negative()
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = z.negative()
	}
	return m
}

// zoneFor is the zone closest to name, or nil.
func (c *content) zoneFor(name string) *zone {
	var best *zone
	for _, z := range c.zones {
		if dns.IsSubDomain(z.origin, name) && (best == nil || len(z.origin) > len(best.origin)) {
			best = z
		}
	}
	return best
}

// transferZone is the zone r asks to transfer, or nil.
func (c *content) transferZone(r *dns.Msg) *zone {
	if c == nil || c.broken || r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeAXFR {
		return nil
	}
	name := dns.CanonicalName(r.Question[0].Name)
	for _, z := range c.zones {
		if z.origin == name {
			return z
		}
	}
	return nil
}

// transfer sends z over w as AXFR.
func (h *handler) transfer(w dns.ResponseWriter, r *dns.Msg, z *zone) {
	ch := make(chan *dns.Envelope)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		rrs := z.transfer()
		for len(rrs) > 0 {
			n := min(len(rrs), axfrChunk)
			select {
			case ch <- &dns.Envelope{RR: rrs[:n]}:
			case <-done: // Out gave up
				return
			}
			rrs = rrs[n:]
		}
	}()
	err := new(dns.Transfer).Out(w, r, ch)
	close(done)
	if err != nil {
		h.log.Debug("AXFR", "server", h.name, "zone", z.origin, "err", err)
	}
}

// addEDNS answers EDNS with EDNS: an OPT record, with the server's name as
// NSID when the query asked for it.
func (h *handler) addEDNS(m, r *dns.Msg) {
	opt := r.IsEdns0()
	if opt == nil {
		return
	}
	out := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	out.SetUDPSize(maxUDPSize)
	if wantsNSID(opt) {
		out.Option = append(out.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: h.nsid})
	}
	m.Extra = append(m.Extra, out)
}

func wantsNSID(opt *dns.OPT) bool {
	for _, o := range opt.Option {
		if o.Option() == dns.EDNS0NSID {
			return true
		}
	}
	return false
}

// udpSize is how large a UDP reply to r may be.
func udpSize(r *dns.Msg) int {
	if opt := r.IsEdns0(); opt != nil {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}
