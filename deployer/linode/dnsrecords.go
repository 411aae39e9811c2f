package linode

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

var _ deployer.Switch = (*DNSRecordSwitch)(nil)

// DefaultRecordTTL is the TTL the DNS-record switch gives the records it
// writes when DNSRecordOptions.TTL is 0.
const DefaultRecordTTL = 2 * time.Minute

// LinodeDefaultTTL is what a record or zone TTL of 0 means in Linode's DNS
// Manager.
const LinodeDefaultTTL = 24 * time.Hour

// linodeTTLs are the TTLs Linode stores, in seconds; it rounds any other up
// to the next one.
var linodeTTLs = []int{30, 120, 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200}

// DNSRecordOptions configure a DNSRecordSwitch.
type DNSRecordOptions struct {
	// Client talks to the API; like the Cloud, the switch turns off
	// linodego's own retries and debug logging on it.
	Client   *linodego.Client
	DomainID int // the zone in Linode's DNS Manager holding the records
	// Names are the records the switch points at the servers, relative to
	// the zone ("ns1", "ns2", or the service's name; "@" or "" for the
	// apex). A name that is a server's role ("ns1") gets that server's
	// addresses; any other name gets every server's.
	Names []string
	// TTL of the records the switch writes; default 2m. Linode rounds it up
	// to one it stores (30s, 2m, 5m, 1h, …), and so does the switch.
	TTL time.Duration
	// Propagation is how long Linode's name servers may take to publish a
	// change; Drain waits it on top of the TTL. Default 0.
	Propagation time.Duration
	// Endpoints are the addresses, host:port, to check after a switch. By
	// default they are the addresses Accept last pointed the records at:
	// what a client resolving the names is sent to.
	Endpoints []string

	CallOptions
}

// DNSRecordSwitch moves traffic by pointing Linode DNS records at a set: a
// deployer.Switch for services without a load balancer. Its methods are
// safe for concurrent use and run one at a time.
//
// Accept makes each name's A records exactly the IPv4 addresses of its
// servers, and its AAAA records exactly their IPv6 addresses (none when no
// server has one), all with the switch's TTL. It changes records in place
// where it can, so a name never has no address, creates the missing ones
// and deletes the rest last. A server's addresses are its Linode
// instance's public ones when it is an instance, and the host of
// Server.Addr otherwise.
//
// Resolvers keep what they cached until its TTL runs out, so Drain waits,
// on the Clock and bounded by ctx, for the longest TTL any replaced record
// had (at least the switch's own), plus Propagation, before it returns and
// the old servers may be retired. When ctx ends first, it says so in an
// error.
type DNSRecordSwitch struct {
	opts  DNSRecordOptions
	ttl   int // seconds, as Linode stores it
	api   *Cloud
	addrs *addressBook
	log   *slog.Logger

	mu          sync.Mutex
	pending     time.Duration // longest TTL of the records Accept replaced since the last Drain
	targets     []string      // host:port of the servers the records point at, for Endpoints
	zoneDefault time.Duration // the zone's default TTL, once read
}

// NewDNSRecordSwitch returns a switch for opts. It makes no API call.
func NewDNSRecordSwitch(opts DNSRecordOptions) (*DNSRecordSwitch, error) {
	var missing []string
	if opts.Client == nil {
		missing = append(missing, "a linodego client")
	}
	if opts.DomainID <= 0 {
		missing = append(missing, "the Linode domain's ID (domain_id)")
	}
	if len(opts.Names) == 0 {
		missing = append(missing, "the names of the records to point at the servers")
	}
	if len(missing) > 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "the DNS-record switch needs %s", strings.Join(missing, ", "))
	}
	var names []string
	for _, n := range opts.Names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n == "@" {
			n = ""
		}
		if strings.ContainsAny(n, " \t/") || len(n) > 100 {
			return nil, deployer.Errorf(deployer.CodeInvalid, "%q is not a record name", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	opts.Names = names
	if opts.TTL == 0 {
		opts.TTL = DefaultRecordTTL
	}
	if opts.TTL < 0 || opts.Propagation < 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "the DNS-record switch's TTL and propagation time cannot be negative")
	}
	for _, ep := range opts.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, deployer.Errorf(deployer.CodeInvalid, "endpoint %q is not host:port", ep)
		}
	}
	opts.Endpoints = slices.Clone(opts.Endpoints)
	api := newCaller(opts.Client, opts.CallOptions)
	api.log = api.log.With("switch", "dns-records", "domain_id", opts.DomainID)
	opts.Clock = api.clock
	return &DNSRecordSwitch{opts: opts, ttl: roundTTL(opts.TTL), api: api, addrs: newAddressBook(), log: api.log}, nil
}

