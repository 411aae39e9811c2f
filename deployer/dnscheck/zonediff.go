package dnscheck

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
)

// compareTimeout bounds one transfer's dial and each of its reads, and one
// fallback query, when CompareOptions gives no timeout.
const compareTimeout = 5 * time.Second

// methodAXFR is ZoneComparison.Method when every server transferred the
// zone.
const methodAXFR = "AXFR"

// TSIG names a key; the secret comes from the environment (the caller
// resolves it).
type TSIG struct {
	Name      string // the key's name: "transfer.example.test."
	Algorithm string // dns.HmacSHA256 when empty
	Secret    string // base64
}

// CompareOptions configure CompareZones. The zero value transfers without
// TSIG, and compares only the apex NS RRset when a server refuses AXFR.
type CompareOptions struct {
	Timeout  time.Duration // per transfer (its dial and each read) and per query; 5s when 0
	TSIG     *TSIG         // signs the transfers; nil: no TSIG
	Fallback []Question    // queried when AXFR is refused: names and types
}

// Question is a name and a type to ask, as a zone file spells them:
// {"www.example.test", "A"}.
type Question struct{ Name, Type string }

// RRsetChange is an RRset served by both sets with different records or
// TTLs: its zone-file lines before and after.
type RRsetChange struct{ Old, New []string }

// ZoneComparison is one zone as the live set serves it beside the next
// set: what a switch changes for clients. It lists the RRsets the next set
// serves that the live one does not (Added), the RRsets only the live set
// serves (Removed), and those both serve differently (Changed), as
// zone-file lines in the form dns.RR.String prints:
// "www.example.test.\t300\tIN\tA\t192.0.2.10". SOA, RRSIG, NSEC and NSEC3
// records are not compared: the serials are reported apart, and signatures
// and denial records follow from the rest.
type ZoneComparison struct {
	Zone                 string
	OldSerial, NewSerial uint32
	Added, Removed       []string // zone-file lines, sorted by owner name then type
	Changed              []RRsetChange
	LiveRRsets           int    // RRsets in the live zone (SOA excluded)
	Method               string // "AXFR" or "queries (AXFR refused: ...)"
}

// Summary is one line for the chat:
// "example.test.: serial 2026110101 → 2026110102 · 3 added · 1 removed · 2 changed",
// counting RRsets and saying "no changes" when there are none. A diff built
// from queries says so at the end, since it covers only the names asked.
func (d ZoneComparison) Summary() string {
	parts := []string{fmt.Sprintf("%s: serial %d → %d", d.Zone, d.OldSerial, d.NewSerial)}
	for _, c := range []struct {
		n    int
		verb string
	}{{rrsetCount(d.Added), "added"}, {rrsetCount(d.Removed), "removed"}, {len(d.Changed), "changed"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.verb))
		}
	}
	if len(parts) == 1 {
		parts = append(parts, "no changes")
	}
	if d.Method != "" && d.Method != methodAXFR {
		parts = append(parts, d.Method)
	}
	return strings.Join(parts, " · ")
}

// Lines is the whole diff: "+ <rr>" for an added record, "- <rr>" for a
// removed one, and for a changed RRset its old records as "- " lines then
// its new ones as "+ " lines. RRsets are sorted by owner name, in DNSSEC's
// canonical order (a name before the names below it), then by type.
func (d ZoneComparison) Lines() []string {
	type block struct {
		key   lineKey
		lines []string
	}
	var blocks []block
	for _, g := range groupLines(d.Removed) {
		blocks = append(blocks, block{g.key, prefixed("- ", g.lines)})
	}
	for _, g := range groupLines(d.Added) {
		blocks = append(blocks, block{g.key, prefixed("+ ", g.lines)})
	}
	for _, c := range d.Changed {
		first := slices.Concat(c.Old, c.New)
		if len(first) == 0 {
			continue
		}
		blocks = append(blocks, block{parseLineKey(first[0]), slices.Concat(prefixed("- ", c.Old), prefixed("+ ", c.New))})
	}
	slices.SortStableFunc(blocks, func(a, b block) int { return a.key.compare(b.key) })
	var lines []string
	for _, b := range blocks {
		lines = append(lines, b.lines...)
	}
	return lines
}

// UpdatedPct is the share of the live zone's RRsets that changed, in percent.
func (d ZoneComparison) UpdatedPct() float64 { return pct(len(d.Changed), d.LiveRRsets) }

