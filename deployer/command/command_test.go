package command

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

func TestProvision(t *testing.T) {
	server := deployer.Server{Name: "ns1-7", Role: "ns1", Addr: "127.0.0.2:53", Image: "private/42"}
	tests := []struct {
		name    string
		args    []string
		timeout time.Duration
		wantErr string // fragment; "" = success
		check   func(t *testing.T, dir string)
	}{
		{"success writes through templates", []string{"sh", "-c", `cp "$1" "$2/inventory"; echo "$3" > "$2/vars"`, "sh", "{{.Inventory}}", "OUT", "{{.Name}} {{.IP}} {{.Image}}"}, 0, "",
			func(t *testing.T, dir string) {
				inv, _ := os.ReadFile(filepath.Join(dir, "inventory"))
				if string(inv) != "[ns1]\nns1-7 ansible_host=127.0.0.2\n" {
					t.Errorf("inventory %q", inv)
				}
				vars, _ := os.ReadFile(filepath.Join(dir, "vars"))
				if string(vars) != "ns1-7 127.0.0.2 private/42\n" {
					t.Errorf("vars %q", vars)
				}
			}},
		{"failure quotes the tail", []string{"sh", "-c", `for i in $(seq 1 40); do echo "line $i"; done; echo "fatal: unreachable" >&2; exit 3`}, 0,
			"sh for ns1-7 failed (exit status 3); last lines:\nline 27", func(*testing.T, string) {}},
		{"timeout", []string{"sleep", "30"}, 100 * time.Millisecond, "sleep for ns1-7 failed (timed out after 100ms)", nil},
		{"missing command", []string{"/nonexistent/ansible-playbook"}, 0, "ansible-playbook for ns1-7 failed", nil},
		{"unknown template field", []string{"echo", "{{.Password}}"}, 0, "provisioner argument 1 for ns1-7", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "OUT", dir)
			}
			p, err := New(Options{Args: args, Timeout: tc.timeout, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Provision(context.Background(), server)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr != "" && strings.Contains(err.Error(), "line 26\n") {
				t.Errorf("the tail quotes more than 15 lines: %v", err)
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no command accepted")
	}
	if _, err := New(Options{Args: []string{"echo", "{{.Name"}}); err == nil || !strings.Contains(err.Error(), "{{.Name") {
		t.Errorf("bad template: %v", err)
	}
}

// TestProvisionGetsTheZonesDir: {{.ZonesDir}} is the zones directory, made
// absolute, so a hook running elsewhere (Dir) can copy it to the server.
func TestProvisionGetsTheZonesDir(t *testing.T) {
	zones := t.TempDir()
	if err := os.WriteFile(filepath.Join(zones, "example.test.zone"), []byte("zone bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rel, err := filepath.Rel(mustGetwd(t), zones)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Args: []string{"sh", "-c", `cp "$1"/*.zone "$2"/`, "sh", "{{.ZonesDir}}", out},
		ZonesDir: rel, Dir: t.TempDir(), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Provision(t.Context(), deployer.Server{Name: "ns1-7", Role: "ns1", Addr: "127.0.0.2:53"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "example.test.zone"))
	if err != nil || string(got) != "zone bytes\n" {
		t.Fatalf("the hook copied %q (%v)", got, err)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
