// Package dnscheck proves that authoritative DNS servers answer, with
// github.com/miekg/dns. It implements deployer.Checker: every zone's SOA over
// UDP and over TCP, the AA flag, a serial floor, the EDNS NSID of the server
// that answered, and the records a healthy server must serve, repeated until
// enough consecutive rounds pass.
package dnscheck

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// DefaultTimeout bounds one query when the spec gives no timeout.
const DefaultTimeout = 2 * time.Second

// Options configure a Checker. The zero value is ready to use.
type Options struct {
	Clock  deployer.Clock // waits between rounds; deployer.SystemClock{} when nil
	Logger *slog.Logger   // failing queries at Debug; discarded when nil
}

// Checker checks DNS servers. It is safe for concurrent use.
type Checker struct {
	clock deployer.Clock
	log   *slog.Logger
}

var _ deployer.Checker = (*Checker)(nil)

// New returns a Checker.
func New(opts Options) *Checker {
	c := &Checker{clock: opts.Clock, log: opts.Logger}
	if c.clock == nil {
		c.clock = deployer.SystemClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Check runs rounds of queries against every target until spec.Passes
// consecutive rounds pass, spec.MaxRounds rounds have run, or ctx ends.
func (c *Checker) Check(ctx context.Context, targets []deployer.CheckTarget, spec deployer.CheckSpec) deployer.CheckReport {
	answered := map[string]bool{}
	rep := c.check(ctx, targets, spec, answered)
	rep.Answered = slices.Sorted(maps.Keys(answered))
	return rep
}

// check is Check, noting in answered every NSID any answer carried.
func (c *Checker) check(ctx context.Context, targets []deployer.CheckTarget, spec deployer.CheckSpec, answered map[string]bool) deployer.CheckReport {
	p, problems := newPlan(targets, spec)
	if len(problems) > 0 {
		return failedReport(problems, 0, nil, nil)
	}
	var (
		streak  int
		last    round
		failing []string // problems of the last failing round
		nsids   = map[string]string{}
	)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return cancelledReport(ctx, streak, failing, last, nsids)
		}
		r := c.round(ctx, targets, p)
		if ctx.Err() != nil { // the round was cut short: its answers are not wrong, just missing
			return cancelledReport(ctx, streak, failing, last, nsids)
		}
		last = r
		merge(nsids, last.nsids)
		for _, id := range last.answered {
			answered[id] = true
		}
		streak, failing = tally(streak, failing, last)
		c.log.Debug("dns check round", "round", n, "problems", len(last.problems), "streak", streak, "passes", p.passes)
		switch {
		case streak >= p.passes:
			return p.okReport(streak, last.serials, nsids)
		case n >= p.maxRounds:
			return failedReport(failing, streak, last.serials, nsids)
		}
		if !c.wait(ctx, p.interval) {
			return cancelledReport(ctx, streak, failing, last, nsids)
		}
	}
}

// tally counts a round into the streak: a failing round resets it and
// becomes the one whose problems are reported.
func tally(streak int, failing []string, r round) (int, []string) {
	if len(r.problems) > 0 {
		return 0, r.problems
	}
	return streak + 1, failing
}

// wait waits d on the clock, or until ctx ends; it reports whether to go on.
func (c *Checker) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-c.clock.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// round is what one round of queries found.
type round struct {
	problems []string          // sorted, without duplicates; empty when it passed
	serials  map[string]uint32 // zone, as the spec spells it → lowest serial seen
	nsids    map[string]string // target name → NSID answered last
	answered []string          // every NSID answered, in job order
}

// round asks every target every question over UDP and TCP, all at once.
func (c *Checker) round(ctx context.Context, targets []deployer.CheckTarget, p *plan) round {
	jobs := p.jobs(targets)
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { results[i] = c.run(ctx, j, p) })
	}
	wg.Wait()
	return collect(jobs, results)
}

// collect folds the results of a round's jobs, in job order.
func collect(jobs []job, results []result) round {
	r := round{serials: map[string]uint32{}, nsids: map[string]string{}}
	var problems []problem
	for i, res := range results {
		problems = append(problems, res.problems...)
		if res.nsid != "" {
			r.nsids[jobs[i].target.Name] = res.nsid
			r.answered = append(r.answered, res.nsid)
		}
		if !res.hasSerial {
			continue
		}
		zone := jobs[i].q.soa.key
		if s, ok := r.serials[zone]; !ok || res.serial < s {
			r.serials[zone] = res.serial
		}
	}
	r.problems = group(problems)
	return r
}

func merge(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

func failedReport(problems []string, streak int, serials map[string]uint32, nsids map[string]string) deployer.CheckReport {
	summary := "check failed"
	if len(problems) > 0 {
		summary = problems[0]
	}
	if len(problems) > 1 {
		summary += fmt.Sprintf(" (+%d more)", len(problems)-1)
	}
	return deployer.CheckReport{
		Passes:   streak,
		Problems: problems,
		Serials:  serials,
		NSIDs:    nsids,
		Summary:  summary,
	}
}

// cancelledReport says ctx ended, then what the last failing round found.
func cancelledReport(ctx context.Context, streak int, failing []string, last round, nsids map[string]string) deployer.CheckReport {
	problems := append([]string{"check cancelled: " + context.Cause(ctx).Error()}, failing...)
	return failedReport(problems, streak, last.serials, nsids)
}

// okReport is the one-line checklist entry of a passing check:
// "2 servers · 1 zone · UDP+TCP · 3/3 passes · serial 2026110102".
func (p *plan) okReport(streak int, serials map[string]uint32, nsids map[string]string) deployer.CheckReport {
	checked := plural(p.targets, "server")
	if p.balancers == p.targets {
		checked = plural(p.balancers, "load balancer")
	}
	parts := []string{checked, plural(len(p.zones), "zone")}
	if len(p.expects) > 0 {
		parts = append(parts, plural(len(p.expects), "expected record"))
	}
	parts = append(parts, "UDP+TCP", fmt.Sprintf("%d/%d passes", streak, p.passes), serialsText(p.zones, serials))
	return deployer.CheckReport{
		OK:      true,
		Passes:  streak,
		Serials: serials,
		NSIDs:   nsids,
		Summary: strings.Join(parts, " · "),
	}
}

// serialsText is "serial 2026110102" for one zone, and
// "serials a.test. 7, b.test. 9" for several.
func serialsText(zones []zone, serials map[string]uint32) string {
	if len(zones) == 1 {
		return fmt.Sprintf("serial %d", serials[zones[0].key])
	}
	each := make([]string, 0, len(zones))
	for _, z := range zones {
		each = append(each, fmt.Sprintf("%s %d", z.name, serials[z.key]))
	}
	return "serials " + strings.Join(each, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