// DeletedPct is the share of the live zone's RRsets that are removed, in
// percent.
func (d ZoneComparison) DeletedPct() float64 { return pct(rrsetCount(d.Removed), d.LiveRRsets) }

func pct(n, of int) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) * 100 / float64(of)
}

// empty reports whether d finds no differences in the RRsets.
func (d ZoneComparison) empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// CompareZones fetches every zone from live and from each of next, all
// servers at once and each server's zones one after another, and returns one
// ZoneComparison per zone, in the order given: live against next[0].
//
// A zone is fetched by AXFR over TCP, signed with opts.TSIG when set. When
// any server refuses to transfer a zone (it answers an error rcode, or no
// SOA), that zone is compared by queries instead, on every server alike: its
// SOA and apex NS, and the opts.Fallback questions under it, over TCP and
// unsigned. A TSIG failure is an error, not a refusal.
//
// The error is a *deployer.Error phrased for chat that wraps the causes. When
// a fetch fails the diffs are nil. When the next servers do not all serve
// what next[0] serves, the diffs are returned with an error that names the
// servers and the first differences: "ns2-7 serves example.test. differently
// from ns1-7: + api.example.test. 300 IN A 192.0.2.21".
func (c *Checker) CompareZones(ctx context.Context, live deployer.CheckTarget, next []deployer.CheckTarget, zones []string, opts CompareOptions) ([]ZoneComparison, error) {
	if len(next) == 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "nothing to compare: no next servers")
	}
	o, err := newCompareOptions(zones, opts)
	if err != nil {
		return nil, err
	}
	targets := append([]deployer.CheckTarget{live}, next...)
	got := make([]fetched, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { got[i] = c.transferZones(ctx, t, o) })
	}
	wg.Wait()
	if err := fetchError(got); err != nil {
		return nil, err
	}
	if byQuery := refusedZones(got, len(o.zones)); len(byQuery) > 0 {
		for i, t := range targets {
			wg.Go(func() { got[i].err = c.queryZones(ctx, t, o, byQuery, got[i].zones) })
		}
		wg.Wait()
		if err := fetchError(got); err != nil {
			return nil, err
		}
	}
	diffs := make([]ZoneComparison, len(o.zones))
	for z, zn := range o.zones {
		diffs[z] = diffZones(zn.name, got[0].zones[z], got[1].zones[z])
		diffs[z].Method = method(targets, got, z)
	}
	if problems := disagreements(targets[1:], got[1:], o.zones); len(problems) > 0 {
		return diffs, &deployer.Error{Code: deployer.CodeFailed, Message: strings.Join(problems, "; ")}
	}
	return diffs, nil
}

// compareOptions are CompareOptions checked, with their defaults applied.
type compareOptions struct {
	timeout time.Duration
	tsig    *tsigKey
	zones   []compareZone
}

type tsigKey struct {
	name      string // canonical: lower case, fully qualified
	algorithm string // canonical
	secret    string // base64
}

// compareZone is one zone to compare, and what to ask for it when a server
// refuses to transfer it: its SOA first, its NS, then the Fallback
// questions under it.
type compareZone struct {
	name      string // fully qualified, as given
	questions []fallbackQuestion
}

type fallbackQuestion struct {
	name  string // fully qualified
	qtype uint16
}

// tsigAlgorithms are the algorithms miekg/dns signs with.
var tsigAlgorithms = []string{dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512}

