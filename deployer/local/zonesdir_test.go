package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/zones"
)

func dirZone(serial int, www string) string {
	return fmt.Sprintf(`$ORIGIN example.test.
$TTL 300
@   IN SOA ns1.example.test. hostmaster.example.test. ( %d 3600 600 1209600 300 )
    IN NS  ns1.example.test.
ns1 IN A   127.0.0.1
www IN A   %s
`, serial, www)
}

// TestShippedZones: with a zones directory, each server serves the files
// as they were when it was created, across a restart; an edit reaches only
// servers created after it; a deploy whose recorded digest no longer
// matches the directory is refused; deleting a server removes its copy.
func TestShippedZones(t *testing.T) {
	data, zonesDir := t.TempDir(), t.TempDir()
	file := filepath.Join(zonesDir, "example.test.zone")
	write := func(serial int, www string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(dirZone(serial, www)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := zones.Options{Dir: zonesDir, Zones: []string{"example.test"}}
	write(7, "192.0.2.70")
	c := newTestCloud(t, data)
	c.ShipZones("ns", opts)
	first, err := c.ZoneSource("ns").Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	old := startServers(t, c, server{name: "ns1-1", image: "local/ns-v1", provision: true})[0]

	write(8, "192.0.2.80")
	// A deploy planned before the edit may not ship the edited files.
	_, err = c.Create(t.Context(), deployer.ServerSpec{Service: "ns", Role: "ns1", Name: "ns1-2", Image: "local/ns-v1", DeployID: 2, Zones: &first})
	if err == nil || !strings.Contains(err.Error(), "the zone files changed after deploy #2 was planned") {
		t.Fatalf("Create with a stale digest: %v", err)
	}
	fresh := startServers(t, c, server{name: "ns1-3", image: "local/ns-v1", provision: true})[0]

	check := func(s deployer.Server, serial uint32, www string) {
		t.Helper()
		r, err := ask("udp", s.Addr, "example.test", dns.TypeSOA)
		if err != nil || soaSerial(t, r) != serial {
			t.Errorf("%s SOA: %v %v, want serial %d", s.Name, r, err, serial)
		}
		r, err = ask("tcp", s.Addr, "www.example.test", dns.TypeA)
		if err != nil || len(r.Answer) != 1 || rdata(r.Answer[0]) != www {
			t.Errorf("%s www: %v %v, want %s", s.Name, r, err, www)
		}
	}
	check(old, 7, "192.0.2.70")
	check(fresh, 8, "192.0.2.80")

	c.Close()
	c = newTestCloud(t, data)
	for _, s := range []deployer.Server{old, fresh} {
		got, err := c.WaitRunning(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name == old.Name {
			check(got, 7, "192.0.2.70")
		} else {
			check(got, 8, "192.0.2.80")
		}
	}
	if err := c.Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, zonesDirName, old.ID)); !os.IsNotExist(err) {
		t.Errorf("the deleted server's zone files are still there: %v", err)
	}
}
