package dnscheck_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/internal/eventually"
)

var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// instantClock is a ManualClock that moves on as soon as it is waited on, so
// rounds follow each other at once and Now tells how long they would have
// waited.
type instantClock struct{ *deployer.ManualClock }

func (c instantClock) After(d time.Duration) <-chan time.Time {
	ch := c.ManualClock.After(d)
	c.Advance(d)
	return ch
}

// rounds is how many rounds ran, each interval apart.
func (c instantClock) rounds(interval time.Duration) int {
	return int(c.Now().Sub(epoch)/interval) + 1
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

const interval = 10 * time.Second

// baseSpec asks for 2 passes in at most 3 rounds.
func baseSpec() deployer.CheckSpec {
	return deployer.CheckSpec{
		Zones:     []string{"example.test"},
		MinSerial: map[string]uint32{"example.test": liveSerial},
		Expect:    []deployer.ExpectedRecord{{Name: "www.example.test", Type: "A", Value: "192.0.2.10"}},
		Passes:    2,
		MaxRounds: 3,
		Interval:  interval,
		Timeout:   time.Second,
	}
}

// queriesPerRound is what baseSpec asks one server each round: one SOA and
// one expected record, over UDP and TCP.
const queriesPerRound = 4

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(h *zoneHandler)
		serial     uint32 // the zone's serial; liveSerial when 0
		setup      setup
		nsids      []string // the target's acceptable NSIDs; ns1-7, ns2-7 when nil
		spec       func(s *deployer.CheckSpec)
		wantOK     bool
		wantPasses int
		wantRounds int
		want       []string // phrases that must each be in some problem
	}{{
		name:       "correct",
		wantOK:     true,
		wantPasses: 2,
		wantRounds: 2,
	}, {
		name:       "correct, three passes, serial equal to the live one",
		spec:       func(s *deployer.CheckSpec) { s.Passes, s.MaxRounds = 3, 0 },
		wantOK:     true,
		wantPasses: 3,
		wantRounds: 3,
	}, {
		name:       "NSID not checked",
		handler:    func(h *zoneHandler) { h.nsid = "" },
		nsids:      []string{},
		wantOK:     true,
		wantPasses: 2,
		wantRounds: 2,
	}, {
		name:       "SERVFAIL",
		handler:    func(h *zoneHandler) { h.rcode = dns.RcodeServerFailure },
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over UDP+TCP answered SERVFAIL"},
	}, {
		name:       "REFUSED",
		handler:    func(h *zoneHandler) { h.rcode = dns.RcodeRefused },
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over UDP+TCP answered REFUSED"},
	}, {
		name:       "zone not served",
		spec:       func(s *deployer.CheckSpec) { s.Zones = []string{"example.test", "other.test."} },
		wantRounds: 3,
		want:       []string{"ns2-7: SOA other.test. over UDP+TCP answered REFUSED"},
	}, {
		name:       "no AA flag",
		handler:    func(h *zoneHandler) { h.noAA = true },
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. over UDP+TCP answered without the AA flag"},
	}, {
		name:       "lower serial",
		serial:     liveSerial - 1,
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. over UDP+TCP: serial 2026110101 is lower than the live 2026110102"},
	}, {
		name:       "wrong NSID",
		handler:    func(h *zoneHandler) { h.nsid = "ns1-6" },
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. over UDP+TCP answered as ns1-6, expected one of ns1-7, ns2-7"},
	}, {
		name:       "no NSID",
		handler:    func(h *zoneHandler) { h.nsid = "" },
		nsids:      []string{"ns2-7"},
		wantRounds: 3,
		want:       []string{"ns2-7: SOA example.test. over UDP+TCP answered without an NSID, expected ns2-7"},
	}, {
		name:       "TCP does not answer",
		setup:      tcpHangs,
		spec:       func(s *deployer.CheckSpec) { s.Timeout, s.Passes, s.MaxRounds = 200*time.Millisecond, 1, 1 },
		wantRounds: 1,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over TCP timed out after 200ms"},
	}, {
		name:       "nothing listening",
		setup:      closed,
		spec:       func(s *deployer.CheckSpec) { s.Passes, s.MaxRounds = 1, 1 },
		wantRounds: 1,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over UDP+TCP failed: connection refused"},
	}, {
		name: "expected record has another value",
		spec: func(s *deployer.CheckSpec) {
			s.Expect = []deployer.ExpectedRecord{{Name: "www.example.test.", Type: "a", Value: "192.0.2.99"}}
		},
		wantRounds: 3,
		want:       []string{"ns2-7: A www.example.test. over UDP+TCP answered 192.0.2.10, expected 192.0.2.99"},
	}, {
		name: "expected record is missing",
		spec: func(s *deployer.CheckSpec) {
			s.Expect = []deployer.ExpectedRecord{{Name: "mail.example.test", Type: "A", Value: "192.0.2.25"}}
		},
		wantRounds: 3,
		want:       []string{"ns2-7: A mail.example.test. over UDP+TCP answered NXDOMAIN"},
	}, {
		name: "expected record of a type the name lacks",
		spec: func(s *deployer.CheckSpec) {
			s.Expect = []deployer.ExpectedRecord{{Name: "www.example.test", Type: "AAAA"}}
		},
		wantRounds: 3,
		want:       []string{"ns2-7: AAAA www.example.test. over UDP+TCP answered no AAAA record"},
	}, {
		name: "expected records of any value and a TXT value",
		spec: func(s *deployer.CheckSpec) {
			s.Expect = []deployer.ExpectedRecord{
				{Name: "example.test", Type: "NS"},
				{Name: "version.example.test", Type: "TXT", Value: `"image v7"`},
				{Name: "example.test", Type: "NS", Value: "ns2.example.test."},
			}
		},
		wantOK:     true,
		wantPasses: 2,
		wantRounds: 2,
	}, {
		name:       "flapping: fails the first round, then passes twice",
		handler:    func(h *zoneHandler) { h.failFirst.Store(queriesPerRound) },
		wantOK:     true,
		wantPasses: 2,
		wantRounds: 3,
	}, {
		name:       "flapping: too few rounds left after the failure",
		handler:    func(h *zoneHandler) { h.failFirst.Store(queriesPerRound) },
		spec:       func(s *deployer.CheckSpec) { s.MaxRounds = 2 },
		wantPasses: 1,
		wantRounds: 2,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over UDP+TCP answered SERVFAIL"},
	}, {
		name:       "flapping: MaxRounds below Passes means Passes+2",
		handler:    func(h *zoneHandler) { h.failFirst.Store(3 * queriesPerRound) },
		spec:       func(s *deployer.CheckSpec) { s.Passes, s.MaxRounds = 3, 1 },
		wantPasses: 2,
		wantRounds: 5,
		want:       []string{"ns2-7: SOA example.test. and A www.example.test. over UDP+TCP answered SERVFAIL"},
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serial := cmpOr(tt.serial, liveSerial)
			h := newZoneHandler(t, serial, "ns2-7")
			if tt.handler != nil {
				tt.handler(h)
			}
			target := deployer.CheckTarget{Name: "ns2-7", Addr: serve(t, h, tt.setup), NSIDs: tt.nsids}
			if tt.nsids == nil {
				target.NSIDs = []string{"ns1-7", "ns2-7"}
			}
			spec := baseSpec()
			if tt.spec != nil {
				tt.spec(&spec)
			}
			clock := instantClock{deployer.NewManualClock(epoch)}
			c := dnscheck.New(dnscheck.Options{Clock: clock, Logger: testLogger(t)})

			got := c.Check(t.Context(), []deployer.CheckTarget{target}, spec)

			if got.OK != tt.wantOK || got.Passes != tt.wantPasses {
				t.Errorf("%d: OK, Passes = %v, %d; want %v, %d (problems %q)", i, got.OK, got.Passes, tt.wantOK, tt.wantPasses, got.Problems)
			}
			if n := clock.rounds(spec.Interval); n != tt.wantRounds {
				t.Errorf("%d: ran %d rounds, want %d", i, n, tt.wantRounds)
			}
			for _, want := range tt.want {
				if !containsPhrase(got.Problems, want) {
					t.Errorf("%d: problems %q lack %q", i, got.Problems, want)
				}
			}
			checkReportShape(t, got)
			if got.OK && got.Serials["example.test"] != serial {
				t.Errorf("%d: Serials = %v, want example.test %d", i, got.Serials, serial)
			}
		})
	}
}

