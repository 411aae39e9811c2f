package dnscheck_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
)

// diffZoneText is the zone CompareZones tests start from: 10 RRsets besides
// the SOA, with its serial left to fill in.
const diffZoneText = `$ORIGIN example.test.
$TTL 300
@       IN SOA ns1.example.test. hostmaster.example.test. ( %d 3600 600 1209600 300 )
        IN NS  ns1.example.test.
        IN NS  ns2.example.test.
        IN MX  10 mail.example.test.
ns1     IN A   127.0.0.1
ns2     IN A   127.0.0.1
www     IN A   192.0.2.10
www     IN AAAA 2001:db8::10
api     IN A   192.0.2.20
mail    IN A   192.0.2.25
old     IN CNAME www
version IN TXT "image v7"
`

const nextSerial = liveSerial + 1

// zoneEdit turns one zone text into another.
type zoneEdit func(string) string

func swapText(old, new string) zoneEdit {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("zone text lacks " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

func addLine(line string) zoneEdit { return func(s string) string { return s + line + "\n" } }

func dropLine(line string) zoneEdit { return swapText(line+"\n", "") }

// diffZone is diffZoneText with serial, edited.
func diffZone(serial uint32, edits ...zoneEdit) string {
	s := fmt.Sprintf(diffZoneText, serial)
	for _, e := range edits {
		s = e(s)
	}
	return s
}

// xfrHandler is a zoneHandler that also transfers its zone: AXFR through
// dns.Transfer.Out, refused when told to, and only with a valid TSIG when
// told to (answering NOTAUTH like BIND otherwise).
type xfrHandler struct {
	*zoneHandler
	axfrRcode int  // answer AXFR with this rcode, when not 0
	tsig      bool // AXFR needs a TSIG that verifies
	chunk     int  // records per AXFR message; 100 when 0
}

// newXFRHandler serves the zone in text, which starts with its SOA.
func newXFRHandler(t testing.TB, text string) *xfrHandler {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), "", "")
	h := &zoneHandler{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h.records = append(h.records, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone: %v", err)
	}
	h.origin = h.records[0].Header().Name
	return &xfrHandler{zoneHandler: h}
}

func (h *xfrHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeAXFR {
		h.zoneHandler.ServeDNS(w, r)
		return
	}
	if h.tsig && (r.IsTsig() == nil || w.TsigStatus() != nil) {
		m := new(dns.Msg).SetRcode(r, dns.RcodeNotAuth)
		if ts := r.IsTsig(); ts != nil { // an unsigned TSIG saying why (RFC 8945 5.3.2)
			m.SetTsig(ts.Hdr.Name, ts.Algorithm, 300, time.Now().Unix())
			m.IsTsig().Error = dns.RcodeBadSig
			if errors.Is(w.TsigStatus(), dns.ErrSecret) {
				m.IsTsig().Error = dns.RcodeBadKey
			}
		}
		w.WriteMsg(m)
		return
	}
	rcode := h.axfrRcode
	if !strings.EqualFold(r.Question[0].Name, h.origin) {
		rcode = dns.RcodeNotAuth
	}
	if rcode != 0 {
		m := new(dns.Msg).SetRcode(r, rcode)
		if ts := r.IsTsig(); ts != nil {
			m.SetTsig(ts.Hdr.Name, ts.Algorithm, 300, time.Now().Unix())
		}
		w.WriteMsg(m)
		return
	}
	ch := make(chan *dns.Envelope)
	go func() {
		defer close(ch)
		for chunk := range slices.Chunk(slices.Concat(h.records, h.records[:1]), cmpOrInt(h.chunk, 100)) {
			ch <- &dns.Envelope{RR: chunk}
		}
	}()
	new(dns.Transfer).Out(w, r, ch)
	for range ch { // Out stops early when the client goes away
	}
	w.Close()
}

// serveTSIG starts h on 127.0.0.1 over UDP and TCP with one TSIG key.
func serveTSIG(t *testing.T, h dns.Handler, key, secret string) string {
	t.Helper()
	pc, l := listenPair(t)
	secrets := map[string]string{key: secret}
	start(t, &dns.Server{PacketConn: pc, Handler: h, TsigSecret: secrets})
	start(t, &dns.Server{Listener: l, Handler: h, TsigSecret: secrets})
	return pc.LocalAddr().String()
}

const (
	tsigKey    = "transfer.example.test."
	tsigSecret = "c2VjcmV0IHRoYXQgdGhlIHNlcnZlcnMgc2hhcmUgd2l0aCBncmVlbmxpZ2h0"
	wrongKey   = "d3Jvbmcgc2VjcmV0"
)

func TestCompareZones(t *testing.T) {
	tests := []struct {
		name       string
		next       []zoneEdit
		live, nxt  func(h *xfrHandler)
		opts       dnscheck.CompareOptions
		want       []string // Lines()
		wantSum    string   // Summary()
		wantMethod string   // "AXFR" when empty
		wantLive   int      // LiveRRsets; 10 when 0
	}{{
		name:    "identical zones, one in a message per record",
		nxt:     func(h *xfrHandler) { h.chunk = 1 },
		wantSum: "example.test.: serial 2026110102 → 2026110103 · no changes",
	}, {
		name:    "owner names differ only in case",
		next:    []zoneEdit{swapText("www     IN A", "WWW     IN A")},
		wantSum: "example.test.: serial 2026110102 → 2026110103 · no changes",
	}, {
		name: "added, removed and changed",
		next: []zoneEdit{
			addLine("new     IN A   192.0.2.30"),
			dropLine("old     IN CNAME www"),
			swapText("192.0.2.10", "192.0.2.11"),
			swapText("api     IN A", "api 600 IN A"), // a TTL change is a change
			addLine("@       IN NS  ns3.example.test."),
		},
		want: []string{
			"- example.test.\t300\tIN\tNS\tns1.example.test.",
			"- example.test.\t300\tIN\tNS\tns2.example.test.",
			"+ example.test.\t300\tIN\tNS\tns1.example.test.",
			"+ example.test.\t300\tIN\tNS\tns2.example.test.",
			"+ example.test.\t300\tIN\tNS\tns3.example.test.",
			"- api.example.test.\t300\tIN\tA\t192.0.2.20",
			"+ api.example.test.\t600\tIN\tA\t192.0.2.20",
			"+ new.example.test.\t300\tIN\tA\t192.0.2.30",
			"- old.example.test.\t300\tIN\tCNAME\twww.example.test.",
			"- www.example.test.\t300\tIN\tA\t192.0.2.10",
			"+ www.example.test.\t300\tIN\tA\t192.0.2.11",
		},
		wantSum: "example.test.: serial 2026110102 → 2026110103 · 1 added · 1 removed · 3 changed",
	}, {
		name: "a type added beside others at a name, a whole name removed",
		next: []zoneEdit{addLine(`www     IN TXT "hello"`), dropLine("mail    IN A   192.0.2.25")},
		want: []string{
			"- mail.example.test.\t300\tIN\tA\t192.0.2.25",
			"+ www.example.test.\t300\tIN\tTXT\t\"hello\"",
		},
		wantSum: "example.test.: serial 2026110102 → 2026110103 · 1 added · 1 removed",
	}, {
		name: "next refuses AXFR: the fallback names are queried on both",
		next: []zoneEdit{
			swapText("192.0.2.10", "192.0.2.11"),
			swapText("192.0.2.25", "192.0.2.26"), // not asked, so not seen
		},
		nxt:  func(h *xfrHandler) { h.axfrRcode = dns.RcodeRefused },
		opts: dnscheck.CompareOptions{Fallback: []dnscheck.Question{{"www.example.test", "A"}, {"api.example.test.", "a"}, {"gone.example.test", "A"}}},
		want: []string{
			"- www.example.test.\t300\tIN\tA\t192.0.2.10",
			"+ www.example.test.\t300\tIN\tA\t192.0.2.11",
		},
		wantSum:    "example.test.: serial 2026110102 → 2026110103 · 1 changed · queries (AXFR refused: ns1-7 answered REFUSED)",
		wantMethod: "queries (AXFR refused: ns1-7 answered REFUSED)",
		wantLive:   3, // NS, www A, api A
	}, {
		name:       "both refuse AXFR with NOTAUTH, nothing asked but the apex",
		live:       func(h *xfrHandler) { h.axfrRcode = dns.RcodeNotAuth },
		nxt:        func(h *xfrHandler) { h.axfrRcode = dns.RcodeNotAuth },
		next:       []zoneEdit{swapText("192.0.2.10", "192.0.2.11")},
		wantSum:    "example.test.: serial 2026110102 → 2026110103 · no changes · queries (AXFR refused: ns1-6 answered NOTAUTH, ns1-7 answered NOTAUTH)",
		wantMethod: "queries (AXFR refused: ns1-6 answered NOTAUTH, ns1-7 answered NOTAUTH)",
		wantLive:   1,
	}, {
		name:       "AXFR needs TSIG and none is sent: refused, so queried",
		live:       func(h *xfrHandler) { h.tsig = true },
		nxt:        func(h *xfrHandler) { h.tsig = true },
		wantSum:    "example.test.: serial 2026110102 → 2026110103 · no changes · queries (AXFR refused: ns1-6 answered NOTAUTH, ns1-7 answered NOTAUTH)",
		wantMethod: "queries (AXFR refused: ns1-6 answered NOTAUTH, ns1-7 answered NOTAUTH)",
		wantLive:   1,
	}, {
		name: "TSIG with the right key, the zone in several messages",
		live: func(h *xfrHandler) { h.tsig, h.chunk = true, 3 },
		nxt:  func(h *xfrHandler) { h.tsig, h.chunk = true, 1 },
		next: []zoneEdit{swapText("192.0.2.20", "192.0.2.21")},
		opts: dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: "Transfer.Example.Test", Secret: tsigSecret}},
		want: []string{
			"- api.example.test.\t300\tIN\tA\t192.0.2.20",
			"+ api.example.test.\t300\tIN\tA\t192.0.2.21",
		},
		wantSum: "example.test.: serial 2026110102 → 2026110103 · 1 changed",
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			live, next := newXFRHandler(t, diffZone(liveSerial)), newXFRHandler(t, diffZone(nextSerial, tt.next...))
			for h, f := range map[*xfrHandler]func(*xfrHandler){live: tt.live, next: tt.nxt} {
				if f != nil {
					f(h)
				}
			}
			c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})

			got, err := c.CompareZones(t.Context(), target(t, "ns1-6", live), []deployer.CheckTarget{target(t, "ns1-7", next)}, []string{"example.test"}, tt.opts)

			if err != nil || len(got) != 1 {
				t.Fatalf("%d: CompareZones = %+v, %v; want one diff", i, got, err)
			}
			d := got[0]
			if lines := d.Lines(); !slices.Equal(lines, tt.want) {
				t.Errorf("%d: Lines() =\n%s\nwant\n%s", i, strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
			if s := d.Summary(); s != tt.wantSum {
				t.Errorf("%d: Summary() = %q, want %q", i, s, tt.wantSum)
			}
			if want := cmpOrString(tt.wantMethod, "AXFR"); d.Method != want {
				t.Errorf("%d: Method = %q, want %q", i, d.Method, want)
			}
			if want := cmpOrInt(tt.wantLive, 10); d.LiveRRsets != want {
				t.Errorf("%d: LiveRRsets = %d, want %d", i, d.LiveRRsets, want)
			}
			if d.Zone != "example.test." || d.OldSerial != liveSerial || d.NewSerial != nextSerial {
				t.Errorf("%d: Zone, OldSerial, NewSerial = %q, %d, %d; want example.test., %d, %d", i, d.Zone, d.OldSerial, d.NewSerial, liveSerial, nextSerial)
			}
		})
	}
}

