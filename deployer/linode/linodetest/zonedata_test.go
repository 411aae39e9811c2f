package linodetest

import (
	"net"
	"testing"
)

// FuzzZonesFromUserData: any user data gives zones, none, or an error;
// never a panic.
func FuzzZonesFromUserData(f *testing.F) {
	f.Add([]byte("#cloud-config\nwrite_files:\n  - path: /etc/nsd/zones/a.zone\n    content: \"a. 300 IN SOA ns. h. 1 2 3 4 5\\n\"\n" +
		"  - path: /etc/nsd/nsd.conf.d/g.conf\n    content: |\n      zone:\n        name: \"a\"\n        zonefile: \"/etc/nsd/zones/a.zone\"\n        provide-xfr: 127.0.0.0/8 NOKEY\n"))
	f.Add([]byte("#cloud-config\nwrite_files: [{path: /etc/nsd/x.conf, content: \"zone:\\n provide-xfr: nonsense\\n\"}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sz, err := zonesFromUserData(data)
		if err == nil && sz != nil {
			for name, zd := range sz.zones {
				if zd.soa == nil {
					t.Fatalf("zone %s served without a SOA", name)
				}
			}
		}
	})
}

func TestProvideXFRRules(t *testing.T) {
	ud := func(rule string) []byte {
		return []byte("#cloud-config\nwrite_files:\n  - path: /etc/nsd/zones/a.zone\n    content: \"a. 300 IN SOA ns. h. 1 2 3 4 5\\n\"\n" +
			"  - path: /etc/nsd/nsd.conf.d/g.conf\n    content: |\n      zone:\n        name: \"a\"\n        zonefile: \"/etc/nsd/zones/a.zone\"\n        provide-xfr: " + rule + "\n")
	}
	tests := []struct {
		name, rule, from, key string
		tsigOK, want          bool
	}{
		{"NOKEY from inside", "127.0.0.0/8 NOKEY", "127.0.0.1:5353", "", false, true},
		{"NOKEY from outside", "127.0.0.0/8 NOKEY", "10.0.0.1:5353", "", false, false},
		{"a single address", "203.0.113.5 NOKEY", "203.0.113.5:5353", "", false, true},
		{"keyed, unsigned", "127.0.0.0/8 xfr.a.", "127.0.0.1:5353", "", false, false},
		{"keyed, signed", "127.0.0.0/8 xfr.a.", "127.0.0.1:5353", "xfr.a.", true, true},
		{"keyed, bad signature", "127.0.0.0/8 xfr.a.", "127.0.0.1:5353", "xfr.a.", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sz, err := zonesFromUserData(ud(tt.rule))
			if err != nil || sz == nil {
				t.Fatalf("zonesFromUserData: %v, %v", sz, err)
			}
			addr, err := net.ResolveTCPAddr("tcp", tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if got := sz.mayTransfer(addr, tt.key, tt.tsigOK); got != tt.want {
				t.Errorf("mayTransfer = %v, want %v", got, tt.want)
			}
		})
	}
}