// roundTTL is d in whole seconds, rounded up to a TTL Linode stores.
func roundTTL(d time.Duration) int {
	secs := int((d + time.Second - 1) / time.Second)
	for _, v := range linodeTTLs {
		if secs <= v {
			return v
		}
	}
	return linodeTTLs[len(linodeTTLs)-1]
}

// Endpoints are Options.Endpoints, or else where the records point.
func (s *DNSRecordSwitch) Endpoints() []string {
	if len(s.opts.Endpoints) > 0 {
		return slices.Clone(s.opts.Endpoints)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.targets)
}

// hostAddrs are one server's addresses for records.
type hostAddrs struct {
	server deployer.Server
	v4, v6 string
	addr   string // host:port to check
}

// change is one API call Accept makes.
type change struct {
	kind   string // create, update, delete
	name   string
	typ    linodego.DomainRecordType
	target string
	rec    linodego.DomainRecord // the record updated or deleted
}

// Accept points the names at servers, and only at them.
func (s *DNSRecordSwitch) Accept(ctx context.Context, servers []deployer.Server) error {
	if len(servers) == 0 {
		return deployer.Errorf(deployer.CodeInvalid, "the DNS records need at least one server to point at")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hosts := make([]hostAddrs, 0, len(servers))
	for _, sv := range servers {
		h, err := s.hostAddrs(ctx, sv)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
	}
	records, err := s.listRecords(ctx)
	if err != nil {
		return err
	}
	var changes, deletes []change
	for _, n := range s.opts.Names {
		mine := forName(n, hosts)
		var v4, v6 []string
		for _, h := range mine {
			v4 = append(v4, h.v4)
			if h.v6 != "" {
				v6 = append(v6, h.v6)
			}
		}
		for _, typ := range []linodego.DomainRecordType{linodego.RecordTypeA, linodego.RecordTypeAAAA} {
			want := v4
			if typ == linodego.RecordTypeAAAA {
				want = v6
			}
			c, d := s.plan(n, typ, want, records)
			changes, deletes = append(changes, c...), append(deletes, d...)
		}
	}
	// Deletions last: until then every name keeps an address. Each
	// replaced TTL counts at once: a retry after a failure half way finds
	// those records right already and would not see what they replaced.
	for _, c := range slices.Concat(changes, deletes) {
		old, err := s.apply(ctx, c)
		if err != nil {
			return err
		}
		s.pending = max(s.pending, old)
	}
	s.targets = s.targets[:0]
	for _, h := range hosts {
		s.targets = append(s.targets, h.addr)
	}
	s.log.Info("DNS records point at", "servers", hostNames(hosts), "names", s.opts.Names,
		"changes", len(changes)+len(deletes), "ttl", time.Duration(s.ttl)*time.Second)
	return nil
}

// forName are the hosts name points at: the server whose role it is, or
// else all of them.
func forName(name string, hosts []hostAddrs) []hostAddrs {
	var out []hostAddrs
	for _, h := range hosts {
		if name != "" && strings.EqualFold(h.server.Role, name) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return hosts
	}
	return out
}

// plan works out the calls that make name's typ records exactly want:
// records already right stay (their TTL set if it differs), others are
// changed in place to a missing target, then missing targets are created
// and what is left over is deleted.
func (s *DNSRecordSwitch) plan(name string, typ linodego.DomainRecordType, want []string, records []linodego.DomainRecord) (changes, deletes []change) {
	want = slices.Compact(slices.Sorted(slices.Values(want)))
	var have []linodego.DomainRecord
	for _, r := range records {
		if r.Type == typ && strings.EqualFold(strings.TrimSuffix(r.Name, "."), name) {
			have = append(have, r)
		}
	}
	slices.SortFunc(have, func(a, b linodego.DomainRecord) int { return cmp.Compare(a.ID, b.ID) })
	var spare []linodego.DomainRecord
	var missing []string
	kept := map[string]bool{}
	for _, r := range have {
		t := canonicalIP(r.Target)
		if slices.Contains(want, t) && !kept[t] {
			kept[t] = true
			if r.TTLSec != s.ttl {
				changes = append(changes, change{kind: "ttl", name: name, typ: typ, target: t, rec: r})
			}
			continue
		}
		spare = append(spare, r)
	}
	for _, t := range want {
		if !kept[t] {
			missing = append(missing, t)
		}
	}
	for _, t := range missing {
		if len(spare) > 0 {
			changes = append(changes, change{kind: "update", name: name, typ: typ, target: t, rec: spare[0]})
			spare = spare[1:]
			continue
		}
		changes = append(changes, change{kind: "create", name: name, typ: typ, target: t})
	}
	for _, r := range spare {
		deletes = append(deletes, change{kind: "delete", name: name, typ: typ, target: r.Target, rec: r})
	}
	return changes, deletes
}

func canonicalIP(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.String()
	}
	return s
}

