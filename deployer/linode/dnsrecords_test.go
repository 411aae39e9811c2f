package linode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/eventually"
)

// recEnv is a DNSRecordSwitch on a domain of its own fake API.
type recEnv struct {
	*env
	domain linodetest.Domain
	sw     *DNSRecordSwitch
}

// newRecEnv starts a fake API holding domain and its records, and a switch
// on it pointing names. The switch waits on clock (nil: the env's
// skipClock); opts may adjust it.
func newRecEnv(t *testing.T, domain linodetest.Domain, records []linodetest.DomainRecord, clock deployer.Clock,
	opts ...func(*DNSRecordOptions)) *recEnv {
	t.Helper()
	e := newEnv(t, linodetest.Options{})
	d := e.api.AddDomain(domain)
	for _, r := range records {
		e.api.AddDomainRecord(d.ID, r)
	}
	if clock == nil {
		clock = e.clock
	}
	o := DNSRecordOptions{
		Client:      e.api.NewClient(testToken),
		DomainID:    d.ID,
		Names:       []string{"ns1", "ns2", "ns"},
		CallOptions: e.callOptions(clock),
	}
	for _, f := range opts {
		f(&o)
	}
	sw, err := NewDNSRecordSwitch(o)
	if err != nil {
		t.Fatal(err)
	}
	return &recEnv{env: e, domain: d, sw: sw}
}

// recordLines are the domain's records of names as "name type target ttl",
// sorted.
func recordLines(api *linodetest.Server, domainID int, names ...string) []string {
	var out []string
	for _, r := range api.DomainRecords(domainID) {
		if slices.Contains(names, r.Name) {
			out = append(out, fmt.Sprintf("%s %s %s %d", r.Name, r.Type, r.Target, r.TTLSec))
		}
	}
	slices.Sort(out)
	return out
}

// recordIDs are the IDs of name's records of typ.
func recordIDs(api *linodetest.Server, domainID int, name, typ string) []int {
	var out []int
	for _, r := range api.DomainRecords(domainID) {
		if r.Name == name && r.Type == typ {
			out = append(out, r.ID)
		}
	}
	slices.Sort(out)
	return out
}

// recordWrites are the requests from the n-th on that change records.
func recordWrites(api *linodetest.Server, from int) []linodetest.Request {
	var out []linodetest.Request
	for _, r := range api.Requests()[from:] {
		if r.Method != "GET" && strings.Contains(r.Path, "/domains/") {
			out = append(out, r)
		}
	}
	return out
}

// host is the IP of a server's Addr.
func host(t *testing.T, s deployer.Server) string {
	t.Helper()
	h, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	return h
}

// ipv6 is the SLAAC address of a server's Linode instance.
func ipv6(t *testing.T, e *env, s deployer.Server) string {
	t.Helper()
	in, err := e.api.NewClient(testToken).GetInstance(context.Background(), mustAtoi(t, s.ID))
	if err != nil {
		t.Fatal(err)
	}
	v6, _, _ := strings.Cut(in.IPv6, "/")
	return v6
}