// checkReportShape checks what every report promises: problems sorted and
// unique and only on failure, and a summary that leads with the first.
func checkReportShape(t *testing.T, r deployer.CheckReport) {
	t.Helper()
	if r.OK {
		if len(r.Problems) > 0 {
			t.Errorf("passing report has problems %q", r.Problems)
		}
		return
	}
	if len(r.Problems) == 0 {
		t.Fatalf("failing report has no problems")
	}
	if !strings.HasPrefix(r.Problems[0], "check cancelled") && (!slices.IsSorted(r.Problems) || len(slices.Compact(slices.Clone(r.Problems))) != len(r.Problems)) {
		t.Errorf("problems not sorted and unique: %q", r.Problems)
	}
	want := r.Problems[0]
	if n := len(r.Problems) - 1; n > 0 {
		want += fmt.Sprintf(" (+%d more)", n)
	}
	if r.Summary != want {
		t.Errorf("Summary = %q, want %q", r.Summary, want)
	}
}

func containsPhrase(problems []string, phrase string) bool {
	return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, phrase) })
}

func cmpOr(v, fallback uint32) uint32 {
	if v == 0 {
		return fallback
	}
	return v
}

// TestCheckSet checks a blue/green pair and a load balancer in front of it.
func TestCheckSet(t *testing.T) {
	ns1 := newZoneHandler(t, liveSerial+1, "ns1-7")
	ns2 := newZoneHandler(t, liveSerial, "ns2-7")
	targets := []deployer.CheckTarget{
		{Name: "ns1-7", Addr: serve(t, ns1, both), NSIDs: []string{"ns1-7"}},
		{Name: "ns2-7", Addr: serve(t, ns2, both), NSIDs: []string{"ns2-7"}},
	}
	c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})
	spec := baseSpec()
	spec.Interval = 0
	spec.Passes = 3

	got := c.Check(t.Context(), targets, spec)

	want := deployer.CheckReport{
		OK:       true,
		Passes:   3,
		Serials:  map[string]uint32{"example.test": liveSerial},
		NSIDs:    map[string]string{"ns1-7": "ns1-7", "ns2-7": "ns2-7"},
		Answered: []string{"ns1-7", "ns2-7"},
		Summary:  "2 servers · 1 zone · 1 expected record · UDP+TCP · 3/3 passes · serial 2026110102",
	}
	if !reportsEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	t.Run("through a load balancer", func(t *testing.T) {
		lb := []deployer.CheckTarget{{Name: "load balancer " + targets[0].Addr, Addr: targets[0].Addr, NSIDs: []string{"ns1-7", "ns2-7"}}}
		got := c.Check(t.Context(), lb, spec)
		if want := "1 load balancer · 1 zone · 1 expected record · UDP+TCP · 3/3 passes · serial 2026110103"; !got.OK || got.Summary != want {
			t.Errorf("Summary = %q, want %q", got.Summary, want)
		}
	})

	t.Run("one bad server", func(t *testing.T) {
		bad := newZoneHandler(t, liveSerial, "ns2-6") // an old server still answering
		targets := append(slices.Clone(targets), deployer.CheckTarget{Name: "ns3-7", Addr: serve(t, bad, both), NSIDs: []string{"ns3-7"}})
		got := c.Check(t.Context(), targets, spec)
		wantProblems := []string{"ns3-7: SOA example.test. over UDP+TCP answered as ns2-6, expected ns3-7"}
		if got.OK || !slices.Equal(got.Problems, wantProblems) {
			t.Errorf("OK, Problems = %v, %q; want false, %q", got.OK, got.Problems, wantProblems)
		}
		if got.Summary != wantProblems[0] {
			t.Errorf("Summary = %q", got.Summary)
		}
		if got.NSIDs["ns3-7"] != "ns2-6" {
			t.Errorf("NSIDs = %v, want ns3-7 answered as ns2-6", got.NSIDs)
		}
		if want := []string{"ns1-7", "ns2-6", "ns2-7"}; !slices.Equal(got.Answered, want) {
			t.Errorf("Answered = %q, want %q", got.Answered, want)
		}
	})

	t.Run("several zones", func(t *testing.T) {
		spec := spec
		spec.Zones = []string{"example.test.", "www.example.test"} // the second answers NODATA
		got := c.Check(t.Context(), targets[:1], spec)
		if got.OK || !containsPhrase(got.Problems, "ns1-7: SOA www.example.test. over UDP+TCP answered without the zone's SOA") {
			t.Errorf("OK, Problems = %v, %q", got.OK, got.Problems)
		}
		if got.Serials["example.test."] != liveSerial+1 {
			t.Errorf("Serials = %v", got.Serials)
		}
	})
}

