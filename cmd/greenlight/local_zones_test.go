package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// digA asks addr for name's A records, with the real dig when it is
// installed (as an operator would), and returns the addresses.
func digA(t *testing.T, addr, name string) []string {
	t.Helper()
	if _, err := exec.LookPath("dig"); err == nil {
		host, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command("dig", "@"+host, "-p", port, name, "A", "+short", "+tries=1", "+time=2").CombinedOutput()
		if err != nil {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("dig is not installed (apt-get install bind9-dnsutils)")
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA), addr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// TestLocalZonesDir is the README's walkthrough: copy configs/local.yaml,
// point zones.dir at a copy of the example zone, edit it, deploy, and dig
// shows the new record through the load balancer; an edit that forgets the
// serial is refused.
func TestLocalZonesDir(t *testing.T) {
	zonesDir := t.TempDir()
	sample, err := os.ReadFile("../../configs/example-zones/example.test.zone")
	if err != nil {
		t.Fatal(err)
	}
	zoneFile := filepath.Join(zonesDir, "example.test.zone")
	if err := os.WriteFile(zoneFile, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile("../../configs/local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(local), "    cloud: local ", "    zones: {dir: "+zonesDir+"}\n    cloud: local ", 1)
	conf = strings.Replace(conf, "    rollback_window: 15m ", "    rollback_window: 300ms ", 1)
	if !strings.Contains(conf, "zones: {dir:") || !strings.Contains(conf, "rollback_window: 300ms") {
		t.Fatal("configs/local.yaml has no services.ns.cloud or rollback_window line to change")
	}
	config := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`ns: 127\.0\.0\.1:\d+ serves ns1-0, ns2-0`)
	if got := digA(t, p.addr(), "api.example.test"); len(got) != 0 {
		t.Fatalf("api.example.test. answers %v before the edit", got)
	}

	edited := strings.Replace(string(sample), "2026110101", "2026110102", 1) + "api     IN A    192.0.2.20\n"
	if err := os.WriteFile(zoneFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	p.typeLine("/deploy ns")
	p.waitOutput(`(?s)ready to switch.*• ships zones sha256:[0-9a-f]{12} · example\.test\. 2026110102\n.*example\.test\.: serial 2026110101 → 2026110102 · 1 added.*\+ api\.example\.test\.\s+300\s+IN\s+A\s+192\.0\.2\.20`)
	p.typeLine("approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	if got := digA(t, p.addr(), "api.example.test"); len(got) != 1 || got[0] != "192.0.2.20" {
		t.Fatalf("after the deploy, api.example.test. answers %v through the load balancer", got)
	}

	// Another change, the serial forgotten: refused before anything is built.
	if err := os.WriteFile(zoneFile, []byte(strings.Replace(edited, "192.0.2.20", "192.0.2.21", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(`Deploy #1 of ns succeeded`)
	p.typeLine("/deploy ns")
	p.waitOutput(`example\.test changed but its serial 2026110102 did not grow`)
}
