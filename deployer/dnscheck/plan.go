package dnscheck

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
)

// plan is a CheckSpec with its defaults applied and its records parsed.
type plan struct {
	targets   int
	balancers int // targets that are load balancers ("load balancer 127.0.0.1:5300")
	zones     []zone
	expects   []expectation
	passes    int
	maxRounds int
	interval  time.Duration
	timeout   time.Duration
}

// zone is one zone to check: key is how the spec spells it, name is the
// fully qualified name asked for.
type zone struct {
	key       string
	name      string
	minSerial uint32
	hasFloor  bool
}

// expectation is a record a healthy server must serve.
type expectation struct {
	name  string // fully qualified
	qtype uint16
	rdata string // as dns.RR.String() prints it after the header; "" = any
}

// question is one query asked of every target, over UDP and over TCP.
// Exactly one of soa and expect is set.
type question struct {
	soa    *zone
	expect *expectation
}

// job is one question to one target over one transport.
type job struct {
	target deployer.CheckTarget
	q      question
	net    string // "udp" or "tcp"
}

// newPlan applies spec's defaults; it returns problems, phrased for chat,
// when there is nothing to check or the spec does not parse.
func newPlan(targets []deployer.CheckTarget, spec deployer.CheckSpec) (*plan, []string) {
	p := &plan{
		targets:   len(targets),
		passes:    max(spec.Passes, 1),
		maxRounds: spec.MaxRounds,
		interval:  spec.Interval,
		timeout:   spec.Timeout,
	}
	for _, t := range targets {
		if strings.HasPrefix(t.Name, "load balancer ") {
			p.balancers++
		}
	}
	if p.maxRounds < p.passes {
		p.maxRounds = p.passes + 2
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	var problems []string
	if len(targets) == 0 {
		problems = append(problems, "nothing to check: no servers")
	}
	if len(spec.Zones) == 0 {
		problems = append(problems, "nothing to check: no zones")
	}
	for _, z := range spec.Zones {
		zn, err := newZone(z, spec.MinSerial)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		p.zones = append(p.zones, zn)
	}
	for _, r := range spec.Expect {
		e, err := newExpectation(r)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		p.expects = append(p.expects, e)
	}
	return p, problems
}

func newZone(key string, floors map[string]uint32) (zone, error) {
	name := dns.Fqdn(key)
	if _, ok := dns.IsDomainName(name); !ok || key == "" {
		return zone{}, fmt.Errorf("zone %q is not a domain name", key)
	}
	z := zone{key: key, name: name}
	z.minSerial, z.hasFloor = floors[key]
	if !z.hasFloor { // "example.test" and "example.test." are the same zone
		for k, v := range floors {
			if strings.EqualFold(dns.Fqdn(k), name) {
				z.minSerial, z.hasFloor = v, true
			}
		}
	}
	return z, nil
}

// newExpectation parses an expected record the way a zone file would.
func newExpectation(r deployer.ExpectedRecord) (expectation, error) {
	name := dns.Fqdn(r.Name)
	if _, ok := dns.IsDomainName(name); !ok || r.Name == "" {
		return expectation{}, fmt.Errorf("expected record %q is not a domain name", r.Name)
	}
	qtype, ok := dns.StringToType[strings.ToUpper(r.Type)]
	if !ok {
		return expectation{}, fmt.Errorf("expected record %s has an unknown type %q", name, r.Type)
	}
	e := expectation{name: name, qtype: qtype}
	if strings.TrimSpace(r.Value) == "" {
		return e, nil
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s 0 IN %s %s", name, dns.TypeToString[qtype], r.Value))
	if err != nil || rr == nil {
		return expectation{}, fmt.Errorf("expected record %s %s %q does not parse: %v", name, dns.TypeToString[qtype], r.Value, err)
	}
	e.rdata = rdata(rr)
	return e, nil
}

// questions are what every target is asked each round.
func (p *plan) questions() []question {
	qs := make([]question, 0, len(p.zones)+len(p.expects))
	for i := range p.zones {
		qs = append(qs, question{soa: &p.zones[i]})
	}
	for i := range p.expects {
		qs = append(qs, question{expect: &p.expects[i]})
	}
	return qs
}

// jobs are one round's queries: every question to every target over both
// transports.
func (p *plan) jobs(targets []deployer.CheckTarget) []job {
	qs := p.questions()
	jobs := make([]job, 0, len(targets)*len(qs)*2)
	for _, t := range targets {
		for _, q := range qs {
			jobs = append(jobs, job{target: t, q: q, net: "udp"}, job{target: t, q: q, net: "tcp"})
		}
	}
	return jobs
}