// newCompareOptions checks zones and opts; its error is a *deployer.Error
// with CodeInvalid. It never quotes the TSIG secret.
func newCompareOptions(zones []string, opts CompareOptions) (*compareOptions, error) {
	o := &compareOptions{timeout: opts.Timeout}
	if o.timeout <= 0 {
		o.timeout = compareTimeout
	}
	if len(zones) == 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "nothing to compare: no zones")
	}
	for _, z := range zones {
		name := dns.Fqdn(z)
		if _, ok := dns.IsDomainName(name); !ok || z == "" {
			return nil, deployer.Errorf(deployer.CodeInvalid, "zone %q is not a domain name", z)
		}
		if slices.ContainsFunc(o.zones, func(c compareZone) bool { return strings.EqualFold(c.name, name) }) {
			return nil, deployer.Errorf(deployer.CodeInvalid, "zone %s is listed twice", name)
		}
		o.zones = append(o.zones, compareZone{name: name, questions: []fallbackQuestion{{name, dns.TypeSOA}, {name, dns.TypeNS}}})
	}
	if opts.TSIG != nil {
		k, err := newTSIGKey(*opts.TSIG)
		if err != nil {
			return nil, err
		}
		o.tsig = k
	}
	for _, q := range opts.Fallback {
		if err := o.addFallback(q); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func newTSIGKey(t TSIG) (*tsigKey, error) {
	name := dns.CanonicalName(strings.TrimSpace(t.Name))
	if _, ok := dns.IsDomainName(name); !ok || strings.TrimSpace(t.Name) == "" {
		return nil, deployer.Errorf(deployer.CodeInvalid, "TSIG key name %q is not a domain name", t.Name)
	}
	alg := dns.HmacSHA256
	if t.Algorithm != "" {
		alg = dns.CanonicalName(t.Algorithm)
	}
	if !slices.Contains(tsigAlgorithms, alg) {
		return nil, deployer.Errorf(deployer.CodeInvalid, "TSIG key %s has an unknown algorithm %q; use one of %s", name, t.Algorithm, strings.Join(tsigAlgorithms, ", "))
	}
	if b, err := base64.StdEncoding.DecodeString(t.Secret); err != nil || len(b) == 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "TSIG key %s has a secret that is empty or not base64", name)
	}
	return &tsigKey{name: name, algorithm: alg, secret: t.Secret}, nil
}

// addFallback adds q to the questions of the innermost zone it is under.
func (o *compareOptions) addFallback(q Question) error {
	name := dns.Fqdn(q.Name)
	if _, ok := dns.IsDomainName(name); !ok || q.Name == "" {
		return deployer.Errorf(deployer.CodeInvalid, "fallback question %q is not a domain name", q.Name)
	}
	qtype, ok := dns.StringToType[strings.ToUpper(q.Type)]
	switch qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		ok = false
	}
	if !ok {
		return deployer.Errorf(deployer.CodeInvalid, "fallback question %s has a type %q that cannot be asked", name, q.Type)
	}
	in := -1
	for i, z := range o.zones {
		if dns.IsSubDomain(z.name, name) && (in < 0 || dns.CountLabel(z.name) > dns.CountLabel(o.zones[in].name)) {
			in = i
		}
	}
	if in < 0 {
		return deployer.Errorf(deployer.CodeInvalid, "fallback question %s is in none of the zones compared", name)
	}
	fq := fallbackQuestion{name: name, qtype: qtype}
	z := &o.zones[in]
	if !slices.ContainsFunc(z.questions, func(q fallbackQuestion) bool { return q.qtype == qtype && strings.EqualFold(q.name, name) }) {
		z.questions = append(z.questions, fq)
	}
	return nil
}

// fetched is what one server served: zones by index, nil until fetched.
type fetched struct {
	zones   []*zoneData
	refused []string // by zone index: why the AXFR was refused, "answered REFUSED"; "" when it was not
	err     error    // a failed fetch, phrased for chat; the server's other zones are left unfetched
}

// transferZones fetches o's zones from t by AXFR, one after another.
func (c *Checker) transferZones(ctx context.Context, t deployer.CheckTarget, o *compareOptions) fetched {
	f := fetched{zones: make([]*zoneData, len(o.zones)), refused: make([]string, len(o.zones))}
	for i, z := range o.zones {
		f.zones[i], f.refused[i], f.err = c.transfer(ctx, t, z.name, o)
		if f.err != nil {
			break
		}
	}
	return f
}

