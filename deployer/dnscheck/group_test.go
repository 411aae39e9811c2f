package dnscheck

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestGroupSaysEachFindingOnce(t *testing.T) {
	pr := func(target string, qtype uint16, name, net, what string) problem {
		return problem{q: query{target: target, name: name, qtype: qtype, net: net}, what: what}
	}
	var servfail []problem
	for _, target := range []string{"ns2-2", "ns1-2"} {
		for _, net := range []string{"tcp", "udp"} {
			servfail = append(servfail, pr(target, dns.TypeA, "ns1.example.test.", net, " answered SERVFAIL"),
				pr(target, dns.TypeSOA, "example.test.", net, " answered SERVFAIL"))
		}
	}
	tests := []struct {
		name string
		in   []problem
		want []string
	}{
		{"one finding everywhere", servfail,
			[]string{"ns1-2, ns2-2: SOA example.test. and A ns1.example.test. over UDP+TCP answered SERVFAIL"}},
		{"different findings stay apart", []problem{
			pr("ns1-2", dns.TypeSOA, "example.test.", "udp", ": serial 1 is lower than the live 2"),
			pr("ns2-2", dns.TypeSOA, "example.test.", "tcp", " timed out after 2s"),
			pr("ns1-2", dns.TypeSOA, "example.test.", "tcp", ": serial 1 is lower than the live 2"),
			pr("ns1-2", dns.TypeSOA, "example.test.", "tcp", ": serial 1 is lower than the live 2"),
		}, []string{
			"ns1-2: SOA example.test. over UDP+TCP: serial 1 is lower than the live 2",
			"ns2-2: SOA example.test. over TCP timed out after 2s",
		}},
		{"three questions", []problem{
			pr("ns1-2", dns.TypeSOA, "a.test.", "udp", " answered REFUSED"),
			pr("ns1-2", dns.TypeSOA, "b.test.", "udp", " answered REFUSED"),
			pr("ns1-2", dns.TypeSOA, "c.test.", "udp", " answered REFUSED"),
		}, []string{"ns1-2: SOA a.test., SOA b.test. and SOA c.test. over UDP answered REFUSED"}},
		{"nothing", nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := group(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
