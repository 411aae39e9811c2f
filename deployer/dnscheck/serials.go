package dnscheck

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
)

// Serials asks target for each zone's SOA serial over UDP, and again over TCP
// when the UDP answer is truncated or does not come. The map is keyed by the
// zones as given. Its error is a *deployer.Error whose Message is phrased for
// chat and which wraps the cause, if any.
func (c *Checker) Serials(ctx context.Context, target deployer.CheckTarget, zones []string, timeout time.Duration) (map[string]uint32, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	serials := make(map[string]uint32, len(zones))
	for _, z := range zones {
		s, err := c.serial(ctx, target, z, timeout)
		if err != nil {
			return nil, err
		}
		serials[z] = s
	}
	return serials, nil
}

// serial asks target for one zone's serial.
func (c *Checker) serial(ctx context.Context, target deployer.CheckTarget, zone string, timeout time.Duration) (uint32, error) {
	name := dns.Fqdn(zone)
	if _, ok := dns.IsDomainName(name); !ok || zone == "" {
		return 0, deployer.Errorf(deployer.CodeInvalid, "zone %q is not a domain name", zone)
	}
	q := query{target: target.Name, name: name, qtype: dns.TypeSOA, net: "udp"}
	r, err := exchange(ctx, q, target.Addr, timeout)
	if retryOverTCP(r, err) && ctx.Err() == nil {
		c.log.Debug("dns query retried over TCP", "addr", target.Addr, "query", q.String(), "err", err)
		q = q.withNet("tcp")
		r, err = exchange(ctx, q, target.Addr, timeout)
	}
	if err != nil {
		return 0, c.serialError(target, q.String()+" "+failure(ctx, err, timeout), err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return 0, c.serialError(target, q.String()+" answered "+rcodeText(r.Rcode), nil)
	}
	soa := soaOf(r, name)
	if soa == nil {
		return 0, c.serialError(target, q.String()+" answered without the zone's SOA", nil)
	}
	return soa.Serial, nil
}

// retryOverTCP reports whether a UDP exchange deserves a second try over TCP.
func retryOverTCP(r *dns.Msg, err error) bool {
	if err != nil {
		ne, ok := errors.AsType[net.Error](err)
		return ok && ne.Timeout()
	}
	return r.Truncated
}

func (c *Checker) serialError(target deployer.CheckTarget, problem string, cause error) error {
	c.log.Debug("dns query failed", "addr", target.Addr, "problem", problem, "err", cause)
	return &deployer.Error{Code: deployer.CodeFailed, Message: problem, Err: cause}
}