// target serves h on 127.0.0.1 over UDP and TCP, with the test TSIG key
// when h asks for TSIG.
func target(t *testing.T, name string, h *xfrHandler) deployer.CheckTarget {
	if h.tsig {
		return deployer.CheckTarget{Name: name, Addr: serveTSIG(t, h, tsigKey, tsigSecret)}
	}
	return deployer.CheckTarget{Name: name, Addr: serve(t, h, both)}
}

func cmpOrString(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

func cmpOrInt(v, fallback int) int {
	if v == 0 {
		return fallback
	}
	return v
}

// TestCompareZonesFails: every way CompareZones gives up says why, for chat.
func TestCompareZonesFails(t *testing.T) {
	tests := []struct {
		name    string
		live    func(h *xfrHandler)
		setup   setup // the next server's; both when 0
		opts    dnscheck.CompareOptions
		zones   []string
		want    string // the error's message
		wantIs  error
		invalid bool // CodeInvalid rather than CodeFailed
	}{{
		name: "TSIG with the wrong secret",
		live: func(h *xfrHandler) { h.tsig = true },
		opts: dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: tsigKey, Secret: wrongKey}},
		want: "ns1-6: AXFR example.test. failed TSIG: the server answered NOTAUTH to key transfer.example.test. " +
			"(check the key's name, algorithm and secret, and that the server serves the zone)",
		wantIs: dns.ErrAuth,
	}, {
		name:   "TSIG with a key the server does not know",
		live:   func(h *xfrHandler) { h.tsig = true },
		opts:   dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: "other.key.", Algorithm: "hmac-sha512", Secret: tsigSecret}},
		want:   "ns1-6: AXFR example.test. failed TSIG: the server answered NOTAUTH to key other.key. ",
		wantIs: dns.ErrAuth,
	}, {
		name:   "TSIG sent to a server that does not check it",
		opts:   dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: tsigKey, Secret: tsigSecret}},
		want:   "ns1-6: AXFR example.test. failed TSIG: the answer",
		wantIs: dns.ErrSig,
	}, {
		name:   "nothing listening",
		setup:  closed,
		want:   "ns1-7: AXFR example.test. failed: connection refused",
		wantIs: syscall.ECONNREFUSED,
	}, {
		name:  "no answer",
		setup: tcpHangs,
		opts:  dnscheck.CompareOptions{Timeout: 200 * time.Millisecond},
		want:  "ns1-7: AXFR example.test. timed out after 200ms",
	}, {
		name:  "AXFR refused and the queries too",
		live:  func(h *xfrHandler) { h.axfrRcode, h.rcode = dns.RcodeRefused, dns.RcodeRefused },
		want:  "ns1-6: SOA example.test. over TCP answered REFUSED (asked because the AXFR was refused)",
		zones: []string{"example.test."},
	}, {
		name:  "a zone neither serves",
		zones: []string{"example.test.", "other.test."},
		want: "ns1-6: SOA other.test. over TCP answered REFUSED (asked because the AXFR was refused); " +
			"ns1-7: SOA other.test. over TCP answered REFUSED (asked because the AXFR was refused)",
	}, {
		name:    "a secret that is not base64",
		opts:    dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: tsigKey, Secret: "not base64!"}},
		want:    "TSIG key transfer.example.test. has a secret that is empty or not base64",
		invalid: true,
	}, {
		name:    "an unknown TSIG algorithm",
		opts:    dnscheck.CompareOptions{TSIG: &dnscheck.TSIG{Name: tsigKey, Algorithm: "hmac-md5", Secret: tsigSecret}},
		want:    `TSIG key transfer.example.test. has an unknown algorithm "hmac-md5"`,
		invalid: true,
	}, {
		name:    "a fallback name outside the zones",
		opts:    dnscheck.CompareOptions{Fallback: []dnscheck.Question{{"www.exmaple.test", "A"}}},
		want:    "fallback question www.exmaple.test. is in none of the zones compared",
		invalid: true,
	}, {
		name:    "a fallback type that cannot be asked",
		opts:    dnscheck.CompareOptions{Fallback: []dnscheck.Question{{"www.example.test", "AXFR"}}},
		want:    `fallback question www.example.test. has a type "AXFR" that cannot be asked`,
		invalid: true,
	}, {
		name:    "no zones",
		zones:   []string{},
		want:    "nothing to compare: no zones",
		invalid: true,
	}, {
		name:    "a zone twice",
		zones:   []string{"example.test", "Example.Test."},
		want:    "zone Example.Test. is listed twice",
		invalid: true,
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			live, next := newXFRHandler(t, diffZone(liveSerial)), newXFRHandler(t, diffZone(liveSerial))
			if tt.live != nil {
				tt.live(live)
			}
			liveTarget := target(t, "ns1-6", live)
			nextTarget := deployer.CheckTarget{Name: "ns1-7", Addr: serve(t, next, tt.setup)}
			zones := tt.zones
			if zones == nil {
				zones = []string{"example.test"}
			}
			c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})

			got, err := c.CompareZones(t.Context(), liveTarget, []deployer.CheckTarget{nextTarget}, zones, tt.opts)

			t.Logf("%d: %v", i, err)
			e, ok := errors.AsType[*deployer.Error](err)
			if !ok || !strings.HasPrefix(e.Message, tt.want) || got != nil {
				t.Fatalf("%d: CompareZones = %v, %v; want no diffs and an error saying %q", i, got, err, tt.want)
			}
			if wantCode := map[bool]deployer.Code{false: deployer.CodeFailed, true: deployer.CodeInvalid}[tt.invalid]; e.Code != wantCode {
				t.Errorf("%d: code %q, want %q", i, e.Code, wantCode)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("%d: err = %v; want it to wrap %v", i, err, tt.wantIs)
			}
			if strings.Contains(err.Error(), tsigSecret) || strings.Contains(err.Error(), wrongKey) {
				t.Errorf("%d: err = %v quotes the TSIG secret", i, err)
			}
		})
	}
}

