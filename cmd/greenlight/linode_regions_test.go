package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// TestLinodeTwoRegions: ns1 in us-east and ns2 in eu-central, each behind
// the NodeBalancer of its region. A deploy builds each server in its
// region, adds it to its own NodeBalancer by private address, switches both
// in one step and checks through both: queries through each NodeBalancer
// never fail and end on that region's new server. The dry run prices each
// region.
func TestLinodeTwoRegions(t *testing.T) {
	a := newLinodeAccount(t)
	eu := a.api.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb-eu", Region: "eu-central"})
	euFront := a.api.NodeBalancerFrontend(eu.ID)
	conf := fmt.Sprintf(`log: {level: warn}
services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    rollback_window: 300ms
    timeouts: {wait_running: 3s, provision: 5s, check: 5s}
    linode: {regions: {ns1: us-east, ns2: eu-central}, type: g6-nanode-1, image: linode/debian12, poll_interval: 20ms}
    provisioner: {kind: cloud-init}
    switch: {kind: nodebalancer, nodebalancers: {ns1: %d, ns2: %d}, endpoints: [%q, %q], drain_wait: 100ms}
    check: {zones: [example.test], port: %d, passes: 2, interval: 50ms, timeout: 1s, max_rounds: 4, compare_zones: false}
`, a.nb, eu.ID, a.frontend, euFront, a.ns.Port)
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := a.start(t, path)
	p.waitOutput(`ns: .* serves ns1-0, ns2-0`)
	regions := func() map[string]string {
		out := map[string]string{}
		for _, in := range a.api.Instances() {
			out[in.Label] = in.Region
		}
		return out
	}
	if got := regions(); got["ns1-0"] != "us-east" || got["ns2-0"] != "eu-central" {
		t.Fatalf("first set's regions: %v", got)
	}

	a.api.AddImage(linodetest.Image{ID: "private/7", Label: "ns-golden-20261123-0400", Created: time.Now()})
	p.typeLine("/deploy ns --dry-run")
	p.waitOutput(`\(eu-central: 1 × \$0\.\d+/hour, \$\d+\.\d\d/month · us-east: 1 × \$0\.\d+/hour, \$\d+\.\d\d/month\)`)

	us, euLoad := startLoad(a.frontend), startLoad(euFront)
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`ns is live on ns1-1, ns2-1`)
	p.waitOutput(`(?s)Deploy #1 of ns.*✓ Retire the old set`)
	us.finish(t)
	euLoad.finish(t)
	if got := regions(); got["ns1-1"] != "us-east" || got["ns2-1"] != "eu-central" || len(got) != 2 {
		t.Errorf("after the deploy: %v", got)
	}
	for _, c := range []struct {
		front, want string
		l           *load
	}{{a.frontend, "ns1-1", us}, {euFront, "ns2-1", euLoad}} {
		if got := nsid(t, c.front, "udp"); got != c.want {
			t.Errorf("%s answers from %q, want %s", c.front, got, c.want)
		}
		if c.l.nsids[c.want] == 0 {
			t.Errorf("the load through %s never reached %s: %v", c.front, c.want, c.l.nsids)
		}
	}
	for nb, want := range map[int]string{a.nb: "ns1-1", eu.ID: "ns2-1"} {
		var labels []string
		for _, n := range a.api.NodeBalancerNodes(nb) {
			labels = append(labels, n.Label)
		}
		slices.Sort(labels)
		if strings.Join(labels, " ") != want+" "+want {
			t.Errorf("NodeBalancer %d's nodes: %v, want %s over UDP and TCP", nb, labels, want)
		}
	}
}

// TestLinodeNodeBalancerInAnotherRegion: start-up refuses a NodeBalancer
// whose region is not its servers'.
func TestLinodeNodeBalancerInAnotherRegion(t *testing.T) {
	a := newLinodeAccount(t)
	eu := a.api.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb-eu", Region: "eu-central"})
	path := a.config(t, "{kind: cloud-init}", fmt.Sprintf("{kind: nodebalancer, nodebalancer_id: %d}", eu.ID))
	env := map[string]string{EnvLinodeToken: linodeToken, EnvLinodeURL: a.api.URL}
	m := &Main{Stdin: strings.NewReader(""), Stdout: &logbuf.Buffer{}, Stderr: &logbuf.Buffer{}, User: "alice",
		Getenv: func(k string) string { return env[k] }}
	if err := m.ParseFlags([]string{"--config", path, "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	err := m.Open(t.Context())
	m.Close()
	want := fmt.Sprintf("NodeBalancer %d is in eu-central but ns's ns1 servers are created in us-east", eu.ID)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: %v, want %q", err, want)
	}
	if n := len(a.api.Instances()); n != 0 {
		t.Errorf("%d instances were created", n)
	}
}