// transfer fetches zone from t by AXFR. When t refuses, it says why
// ("answered REFUSED") and returns no zone and no error.
func (c *Checker) transfer(ctx context.Context, t deployer.CheckTarget, zone string, o *compareOptions) (*zoneData, string, error) {
	what := fmt.Sprintf("%s: AXFR %s", t.Name, zone)
	fail := func(problem string, cause error) (*zoneData, string, error) {
		c.log.Debug("zone transfer failed", "addr", t.Addr, "problem", problem, "err", cause)
		return nil, "", &deployer.Error{Code: deployer.CodeFailed, Message: problem, Err: cause}
	}
	start := time.Now()
	d := net.Dialer{Timeout: o.timeout}
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fail(what+" "+failure(ctx, err, o.timeout), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // ends a transfer in flight at once
	defer stop()
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, DialTimeout: o.timeout, ReadTimeout: o.timeout, WriteTimeout: o.timeout}
	m := new(dns.Msg).SetAxfr(zone)
	if o.tsig != nil {
		tr.TsigSecret = map[string]string{o.tsig.name: o.tsig.secret}
		m.SetTsig(o.tsig.name, o.tsig.algorithm, 300, time.Now().Unix())
	}
	conn.SetWriteDeadline(time.Now().Add(o.timeout)) // Transfer.In sets none on a connection it is given
	env, err := tr.In(m, t.Addr)
	if err != nil {
		return fail(what+" "+failure(ctx, err, o.timeout), err)
	}
	var rrs []dns.RR
	for e := range env { // read to the end: the transfer's goroutine closes env after an error
		if e.Error != nil {
			err = e.Error
			continue
		}
		rrs = append(rrs, e.RR...)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fail(what+" "+failure(ctx, err, o.timeout), err)
		}
		if o.tsig != nil {
			if p := tsigProblem(err, o.tsig.name); p != "" {
				return fail(what+" failed TSIG: "+p, err)
			}
		}
		if why := refusal(err); why != "" {
			c.log.Debug("zone transfer refused", "addr", t.Addr, "zone", zone, "why", why)
			return nil, why, nil
		}
		return fail(what+" "+failure(ctx, err, o.timeout), err)
	}
	var soa *dns.SOA // Transfer.In makes sure the answer starts with one
	if len(rrs) > 0 {
		soa, _ = rrs[0].(*dns.SOA)
	}
	switch {
	case soa == nil:
		return fail(what+" answered without the zone's SOA", nil)
	case !strings.EqualFold(soa.Hdr.Name, zone):
		return fail(fmt.Sprintf("%s answered with the SOA of %s", what, soa.Hdr.Name), nil)
	}
	z := newZoneData(soa.Serial, rrs)
	c.log.Debug("zone transferred", "addr", t.Addr, "zone", zone, "records", len(rrs), "rrsets", len(z.sets), "took", time.Since(start))
	return z, "", nil
}

// refusal says why a transfer was refused, "answered REFUSED", when err
// is a refusal; "" when it is not.
func refusal(err error) string {
	if errors.Is(err, dns.ErrSoa) {
		return "answered without the zone's SOA"
	}
	if e, ok := errors.AsType[*dns.Error](err); ok {
		// miekg/dns keeps the rcode of a refused transfer only in the text: "dns: bad xfr rcode: 5".
		if s, ok := strings.CutPrefix(e.Error(), "dns: bad xfr rcode: "); ok {
			if rcode, err := strconv.Atoi(s); err == nil {
				return "answered " + rcodeText(rcode)
			}
		}
	}
	return ""
}

// tsigProblem phrases a TSIG failure of a transfer signed with key; "" when
// err is not one.
func tsigProblem(err error, key string) string {
	switch {
	case errors.Is(err, dns.ErrAuth):
		return fmt.Sprintf("the server answered NOTAUTH to key %s (check the key's name, algorithm and secret, and that the server serves the zone)", key)
	case errors.Is(err, dns.ErrSig):
		return fmt.Sprintf("the answer's signature does not verify with key %s (check the secret)", key)
	case errors.Is(err, dns.ErrNoSig):
		return fmt.Sprintf("the answer is not signed with key %s", key)
	case errors.Is(err, dns.ErrSecret):
		return fmt.Sprintf("the answer is signed with a key other than %s", key)
	case errors.Is(err, dns.ErrTime):
		return "the answer's signing time is too far from ours (check the clocks)"
	case errors.Is(err, dns.ErrKeyAlg):
		return fmt.Sprintf("the answer is signed with an algorithm other than key %s's", key)
	}
	return ""
}

// refusedZones are the indexes of the zones some server refused to transfer.
func refusedZones(got []fetched, zones int) []int {
	var refused []int
	for z := range zones {
		if slices.ContainsFunc(got, func(f fetched) bool { return f.refused[z] != "" }) {
			refused = append(refused, z)
		}
	}
	return refused
}

// queryZones builds the zones at indexes which from queries to t, into dst.
func (c *Checker) queryZones(ctx context.Context, t deployer.CheckTarget, o *compareOptions, which []int, dst []*zoneData) error {
	for _, z := range which {
		data, err := c.queryZone(ctx, t, o.zones[z], o.timeout)
		if err != nil {
			return err
		}
		dst[z] = data
	}
	return nil
}