// TestCompareZonesNextDisagree: the next servers must serve the same zone;
// when they do not, the diff against the first still comes with the error.
func TestCompareZonesNextDisagree(t *testing.T) {
	live := newXFRHandler(t, diffZone(liveSerial))
	ns1 := newXFRHandler(t, diffZone(nextSerial, swapText("192.0.2.10", "192.0.2.11")))
	ns2 := newXFRHandler(t, diffZone(nextSerial, swapText("192.0.2.10", "192.0.2.11"), addLine("api2    IN A   192.0.2.21")))
	ns3 := newXFRHandler(t, diffZone(nextSerial+1, swapText("192.0.2.10", "192.0.2.11"), dropLine("mail    IN A   192.0.2.25"), dropLine(`version IN TXT "image v7"`),
		addLine("a IN A 192.0.2.1"), addLine("b IN A 192.0.2.2")))
	next := []deployer.CheckTarget{target(t, "ns1-7", ns1), target(t, "ns2-7", ns2), target(t, "ns3-7", ns3)}
	c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})

	got, err := c.CompareZones(t.Context(), target(t, "ns1-6", live), next, []string{"example.test."}, dnscheck.CompareOptions{})

	want := "ns2-7 serves example.test. differently from ns1-7: + api2.example.test. 300 IN A 192.0.2.21; " +
		"ns3-7 serves example.test. differently from ns1-7: serial 2026110104 instead of 2026110103; " +
		"+ a.example.test. 300 IN A 192.0.2.1, + b.example.test. 300 IN A 192.0.2.2, - mail.example.test. 300 IN A 192.0.2.25 (+1 more)"
	if e, ok := errors.AsType[*deployer.Error](err); !ok || e.Message != want || e.Code != deployer.CodeFailed {
		t.Errorf("err = %v\nwant %q", err, want)
	}
	if len(got) != 1 || got[0].Summary() != "example.test.: serial 2026110102 → 2026110103 · 1 changed" {
		t.Errorf("diffs = %+v, want live against ns1-7", got)
	}
}

