package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/logbuf"
)

const minimal = `
services:
  ns:
    servers: [ns1, ns2]
    listen: 127.0.0.1:5300
    check:
      zones: [example.test]
`

func TestLoadConfigEmbeddedLocal(t *testing.T) {
	f, err := configs.Files.Open("local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := LoadConfig(f, "local.yaml")
	if err != nil {
		t.Fatalf("the embedded local.yaml does not load: %v", err)
	}
	ns := cfg.Services["ns"]
	if ns == nil || ns.Listen != "127.0.0.1:5300" || ns.ApprovalTimeout.Std() != 30*time.Minute ||
		ns.RollbackWindow.Std() != 15*time.Minute || time.Duration(cfg.Local.BootDelay) != 2*time.Second {
		t.Fatalf("local.yaml defaults: %+v", ns)
	}
	svc := ns.Service("ns")
	if svc.Check.Passes != 3 || len(svc.Roles) != 2 || svc.Check.Timeout != 2*time.Second {
		t.Fatalf("converted service: %+v", svc)
	}
	if want := []deployer.ExpectedRecord{{Name: "ns1.example.test.", Type: "A", Value: "127.0.0.1"}}; !slices.Equal(svc.Check.Expect, want) {
		t.Errorf("check.expect converted to %+v, want %+v", svc.Check.Expect, want)
	}
}

// Left out, a duration gets its default; written as 0s it means zero.
func TestLoadConfigZeroDurations(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  deployer.Service
	}{
		{"left out", "", deployer.Service{}},
		{"zero window", "    rollback_window: 0s\n", deployer.Service{RollbackWindowSet: true}},
		{"zero gate with auto-promote", "    approval_timeout: 0s\n    auto_promote: true\n", deployer.Service{ApprovalTimeoutSet: true, AutoPromote: true}},
		{"given", "    approval_timeout: 5m\n    rollback_window: 1h\n", deployer.Service{ApprovalTimeout: 5 * time.Minute, ApprovalTimeoutSet: true, RollbackWindow: time.Hour, RollbackWindowSet: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(strings.NewReader(minimal+tc.extra), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			svc := cfg.Services["ns"].Service("ns")
			w := tc.want
			if svc.ApprovalTimeout != w.ApprovalTimeout || svc.ApprovalTimeoutSet != w.ApprovalTimeoutSet || svc.AutoPromote != w.AutoPromote ||
				svc.RollbackWindow != w.RollbackWindow || svc.RollbackWindowSet != w.RollbackWindowSet {
				t.Errorf("got approval %s (set %v), window %s (set %v); want %+v", svc.ApprovalTimeout, svc.ApprovalTimeoutSet, svc.RollbackWindow, svc.RollbackWindowSet, w)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // fragment of the error
	}{
		{"unknown top key", "colour: blue\n" + minimal, "test.yaml: colour: line 1: no such key; the keys here are admin, data, freezes, local, log, reconcile, services, slack"},
		{"unknown service key", strings.Replace(minimal, "    listen:", "    lisen: x\n    listen:", 1), "test.yaml: services.ns.lisen: line 5: no such key; did you mean listen?"},
		{"bad duration", minimal + "    approval_timeout: 30 minutes\n", `services.ns.approval_timeout: line 8: "30 minutes" is not a duration`},
		{"negative duration", minimal + "    rollback_window: -5m\n", `services.ns.rollback_window: line 8`},
		{"no services", "data: x\n", "test.yaml: services: no services are defined"},
		{"no servers", strings.Replace(minimal, "[ns1, ns2]", "[]", 1), "services.ns.servers: line 4: a service needs at least one server"},
		{"bad server name", strings.Replace(minimal, "[ns1, ns2]", "[NS1]", 1), `"NS1" is not a server name`},
		{"bad listen", strings.Replace(minimal, "127.0.0.1:5300", "localhost", 1), `services.ns.listen: line 5: "localhost" is not host:port`},
		{"no zones", strings.Replace(minimal, "[example.test]", "[]", 1), "services.ns.check.zones: line 7"},
		{"bad level", "log: {level: loud}\n" + minimal, `log.level: line 1: "loud" is not a level`},
		{"bad cloud", minimal + "    cloud: aws\n", `services.ns.cloud: line 8: "aws" is not a cloud`},
		{"bad service name", strings.Replace(minimal, "  ns:", "  NS:", 1), "services.NS: line 3"},
		{"wrong type", strings.Replace(minimal, "[ns1, ns2]", "{a: b}", 1),
			`test.yaml: services.ns.servers: line 4: a section of keys where a list ([a, b] or one "- item" per line) belongs`},
		{"misspelt key", minimal + "    rollback_windw: 15m\n", "test.yaml: services.ns.rollback_windw: line 8: no such key; did you mean rollback_window?"},
		{"text for a number", minimal + "      passes: three\n", `test.yaml: services.ns.check.passes: line 8: "three" is not a whole number`},
		{"text for true or false", minimal + "    four_eyes: yes please\n", `test.yaml: services.ns.four_eyes: line 8: "yes please" is not true or false`},
		{"a list for text", minimal + "    listen: [a, b]\n", `test.yaml: services.ns.listen: line 8: a list where text belongs`},
		{"a section for a list of services", "services: [ns]\n", `test.yaml: services: line 1: a list where a section of keys (key: value, one per line) belongs`},
		{"an odd key", "\"a b!!\": 1\n" + minimal, `test.yaml: "a b!!": line 1: no such key; the keys here are`},
		{"an odd service name", "services:\n  \"N S\": {}\n", `test.yaml: services."N S": line 2: a service name is lower-case letters, digits and dashes`},
		{"misspelt nested key", strings.Replace(minimal, "    check:", "    chekc:", 1), "test.yaml: services.ns.chekc: line 6: no such key; did you mean check?"},
		{"not yaml", "services: [\n", "test.yaml: line 1: not valid YAML: did not find expected node content"},
		{"bad percentage", minimal + "      max_update_pct: 130\n", "services.ns.check.max_update_pct: line 8: a percentage is between 0 and 100"},
		{"tsig without secret_env", minimal + "      tsig: {name: k.}\n", "services.ns.check.tsig: line 8: a TSIG key needs a name and secret_env"},
		{"zero approval timeout without auto-promote", minimal + "    approval_timeout: 0s\n", "services.ns.approval_timeout: line 8: 0 without auto_promote: true would abort every deploy"},
		{"bad freeze start", minimal + "    freezes:\n      - {name: year-end, start: \"0 18 32 12 *\", end: \"0 8 2 1 *\"}\n", "services.ns.freezes[0].start: line 9: \"0 18 32 12 *\" is not a cron schedule"},
		{"bad top-level freeze end", "freezes:\n  - name: x\n    start: \"0 18 23 12 *\"\n    end: \"CRON_TZ=Mars/Olympus 0 8 2 1 *\"\n" + minimal, "freezes[0].end: line 4"},
		{"freeze without a name", minimal + "    freezes: [{start: \"@daily\", end: \"@weekly\"}]\n", "services.ns.freezes[0].name: line 8: a freeze needs a name"},
		{"bad window day", minimal + "    deploy_windows: [{days: [mon, funday], from: \"09:00\", to: \"16:00\"}]\n", `services.ns.deploy_windows[0].days: line 8: "funday" is not a day`},
		{"window ends before it starts", minimal + "    deploy_windows: [{days: [mon], from: \"16:00\", to: \"09:00\"}]\n", "services.ns.deploy_windows[0].to: line 8: 09:00 is not after from (16:00)"},
		{"bad window time", minimal + "    deploy_windows: [{days: [mon], from: \"9am\", to: \"16:00\"}]\n", `services.ns.deploy_windows[0].from: line 8: "9am" is not a time of day`},
		{"bad window zone", minimal + "    deploy_windows: [{days: [mon], from: \"09:00\", to: \"16:00\", tz: Mars/Olympus}]\n", `services.ns.deploy_windows[0].tz: line 8: "Mars/Olympus" is not a time zone`},
		{"expect without type", minimal + "      expect: [{name: www.example.test.}]\n", "services.ns.check.expect[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(strings.NewReader(tc.yaml), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "test.yaml: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			if goWords.MatchString(quoted.ReplaceAllString(err.Error(), `""`)) {
				t.Fatalf("error %q speaks of Go or the YAML library", err)
			}
		})
	}
}

// goWords are words of the code, not of the configuration.
// quoted is a value the configuration wrote, quoted in a message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

var goWords = regexp.MustCompile(`main\.|!!|unmarshal|\bint\b|float64|\[\]string|(^|\s)yaml:`)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*Main) bool
	}{
		{"defaults", nil, "", func(m *Main) bool {
			return m.Config.Data == "./data" && m.Config.Services["ns"].Listen == "127.0.0.1:5300"
		}},
		{"overrides", []string{"--data", "/tmp/x", "--listen", "127.0.0.1:0", "--boot-delay", "0s", "--log-level", "debug"}, "",
			func(m *Main) bool {
				return m.Config.Data == "/tmp/x" && m.Config.Services["ns"].Listen == "127.0.0.1:0" && m.Config.Local.BootDelay == 0 && m.Config.Log.Level == "debug"
			}},
		{"missing config", []string{"--config", "/nonexistent/greenlight.yaml"}, "open the configuration", nil},
		{"stray argument", []string{"deploy"}, `unexpected argument "deploy"`, nil},
		{"unknown flag", []string{"--colour"}, "flag provided but not defined", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Main{Stderr: &logbuf.Buffer{}}
			err := m.ParseFlags(tc.args)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v; want %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.check != nil && !tc.check(m):
				t.Fatalf("flags not applied: data %q, config %+v", m.Config.Data, m.Config)
			}
		})
	}
}

