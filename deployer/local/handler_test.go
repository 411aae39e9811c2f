package local

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/greenlight/greenlight/configs"
	"github.com/miekg/dns"
)

func TestServerAnswers(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	s := startServers(t, c, server{"ns1-1", "local/ns-v2", true})[0]

	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string // rdata, in zone order
		soaNS  bool     // the zone's SOA in the authority section
	}{
		{"example.test", dns.TypeSOA, dns.RcodeSuccess, true,
			[]string{"ns1.example.test. hostmaster.example.test. 2026110102 3600 600 1209600 300"}, false},
		{"example.test", dns.TypeNS, dns.RcodeSuccess, true, []string{"ns1.example.test.", "ns2.example.test."}, false},
		{"www.example.test", dns.TypeA, dns.RcodeSuccess, true, []string{"192.0.2.10"}, false},
		{"WWW.Example.TEST", dns.TypeA, dns.RcodeSuccess, true, []string{"192.0.2.10"}, false},
		{"api.example.test", dns.TypeA, dns.RcodeSuccess, true, []string{"192.0.2.20"}, false},
		{"version.example.test", dns.TypeTXT, dns.RcodeSuccess, true, []string{`"image v2"`}, false},
		{"www.example.test", dns.TypeAAAA, dns.RcodeSuccess, true, nil, true}, // NODATA
		{"nope.example.test", dns.TypeA, dns.RcodeNameError, true, nil, true},
		{"deep.nope.example.test", dns.TypeTXT, dns.RcodeNameError, true, nil, true},
		{"example.org", dns.TypeSOA, dns.RcodeRefused, false, nil, false},
		{"test", dns.TypeSOA, dns.RcodeRefused, false, nil, false},
		{"example.test", dns.TypeIXFR, dns.RcodeNotImplemented, false, nil, false},
	}
	for _, network := range []string{"udp", "tcp"} {
		for i, tt := range tests {
			r, err := ask(network, s.Addr, tt.name, tt.qtype)
			if err != nil {
				t.Fatalf("%s #%d %s %s: %v", network, i, tt.name, dns.TypeToString[tt.qtype], err)
			}
			where := network + " " + tt.name + " " + dns.TypeToString[tt.qtype]
			if r.Rcode != tt.rcode {
				t.Errorf("%s: rcode %s, want %s", where, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if r.Authoritative != tt.aa {
				t.Errorf("%s: AA %v, want %v", where, r.Authoritative, tt.aa)
			}
			if got := rdatas(r.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("%s: answer %q, want %q", where, got, tt.answer)
			}
			gotSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if gotSOA != tt.soaNS || (!tt.soaNS && len(r.Ns) != 0) {
				t.Errorf("%s: authority %v, want SOA: %v", where, r.Ns, tt.soaNS)
			}
			if got := nsid(r); got != "ns1-1" {
				t.Errorf("%s: NSID %q, want ns1-1", where, got)
			}
		}
	}
}

func TestServerWithoutEDNSHasNoOPT(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	s := startServers(t, c, server{"ns1-1", "local/ns-v1", true})[0]
	m := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
	r, err := dns.Exchange(m, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || r.IsEdns0() != nil {
		t.Fatalf("want NOERROR, AA and no OPT; got\n%s", r)
	}
}

// Servers answer per their image and provisioning state, with NSID always.
func TestServerImages(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ss := startServers(t, c,
		server{"ns1-1", "local/ns-v1", false},
		server{"ns1-2", "local/ns-broken", true},
		server{"ns1-3", "local/ns-stale", true},
		server{"ns1-4", "local/ns-v1", true},
	)
	tests := []struct {
		server int
		rcode  int
		serial uint32 // 0: no answer
	}{
		{0, dns.RcodeRefused, 0}, // not provisioned yet
		{1, dns.RcodeServerFailure, 0},
		{2, dns.RcodeSuccess, serialStale},
		{3, dns.RcodeSuccess, serialV1},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			s := ss[tt.server]
			r, err := ask(network, s.Addr, "example.test", dns.TypeSOA)
			if err != nil {
				t.Fatalf("%s %s: %v", network, s.Name, err)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("%s %s (%s): rcode %s, want %s", network, s.Name, s.Image, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if tt.serial != 0 && soaSerial(t, r) != tt.serial {
				t.Errorf("%s %s: serial %d, want %d", network, s.Name, soaSerial(t, r), tt.serial)
			}
			if tt.serial == 0 && (len(r.Answer) != 0 || r.Authoritative) {
				t.Errorf("%s %s: want no answer and no AA, got\n%s", network, s.Name, r)
			}
			if got := nsid(r); got != s.Name {
				t.Errorf("%s %s: NSID %q", network, s.Name, got)
			}
		}
	}
	if serialStale >= serialV1 {
		t.Fatal("the stale image must serve a lower serial than v1")
	}
}

func TestAXFR(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ss := startServers(t, c, server{"ns1-1", "local/ns-v2", true}, server{"ns1-2", "local/ns-broken", true})

	m := new(dns.Msg).SetAxfr("example.test.")
	env, err := new(dns.Transfer).In(m, ss[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		rrs = append(rrs, e.RR...)
	}
	// SOA, NS×2, MX, TXT, ns1, ns2, mail, www, api, version, SOA.
	if len(rrs) != 12 {
		t.Fatalf("AXFR gave %d records, want 12:\n%v", len(rrs), rrs)
	}
	first, ok1 := rrs[0].(*dns.SOA)
	last, ok2 := rrs[len(rrs)-1].(*dns.SOA)
	if !ok1 || !ok2 || first.Serial != serialV2 || last.Serial != serialV2 {
		t.Fatalf("AXFR must start and end with the SOA serial %d: %v … %v", serialV2, rrs[0], rrs[len(rrs)-1])
	}
	var got []string
	for _, rr := range rrs {
		got = append(got, rr.String())
	}
	for _, want := range []string{"api.example.test.\t300\tIN\tA\t192.0.2.20", "www.example.test.\t300\tIN\tA\t192.0.2.10"} {
		if !slices.Contains(got, want) {
			t.Errorf("AXFR lacks %q", want)
		}
	}

	// Over UDP, for a name that is not a zone, and from a broken server: no transfer.
	tests := []struct {
		network, addr, zone string
		rcode               int
	}{
		{"udp", ss[0].Addr, "example.test.", dns.RcodeRefused},
		{"tcp", ss[0].Addr, "www.example.test.", dns.RcodeRefused},
		{"tcp", ss[0].Addr, "example.org.", dns.RcodeRefused},
		{"tcp", ss[1].Addr, "example.test.", dns.RcodeServerFailure},
	}
	for i, tt := range tests {
		r, _, err := (&dns.Client{Net: tt.network}).Exchange(new(dns.Msg).SetAxfr(tt.zone), tt.addr)
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if r.Rcode != tt.rcode || len(r.Answer) != 0 {
			t.Errorf("#%d AXFR %s over %s: rcode %s with %d answers, want %s", i, tt.zone, tt.network,
				dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tt.rcode])
		}
	}
}

// Several zones: the closest one answers; an empty non-terminal is NODATA.
func TestZonesFromFS(t *testing.T) {
	zones := fstest.MapFS{
		"zones/lab.test.zone": {Data: []byte(`$ORIGIN lab.test.
$TTL 60
@ IN SOA ns.lab.test. root.lab.test. {{.Serial}} 1 1 1 30
  IN NS ns.lab.test.
host.rack.lab.test. IN TXT "{{.Server}}"
`)},
		"zones/sub.lab.test.zone": {Data: []byte(`@ 3600 IN SOA ns.sub.lab.test. root.sub.lab.test. {{.Serial}} 1 1 1 3600
@ 3600 IN NS ns.sub.lab.test.
www 3600 IN A 192.0.2.99
`)},
	}
	c := newTestCloud(t, t.TempDir(), func(o *Options) { o.Zones = zones })
	s := startServers(t, c, server{"lab-1", "local/ns-v1", true})[0]
	tests := []struct {
		name     string
		qtype    uint16
		rcode    int
		answer   []string
		soaOwner string
		soaTTL   uint32
	}{
		{"host.rack.lab.test", dns.TypeTXT, dns.RcodeSuccess, []string{`"lab-1"`}, "", 0},
		{"rack.lab.test", dns.TypeA, dns.RcodeSuccess, nil, "lab.test.", 30}, // empty non-terminal; TTL is the SOA minimum
		{"www.sub.lab.test", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.99"}, "", 0},
		{"nope.sub.lab.test", dns.TypeA, dns.RcodeNameError, nil, "sub.lab.test.", 3600},
		{"sub.lab.test", dns.TypeSOA, dns.RcodeSuccess, []string{"ns.sub.lab.test. root.sub.lab.test. 2026110101 1 1 1 3600"}, "", 0},
	}
	for i, tt := range tests {
		r, err := ask("udp", s.Addr, tt.name, tt.qtype)
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if r.Rcode != tt.rcode || !r.Authoritative || !slices.Equal(rdatas(r.Answer), tt.answer) {
			t.Errorf("#%d %s: got %s AA=%v %q, want %s %q", i, tt.name, dns.RcodeToString[r.Rcode], r.Authoritative,
				rdatas(r.Answer), dns.RcodeToString[tt.rcode], tt.answer)
		}
		if tt.soaOwner != "" {
			if len(r.Ns) != 1 || r.Ns[0].Header().Name != tt.soaOwner || r.Ns[0].Header().Ttl != tt.soaTTL {
				t.Errorf("#%d %s: authority %v, want the SOA of %s with TTL %d", i, tt.name, r.Ns, tt.soaOwner, tt.soaTTL)
			}
		}
	}
}

func TestBadZones(t *testing.T) {
	tests := []struct {
		name  string
		zone  string
		inNew bool // New fails, rather than Provision
	}{
		{"template", "@ IN SOA {{.Nope", true},
		{"missing field", "@ IN SOA a. b. {{.Nope}} 1 1 1 1\n", true},
		{"no SOA", "www IN A 192.0.2.1\n", true},
		{"outside", "@ IN SOA a. b. 1 1 1 1 1\nexample.org. IN A 192.0.2.1\n", true},
		{"syntax", "@ IN SOA a. b. 1 1 1 1 1\nwww IN A not-an-address\n", true},
		{"v2 only", "@ IN SOA a. b. 1 1 1 1 1\n{{if ge .Version 2}}www IN A not-an-address{{end}}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zones := fstest.MapFS{"zones/bad.test.zone": {Data: []byte(tt.zone)}}
			c, err := New(Options{Dir: t.TempDir(), BootDelay: -1, Logger: discard(), Zones: zones})
			if tt.inNew {
				if err == nil {
					c.Close()
					t.Fatal("New accepted a bad zone")
				}
				t.Logf("New: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			s, err := c.Create(ctx, specFor("bad-1", "local/ns-v2"))
			if err != nil {
				t.Fatal(err)
			}
			if s, err = c.WaitRunning(ctx, s); err != nil {
				t.Fatal(err)
			}
			err = c.Provision(ctx, s)
			if err == nil {
				t.Fatal("Provision loaded a bad zone")
			}
			t.Logf("Provision: %v", err)
		})
	}
	if _, err := New(Options{Dir: t.TempDir(), Zones: fstest.MapFS{}}); err == nil {
		t.Error("New accepted a zone FS with no zones")
	}
}

// Each version serves the zone the template gives it: v2 adds api, and the
// serial and version TXT follow the image.
func TestVersionsDiffer(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ss := startServers(t, c, server{"ns1-1", "local/ns-v1", true}, server{"ns1-2", "local/ns-v2", true})
	const nx = "NXDOMAIN"
	tests := []struct {
		name   string
		qtype  uint16
		v1, v2 string // rdata of the single answer, or nx
	}{
		{"example.test", dns.TypeSOA,
			"ns1.example.test. hostmaster.example.test. 2026110101 3600 600 1209600 300",
			"ns1.example.test. hostmaster.example.test. 2026110102 3600 600 1209600 300"},
		{"api.example.test", dns.TypeA, nx, "192.0.2.20"},
		{"www.example.test", dns.TypeA, "192.0.2.10", "192.0.2.10"},
		{"version.example.test", dns.TypeTXT, `"image v1"`, `"image v2"`},
	}
	for i, tt := range tests {
		for j, want := range []string{tt.v1, tt.v2} {
			s := ss[j]
			r, err := ask("udp", s.Addr, tt.name, tt.qtype)
			if err != nil {
				t.Fatalf("#%d %s: %v", i, s.Image, err)
			}
			got := strings.Join(rdatas(r.Answer), " | ")
			if r.Rcode == dns.RcodeNameError {
				got = nx
			}
			if got != want || !r.Authoritative {
				t.Errorf("#%d %s %s on %s: got %q (%s, AA=%v), want %q", i, tt.name, dns.TypeToString[tt.qtype], s.Image,
					got, dns.RcodeToString[r.Rcode], r.Authoritative, want)
			}
		}
	}
}

// Packets miekg/dns hands to the handler, or answers itself, that are not a
// well-formed single question. A bare header claiming one question used to
// panic the handler and with it the whole process.
func TestServerMalformedQueries(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ss := startServers(t, c, server{"ns1-1", "local/ns-v2", true}, server{"ns1-2", "local/ns-v2", false})
	b := newTestBalancer(t, nil)
	if err := b.Accept(context.Background(), ss[:1]); err != nil {
		t.Fatal(err)
	}
	two := new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA)
	two.Question = append(two.Question, two.Question[0])
	twoPacked, err := two.Pack()
	if err != nil {
		t.Fatal(err)
	}
	twoPacked[0], twoPacked[1] = 0x0b, 0x0b
	notify := new(dns.Msg).SetNotify("example.test.")
	notify.Id = 0x0c0c
	notifyPacked, err := notify.Pack()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		packet []byte
		id     uint16
		rcode  int
	}{
		{"bare header claiming a question", header(0x0a0a, 0, 1, 0, 0, 0), 0x0a0a, dns.RcodeFormatError},
		{"no question", header(0x0d0d, 0, 0, 0, 0, 0), 0x0d0d, dns.RcodeFormatError},
		{"two questions", twoPacked, 0x0b0b, dns.RcodeFormatError},
		{"notify", notifyPacked, 0x0c0c, dns.RcodeNotImplemented},
	}
	targets := []struct{ name, network, addr string }{
		{"provisioned udp", "udp", ss[0].Addr},
		{"provisioned tcp", "tcp", ss[0].Addr},
		{"unprovisioned udp", "udp", ss[1].Addr},
		{"balancer udp", "udp", b.Addr()},
		{"balancer tcp", "tcp", b.Addr()},
	}
	for _, target := range targets {
		for i, tt := range tests {
			r, err := askRaw(target.network, target.addr, tt.packet)
			if err != nil {
				t.Fatalf("%s #%d %s: %v", target.name, i, tt.name, err)
			}
			if r.Id != tt.id || !r.Response || r.Rcode != tt.rcode || r.Authoritative {
				t.Errorf("%s #%d %s: id %#x %s AA=%v, want id %#x %s", target.name, i, tt.name,
					r.Id, dns.RcodeToString[r.Rcode], r.Authoritative, tt.id, dns.RcodeToString[tt.rcode])
			}
		}
		// and it still answers
		r, err := ask(target.network, target.addr, "example.test", dns.TypeSOA)
		if err != nil || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeRefused) {
			t.Fatalf("%s after the malformed queries: %v %v", target.name, r, err)
		}
	}
}

// FuzzHandler feeds the handler every packet miekg/dns's server would hand
// it, for an unprovisioned, a broken and a provisioned server, over UDP and
// TCP: it must not panic, and every reply must be a packable response with
// the query's ID; a reply other than a zone transfer to an EDNS query asking
// for NSID carries it.
func FuzzHandler(f *testing.F) {
	zts, err := loadZoneTemplates(configs.Files)
	if err != nil {
		f.Fatal(err)
	}
	v2 := &content{}
	for _, zt := range zts {
		z, err := zt.render(zoneData{Serial: serialFor(2), Version: 2, Server: "ns1-1"})
		if err != nil {
			f.Fatal(err)
		}
		v2.zones = append(v2.zones, z)
	}
	handlers := []*handler{newHandler("ns1-1", discard()), newHandler("ns1-1", discard()), newHandler("ns1-1", discard())}
	handlers[1].serve(&content{broken: true})
	handlers[2].serve(v2)

	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"example.test", dns.TypeSOA}, {"www.example.test", dns.TypeAAAA}, {"nope.example.test", dns.TypeA},
		{"example.org", dns.TypeA}, {"example.test", dns.TypeAXFR}, {"www.example.test", dns.TypeAXFR},
		{"example.test", dns.TypeIXFR}, {"EXAMPLE.test", dns.TypeANY},
	} {
		seed(newQuery(q.name, q.qtype))
		seed(new(dns.Msg).SetQuestion(dns.Fqdn(q.name), q.qtype))
	}
	seed(new(dns.Msg).SetNotify("example.test."))
	small := newQuery("example.test", dns.TypeNS)
	small.IsEdns0().SetUDPSize(0)
	seed(small)
	f.Add(header(1, 0, 1, 0, 0, 0), false) // the bare header that used to panic
	f.Add(header(1, 0, 1, 0, 0, 0), true)

	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		if len(packet) < 12 {
			return // miekg/dns drops it
		}
		be := binary.BigEndian
		dh := dns.Header{Id: be.Uint16(packet), Bits: be.Uint16(packet[2:]), Qdcount: be.Uint16(packet[4:]),
			Ancount: be.Uint16(packet[6:]), Nscount: be.Uint16(packet[8:]), Arcount: be.Uint16(packet[10:])}
		if dns.DefaultMsgAcceptFunc(dh) != dns.MsgAccept {
			return // miekg/dns answers FORMERR or NOTIMP itself
		}
		q := new(dns.Msg)
		if q.Unpack(packet) != nil {
			return // miekg/dns answers FORMERR itself
		}
		wantNSID := false
		if opt := q.IsEdns0(); opt != nil {
			wantNSID = wantsNSID(opt)
		}
		for i, h := range handlers {
			w := &recorder{tcp: tcp}
			h.ServeDNS(w, q)
			if len(w.msgs) == 0 || (!tcp && len(w.msgs) != 1) {
				t.Fatalf("handler %d (tcp %v) wrote %d replies to\n%s", i, tcp, len(w.msgs), q)
			}
			for _, m := range w.msgs {
				if m.Id != q.Id || !m.Response {
					t.Fatalf("handler %d: reply id %#x response %v to query id %#x", i, m.Id, m.Response, q.Id)
				}
				if _, err := m.Pack(); err != nil {
					t.Fatalf("handler %d: reply does not pack: %v\n%s", i, err, m)
				}
			}
			transfer := tcp && h.content.Load().transferZone(q) != nil // AXFR messages carry no OPT
			if wantNSID && !transfer && nsid(w.msgs[0]) != "ns1-1" {
				t.Fatalf("handler %d: NSID %q, want ns1-1", i, nsid(w.msgs[0]))
			}
		}
	})
}
