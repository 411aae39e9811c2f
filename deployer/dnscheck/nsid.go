package dnscheck

import (
	"encoding/hex"
	"strings"

	"github.com/miekg/dns"
)

// maxNSID is how many NSID bytes a message shows.
const maxNSID = 64

// NSIDOf is the NSID a reply carries, made safe for chat; "" when it has none.
// Tests across the project use it to see which server answered.
func NSIDOf(r *dns.Msg) string {
	opt := r.IsEdns0()
	if opt == nil {
		return ""
	}
	for _, o := range opt.Option {
		if n, ok := o.(*dns.EDNS0_NSID); ok {
			return decodeNSID(n.Nsid)
		}
	}
	return ""
}

// decodeNSID turns the hex miekg/dns keeps an NSID in back into the server's
// bytes, shown as text safe for chat: printable ASCII as it is, a backslash
// as \\, any other byte as \xNN, and at most maxNSID bytes followed by "…".
// Text that is not hex is shown the same way, as it is.
func decodeNSID(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		b = []byte(h)
	}
	return printable(b)
}

func printable(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b[:min(len(b), maxNSID)] {
		switch {
		case c == '\\':
			sb.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			sb.WriteString(`\x`)
			sb.WriteByte(digits[c>>4])
			sb.WriteByte(digits[c&0xf])
		}
	}
	if len(b) > maxNSID {
		sb.WriteString("…")
	}
	return sb.String()
}
