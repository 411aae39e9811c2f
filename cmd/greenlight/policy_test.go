package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/configs"
)

// localConfig writes the embedded local.yaml with each old → new
// replacement made, and returns its path.
func localConfig(t *testing.T, replace ...string) string {
	t.Helper()
	local, err := configs.Files.ReadFile("local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(local)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(conf, replace[i]) {
			t.Fatalf("local.yaml has no %q", replace[i])
		}
		conf = strings.Replace(conf, replace[i], replace[i+1], 1)
	}
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rollback_window: 0s in the shell: the old set is retired right after
// the check through the load balancer.
func TestLocalZeroRollbackWindow(t *testing.T) {
	config := localConfig(t, "rollback_window: 15m ", "rollback_window: 0s  ")
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns")
	p.waitOutput(`\[Approve\] type: /deploy approve ns #1`)
	p.typeLine("approve")
	p.waitOutput(`The rollback window is 0, so the old set \(ns1-0, ns2-0\) is retired now`)
	p.waitOutput(`Deploy #1 of ns succeeded`)
	if got := nsid(t, p.addr(), "udp"); !strings.HasSuffix(got, "-1") {
		t.Fatalf("after a zero window, answers come from %q", got)
	}
	p.typeLine("/deploy rollback ns")
	p.waitOutput(`the rollback window of deploy #1 closed at .* and its old set \(ns1-0, ns2-0\) was retired`)
}
