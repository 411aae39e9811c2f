package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, User: "alice",
		Getenv: func(k string) string { return env[k] }}
	code := m.Main(context.Background(), args)
	return code, out.String(), errOut.String()
}

func TestCheckConfig(t *testing.T) {
	const linode = `services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12}
    switch: {kind: nodebalancer, nodebalancer_id: 12345}
    check: {zones: [example.test], transfer_from: [203.0.113.5/32]}
`
	tests := []struct {
		name string
		conf string
		env  map[string]string
		code int
		want []string // lines of the output, in order
	}{
		{"local", "services:\n  ns:\n    servers: [ns1]\n    listen: 127.0.0.1:5300\n    check: {zones: [example.test]}\n", nil, 0,
			[]string{"ok: 1 service (ns: local, local load balancer 127.0.0.1:5300)"}},
		{"linode", linode, map[string]string{"LINODE_TOKEN": "t"}, 0,
			[]string{"ok: 1 service (ns: linode, nodebalancer 12345)"}},
		{"linode without a token", linode, nil, 1,
			[]string{"LINODE_TOKEN is not set"}},
		{"every problem with its key and line", `log: {level: loud}
services:
  ns:
    servers: [NS1]
    listen: 127.0.0.1:5300
    check: {zones: [example.test], passes: 500}
`, nil, 1, []string{"log.level: line 1:", "services.ns.servers: line 4:", "services.ns.check.passes: line 6:"}},
		{"admin listen", "admin: {listen: nowhere}\nservices:\n  ns:\n    servers: [ns1]\n    listen: 127.0.0.1:5300\n    check: {zones: [example.test]}\n", nil, 1,
			[]string{"admin.listen: line 1:"}},
		{"slack tokens", "slack: {channel: C1}\nservices:\n  ns:\n    servers: [ns1]\n    listen: 127.0.0.1:5300\n    check: {zones: [example.test]}\n", nil, 1,
			[]string{"slack:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "greenlight.yaml")
			if err := os.WriteFile(path, []byte(tt.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runMain(t, tt.env, "check-config", path)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("output:\n%s\nwant %d lines like %q", out, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i+1, lines[i], w)
				}
			}
			if strings.Contains(out, "\"t\"") {
				t.Error("a secret reached the output")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, _ := runMain(t, nil, arg)
		if code != 0 || !strings.HasPrefix(out, "greenlight ") || !strings.Contains(out, "go1.") {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}
