package linode

import (
	"context"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/greenlight/greenlight/deployer"
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
