package dnscheck

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxShown is how many answered records a problem quotes.
const maxShown = 3

// result is what one job found.
type result struct {
	problems  []problem
	serial    uint32 // the zone's serial, when hasSerial
	hasSerial bool
	nsid      string
}

// query is the job as a query.
func (j job) query() query {
	if j.q.soa != nil {
		return query{target: j.target.Name, name: j.q.soa.name, qtype: dns.TypeSOA, net: j.net}
	}
	return query{target: j.target.Name, name: j.q.expect.name, qtype: j.q.expect.qtype, net: j.net}
}

// run asks one job's query and judges the reply.
func (c *Checker) run(ctx context.Context, j job, p *plan) result {
	q := j.query()
	r, err := exchange(ctx, q, j.target.Addr, p.timeout)
	if err != nil {
		pr := problem{q: q, what: " " + failure(ctx, err, p.timeout)}
		c.log.Debug("dns query failed", "addr", j.target.Addr, "problem", pr.String(), "err", err)
		return result{problems: []problem{pr}}
	}
	res := result{nsid: NSIDOf(r)}
	var problems []string
	if j.q.soa != nil {
		soa := soaOf(r, j.q.soa.name)
		if soa != nil {
			res.serial, res.hasSerial = soa.Serial, true
		}
		problems = soaProblems(r, soa, j.q.soa, j.target.NSIDs)
	} else {
		problems = expectProblems(r, j.q.expect)
	}
	for _, s := range problems {
		pr := problem{q: q, what: s}
		c.log.Debug("dns query failed", "addr", j.target.Addr, "problem", pr.String(), "rcode", rcodeText(r.Rcode), "nsid", res.nsid)
		res.problems = append(res.problems, pr)
	}
	return res
}

// soaOf is the zone's SOA in the reply's answer, or nil.
func soaOf(r *dns.Msg, zone string) *dns.SOA {
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, zone) {
			return soa
		}
	}
	return nil
}

// soaProblems judges a reply to a zone's SOA query. Each problem follows the
// query's name: " answered SERVFAIL".
func soaProblems(r *dns.Msg, soa *dns.SOA, z *zone, nsids []string) []string {
	if r.Rcode != dns.RcodeSuccess {
		return []string{" answered " + rcodeText(r.Rcode)}
	}
	var problems []string
	if !r.Authoritative {
		problems = append(problems, " answered without the AA flag (not authoritative)")
	}
	switch {
	case soa == nil:
		problems = append(problems, " answered without the zone's SOA")
	case z.hasFloor && soa.Serial < z.minSerial:
		problems = append(problems, fmt.Sprintf(": serial %d is lower than the live %d", soa.Serial, z.minSerial))
	}
	if p := nsidProblem(NSIDOf(r), nsids); p != "" {
		problems = append(problems, p)
	}
	return problems
}

// nsidProblem says what is wrong with the NSID got, when want is not empty.
func nsidProblem(got string, want []string) string {
	if len(want) == 0 || slices.Contains(want, got) {
		return ""
	}
	expected := "expected " + want[0]
	if len(want) > 1 {
		expected = "expected one of " + strings.Join(want, ", ")
	}
	if got == "" {
		return " answered without an NSID, " + expected
	}
	return fmt.Sprintf(" answered as %s, %s", got, expected)
}

// expectProblems judges a reply to an expected record's query: it passes
// when any answered record of the type has the expected rdata.
func expectProblems(r *dns.Msg, e *expectation) []string {
	if r.Rcode != dns.RcodeSuccess {
		return []string{" answered " + rcodeText(r.Rcode)}
	}
	var got []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != e.qtype {
			continue
		}
		d := rdata(rr)
		if e.rdata == "" || d == e.rdata {
			return nil
		}
		got = append(got, d)
	}
	typ := dns.TypeToString[e.qtype]
	switch {
	case len(got) == 0 && e.rdata == "":
		return []string{fmt.Sprintf(" answered no %s record", typ)}
	case len(got) == 0:
		return []string{fmt.Sprintf(" answered no %s record, expected %s", typ, e.rdata)}
	}
	return []string{fmt.Sprintf(" answered %s, expected %s", shown(got), e.rdata)}
}

// shown lists at most maxShown values.
func shown(values []string) string {
	if len(values) <= maxShown {
		return strings.Join(values, ", ")
	}
	return strings.Join(values[:maxShown], ", ") + fmt.Sprintf(" (+%d more)", len(values)-maxShown)
}