// TestCompareZonesSeveral compares two zones, one of which a server will
// not transfer, on servers that serve both.
func TestCompareZonesSeveral(t *testing.T) {
	const otherZone = `$ORIGIN other.test.
@   3600 IN SOA ns1.other.test. hostmaster.other.test. ( %d 3600 600 1209600 300 )
    3600 IN NS  ns1.example.test.
www 3600 IN A   192.0.2.%d
`
	serveBoth := func(name string, serial uint32, host int, refuse bool) deployer.CheckTarget {
		mux := dns.NewServeMux()
		mux.Handle("example.test.", newXFRHandler(t, diffZone(serial)))
		other := newXFRHandler(t, fmt.Sprintf(otherZone, serial, host))
		if refuse {
			other.axfrRcode = dns.RcodeRefused
		}
		mux.Handle("other.test.", other)
		return deployer.CheckTarget{Name: name, Addr: serve(t, mux, both)}
	}
	live := serveBoth("ns1-6", liveSerial, 1, false)
	next := serveBoth("ns1-7", nextSerial, 2, true)
	c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})
	opts := dnscheck.CompareOptions{Fallback: []dnscheck.Question{{"www.other.test", "A"}, {"www.example.test", "A"}}}

	got, err := c.CompareZones(t.Context(), live, []deployer.CheckTarget{next}, []string{"other.test", "example.test"}, opts)

	if err != nil || len(got) != 2 {
		t.Fatalf("CompareZones = %+v, %v", got, err)
	}
	want := []string{
		"other.test.: serial 2026110102 → 2026110103 · 1 changed · queries (AXFR refused: ns1-7 answered REFUSED)",
		"example.test.: serial 2026110102 → 2026110103 · no changes",
	}
	for i, d := range got {
		if d.Summary() != want[i] {
			t.Errorf("%d: Summary() = %q, want %q", i, d.Summary(), want[i])
		}
	}
	wantLines := []string{"- www.other.test.\t3600\tIN\tA\t192.0.2.1", "+ www.other.test.\t3600\tIN\tA\t192.0.2.2"}
	if !slices.Equal(got[0].Lines(), wantLines) {
		t.Errorf("Lines() = %q, want %q", got[0].Lines(), wantLines)
	}
}