// A switch from blue to green instances: each role name gets only its
// server's addresses, the service name gets all of them, records are
// changed in place (deletions last, so no name is ever without an
// address), the TTL is rounded as Linode rounds it, and records of other
// names and types are left alone.
func TestDNSRecordSwitchAccept(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newRecEnv(t, linodetest.Domain{Domain: "example.com", TTLSec: 7200}, nil, clock, func(o *DNSRecordOptions) {
		o.TTL = 100 * time.Second // Linode stores 120
		o.Propagation = 30 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var blue, green []deployer.Server
	for _, role := range []string{"ns1", "ns2"} {
		b, err := e.cloud.Create(ctx, spec(role, 6))
		if err != nil {
			t.Fatal(err)
		}
		g, err := e.cloud.Create(ctx, spec(role, 7))
		if err != nil {
			t.Fatal(err)
		}
		blue, green = append(blue, b), append(green, g)
	}
	b1, b2, g1, g2 := host(t, blue[0]), host(t, blue[1]), host(t, green[0]), host(t, green[1])
	b1v6, g1v6, g2v6 := ipv6(t, e.env, blue[0]), ipv6(t, e.env, green[0]), ipv6(t, e.env, green[1])

	// Blue as someone set it up by hand, with other TTLs and a stray address.
	d := e.domain.ID
	for _, r := range []linodetest.DomainRecord{
		{Type: "A", Name: "ns1", Target: b1, TTLSec: 3600},
		{Type: "AAAA", Name: "ns1", Target: b1v6, TTLSec: 300},
		{Type: "A", Name: "ns2", Target: b2, TTLSec: 300},
		{Type: "A", Name: "ns", Target: b1}, // TTL 0: the zone's 7200
		{Type: "A", Name: "ns", Target: b2},
		{Type: "A", Name: "ns", Target: "192.0.2.200", TTLSec: 30},
		{Type: "A", Name: "www", Target: "192.0.2.80", TTLSec: 300},
		{Type: "TXT", Name: "ns1", Target: "keep me", TTLSec: 300},
	} {
		e.api.AddDomainRecord(d, r)
	}
	others := recordLines(e.api, d, "www")
	txt := recordIDs(e.api, d, "ns1", "TXT")
	inPlace := map[string][]int{}
	for _, k := range []string{"ns1 A", "ns1 AAAA", "ns2 A", "ns A"} {
		name, typ, _ := strings.Cut(k, " ")
		inPlace[k] = recordIDs(e.api, d, name, typ)
	}
	before := e.api.DomainRecords(d)
	start := len(e.api.Requests())

	if err := e.sw.Accept(ctx, green); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ns1 A " + g1 + " 120", "ns1 AAAA " + g1v6 + " 120",
		"ns2 A " + g2 + " 120", "ns2 AAAA " + g2v6 + " 120",
		"ns A " + g1 + " 120", "ns A " + g2 + " 120", "ns AAAA " + g1v6 + " 120", "ns AAAA " + g2v6 + " 120",
	}
	slices.Sort(want)
	var got []string
	for _, l := range recordLines(e.api, d, "ns1", "ns2", "ns") {
		if !strings.Contains(l, " TXT ") {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for k, ids := range inPlace {
		name, typ, _ := strings.Cut(k, " ")
		now := recordIDs(e.api, d, name, typ)
		if !slices.Equal(now, ids) && !(len(ids) > len(now) && isSubset(now, ids)) {
			t.Errorf("%s records were %v and are %v: not changed in place", k, ids, now)
		}
	}
	if got := recordLines(e.api, d, "www"); !slices.Equal(got, others) {
		t.Errorf("www records changed: %v, were %v", got, others)
	}
	if got := recordIDs(e.api, d, "ns1", "TXT"); !slices.Equal(got, txt) {
		t.Errorf("the TXT record of ns1 changed: %v, was %v", got, txt)
	}
	replayNeverEmpty(t, e.api, d, start, before, []string{"ns1", "ns2", "ns"})

	// Again: nothing to change.
	start = len(e.api.Requests())
	if err := e.sw.Accept(ctx, green); err != nil {
		t.Fatal(err)
	}
	if w := recordWrites(e.api, start); len(w) > 0 {
		t.Errorf("a second Accept changed records: %+v", w)
	}
	var wantEndpoints []string
	for _, s := range green {
		wantEndpoints = append(wantEndpoints, s.Addr)
	}
	if got := e.sw.Endpoints(); !slices.Equal(got, wantEndpoints) {
		t.Errorf("Endpoints = %v, want %v", got, wantEndpoints)
	}

	// Drain waits for the longest TTL replaced (ns's records had the
	// zone's 7200s) plus propagation, then, with nothing replaced since,
	// for the switch's own TTL.
	if err := waitOut(t, clock, 7200*time.Second+30*time.Second, func() error { return e.sw.Drain(ctx, blue) }, nil); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	if err := waitOut(t, clock, 120*time.Second+30*time.Second, func() error { return e.sw.Drain(ctx, blue) }, nil); err != nil {
		t.Fatalf("second Drain = %v", err)
	}
}

func isSubset(small, big []int) bool {
	for _, x := range small {
		if !slices.Contains(big, x) {
			return false
		}
	}
	return true
}

// replayNeverEmpty replays the record changes the fake received from the
// start-th request on over before, the records as they were then, and fails
// the test if a name that had A or AAAA records before and has them at the
// end was without any in between, or if a record was deleted before the
// last create or update.
func replayNeverEmpty(t *testing.T, api *linodetest.Server, domainID, start int, before []linodetest.DomainRecord, names []string) {
	t.Helper()
	type key struct{ name, typ string }
	live := map[int]key{}
	for _, r := range before {
		live[r.ID] = key{r.Name, r.Type}
	}
	count := func() map[key]int {
		out := map[key]int{}
		for _, k := range live {
			if slices.Contains(names, k.name) {
				out[k]++
			}
		}
		return out
	}
	final := map[key]int{}
	for _, r := range api.DomainRecords(domainID) {
		if slices.Contains(names, r.Name) {
			final[key{r.Name, r.Type}]++
		}
	}
	first := count()
	last := first
	defer func() {
		if !mapsEqual(last, final) {
			t.Errorf("replaying the requests gives %v, but the fake has %v", last, final)
		}
	}()
	next := -1 // IDs of records created during the replay
	deleting := false
	for _, w := range recordWrites(api, start) {
		if w.Status != 200 {
			continue
		}
		switch w.Method {
		case "POST":
			var body struct{ Name, Type string }
			if err := json.Unmarshal([]byte(w.Body), &body); err != nil {
				t.Fatalf("create body %q: %v", w.Body, err)
			}
			live[next] = key{body.Name, body.Type}
			next--
		case "PUT":
			// Changes target and TTL; name and type stay.
		case "DELETE":
			id, _ := strconv.Atoi(path.Base(w.Path))
			delete(live, id)
		}
		if w.Method == "DELETE" {
			deleting = true
		} else if deleting {
			t.Errorf("%s %s after a deletion: deletions must come last", w.Method, w.Path)
		}
		last = count()
		for k, n := range first {
			if n > 0 && final[k] > 0 && last[k] == 0 {
				t.Errorf("after %s %s, %s has no %s record", w.Method, w.Path, k.name, k.typ)
			}
		}
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// The switch writes its TTL rounded up to one Linode stores, as Linode
// would, so a record it wrote reads back with the TTL it sent.
func TestDNSRecordSwitchRoundsTTL(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int
	}{
		{time.Second, 30},
		{30 * time.Second, 30},
		{31 * time.Second, 120},
		{100 * time.Second, 120},
		{2 * time.Minute, 120},
		{2*time.Minute + time.Millisecond, 300},
		{301 * time.Second, 3600},
		{time.Hour, 3600},
		{5 * time.Hour, 28800},
		{1000 * time.Hour, 2419200},
	}
	for _, tt := range tests {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			secs := int((tt.ttl + time.Second - 1) / time.Second)
			if linode := linodetest.RoundTTL(secs); linode != tt.want {
				t.Fatalf("the fake rounds %ds to %d, the test says %d", secs, linode, tt.want)
			}
			e := newRecEnv(t, linodetest.Domain{}, nil, nil, func(o *DNSRecordOptions) {
				o.TTL = tt.ttl
				o.Names = []string{"ns1"}
			})
			if err := e.sw.Accept(context.Background(), blueSet[:1]); err != nil {
				t.Fatal(err)
			}
			recs := e.api.DomainRecords(e.domain.ID)
			if len(recs) != 1 || recs[0].TTLSec != tt.want || recs[0].Target != "192.0.2.16" || recs[0].Type != "A" {
				t.Fatalf("records %+v, want one A record → 192.0.2.16 with TTL %d", recs, tt.want)
			}
			for _, w := range recordWrites(e.api, 0) {
				var body struct {
					TTL int `json:"ttl_sec"`
				}
				if err := json.Unmarshal([]byte(w.Body), &body); err != nil || body.TTL != tt.want {
					t.Errorf("%s sent ttl_sec %d (%v), want %d", w.Method, body.TTL, err, tt.want)
				}
			}
		})
	}
}

// Drain waits, on the clock, for the longest TTL of the records Accept
// replaced (at least the switch's own), plus Propagation, and not a moment
// less: it is still waiting a nanosecond before.
func TestDNSRecordSwitchDrainWaits(t *testing.T) {
	tests := []struct {
		name        string
		zoneTTL     int
		records     []linodetest.DomainRecord // pointing ns1 at blue
		ttl         time.Duration             // the switch's
		propagation time.Duration
		want        time.Duration
	}{
		{name: "nothing replaced: the switch's own TTL", want: 2 * time.Minute},
		{name: "a longer TTL replaced",
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 3600}},
			want:    time.Hour},
		{name: "a shorter TTL replaced: the switch's own",
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 30}},
			want:    2 * time.Minute},
		{name: "the longest of several",
			records: []linodetest.DomainRecord{
				{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 300},
				{Type: "A", Name: "ns1", Target: "192.0.2.99", TTLSec: 14400}, // deleted
			},
			want: 4 * time.Hour},
		{name: "TTL 0: the zone's default", zoneTTL: 28800,
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16"}},
			want:    8 * time.Hour},
		{name: "TTL 0 in a zone without a default: Linode's 24h",
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16"}},
			want:    24 * time.Hour},
		{name: "propagation on top", propagation: 45 * time.Second,
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 300}},
			want:    5*time.Minute + 45*time.Second},
		{name: "the switch's TTL longer than the replaced one", ttl: time.Hour,
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 300}},
			want:    time.Hour},
		{name: "a record left pointing at a kept server does not count",
			records: []linodetest.DomainRecord{{Type: "A", Name: "ns1", Target: "192.0.2.17", TTLSec: 86400}},
			want:    2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			e := newRecEnv(t, linodetest.Domain{TTLSec: tt.zoneTTL}, tt.records, clock, func(o *DNSRecordOptions) {
				o.Names = []string{"ns1"}
				o.TTL = tt.ttl
				o.Propagation = tt.propagation
			})
			ctx := context.Background()
			if err := e.sw.Accept(ctx, greenSet); err != nil {
				t.Fatal(err)
			}
			if got := recordLines(e.api, e.domain.ID, "ns1"); len(got) != 1 || !strings.HasPrefix(got[0], "ns1 A 192.0.2.17 ") {
				t.Fatalf("ns1's records: %v", got)
			}
			if err := waitOut(t, clock, tt.want, func() error { return e.sw.Drain(ctx, blueSet) }, nil); err != nil {
				t.Fatalf("Drain = %v", err)
			}
		})
	}
}

