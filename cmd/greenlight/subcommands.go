package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/greenlight/greenlight/bot/slack"
	"github.com/greenlight/greenlight/deployer/linode"
)

// subcommand runs "check-config FILE" or "version" when args name one;
// ok is false when they do not.
func (m *Main) subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintln(m.Stdout, Version())
		return 0, true
	case "check-config":
		if len(args) != 2 {
			fmt.Fprintln(m.Stderr, "usage: greenlight check-config FILE")
			return 2, true
		}
		return m.checkConfig(args[1]), true
	}
	return 0, false
}

// Version is the module version, the VCS revision and time it was built
// from, and the Go version, from the binary's build information.
func Version() string {
	version, revision, when, dirty := "(devel)", "unknown", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = " " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	return fmt.Sprintf("greenlight %s (revision %s%s%s) %s %s/%s", version, revision, dirty, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// checkConfig loads and checks the configuration at path as start-up does,
// the templates it names and the environment variables it needs
// included, and prints "ok: …" or every problem. It returns the exit code.
func (m *Main) checkConfig(path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(m.Stderr, "greenlight: open the configuration: %v\n", err)
		return 1
	}
	defer f.Close()
	cfg, err := LoadConfig(f, path)
	if err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(m.Stdout, e)
		}
		return 1
	}
	problems := m.checkWiring(cfg, path)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(m.Stdout, p)
		}
		return 1
	}
	fmt.Fprintln(m.Stdout, summarizeConfig(cfg))
	return 0
}

// checkWiring checks what start-up needs beyond the file: templates that
// parse and render, and the secrets in the environment.
func (m *Main) checkWiring(cfg *Config, path string) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, path+": "+fmt.Sprintf(format, args...)) }
	if sc := cfg.Slack; sc != nil {
		sl := slack.Config{Mode: sc.Mode, Listen: sc.Listen, Channel: sc.Channel, APIURL: sc.APIURL,
			BotToken: m.getenv("SLACK_BOT_TOKEN"), AppToken: m.getenv("SLACK_APP_TOKEN"), SigningSecret: m.getenv("SLACK_SIGNING_SECRET")}
		if err := sl.Validate(); err != nil {
			addf("slack: %v", err)
		}
	}
	linodeNeeded := false
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		sc := cfg.Services[name]
		svc := sc.Service(name)
		if sc.Cloud == "linode" || sc.Switch.Kind == "nodebalancer" || sc.Switch.Kind == "dns-records" {
			linodeNeeded = true
		}
		if sc.Cloud == "linode" {
			if kind := sc.Provisioner.Kind; kind == "" || kind == "cloud-init" {
				tname, src, err := readTemplate(sc.Provisioner.UserData, "cloud-init/nsd.yaml")
				if err == nil {
					_, err = linode.UserDataTemplate(tname, src, svc.Check.Zones)
				}
				if err != nil {
					addf("services.%s.provisioner.user_data: %v", name, err)
				}
			}
			svc.BaseImage = sc.Linode.Image
			if _, err := refreshJob(svc, sc); err != nil {
				addf("%v", err)
			}
		}
		if sc.Switch.Kind == "nginx" {
			if sc.Switch.Template != "" {
				if _, err := os.ReadFile(sc.Switch.Template); err != nil {
					addf("services.%s.switch.template: %v", name, err)
				}
			}
			remote := slices.ContainsFunc(sc.Switch.Hosts, func(h NginxHostConfig) bool { return h.SSH != "" })
			if remote {
				if _, err := m.sshSigner(sc.Switch); err != nil {
					addf("services.%s.switch: %v", name, err)
				}
			}
		}
		if sc.Check.CompareZones == nil || *sc.Check.CompareZones {
			if _, err := sc.Check.compareOptions(name, m.getenv); err != nil {
				addf("%v", err)
			}
		}
	}
	if linodeNeeded && m.getenv(EnvLinodeToken) == "" {
		addf("%s is not set: a Linode service needs an API token", EnvLinodeToken)
	}
	return problems
}

// summarizeConfig is check-config's one line for a good configuration:
// "ok: 1 service (ns: linode, nodebalancer 12345)".
func summarizeConfig(cfg *Config) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(cfg.Services)) {
		sc := cfg.Services[name]
		cloud := sc.Cloud
		if cloud == "" {
			cloud = "local"
		}
		var sw string
		switch sc.Switch.Kind {
		case "", "local":
			sw = "local load balancer " + sc.Listen
		case "nodebalancer":
			sw = fmt.Sprintf("nodebalancer %d", sc.Switch.NodeBalancerID)
		case "nginx":
			sw = fmt.Sprintf("nginx on %d %s", len(sc.Switch.Hosts), plural(len(sc.Switch.Hosts), "host"))
		case "dns-records":
			sw = fmt.Sprintf("dns-records in domain %d", sc.Switch.DomainID)
		}
		parts = append(parts, fmt.Sprintf("%s: %s, %s", name, cloud, strings.TrimSpace(sw)))
	}
	n := len(cfg.Services)
	return fmt.Sprintf("ok: %d %s (%s)", n, plural(n, "service"), strings.Join(parts, "; "))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
