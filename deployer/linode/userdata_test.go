package linode

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/deployer/zones"
)

func TestUserDataTemplate(t *testing.T) {
	src, err := os.ReadFile("../../configs/cloud-init/nsd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	render, err := UserDataTemplate("nsd.yaml", string(src), []string{"example.com", "example.net"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := render(context.Background(), deployer.ServerSpec{Name: "ns2-9", Role: "ns2", Service: "ns", DeployID: 9})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("rendered user data is not YAML: %v\n%s", err, out)
	}
	for _, want := range []string{"#cloud-config", "hostname: ns2-9", `nsid: "ascii_ns2-9"`, `name: "example.net"`, "/etc/nsd/zones/example.com.zone"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("user data lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"{{.Nmae}}", "{{.Name", "no header {{.Name}}"} {
		if _, err := UserDataTemplate("bad", bad, nil); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

const testZone = `$ORIGIN example.com.
$TTL 300
@    IN SOA ns1.example.com. hostmaster.example.com. ( 2026110102 3600 600 1209600 300 )
     IN NS  ns1.example.com.
ns1  IN A   192.0.2.1
txt  IN TXT "tabs	and trailing spaces   " "quotes \" and ; semicolons"
`

const testZone2 = `example.net. 300 IN SOA ns1.example.com. hostmaster.example.com. 7 3600 600 1209600 300
example.net. 300 IN NS ns1.example.com.
`

func nsdTemplate(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../configs/cloud-init/nsd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

func zonesDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestUserDataShipsZoneFiles: the rendered cloud-init carries every file of
// the zones directory byte for byte, and an nsd.conf that serves them and
// allows transfers only to transfer_from, signed when a TSIG key is set.
func TestUserDataShipsZoneFiles(t *testing.T) {
	dir := zonesDir(t, map[string]string{"example.com.zone": testZone, "db.net": testZone2})
	opts := zones.Options{Dir: dir, Zones: []string{"example.com", "example.net"}, Files: map[string]string{"example.net": "db.net"}}
	tests := []struct {
		name     string
		tsig     *TSIGVars
		wantXfr  string
		wantNot  string
		wantConf []string
	}{
		{name: "without TSIG", wantXfr: "provide-xfr: 203.0.113.5/32 NOKEY"},
		{name: "with TSIG", tsig: &TSIGVars{Name: "transfer.example.com.", Algorithm: "hmac-sha256", Secret: "c2VjcmV0"},
			wantXfr: "provide-xfr: 203.0.113.5/32 transfer.example.com.", wantNot: "NOKEY",
			wantConf: []string{`name: "transfer.example.com."`, "algorithm: hmac-sha256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUserData(UserDataOptions{Name: "nsd.yaml", Source: nsdTemplate(t), Zones: opts.Zones, ZoneFiles: &opts,
				TransferFrom: []string{"203.0.113.5/32"}, TSIG: tt.tsig})
			if err != nil {
				t.Fatal(err)
			}
			content, err := u.Load(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			out, err := u.Render(t.Context(), deployer.ServerSpec{Name: "ns1-3", Role: "ns1", Service: "ns", DeployID: 3, Zones: &content})
			if err != nil {
				t.Fatal(err)
			}
			files, err := linodetest.WrittenFiles(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for path, want := range map[string]string{"/etc/nsd/zones/example.com.zone": testZone, "/etc/nsd/zones/db.net": testZone2} {
				if got, ok := files[path]; !ok || string(got) != want {
					t.Errorf("%s = %q, want the file's bytes %q", path, got, want)
				}
			}
			conf := string(files["/etc/nsd/nsd.conf.d/greenlight.conf"])
			for _, want := range append([]string{tt.wantXfr, `nsid: "ascii_ns1-3"`, `name: "example.net"`, `zonefile: "/etc/nsd/zones/db.net"`,
				`zonefile: "/etc/nsd/zones/example.com.zone"`, content.Digest}, tt.wantConf...) {
				if !strings.Contains(conf, want) {
					t.Errorf("nsd.conf lacks %q:\n%s", want, conf)
				}
			}
			if tt.wantNot != "" && strings.Contains(conf, tt.wantNot) {
				t.Errorf("nsd.conf has %q:\n%s", tt.wantNot, conf)
			}
			if strings.Count(conf, "provide-xfr") != 2 {
				t.Errorf("want one provide-xfr per zone:\n%s", conf)
			}
		})
	}
}

// TestUserDataRefusesEditedZones: files edited after the deploy was planned
// are not shipped; the deploy must be started again.
func TestUserDataRefusesEditedZones(t *testing.T) {
	dir := zonesDir(t, map[string]string{"example.com.zone": testZone})
	opts := zones.Options{Dir: dir, Zones: []string{"example.com"}}
	u, err := NewUserData(UserDataOptions{Name: "nsd.yaml", Source: nsdTemplate(t), Zones: opts.Zones, ZoneFiles: &opts})
	if err != nil {
		t.Fatal(err)
	}
	content, err := u.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(testZone+"new IN A 192.0.2.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = u.Render(t.Context(), deployer.ServerSpec{Name: "ns1-3", DeployID: 3, Zones: &content})
	if err == nil || !strings.Contains(err.Error(), "the zone files changed after deploy #3 was planned") {
		t.Fatalf("err = %v", err)
	}
}

// TestUserDataOverLimit: zone files that make the user data larger than
// Linode accepts refuse the deploy at plan, saying by how much.
func TestUserDataOverLimit(t *testing.T) {
	var big strings.Builder
	big.WriteString(testZone)
	rng := rand.New(rand.NewPCG(1, 2)) // incompressible, so gzip cannot save it
	for i := range 1200 {
		fmt.Fprintf(&big, "r%d IN TXT \"%016x%016x\"\n", i, rng.Uint64(), rng.Uint64())
	}
	dir := zonesDir(t, map[string]string{"example.com.zone": big.String()})
	opts := zones.Options{Dir: dir, Zones: []string{"example.com"}}
	u, err := NewUserData(UserDataOptions{Name: "nsd.yaml", Source: nsdTemplate(t), Zones: opts.Zones, ZoneFiles: &opts})
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Load(t.Context())
	if err == nil || !strings.Contains(err.Error(), "more than Linode's limit of 16384") || !strings.Contains(err.Error(), "provisioner kind: command") {
		t.Fatalf("err = %v", err)
	}
	var n, over int
	if _, scanErr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), " is "):], " is %d bytes, %d more", &n, &over); scanErr != nil || n-over != UserDataLimit {
		t.Fatalf("the error does not say by how much: %v (%v)", err, scanErr)
	}
}

func FuzzWrittenFiles(f *testing.F) {
	f.Add([]byte("#cloud-config\nwrite_files:\n  - path: /a\n    content: hi\n"))
	f.Add([]byte("#cloud-config\nwrite_files:\n  - path: /a\n    encoding: gz+b64\n    content: H4sIAAAAAAAC/8vIBAAAAP//AwCsKpPYAgAAAA==\n"))
	f.Add([]byte("#cloud-config\nwrite_files: [{path: /b, encoding: b64, content: '!!'}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := linodetest.WrittenFiles(data)
		if err == nil && files == nil {
			t.Fatal("no error and no files")
		}
	})
}