// A Drain stopped by its context says what it was waiting for and how much
// of it was left, and a later Drain waits the whole time again.
func TestDNSRecordSwitchDrainStopped(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration // before the context ends
		stop    func(context.Context) (context.Context, context.CancelFunc)
		cause   error
		want    string
	}{
		{name: "cancelled", advance: 10 * time.Minute, stop: context.WithCancel, cause: context.Canceled,
			want: "stopped waiting for resolvers to forget the records that pointed at ns1-6, ns2-6 after 10m0s of 1h0m0s " +
				"(the deploy was stopped): they may still send clients there; lower the records' TTL or allow the switch more time"},
		{name: "out of time", stop: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 0)
		}, cause: context.DeadlineExceeded,
			want: "stopped waiting for resolvers to forget the records that pointed at ns1-6, ns2-6 after 0s of 1h0m0s " +
				"(the time allowed ran out): they may still send clients there; lower the records' TTL or allow the switch more time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			e := newRecEnv(t, linodetest.Domain{}, []linodetest.DomainRecord{
				{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 3600},
			}, clock)
			if err := e.sw.Accept(context.Background(), greenSet); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.stop(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.sw.Drain(ctx, blueSet) }()
			if tt.advance > 0 {
				eventually.True(t, "Drain waits on the clock", func() bool { return clock.Waiters() > 0 })
				clock.Advance(tt.advance)
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Drain did not return when its context ended")
			}
			if err == nil || deployer.ErrorMessage(err) != tt.want || !errors.Is(err, tt.cause) || deployer.ErrorCode(err) != deployer.CodeFailed {
				t.Fatalf("Drain = %v, want %q", err, tt.want)
			}
			// The stopped Drain's timer is still on the clock: let it fire
			// first, so the next wait is counted on its own.
			clock.Advance(time.Hour)
			if err := waitOut(t, clock, time.Hour, func() error { return e.sw.Drain(context.Background(), blueSet) }, nil); err != nil {
				t.Fatalf("Drain again = %v", err)
			}
		})
	}
}

