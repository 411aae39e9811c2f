package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/eventually"
)

// tsigSecret is the test's TSIG secret (base64); it must reach no output.
const tsigSecret = "dHNpZy1zZWNyZXQtbm90LXJlYWw="

func exampleZone(serial int, extra string) string {
	return fmt.Sprintf(`$ORIGIN example.test.
$TTL 300
@     IN SOA ns1.example.test. hostmaster.example.test. ( %d 3600 600 1209600 300 )
      IN NS  ns1.example.test.
      IN NS  ns2.example.test.
ns1   IN A   192.0.2.1
ns2   IN A   192.0.2.2
www   IN A   192.0.2.10
%s`, serial, extra)
}

// zonesConfig is a config for ns on a with zones.dir, zone comparison by
// TSIG-signed AXFR from loopback, and the NodeBalancer switch.
func (a *linodeAccount) zonesConfig(t *testing.T, zonesDir string) string {
	t.Helper()
	conf := fmt.Sprintf(`log: {level: warn}
services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    rollback_window: 300ms
    timeouts: {wait_running: 3s, provision: 5s, check: 5s}
    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12, poll_interval: 20ms}
    zones: {dir: %q}
    provisioner: {kind: cloud-init}
    switch: {kind: nodebalancer, nodebalancer_id: %d, endpoints: [%q], drain_wait: 100ms}
    check:
      zones: [example.test]
      port: %d
      passes: 2
      interval: 50ms
      timeout: 1s
      max_rounds: 4
      transfer_from: [127.0.0.0/8]
      tsig: {name: transfer.example.test., algorithm: hmac-sha256., secret_env: GL_TSIG}
`, zonesDir, a.nb, a.frontend, a.ns.Port)
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// axfr transfers example.test. from addr with the test's TSIG key and
// returns the records as zone-file lines, sorted.
func axfr(t *testing.T, addr string) []string {
	t.Helper()
	m := new(dns.Msg).SetAxfr("example.test.")
	m.SetTsig("transfer.example.test.", dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{"transfer.example.test.": tsigSecret}}
	env, err := tr.In(m, addr)
	if err != nil {
		t.Fatalf("AXFR from %s: %v", addr, err)
	}
	var out []string
	for e := range env {
		if e.Error != nil {
			t.Fatalf("AXFR from %s: %v", addr, e.Error)
		}
		for _, rr := range e.RR {
			out = append(out, rr.String())
		}
	}
	return canonical(out[1:]) // the closing SOA repeats the first
}

// zoneFileRecords are the records of a zone file, as zone-file lines, sorted.
func zoneFileRecords(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zp := dns.NewZoneParser(strings.NewReader(string(data)), "example.test.", path)
	var out []string
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		out = append(out, rr.String())
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	return canonical(out)
}

func canonical(lines []string) []string {
	out := slices.Clone(lines)
	slices.Sort(out)
	return out
}

// TestLinodeDeployShipsZoneFiles: a deploy through the fake Linode API
// ships the zones directory in the user data; the new servers serve exactly
// its files (compared by AXFR, TSIG-signed, as the approval diff fetches
// them), the NodeBalancer's nodes are the instances' private addresses, the
// edit is live through the NodeBalancer, and a later edit that keeps the
// serial is refused before any instance is created.
func TestLinodeDeployShipsZoneFiles(t *testing.T) {
	a := newLinodeAccount(t)
	zonesDir := t.TempDir()
	zoneFile := filepath.Join(zonesDir, "example.test.zone")
	if err := os.WriteFile(zoneFile, []byte(exampleZone(2026110101, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvLinodeToken: linodeToken, EnvLinodeURL: a.api.URL, "GL_TSIG": tsigSecret}
	p := startMain(t, func(m *Main) { m.Getenv = func(k string) string { return env[k] } },
		"--config", a.zonesConfig(t, zonesDir), "--data", t.TempDir())
	p.waitOutput(`ns: .* serves ns1-0, ns2-0`)

	// The operator edits the zone: a new record, the serial raised.
	if err := os.WriteFile(zoneFile, []byte(exampleZone(2026110102, "api   IN A   192.0.2.20\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLoad(a.frontend)
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	p.waitOutput(`(?s)Deploy #1 of ns.*✓ Retire the old set`)
	l.finish(t)
	out := p.out.String()
	for _, want := range []string{"zones sha256:", "example.test. 2026110102", "example.test.: serial 2026110101 → 2026110102 · 1 added"} {
		if !strings.Contains(out, want) {
			t.Errorf("the chat does not say %q:\n%s", want, out)
		}
	}
	// The diff came by AXFR: a fallback to queries is named in its summary.
	if strings.Contains(out, "AXFR refused") || strings.Contains(out, "queries (") {
		t.Errorf("the diff fell back from AXFR:\n%s", out)
	}

	want := zoneFileRecords(t, zoneFile)
	eventually.Within(t, waitLimit, "the old instances to be deleted", func() bool { return len(a.api.Instances()) == 2 })
	for _, in := range a.api.Instances() {
		addr := net.JoinHostPort(in.IPv4, strconv.Itoa(a.ns.Port))
		if got := axfr(t, addr); !slices.Equal(got, want) {
			t.Errorf("%s serves\n%s\nwant the zone file's records\n%s", in.Label, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !linodetest.PrivateNetwork.Contains(netip.MustParseAddr(in.PrivateIPv4)) {
			t.Errorf("%s has no private address: %q", in.Label, in.PrivateIPv4)
		}
	}
	for _, n := range a.api.NodeBalancerNodes(a.nb) {
		ap := netip.MustParseAddrPort(n.Address)
		if !linodetest.PrivateNetwork.Contains(ap.Addr()) {
			t.Errorf("node %s has the address %s, not a private one", n.Label, n.Address)
		}
	}
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("api.example.test.", dns.TypeA), a.frontend)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.20" {
		t.Errorf("api.example.test. through the NodeBalancer: %v %v", r, err)
	}

	// Changed again, serial kept: refused, nothing created.
	if err := os.WriteFile(zoneFile, []byte(exampleZone(2026110102, "api   IN A   192.0.2.21\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	created := len(a.api.Instances())
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`example.test changed but its serial 2026110102 did not grow: secondaries would never pick it up`)
	p.waitOutput(`Deploy #2 of ns failed`)
	if n := len(a.api.Instances()); n != created {
		t.Errorf("%d instances after the refused deploy, want %d", n, created)
	}
	if strings.Contains(p.out.String()+p.errOut.String(), tsigSecret) || strings.Contains(p.out.String()+p.errOut.String(), linodeToken) {
		t.Error("a secret reached the output")
	}
}