// apply makes one change and returns how long resolvers may still hold the
// address it replaced (0 when it replaced none).
func (s *DNSRecordSwitch) apply(ctx context.Context, c change) (time.Duration, error) {
	fqdn := c.name
	if fqdn == "" {
		fqdn = "@"
	}
	values := map[string]string{"name": fqdn, "type": string(c.typ), "target": c.target, "ttl_sec": strconv.Itoa(s.ttl)}
	var op operation
	var fn func(ctx context.Context) error
	replaced := false
	switch c.kind {
	case "create":
		op = operation{what: fmt.Sprintf("create the %s record %s → %s", c.typ, fqdn, c.target), values: values}
		attempt := 0
		fn = func(ctx context.Context) error {
			attempt++
			if attempt > 1 { // a create whose answer was lost must not be made twice
				list, err := s.opts.Client.ListDomainRecords(ctx, s.opts.DomainID, nil)
				if err != nil {
					return err
				}
				if slices.ContainsFunc(list, func(r linodego.DomainRecord) bool {
					return r.Type == c.typ && strings.EqualFold(r.Name, c.name) && canonicalIP(r.Target) == c.target
				}) {
					return nil
				}
			}
			_, err := s.opts.Client.CreateDomainRecord(ctx, s.opts.DomainID, linodego.DomainRecordCreateOptions{
				Type: c.typ, Name: c.name, Target: c.target, TTLSec: s.ttl})
			return err
		}
	case "update", "ttl":
		replaced = c.kind == "update"
		op = operation{what: fmt.Sprintf("point the %s record %s at %s (was %s)", c.typ, fqdn, c.target, c.rec.Target), values: values}
		if !replaced {
			op.what = fmt.Sprintf("set the TTL of the %s record %s → %s to %ds", c.typ, fqdn, c.target, s.ttl)
		}
		fn = func(ctx context.Context) error {
			_, err := s.opts.Client.UpdateDomainRecord(ctx, s.opts.DomainID, c.rec.ID, linodego.DomainRecordUpdateOptions{
				Target: c.target, TTLSec: s.ttl})
			return err
		}
	case "delete":
		replaced = true
		op = operation{what: fmt.Sprintf("delete the %s record %s → %s", c.typ, fqdn, c.rec.Target), values: values}
		fn = func(ctx context.Context) error {
			err := s.opts.Client.DeleteDomainRecord(ctx, s.opts.DomainID, c.rec.ID)
			if linodego.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if err := s.api.call(ctx, op, fn); err != nil {
		return 0, err
	}
	s.log.Info("DNS record "+c.kind, "name", fqdn, "type", c.typ, "target", c.target, "was", c.rec.Target,
		"ttl_sec", s.ttl)
	if !replaced {
		return 0, nil
	}
	if c.rec.TTLSec > 0 {
		return time.Duration(c.rec.TTLSec) * time.Second, nil
	}
	return s.zoneTTL(ctx)
}

// zoneTTL is how long a record with TTL 0 is cached: the zone's default.
func (s *DNSRecordSwitch) zoneTTL(ctx context.Context) (time.Duration, error) {
	if s.zoneDefault > 0 {
		return s.zoneDefault, nil
	}
	var d *linodego.Domain
	op := operation{what: fmt.Sprintf("look up the default TTL of Linode domain %d", s.opts.DomainID)}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		var err error
		d, err = s.opts.Client.GetDomain(ctx, s.opts.DomainID)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.zoneDefault = LinodeDefaultTTL
	if d.TTLSec > 0 {
		s.zoneDefault = time.Duration(d.TTLSec) * time.Second
	}
	return s.zoneDefault, nil
}

func (s *DNSRecordSwitch) listRecords(ctx context.Context) ([]linodego.DomainRecord, error) {
	var list []linodego.DomainRecord
	op := operation{what: fmt.Sprintf("list the records of Linode domain %d", s.opts.DomainID)}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		var err error
		list, err = s.opts.Client.ListDomainRecords(ctx, s.opts.DomainID, nil)
		return err
	})
	if deployer.ErrorCode(err) == deployer.CodeNotFound {
		return nil, &deployer.Error{Code: deployer.CodeNotFound, Message: fmt.Sprintf(
			"Linode has no domain %d in this account (is domain_id right?)", s.opts.DomainID), Err: err}
	}
	return list, err
}