// queryZone asks t the zone's questions over TCP, one after another, and
// builds the zone from the records at the names asked.
func (c *Checker) queryZone(ctx context.Context, t deployer.CheckTarget, z compareZone, timeout time.Duration) (*zoneData, error) {
	fail := func(problem string, cause error) (*zoneData, error) {
		problem += " (asked because the AXFR was refused)"
		c.log.Debug("dns query failed", "addr", t.Addr, "problem", problem, "err", cause)
		return nil, &deployer.Error{Code: deployer.CodeFailed, Message: problem, Err: cause}
	}
	var (
		rrs []dns.RR
		soa *dns.SOA
	)
	for _, fq := range z.questions {
		q := query{target: t.Name, name: fq.name, qtype: fq.qtype, net: "tcp"}
		r, err := exchange(ctx, q, t.Addr, timeout)
		if err != nil {
			return fail(q.String()+" "+failure(ctx, err, timeout), err)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return fail(q.String()+" answered "+rcodeText(r.Rcode), nil)
		}
		if fq.qtype == dns.TypeSOA && fq.name == z.name {
			if soa = soaOf(r, z.name); soa == nil {
				return fail(q.String()+" answered without the zone's SOA", nil)
			}
		}
		for _, rr := range r.Answer {
			h := rr.Header()
			if strings.EqualFold(h.Name, fq.name) && (h.Rrtype == fq.qtype || h.Rrtype == dns.TypeCNAME || fq.qtype == dns.TypeANY) {
				rrs = append(rrs, rr)
			}
		}
	}
	return newZoneData(soa.Serial, rrs), nil
}

// fetchError is the error of every failed fetch in got, or nil: their
// messages on one line, their causes joined.
func fetchError(got []fetched) error {
	var (
		problems []string
		causes   []error
	)
	for _, f := range got {
		if f.err == nil {
			continue
		}
		problems = append(problems, deployer.ErrorMessage(f.err))
		if e, ok := errors.AsType[*deployer.Error](f.err); ok {
			causes = append(causes, e.Err)
		} else {
			causes = append(causes, f.err)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &deployer.Error{Code: deployer.CodeFailed, Message: strings.Join(problems, "; "), Err: errors.Join(causes...)}
}

// method is ZoneComparison.Method for zone z: "AXFR", or
// "queries (AXFR refused: ns1-7 answered REFUSED)".
func method(targets []deployer.CheckTarget, got []fetched, z int) string {
	var why []string
	for i, f := range got {
		if f.refused[z] != "" {
			why = append(why, targets[i].Name+" "+f.refused[z])
		}
	}
	if len(why) == 0 {
		return methodAXFR
	}
	return "queries (AXFR refused: " + strings.Join(why, ", ") + ")"
}

// disagreements are the zones the next servers serve differently from the
// first of them: "ns2-7 serves example.test. differently from ns1-7: + …".
func disagreements(next []deployer.CheckTarget, got []fetched, zones []compareZone) []string {
	var problems []string
	for i := 1; i < len(next); i++ {
		for z, zn := range zones {
			d := diffZones(zn.name, got[0].zones[z], got[i].zones[z])
			var diffs []string
			if d.OldSerial != d.NewSerial {
				diffs = append(diffs, fmt.Sprintf("serial %d instead of %d", d.NewSerial, d.OldSerial))
			}
			if !d.empty() {
				lines := d.Lines()
				for j, l := range lines {
					lines[j] = strings.ReplaceAll(l, "\t", " ")
				}
				diffs = append(diffs, shown(lines))
			}
			if len(diffs) > 0 {
				problems = append(problems, fmt.Sprintf("%s serves %s differently from %s: %s", next[i].Name, zn.name, next[0].Name, strings.Join(diffs, "; ")))
			}
		}
	}
	return problems
}

// rrsetKey names an RRset. owner is lower case.
type rrsetKey struct {
	owner         string
	rrtype, class uint16
}

// record is one record of an RRset.
type record struct {
	line string // as a zone file prints it: dns.RR.String()
	body string // line after the owner: TTL, class, type and rdata
}

// zoneData is a zone as one server serves it: its serial and its RRsets,
// without the SOA and the records DNSSEC derives from the rest.
type zoneData struct {
	serial uint32
	sets   map[rrsetKey][]record // each sorted by body, without duplicates
}

// newZoneData groups rrs into RRsets.
func newZoneData(serial uint32, rrs []dns.RR) *zoneData {
	z := &zoneData{serial: serial, sets: make(map[rrsetKey][]record, len(rrs))}
	for _, rr := range rrs {
		h := rr.Header()
		switch h.Rrtype {
		case dns.TypeSOA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
			continue
		}
		line := rr.String()
		k := rrsetKey{owner: strings.ToLower(h.Name), rrtype: h.Rrtype, class: h.Class}
		z.sets[k] = append(z.sets[k], record{line: line, body: line[max(strings.IndexByte(line, '\t'), 0):]})
	}
	for k, recs := range z.sets {
		slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.body, b.body) })
		z.sets[k] = slices.CompactFunc(recs, func(a, b record) bool { return a.body == b.body })
	}
	return z
}

