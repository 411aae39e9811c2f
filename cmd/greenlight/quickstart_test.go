package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinodeQuickstart runs the README's Linode walkthrough against the
// fake Linode API: the README shows configs/linode.quickstart.yaml as it
// is, and that config, with only the account's IDs and this machine's
// addresses filled in, starts, builds the first set from the zones
// directory, and deploys an edit of the zone.
func TestLinodeQuickstart(t *testing.T) {
	quick, err := os.ReadFile("../../configs/linode.quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The README shows it inside a numbered step, indented by three spaces.
	shown := strings.ReplaceAll("\n"+string(quick), "\n", "\n   ")
	shown = strings.TrimSuffix(shown, "   ")
	if !strings.Contains(string(readme), shown) {
		t.Fatal("README.md does not show configs/linode.quickstart.yaml as it is (indented by three spaces)")
	}

	a := newLinodeAccount(t)
	zonesDir := t.TempDir()
	zoneFile := filepath.Join(zonesDir, "example.com.zone")
	zone := func(serial int, extra string) string {
		return strings.ReplaceAll(exampleZone(serial, extra), "example.test.", "example.com.")
	}
	if err := os.WriteFile(zoneFile, []byte(zone(2026110101, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := string(quick)
	for _, r := range []struct{ old, new string }{
		{"dir: /srv/dns/zones", "dir: " + zonesDir},
		{"nodebalancer_id: 12345", fmt.Sprintf("nodebalancer_id: %d\n      endpoints: [%q]\n      drain_wait: 100ms", a.nb, a.frontend)},
		{"203.0.113.5/32", "127.0.0.0/8"},
		{"image: linode/debian12", "image: linode/debian12\n      poll_interval: 20ms"},
		{"    check:\n", fmt.Sprintf("    rollback_window: 300ms\n    check:\n      port: %d\n      interval: 50ms\n      timeout: 1s\n", a.ns.Port)},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("the quickstart config has no %q to fill in", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := a.start(t, path)
	p.waitOutput(`ns: .* serves ns1-0, ns2-0 on image linode/debian12`)

	if err := os.WriteFile(zoneFile, []byte(zone(2026110102, "api   IN A   192.0.2.20\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	p.typeLine("/deploy ns --dry-run")
	p.waitOutput(`the next set costs \$0\.\d+/hour`)
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`(?s)example\.com\.: serial 2026110101 → 2026110102 · 1 added.*Deploy #1 of ns succeeded`)
	if out := p.out.String(); strings.Contains(out, "AXFR refused") {
		t.Errorf("the diff fell back from AXFR:\n%s", out)
	}
}