// hostAddrs are sv's addresses for records: its instance's public ones, or
// the host of its Addr.
func (s *DNSRecordSwitch) hostAddrs(ctx context.Context, sv deployer.Server) (hostAddrs, error) {
	host, port, err := splitAddr(sv, DefaultPort)
	if err != nil {
		return hostAddrs{}, err
	}
	h := hostAddrs{server: sv, addr: net.JoinHostPort(host, port)}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() || ip.Is4In6() {
			h.v4 = ip.Unmap().String()
		} else {
			h.v6 = ip.String()
		}
	}
	in, err := s.addrs.lookup(ctx, s.api, sv)
	if err != nil {
		return hostAddrs{}, err
	}
	if h.v4 == "" {
		h.v4 = in.public4
	}
	if h.v6 == "" {
		h.v6 = in.ipv6
	}
	if h.v4 == "" {
		return hostAddrs{}, deployer.Errorf(deployer.CodeInvalid,
			"%s has no public IPv4 address to point the DNS records at (its address is %q)", name(sv), sv.Addr)
	}
	return h, nil
}

// Drain waits until resolvers can no longer hold the records Accept
// replaced: the longest TTL they had, and at least the switch's own, plus
// Propagation.
func (s *DNSRecordSwitch) Drain(ctx context.Context, servers []deployer.Server) error {
	if len(servers) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wait := max(s.pending, time.Duration(s.ttl)*time.Second) + s.opts.Propagation
	names := make([]string, len(servers))
	for i, sv := range servers {
		names[i] = sv.Name
	}
	who := strings.Join(names, ", ")
	start := s.opts.Clock.Now()
	s.log.Info("waiting for resolvers' caches of the old records to expire", "servers", who, "wait", wait)
	select {
	case <-s.opts.Clock.After(wait):
	case <-ctx.Done():
		waited := roughly(s.opts.Clock.Now().Sub(start))
		return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf(
			"stopped waiting for resolvers to forget the records that pointed at %s after %s of %s (%s): "+
				"they may still send clients there; lower the records' TTL or allow the switch more time",
			who, waited, wait, ctxWords(ctx.Err())), Err: ctx.Err()}
	}
	s.pending = 0
	s.log.Info("old DNS records expired from caches", "servers", who, "waited", wait)
	return nil
}

func hostNames(hosts []hostAddrs) string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.server.Name
	}
	return strings.Join(names, ", ")
}
