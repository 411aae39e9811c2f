package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// udpSize is the EDNS0 buffer size asked for (DNS Flag Day 2020).
const udpSize = 1232

// query is one question to one server over one transport.
type query struct {
	target string // the server's name, for messages
	name   string // fully qualified
	qtype  uint16
	net    string // "udp" or "tcp"
}

// String names the query for chat: "ns2-7: SOA example.test. over UDP".
func (q query) String() string {
	return fmt.Sprintf("%s: %s %s over %s", q.target, dns.TypeToString[q.qtype], q.name, strings.ToUpper(q.net))
}

// withNet is q over another transport.
func (q query) withNet(network string) query {
	q.net = network
	return q
}

// exchange asks addr the query, bounded by timeout and by ctx: ending ctx
// closes the connection at once instead of waiting for the timeout.
func exchange(ctx context.Context, q query, addr string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: q.net, Timeout: timeout}
	conn, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, newMsg(q.name, q.qtype), conn)
	return r, err
}

// newMsg is a non-recursive question with an EDNS0 OPT record carrying an
// empty NSID option, so the server says who it is (RFC 5001).
func newMsg(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(udpSize, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return m
}

// failure phrases a failed exchange for chat, after the query's name:
// "timed out after 2s", "failed: connection refused".
func failure(ctx context.Context, err error, timeout time.Duration) string {
	if ctx.Err() != nil {
		return "was cancelled: " + context.Cause(ctx).Error()
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timed out after " + timeout.String()
	}
	return "failed: " + cause(err)
}

// cause is the innermost part of a network error worth showing a person:
// "connection refused" rather than "read udp 127.0.0.1:…: connection refused".
func cause(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the connection closed without an answer"
	}
	for {
		switch e := err.(type) {
		case *net.OpError:
			err = e.Err
		case *os.SyscallError:
			err = e.Err
		default:
			return err.Error()
		}
	}
}

// rcodeText is "SERVFAIL" for dns.RcodeServerFailure.
func rcodeText(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}

// rdata is an RR as a zone file prints it, without owner, TTL, class and type.
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}
