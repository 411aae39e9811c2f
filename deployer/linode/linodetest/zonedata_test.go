package linodetest

import "testing"

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