func reportsEqual(a, b deployer.CheckReport) bool {
	return a.OK == b.OK && a.Passes == b.Passes && slices.Equal(a.Problems, b.Problems) && slices.Equal(a.Answered, b.Answered) &&
		a.Summary == b.Summary && mapsEqual(a.Serials, b.Serials) && mapsEqual(a.NSIDs, b.NSIDs)
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCheckBadSpec fails at once, without asking anything, when the spec
// cannot be checked.
func TestCheckBadSpec(t *testing.T) {
	target := deployer.CheckTarget{Name: "ns1-7", Addr: "127.0.0.1:1"}
	tests := []struct {
		name    string
		targets []deployer.CheckTarget
		spec    deployer.CheckSpec
		want    string
	}{
		{"no servers", nil, deployer.CheckSpec{Zones: []string{"example.test"}}, "nothing to check: no servers"},
		{"no zones", []deployer.CheckTarget{target}, deployer.CheckSpec{}, "nothing to check: no zones"},
		{"bad zone", []deployer.CheckTarget{target}, deployer.CheckSpec{Zones: []string{"exa mple..test"}}, `zone "exa mple..test" is not a domain name`},
		{"unknown type", []deployer.CheckTarget{target}, deployer.CheckSpec{
			Zones:  []string{"example.test"},
			Expect: []deployer.ExpectedRecord{{Name: "www.example.test", Type: "AX", Value: "192.0.2.1"}},
		}, `expected record www.example.test. has an unknown type "AX"`},
		{"bad value", []deployer.CheckTarget{target}, deployer.CheckSpec{
			Zones:  []string{"example.test"},
			Expect: []deployer.ExpectedRecord{{Name: "www.example.test", Type: "A", Value: "192.0.2.300"}},
		}, `expected record www.example.test. A "192.0.2.300" does not parse`},
	}
	for i, tt := range tests {
		clock := deployer.NewManualClock(epoch)
		got := dnscheck.New(dnscheck.Options{Clock: clock}).Check(t.Context(), tt.targets, tt.spec)
		if got.OK || !containsPhrase(got.Problems, tt.want) {
			t.Errorf("%d %s: OK, Problems = %v, %q; want false, %q", i, tt.name, got.OK, got.Problems, tt.want)
		}
		checkReportShape(t, got)
	}
}

// TestCheckCancelled ends the check while it waits between rounds, while a
// query is in flight, and before it starts.
func TestCheckCancelled(t *testing.T) {
	target := func(h dns.Handler, s setup) []deployer.CheckTarget {
		return []deployer.CheckTarget{{Name: "ns2-7", Addr: serve(t, h, s)}}
	}

	t.Run("between rounds", func(t *testing.T) {
		h := newZoneHandler(t, liveSerial, "ns2-7")
		h.rcode = dns.RcodeServerFailure
		clock := deployer.NewManualClock(epoch)
		c := dnscheck.New(dnscheck.Options{Clock: clock, Logger: testLogger(t)})
		ctx, cancel := context.WithCancelCause(t.Context())
		done := make(chan deployer.CheckReport)
		go func() { done <- c.Check(ctx, target(h, both), baseSpec()) }()

		eventually.True(t, "the check to wait after its failed first round", func() bool { return clock.Waiters() == 1 })
		cancel(errors.New("deploy #12 aborted"))
		got := <-done

		if got.OK || got.Problems[0] != "check cancelled: deploy #12 aborted" ||
			!containsPhrase(got.Problems, "ns2-7: SOA example.test. and A www.example.test. over UDP+TCP answered SERVFAIL") {
			t.Errorf("OK, Problems = %v, %q", got.OK, got.Problems)
		}
		checkReportShape(t, got)
	})

	t.Run("during a query", func(t *testing.T) {
		pc, l := listenPair(t)
		accepted := make(chan net.Conn, 1)
		drop(t, pc)
		hang(t, l, accepted)
		spec := baseSpec()
		spec.Timeout = time.Minute
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan deployer.CheckReport)
		go func() {
			done <- dnscheck.New(dnscheck.Options{}).Check(ctx, []deployer.CheckTarget{{Name: "ns2-7", Addr: pc.LocalAddr().String()}}, spec)
		}()

		<-accepted // a TCP query is waiting for its answer
		start := time.Now()
		cancel()
		got := <-done

		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Check returned %v after cancel, want at once", took)
		}
		if want := []string{"check cancelled: context canceled"}; got.OK || !slices.Equal(got.Problems, want) {
			t.Errorf("OK, Problems = %v, %q; want false, %q", got.OK, got.Problems, want)
		}
	})

	t.Run("before it starts", func(t *testing.T) {
		h := newZoneHandler(t, liveSerial, "ns2-7")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got := dnscheck.New(dnscheck.Options{}).Check(ctx, target(h, both), baseSpec())
		if got.OK || got.Summary != "check cancelled: context canceled" {
			t.Errorf("OK, Summary = %v, %q", got.OK, got.Summary)
		}
	})
}
