package local

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// Two balancers of one protocol each share a port, each sending its
// protocol to its own set: the UDP one takes no TCP, the TCP one no UDP.
func TestBalancerOfOneProtocol(t *testing.T) {
	a, b := twoSets(t)
	udp, tcp, err := NewBalancerPair("127.0.0.1:0", BalancerOptions{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	t.Cleanup(func() { tcp.Close() })
	if udp.Addr() != tcp.Addr() {
		t.Fatalf("UDP balancer on %s, TCP balancer on %s", udp.Addr(), tcp.Addr())
	}
	ctx := context.Background()
	if err := udp.Accept(ctx, a[:1]); err != nil {
		t.Fatal(err)
	}
	if err := tcp.Accept(ctx, b[:1]); err != nil {
		t.Fatal(err)
	}
	for network, want := range map[string]string{"udp": a[0].Name, "tcp": b[0].Name} {
		r, err := ask(network, udp.Addr(), "example.test", dns.TypeSOA)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if got := nsid(r); r.Rcode != dns.RcodeSuccess || got != want {
			t.Errorf("%s answered by %q (rcode %d), want %s", network, got, r.Rcode, want)
		}
	}
	if s := udp.Stats(); s[a[0].Addr] != 1 || len(s) != 1 {
		t.Errorf("UDP balancer's stats %v", s)
	}
	if s := tcp.Stats(); s[b[0].Addr] != 1 || len(s) != 1 {
		t.Errorf("TCP balancer's stats %v", s)
	}
}
