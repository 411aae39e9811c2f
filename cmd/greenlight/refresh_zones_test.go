package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
)

// TestBakeCarriesZoneFiles: with zones.dir, the builder's user data writes
// the zone files into the image byte for byte and names their digest,
// which the bake records; a zone file that does not parse bakes nothing.
func TestBakeCarriesZoneFiles(t *testing.T) {
	dir := t.TempDir()
	zone := exampleZone(2026110102, "")
	if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	const conf = `
services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12}
    switch: {kind: nodebalancer, nodebalancer_id: 7}
    check: {zones: [example.test], transfer_from: [203.0.113.5/32]}
    zones: {dir: DIR}
`
	cfg, err := LoadConfig(strings.NewReader(strings.Replace(conf, "DIR", dir, 1)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Services["ns"]
	job, err := refreshJob(sc.Service("ns"), sc)
	if err != nil {
		t.Fatal(err)
	}
	data, content, err := job.RenderBake(t.Context(), "ns", "20261123-0400")
	if err != nil {
		t.Fatal(err)
	}
	files, err := linodetest.WrittenFiles(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got := string(files["/etc/nsd/zones/example.test.zone"]); got != zone {
		t.Errorf("the image gets %q, want the zone file's bytes", got)
	}
	if content == nil || !strings.Contains(string(files["/etc/greenlight-image"]), "zones="+content.Digest) {
		t.Errorf("the image does not name the zones' digest: %v\n%s", content, files["/etc/greenlight-image"])
	}

	if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte("@ IN SOA broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := job.RenderBake(t.Context(), "ns", "20261123-0500"); err == nil || !strings.Contains(err.Error(), "example.test.zone") {
		t.Errorf("a broken zone file: %v", err)
	}
}
