package dnscheck

import (
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
)

// benchZone is a generated zone of 10,000 records besides its SOA and NS,
// each at its own name. The next version changes 50 of them, removes 25 and
// adds 25: about 1% of the RRsets differ.
func benchZone(tb testing.TB, serial uint32, next bool) []dns.RR {
	tb.Helper()
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	rrs := []dns.RR{
		rr(fmt.Sprintf("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. %d 3600 600 1209600 300", serial)),
		rr("example.test. 300 IN NS ns1.example.test."),
		rr("example.test. 300 IN NS ns2.example.test."),
	}
	for i := range 10_000 {
		last := i % 250
		if next && i%200 == 7 {
			last++ // changed
		}
		if next && i%400 == 13 {
			continue // removed
		}
		name := fmt.Sprintf("host%05d.example.test.", i)
		switch i % 10 {
		case 0:
			rrs = append(rrs, rr(fmt.Sprintf(`%s 300 IN TXT "host %d of the bench zone, v%d"`, name, i, last)))
		case 1:
			rrs = append(rrs, rr(fmt.Sprintf("%s 300 IN AAAA 2001:db8::%x:%x", name, i, last)))
		default:
			rrs = append(rrs, rr(fmt.Sprintf("%s 300 IN A 10.%d.%d.%d", name, i>>8, i&0xff, last)))
		}
	}
	if next {
		for i := range 25 {
			rrs = append(rrs, rr(fmt.Sprintf("added%02d.example.test. 300 IN A 192.0.2.%d", i, i)))
		}
	}
	return rrs
}

// serveAXFR transfers the zone rrs (SOA first) over TCP on 127.0.0.1 until
// the benchmark ends.
func serveAXFR(b *testing.B, rrs []dns.RR) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	stream := slices.Concat(rrs, rrs[:1])
	srv := &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeAXFR {
			w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeRefused))
			return
		}
		ch := make(chan *dns.Envelope)
		go func() {
			defer close(ch)
			for chunk := range slices.Chunk(stream, 200) {
				ch <- &dns.Envelope{RR: chunk}
			}
		}()
		new(dns.Transfer).Out(w, r, ch)
		for range ch {
		}
		w.Close()
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return l.Addr().String()
}

func BenchmarkCompareZones10k(b *testing.B) {
	liveRRs, nextRRs := benchZone(b, 2026110102, false), benchZone(b, 2026110103, true)
	live := deployer.CheckTarget{Name: "ns1-6", Addr: serveAXFR(b, liveRRs)}
	next := deployer.CheckTarget{Name: "ns1-7", Addr: serveAXFR(b, nextRRs)}
	check := func(b *testing.B, d ZoneComparison) {
		if d.LiveRRsets != 10_001 || len(d.Changed) != 50 || len(d.Removed) != 25 || len(d.Added) != 25 {
			b.Fatalf("LiveRRsets %d, changed %d, removed %d, added %d; want 10001, 50, 25, 25",
				d.LiveRRsets, len(d.Changed), len(d.Removed), len(d.Added))
		}
	}

	b.Run("end-to-end", func(b *testing.B) {
		c := New(Options{})
		for b.Loop() {
			diffs, err := c.CompareZones(b.Context(), live, []deployer.CheckTarget{next}, []string{"example.test."}, CompareOptions{})
			if err != nil {
				b.Fatal(err)
			}
			check(b, diffs[0])
		}
		b.ReportMetric(float64(len(liveRRs)+len(nextRRs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})

	b.Run("rrsets", func(b *testing.B) { // grouping one transfer's records
		for b.Loop() {
			newZoneData(2026110102, liveRRs)
		}
	})

	b.Run("diff", func(b *testing.B) {
		l, n := newZoneData(2026110102, liveRRs), newZoneData(2026110103, nextRRs)
		check(b, diffZones("example.test.", l, n))
		for b.Loop() {
			diffZones("example.test.", l, n)
		}
	})
}