// FuzzLoadConfig: any input gives a config or an error naming the file, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add(minimal)
	f.Add("services: {ns: {servers: [a], listen: 'x:1', check: {zones: [z]}, approval_timeout: 1h}}")
	f.Add("log: {level: debug}\nservices: [1, 2]")
	f.Add("a: &x [*x]")
	f.Add("services: {ns: {cloud: linode, servers: [a], linode: {region: r, type: t, image: i}, switch: {kind: nodebalancer, nodebalancer_id: 1}, check: {zones: [z], transfer_from: [192.0.2.1/32]}, zones: {dir: /z, files: {z: db.z}}}}")
	f.Add("services: &x {ns: *x}")
	f.Add("0!!:")
	f.Add("services: {0!!}")
	f.Add("x: &a [a, a, a, a, a, a, a, a, a]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nservices: &c {a: *b, b: *b, c: *b, d: *b, e: *b, f: *b, g: *b}\n")
	f.Add(minimal + "    four_eyes: maybe\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := LoadConfig(strings.NewReader(src), "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			if goWords.MatchString(quoted.ReplaceAllString(err.Error(), `""`)) {
				t.Fatalf("error %q speaks of Go or the YAML library", err)
			}
			return
		}
		if len(cfg.Services) == 0 {
			t.Fatalf("a config without services was accepted")
		}
	})
}