// A domain ID that is not in the account is said in plain words.
func TestDNSRecordSwitchUnknownDomain(t *testing.T) {
	var missing int
	e := newRecEnv(t, linodetest.Domain{Domain: "example.com"}, nil, nil, func(o *DNSRecordOptions) {
		missing = o.DomainID + 1000
		o.DomainID = missing
	})
	err := e.sw.Accept(context.Background(), greenSet)
	want := fmt.Sprintf("Linode has no domain %d in this account (is domain_id right?)", missing)
	if err == nil || deployer.ErrorMessage(err) != want || deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("Accept = %v, want %q", err, want)
	}
	if w := recordWrites(e.api, 0); len(w) > 0 {
		t.Errorf("Accept wrote records: %+v", w)
	}
	if strings.Contains(e.logs.String(), testToken) {
		t.Error("the API token is in the logs")
	}
}

// Record calls are retried like the Cloud's, and a record created whose
// answer was lost is not created twice.
func TestDNSRecordSwitchRetries(t *testing.T) {
	const records, aRecord = "/domains/*/records", "/domains/*/records/*"
	tests := []struct {
		name   string
		faults []linodetest.Fault
		waits  []time.Duration
		method string
		path   string
		n      int
	}{
		{name: "429 with Retry-After on listing", faults: []linodetest.Fault{{Method: "GET", Path: records, Status: 429, RetryAfter: 5 * time.Second}},
			waits: []time.Duration{5 * time.Second}, method: "GET", path: records, n: 2},
		{name: "500 on an update", faults: []linodetest.Fault{{Method: "PUT", Path: aRecord, Status: 500}},
			waits: []time.Duration{time.Second}, method: "PUT", path: aRecord, n: 2},
		{name: "created but the answer lost", faults: []linodetest.Fault{{Method: "POST", Path: records, Status: 502, AfterHandling: true}},
			waits: []time.Duration{time.Second}, method: "POST", path: records, n: 1},
		{name: "deleted but the answer lost", faults: []linodetest.Fault{{Method: "DELETE", Path: aRecord, Status: 500, AfterHandling: true}},
			waits: []time.Duration{time.Second}, method: "DELETE", path: aRecord, n: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ns1 → blue is updated in place, ns2 has a stray record
			// deleted, and ns gets its A records created.
			e := newRecEnv(t, linodetest.Domain{}, []linodetest.DomainRecord{
				{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 120},
				{Type: "A", Name: "ns2", Target: "192.0.2.27", TTLSec: 120},
				{Type: "A", Name: "ns2", Target: "192.0.2.26", TTLSec: 120},
				{Type: "A", Name: "ns", Target: "192.0.2.17", TTLSec: 120},
			}, nil)
			for _, f := range tt.faults {
				e.api.Inject(f)
			}
			if err := e.sw.Accept(context.Background(), greenSet); err != nil {
				t.Fatal(err)
			}
			if got := e.clock.Waits(); !slices.Equal(got, tt.waits) {
				t.Errorf("waited %v, want %v", got, tt.waits)
			}
			if got := e.api.Count(tt.method, tt.path); got != tt.n {
				t.Errorf("%d %s %s requests, want %d", got, tt.method, tt.path, tt.n)
			}
			want := []string{"ns A 192.0.2.17 120", "ns A 192.0.2.27 120", "ns1 A 192.0.2.17 120", "ns2 A 192.0.2.27 120"}
			if got := recordLines(e.api, e.domain.ID, "ns1", "ns2", "ns"); !slices.Equal(got, want) {
				t.Errorf("records %v, want %v", got, want)
			}
		})
	}
}