// diffZones compares the zone as live serves it with the zone as next does.
// Method is left for the caller.
func diffZones(zone string, live, next *zoneData) ZoneComparison {
	type change struct {
		key       rrsetKey
		canonical string
		old, new  []record
	}
	var changes []change
	for k, old := range live.sets {
		nw, ok := next.sets[k]
		if !ok || !sameBodies(old, nw) {
			changes = append(changes, change{key: k, old: old, new: nw})
		}
	}
	for k, nw := range next.sets {
		if _, ok := live.sets[k]; !ok {
			changes = append(changes, change{key: k, new: nw})
		}
	}
	for i := range changes {
		changes[i].canonical = canonicalOwner(changes[i].key.owner)
	}
	slices.SortFunc(changes, func(a, b change) int {
		return cmp.Or(strings.Compare(a.canonical, b.canonical), cmp.Compare(a.key.rrtype, b.key.rrtype),
			cmp.Compare(a.key.class, b.key.class), strings.Compare(a.key.owner, b.key.owner))
	})
	d := ZoneComparison{Zone: zone, OldSerial: live.serial, NewSerial: next.serial, LiveRRsets: len(live.sets)}
	for _, ch := range changes {
		switch {
		case ch.new == nil:
			d.Removed = append(d.Removed, recordLines(ch.old)...)
		case ch.old == nil:
			d.Added = append(d.Added, recordLines(ch.new)...)
		default:
			d.Changed = append(d.Changed, RRsetChange{Old: recordLines(ch.old), New: recordLines(ch.new)})
		}
	}
	return d
}

func sameBodies(a, b []record) bool {
	return slices.EqualFunc(a, b, func(x, y record) bool { return x.body == y.body })
}

func recordLines(recs []record) []string {
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.line
	}
	return lines
}

// canonicalOwner is a lower-case owner name that sorts in DNSSEC's canonical
// order: its labels from the root down, "test\x00example\x00www".
func canonicalOwner(owner string) string {
	labels := dns.SplitDomainName(owner)
	slices.Reverse(labels)
	return strings.Join(labels, "\x00")
}

// lineKey is the RRset of a zone-file line, for sorting and counting.
type lineKey struct {
	canonical     string
	owner         string
	rrtype, class uint16
}

func (a lineKey) compare(b lineKey) int {
	return cmp.Or(strings.Compare(a.canonical, b.canonical), cmp.Compare(a.rrtype, b.rrtype),
		cmp.Compare(a.class, b.class), strings.Compare(a.owner, b.owner))
}

// parseLineKey reads the RRset of a zone-file line with owner, TTL, class
// and type: "www.example.test.\t300\tIN\tA\t192.0.2.10".
func parseLineKey(line string) lineKey {
	f := strings.Fields(line) // the rdata is split too; lines are few
	if len(f) < 4 {
		return lineKey{canonical: line, owner: line}
	}
	owner := strings.ToLower(f[0])
	return lineKey{canonical: canonicalOwner(owner), owner: owner, rrtype: parseType(f[3]), class: dns.StringToClass[f[2]]}
}

// parseType is the type a zone file spells as "A" or "TYPE65534".
func parseType(s string) uint16 {
	if t, ok := dns.StringToType[s]; ok {
		return t
	}
	if n, ok := strings.CutPrefix(s, "TYPE"); ok {
		if t, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(t)
		}
	}
	return 0
}

// lineGroup is the lines of one RRset.
type lineGroup struct {
	key   lineKey
	lines []string
}

// groupLines groups zone-file lines by RRset, in the order each first
// appears.
func groupLines(lines []string) []lineGroup {
	var groups []lineGroup
	index := map[lineKey]int{}
	for _, l := range lines {
		k := parseLineKey(l)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, lineGroup{key: k})
		}
		groups[i].lines = append(groups[i].lines, l)
	}
	return groups
}

// rrsetCount is how many RRsets lines hold.
func rrsetCount(lines []string) int { return len(groupLines(lines)) }

func prefixed(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}
