package dnscheck

import (
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/miekg/dns"
)

func TestDecodeNSID(t *testing.T) {
	tests := []struct {
		in   string // as miekg/dns keeps it
		want string
	}{
		{hex.EncodeToString([]byte("ns1-7")), "ns1-7"},
		{"", ""},
		{"6e7300ff5c", `ns\x00\xff\\`},
		{"not hex", "not hex"},
		{strings.Repeat("41", maxNSID+1), strings.Repeat("A", maxNSID) + "…"},
	}
	for i, tt := range tests {
		if got := decodeNSID(tt.in); got != tt.want {
			t.Errorf("%d: decodeNSID(%q) = %q, want %q", i, tt.in, got, tt.want)
		}
	}
}

// FuzzNSIDOption sends arbitrary NSID bytes through a packed and unpacked
// reply, as a server would, and checks what the checker makes of them is
// printable, bounded, and the server's own text when that was printable.
func FuzzNSIDOption(f *testing.F) {
	for _, s := range []string{"ns1-7", "", "\x00\xff", `a\b`, strings.Repeat("x", 200), "ns1-7\n<!here>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, nsid []byte) {
		if len(nsid) > 60000 {
			t.Skip("larger than a DNS message")
		}
		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeSOA)
		m.SetEdns0(udpSize, false)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString(nsid)})
		wire, err := m.Pack()
		if err != nil {
			t.Skip(err)
		}
		var r dns.Msg
		if err := r.Unpack(wire); err != nil {
			t.Fatalf("unpack what was packed: %v", err)
		}

		got := NSIDOf(&r)

		text, _ := strings.CutSuffix(got, "…")
		if !utf8.ValidString(got) || strings.ContainsFunc(text, func(c rune) bool { return c < 0x20 || c >= 0x7f }) {
			t.Fatalf("NSIDOf = %q: not printable ASCII", got)
		}
		if len(text) > 4*maxNSID {
			t.Fatalf("NSIDOf = %q: %d bytes, more than %d", got, len(text), 4*maxNSID)
		}
		plain := len(nsid) <= maxNSID && !strings.ContainsFunc(string(nsid), func(c rune) bool { return c < 0x20 || c >= 0x7f || c == '\\' })
		if plain && got != string(nsid) {
			t.Fatalf("NSIDOf = %q, want the server's own %q", got, nsid)
		}
		if !plain && got == string(nsid) && len(nsid) > 0 {
			t.Fatalf("NSIDOf = %q: passed unsafe bytes through", got)
		}
	})
}