// An Accept that fails half way has already replaced some records; when a
// second Accept then finishes the job, Drain still waits for what the
// first one replaced.
func TestDNSRecordSwitchDrainAfterFailedAccept(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	e := newRecEnv(t, linodetest.Domain{}, []linodetest.DomainRecord{
		{Type: "A", Name: "ns1", Target: "192.0.2.16", TTLSec: 3600},
		{Type: "A", Name: "ns2", Target: "192.0.2.26", TTLSec: 300},
	}, clock, func(o *DNSRecordOptions) { o.Names = []string{"ns1", "ns2"} })
	ns2 := recordIDs(e.api, e.domain.ID, "ns2", "A")[0]
	e.api.Inject(linodetest.Fault{Method: "PUT", Path: fmt.Sprintf("/domains/*/records/%d", ns2), Status: 400,
		Errors: []linodetest.Reason{{Field: "target", Reason: "Record is locked"}}})
	ctx := context.Background()
	err := e.sw.Accept(ctx, greenSet)
	if err == nil || deployer.ErrorMessage(err) != "Linode refused target 192.0.2.27: record is locked" {
		t.Fatalf("first Accept = %v, want Linode's refusal", err)
	}
	if got := recordLines(e.api, e.domain.ID, "ns1", "ns2"); !slices.Equal(got, []string{"ns1 A 192.0.2.17 120", "ns2 A 192.0.2.26 300"}) {
		t.Fatalf("after the first Accept: %v", got)
	}
	if err := e.sw.Accept(ctx, greenSet); err != nil {
		t.Fatal(err)
	}
	if err := waitOut(t, clock, time.Hour, func() error { return e.sw.Drain(ctx, blueSet) }, nil); err != nil {
		t.Fatalf("Drain = %v", err)
	}
}