// TestCompareZonesPercentages changes 2 and removes 1 of 10 RRsets.
func TestCompareZonesPercentages(t *testing.T) {
	live := newXFRHandler(t, diffZone(liveSerial))
	next := newXFRHandler(t, diffZone(nextSerial,
		swapText("192.0.2.10", "192.0.2.11"),
		swapText("10 mail.example.test.", "20 mail.example.test."),
		dropLine("old     IN CNAME www"),
		addLine("new     IN A   192.0.2.30"), addLine("new     IN A   192.0.2.31")))
	c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})

	got, err := c.CompareZones(t.Context(), target(t, "ns1-6", live), []deployer.CheckTarget{target(t, "ns1-7", next)}, []string{"example.test"}, dnscheck.CompareOptions{})

	if err != nil || len(got) != 1 {
		t.Fatalf("CompareZones = %+v, %v", got, err)
	}
	d := got[0]
	if d.LiveRRsets != 10 || !near(d.UpdatedPct(), 20) || !near(d.DeletedPct(), 10) {
		t.Errorf("LiveRRsets, UpdatedPct, DeletedPct = %d, %v, %v; want 10, 20, 10", d.LiveRRsets, d.UpdatedPct(), d.DeletedPct())
	}
	if want := "example.test.: serial 2026110102 → 2026110103 · 1 added · 1 removed · 2 changed"; d.Summary() != want {
		t.Errorf("Summary() = %q, want %q (RRsets, not records)", d.Summary(), want)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestZoneComparisonMethods checks the methods on a ZoneComparison made by
// hand, as a caller that stored one would.
func TestZoneComparisonMethods(t *testing.T) {
	d := dnscheck.ZoneComparison{
		Zone:      "example.test.",
		OldSerial: 7, NewSerial: 8,
		Added: []string{
			"b.example.test. 300 IN A 192.0.2.2",
			"a.b.example.test.\t300\tIN\tA\t192.0.2.1",
			"example.test.\t300\tIN\tTXT\t\"v=spf1 -all\"",
		},
		Removed: []string{"z.example.test.\t300\tIN\tAAAA\t2001:db8::1", "z.example.test.\t300\tIN\tAAAA\t2001:db8::2"},
		Changed: []dnscheck.RRsetChange{{
			Old: []string{"b.example.test.\t300\tIN\tTYPE65534\t\\# 1 00"},
			New: []string{"b.example.test.\t300\tIN\tTYPE65534\t\\# 1 01"},
		}},
		LiveRRsets: 4,
	}
	wantLines := []string{
		"+ example.test.\t300\tIN\tTXT\t\"v=spf1 -all\"",
		"+ b.example.test. 300 IN A 192.0.2.2",
		"- b.example.test.\t300\tIN\tTYPE65534\t\\# 1 00",
		"+ b.example.test.\t300\tIN\tTYPE65534\t\\# 1 01",
		"+ a.b.example.test.\t300\tIN\tA\t192.0.2.1",
		"- z.example.test.\t300\tIN\tAAAA\t2001:db8::1",
		"- z.example.test.\t300\tIN\tAAAA\t2001:db8::2",
	}
	if got := d.Lines(); !slices.Equal(got, wantLines) {
		t.Errorf("Lines() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	if want := "example.test.: serial 7 → 8 · 3 added · 1 removed · 1 changed"; d.Summary() != want {
		t.Errorf("Summary() = %q, want %q", d.Summary(), want)
	}
	if d.UpdatedPct() != 25 || d.DeletedPct() != 25 {
		t.Errorf("UpdatedPct, DeletedPct = %v, %v; want 25, 25", d.UpdatedPct(), d.DeletedPct())
	}
	var zero dnscheck.ZoneComparison
	if zero.UpdatedPct() != 0 || zero.DeletedPct() != 0 || zero.Lines() != nil {
		t.Errorf("zero ZoneComparison: %v, %v, %q", zero.UpdatedPct(), zero.DeletedPct(), zero.Lines())
	}
}

// TestCompareZonesCancelled ends the comparison before it starts, and while
// a transfer waits for its answer.
func TestCompareZonesCancelled(t *testing.T) {
	h := newXFRHandler(t, diffZone(liveSerial))
	live := target(t, "ns1-6", h)

	t.Run("before it starts", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := dnscheck.New(dnscheck.Options{}).CompareZones(ctx, live, []deployer.CheckTarget{live}, []string{"example.test"}, dnscheck.CompareOptions{})
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "ns1-6: AXFR example.test. was cancelled") {
			t.Errorf("err = %v, want a cancelled AXFR wrapping context.Canceled", err)
		}
		// Both fetches failed: one line for the chat, both causes for the log.
		if msg := deployer.ErrorMessage(err); strings.Count(msg, "was cancelled") != 2 || strings.Contains(msg, "\n") {
			t.Errorf("message %q, want both failures on one line", msg)
		}
		if e, ok := errors.AsType[*deployer.Error](err); !ok || strings.Count(e.Err.Error(), "\n") != 1 {
			t.Errorf("err = %v, want both causes joined", err)
		}
	})

	t.Run("during a transfer", func(t *testing.T) {
		pc, l := listenPair(t)
		accepted := make(chan net.Conn, 1)
		drop(t, pc)
		hang(t, l, accepted)
		next := deployer.CheckTarget{Name: "ns1-7", Addr: pc.LocalAddr().String()}
		ctx, cancel := context.WithCancelCause(t.Context())
		done := make(chan error)
		go func() {
			_, err := dnscheck.New(dnscheck.Options{}).CompareZones(ctx, live, []deployer.CheckTarget{next}, []string{"example.test"}, dnscheck.CompareOptions{Timeout: time.Minute})
			done <- err
		}()

		<-accepted // the AXFR waits for its answer
		start := time.Now()
		cancel(errors.New("deploy #12 aborted"))
		err := <-done

		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("CompareZones returned %v after cancel, want at once", took)
		}
		if e, ok := errors.AsType[*deployer.Error](err); !ok || !strings.Contains(e.Message, "ns1-7: AXFR example.test. was cancelled: deploy #12 aborted") {
			t.Errorf("err = %v, want the AXFR to ns1-7 cancelled", err)
		}
	})
}