func TestTSIGSecretFromEnvironment(t *testing.T) {
	cfg, err := LoadConfig(strings.NewReader(minimal+"      tsig: {name: transfer.example.test., secret_env: GL_TEST_TSIG}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	check := cfg.Services["ns"].Check
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, err := check.compareOptions("ns", getenv); err == nil || !strings.Contains(err.Error(), "GL_TEST_TSIG") {
		t.Fatalf("missing secret: err = %v, want it to name the variable", err)
	}
	env["GL_TEST_TSIG"] = "c2VjcmV0"
	opts, err := check.compareOptions("ns", getenv)
	if err != nil || opts.TSIG == nil || opts.TSIG.Secret != "c2VjcmV0" || opts.TSIG.Name != "transfer.example.test." {
		t.Fatalf("opts %+v, err %v", opts, err)
	}
}

func TestLoadConfigLinodeExample(t *testing.T) {
	f, err := os.Open("../../configs/linode.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := LoadConfig(f, "linode.example.yaml")
	if err != nil {
		t.Fatalf("configs/linode.example.yaml does not load: %v", err)
	}
	ns := cfg.Services["ns"]
	if ns.Cloud != "linode" || ns.Linode.Region != "us-east" || ns.Switch.Kind != "nodebalancer" ||
		ns.Switch.NodeBalancerID != 12345 || ns.Provisioner.Kind != "cloud-init" || ns.Check.Port != 53 {
		t.Fatalf("linode example: %+v", ns)
	}
	// The example's freezes: year-end for all, the weekend for ns.
	freezes := append(ns.Service("ns").Freezes, cfg.FreezeWindows()...)
	if len(freezes) != 2 {
		t.Fatalf("freezes: %+v", freezes)
	}
	at := time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC)
	if cur, _ := freezes[1].At(at); cur == nil || cur.Until() != "Sat 2 Jan 08:00 CET" {
		t.Errorf("year-end at %s: %+v", at, cur)
	}
	sat := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if cur, _ := freezes[0].At(sat); cur == nil || cur.Until() != "Mon 7 Dec 08:00 CET" {
		t.Errorf("weekend at %s: %+v", sat, cur)
	}
}

func TestLoadConfigLinodeErrors(t *testing.T) {
	const linode = `
services:
  ns:
    cloud: linode
    servers: [ns1, ns2]
    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12}
    switch: {kind: nodebalancer, nodebalancer_id: 7}
    check: {zones: [example.com], transfer_from: [203.0.113.5/32]}
`
	tests := []struct {
		name, yaml, want string
	}{
		{"fine", linode, ""},
		{"no linode section", strings.Replace(linode, "    linode: {region: us-east, type: g6-nanode-1, image: linode/debian12}\n", "", 1), "services.ns.linode: line 3: a Linode service needs region, type and image"},
		{"no switch", strings.Replace(linode, "    switch: {kind: nodebalancer, nodebalancer_id: 7}\n", "", 1), "services.ns.switch.kind: line 3: a Linode service needs a switch"},
		{"unknown switch", strings.Replace(linode, "kind: nodebalancer", "kind: haproxy", 1), `services.ns.switch.kind: line 7: "haproxy" is not a switch`},
		{"no nodebalancer id", strings.Replace(linode, ", nodebalancer_id: 7", "", 1), "services.ns.switch.nodebalancer_id: line 7: name the NodeBalancer's ID"},
		{"dns-records without names", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: dns-records, domain_id: 3", 1), "the dns-records switch needs domain_id and names"},
		{"nginx without hosts", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: nginx, config_path: /etc/nginx/s.conf", 1), "services.ns.switch.hosts: line 7: the nginx switch needs at least one load balancer host"},
		{"nginx relative path", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: nginx, config_path: s.conf, hosts: [{name: lb1, endpoint: '192.0.2.1:53'}]", 1), "needs the absolute path"},
		{"nginx bad endpoint", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: nginx, config_path: /s.conf, hosts: [{name: lb1, endpoint: lb1}]", 1), `services.ns.switch.hosts[0].endpoint: line 7: "lb1" is not host:port`},
		{"unknown provisioner", linode + "    provisioner: {kind: puppet}\n", `services.ns.provisioner.kind: line 9: "puppet" is not a provisioner`},
		{"command without command", linode + "    provisioner: {kind: command}\n", "services.ns.provisioner.command: line 9: the command provisioner needs a command"},
		{"listen on linode", linode + "    listen: 127.0.0.1:5300\n", "services.ns.listen: line 9: listen is the local load balancer's address"},
		{"linode section on local", strings.Replace(linode, "cloud: linode", "cloud: local", 1), "services.ns.linode: line 6: set cloud: linode"},
		{"bad port", strings.Replace(linode, "zones: [example.com]", "zones: [example.com], port: 70000", 1), "services.ns.check.port: line 8: 70000 is not a port"},
		{"compare without transfer_from", strings.Replace(linode, ", transfer_from: [203.0.113.5/32]", "", 1), "services.ns.check.transfer_from: line 8: list the addresses greenlight runs from"},
		{"no compare, no transfer_from", strings.Replace(linode, ", transfer_from: [203.0.113.5/32]", ", compare_zones: false", 1), ""},
		{"command provisioner, no transfer_from", strings.Replace(linode, ", transfer_from: [203.0.113.5/32]", "", 1) + "    provisioner: {kind: command, command: [ansible-playbook, site.yml]}\n", ""},
		{"bad transfer_from", strings.Replace(linode, "203.0.113.5/32", "greenlight.example", 1), `services.ns.check.transfer_from[0]: line 8: "greenlight.example" is not an address or CIDR prefix`},
		{"two regions", strings.Replace(strings.Replace(linode, "region: us-east", "regions: {ns1: us-east, ns2: eu-central}", 1), "nodebalancer_id: 7", "nodebalancers: {ns1: 7, ns2: 8}", 1), ""},
		{"a region for an unknown role", strings.Replace(linode, "region: us-east", "region: us-east, regions: {ns3: eu-central}", 1), `services.ns.linode.regions: line 6: ns3`},
		{"a role without a region", strings.Replace(linode, "region: us-east", "regions: {ns1: us-east}", 1), "services.ns.linode: line 6: a Linode service needs region"},
		{"a role without a NodeBalancer", strings.Replace(linode, "nodebalancer_id: 7", "nodebalancers: {ns1: 7}", 1), "services.ns.switch.nodebalancer_id: line 7: name the NodeBalancer's ID"},
		{"a NodeBalancer for an unknown role", strings.Replace(linode, "nodebalancer_id: 7", "nodebalancer_id: 7, nodebalancers: {ns9: 8}", 1), "services.ns.switch.nodebalancers: line 7: ns9"},
		{"nginx serves an unknown role", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: nginx, config_path: /s.conf, hosts: [{name: lb1, endpoint: '192.0.2.1:53', serves: [ns3]}]", 1), `services.ns.switch.hosts[0].serves: line 7: "ns3" is not a server`},
		{"nginx leaves a role unserved", strings.Replace(linode, "kind: nodebalancer, nodebalancer_id: 7", "kind: nginx, config_path: /s.conf, hosts: [{name: lb1, endpoint: '192.0.2.1:53', serves: [ns1]}]", 1), `services.ns.switch.hosts: line 7: no host serves ns2`},
		{"zones dir", linode + "    zones: {dir: /srv/dns/zones, files: {example.com: db.example}}\n", ""},
		{"zones without dir", linode + "    zones: {files: {example.com: db.example}}\n", "services.ns.zones.dir: line 9: name the directory"},
		{"zones file of an unlisted zone", linode + "    zones: {dir: /z, files: {other.com: db.other}}\n", "services.ns.zones.files: line 9: other.com is not one of check.zones"},
		{"zones file outside dir", linode + "    zones: {dir: /z, files: {example.com: ../etc/passwd}}\n", `must be a file name in zones.dir, not "../etc/passwd"`},
		{"unknown linode key", strings.Replace(linode, "image: linode/debian12", "image: linode/debian12, size: big", 1), "services.ns.linode.size: line 6: no such key; the keys here are"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(strings.NewReader(tc.yaml), "test.yaml")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigRefresh(t *testing.T) {
	tests := []struct {
		name, refresh, want string
	}{
		{"weekly", `{schedule: "CRON_TZ=UTC 0 4 * * 1", keep: 3}`, ""},
		{"descriptor", `{schedule: "@weekly"}`, ""},
		{"on demand", `{schedule: ""}`, ""},
		{"four fields", `{schedule: "0 4 * *"}`, `services.ns.refresh.schedule: line 8: "0 4 * *" is not a cron schedule`},
		{"bad zone", `{schedule: "CRON_TZ=Mars/Olympus 0 4 * * 1"}`, `services.ns.refresh.schedule: line 8`},
		{"negative keep", `{keep: -1}`, `services.ns.refresh.keep: line 8: keep at least 1`},
		{"unknown key", `{scheduel: "@daily"}`, `services.ns.refresh.scheduel: line 8: no such key; did you mean schedule?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(strings.NewReader(minimal+"    refresh: "+tc.refresh+"\n"), "test.yaml")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
