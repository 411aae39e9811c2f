package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// Config is greenlight's configuration file. configs/local.yaml documents
// every setting; it is also the configuration used when none is given.
type Config struct {
	Data      string                    `yaml:"data"` // the data directory; --data overrides it; default ./data
	Log       LogConfig                 `yaml:"log"`
	Local     LocalConfig               `yaml:"local"`
	Slack     *SlackConfig              `yaml:"slack"` // nil: the terminal chat
	Reconcile ReconcileConfig           `yaml:"reconcile"`
	Admin     AdminConfig               `yaml:"admin"`
	Services  map[string]*ServiceConfig `yaml:"services"`
	// Freezes apply to every service, beside each service's own.
	Freezes []FreezeConfig `yaml:"freezes"`
}

// LogConfig sets up structured logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// AdminConfig is where /metrics, /healthz and /readyz are served.
type AdminConfig struct {
	Listen string `yaml:"listen"` // host:port, or off (the default)
}

// SlackConfig is the slack section; the tokens come from the environment.
type SlackConfig struct {
	Mode    string `yaml:"mode"`    // socket (default) | http
	Listen  string `yaml:"listen"`  // http mode only
	Channel string `yaml:"channel"` // announcements and orphan reports
	APIURL  string `yaml:"api_url"` // Web API base URL (tests, proxies)
}

// LocalConfig sets up the embedded local cloud.
type LocalConfig struct {
	BootDelay Duration `yaml:"boot_delay"`
}

// ServiceConfig is one service.
type ServiceConfig struct {
	Cloud           string              `yaml:"cloud"`
	Servers         []string            `yaml:"servers"`
	Listen          string              `yaml:"listen"`
	ApprovalTimeout *Duration           `yaml:"approval_timeout"` // nil: the default; 0 with auto_promote: promote at once
	AutoPromote     bool                `yaml:"auto_promote"`
	FourEyes        bool                `yaml:"four_eyes"`
	RollbackWindow  *Duration           `yaml:"rollback_window"` // nil: the default; 0: retire right after check-live
	Timeouts        TimeoutsConfig      `yaml:"timeouts"`
	Check           CheckConfig         `yaml:"check"`
	Zones           *ZonesConfig        `yaml:"zones"` // nil: the zones come with the image
	Authorization   AuthorizationConfig `yaml:"authorization"`

	Linode      *LinodeConfig     `yaml:"linode"`
	Provisioner ProvisionerConfig `yaml:"provisioner"`
	Switch      SwitchConfig      `yaml:"switch"`
	Refresh     *RefreshConfig    `yaml:"refresh"`
	Freezes     []FreezeConfig    `yaml:"freezes"`
	// DeployWindows, when set, are the only times traffic is switched.
	DeployWindows []DeployWindowConfig `yaml:"deploy_windows"`
}

// TimeoutsConfig bounds each step.
type TimeoutsConfig struct {
	Create      Duration `yaml:"create"`
	WaitRunning Duration `yaml:"wait_running"`
	Provision   Duration `yaml:"provision"`
	Check       Duration `yaml:"check"`
	Switch      Duration `yaml:"switch"`
	Retire      Duration `yaml:"retire"`
}

// CheckConfig says what a healthy set answers.
type CheckConfig struct {
	Zones     []string       `yaml:"zones"`
	Port      int            `yaml:"port"` // where the servers answer DNS; default 53 (Linode)
	Passes    int            `yaml:"passes"`
	MaxRounds int            `yaml:"max_rounds"`
	Interval  Duration       `yaml:"interval"`
	Timeout   Duration       `yaml:"timeout"`
	Expect    []ExpectConfig `yaml:"expect"`

	CompareZones    *bool       `yaml:"compare_zones"`  // default true
	MaxUpdatePct    float64     `yaml:"max_update_pct"` // default 30
	MaxDeletePct    float64     `yaml:"max_delete_pct"` // default 30
	ExpectUnchanged bool        `yaml:"expect_unchanged"`
	TSIG            *TSIGConfig `yaml:"tsig"`
	// TransferFrom are the addresses (CIDR or IP) greenlight fetches zones
	// from, allowed AXFR in the nsd.conf greenlight renders.
	TransferFrom []string `yaml:"transfer_from"`
}

// ExpectConfig is a record a healthy server must serve.
type ExpectConfig struct {
	Name  string `yaml:"name"`
	Type  string `yaml:"type"`
	Value string `yaml:"value"` // rdata as in a zone file; empty = any
}

// ZonesConfig is where a service's zone files are: one per zone of
// check.zones, shipped with every deploy.
type ZonesConfig struct {
	Dir   string            `yaml:"dir"`
	Files map[string]string `yaml:"files"` // zone → file name in dir, when not "<zone>.zone"
}

// TSIGConfig names the key that signs zone transfers; the secret is read
// from the environment variable SecretEnv, never from the file.
type TSIGConfig struct {
	Name      string `yaml:"name"`
	Algorithm string `yaml:"algorithm"`
	SecretEnv string `yaml:"secret_env"`
}

// Std is the duration as a time.Duration; nil is 0.
func (d *Duration) Std() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// AuthorizationConfig lists who may do what; empty lists let everyone.
type AuthorizationConfig struct {
	Deployers []string `yaml:"deployers"`
	Approvers []string `yaml:"approvers"`
	Admins    []string `yaml:"admins"`
	Channels  []string `yaml:"channels"`
}

// Duration is a time.Duration written as a Go duration ("30m", "1h30m").
type Duration time.Duration

// UnmarshalYAML parses a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &valueError{line: n.Line, msg: fmt.Sprintf("%q is not a duration (write it like 30s, 15m or 1h30m)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// valueError is a bad value found while decoding; Load adds the key's name.
type valueError struct {
	line int
	msg  string
}

func (e *valueError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// LoadConfig reads and checks a configuration. Unknown keys and bad values
// are errors naming the key and its line.
func LoadConfig(r io.Reader, name string) (*Config, error) {
	src, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(src) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", name)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, syntaxError(err))
	}
	if err := checkShape(&root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		if ve, ok := errors.AsType[*valueError](err); ok {
			return nil, fmt.Errorf("%s: %s: line %d: %s", name, keyAt(&root, ve.line), ve.line, ve.msg)
		}
		// checkShape has said what it knows; anything else is kept short.
		return nil, fmt.Errorf("%s: %w", name, &configError{msg: "a value does not fit its key"})
	}
	if err := cfg.validate(); err != nil {
		var problems []error
		for _, e := range unjoin(err) {
			var ke *keyError
			switch {
			case !errors.As(e, &ke):
				problems = append(problems, fmt.Errorf("%s: %w", name, e))
			case lineOf(&root, ke.key) > 0:
				problems = append(problems, fmt.Errorf("%s: %s: line %d: %s", name, ke.key, lineOf(&root, ke.key), ke.msg))
			default:
				problems = append(problems, fmt.Errorf("%s: %s: %s", name, ke.key, ke.msg))
			}
		}
		return nil, errors.Join(problems...)
	}
	return cfg, nil
}

// unjoin lists the errors errors.Join put together, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// keyError is a bad value found after decoding, named by its dotted key.
type keyError struct{ key, msg string }

func (e *keyError) Error() string { return e.key + ": " + e.msg }

// checkLogLevel accepts the levels the log knows, in the config and as a flag.
func checkLogLevel(v string) error {
	switch v {
	case "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("%q is not a level (debug, info, warn, error)", v)
}

func (c *Config) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.Log.Level != "" {
		if err := checkLogLevel(c.Log.Level); err != nil {
			add(&keyError{"log.level", err.Error()})
		}
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		add(&keyError{"log.format", fmt.Sprintf("%q is not a format (text, json)", c.Log.Format)})
	}
	if l := c.Admin.Listen; l != "" && l != AdminOff {
		if _, _, err := net.SplitHostPort(l); err != nil {
			add(&keyError{"admin.listen", fmt.Sprintf("%q is not host:port (or off)", l)})
		}
	}
	for i, f := range c.Freezes {
		_, err := ParseFreeze(fmt.Sprintf("freezes[%d]", i), f)
		add(err)
	}
	if sl := c.Slack; sl != nil {
		switch sl.Mode {
		case "", "socket":
		case "http":
			if _, _, err := net.SplitHostPort(sl.Listen); err != nil {
				add(&keyError{"slack.listen", fmt.Sprintf("http mode needs host:port to listen on, not %q", sl.Listen)})
			}
		default:
			add(&keyError{"slack.mode", fmt.Sprintf("%q is not a mode (socket, http)", sl.Mode)})
		}
		if sl.Channel == "" {
			add(&keyError{"slack.channel", "name the channel ID (C…) for announcements"})
		}
	}
	if len(c.Services) == 0 {
		add(&keyError{"services", "no services are defined"})
	}
	listens := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		key := "services." + keyName(name)
		if s == nil {
			add(&keyError{key, "the service is empty"})
			continue
		}
		if !serviceName.MatchString(name) {
			add(&keyError{key, "a service name is lower-case letters, digits and dashes"})
		}
		add(s.validateProviders(key))
		add(s.Refresh.validate(key, name))
		if len(s.Servers) == 0 {
			add(&keyError{key + ".servers", "a service needs at least one server"})
		}
		for _, r := range s.Servers {
			if !serviceName.MatchString(r) {
				add(&keyError{key + ".servers", fmt.Sprintf("%q is not a server name (lower-case letters, digits, dashes)", r)})
				break
			}
		}
		if s.Listen != "" {
			if _, _, err := net.SplitHostPort(s.Listen); err != nil {
				add(&keyError{key + ".listen", fmt.Sprintf("%q is not host:port", s.Listen)})
			}
			if other, dup := listens[s.Listen]; dup {
				add(&keyError{key + ".listen", fmt.Sprintf("%s is already the address of %s", s.Listen, other)})
			}
			listens[s.Listen] = name
		}
		if len(s.Check.Zones) == 0 {
			add(&keyError{key + ".check.zones", "list at least one zone to check"})
		}
		for i, f := range s.Freezes {
			_, err := ParseFreeze(fmt.Sprintf("%s.freezes[%d]", key, i), f)
			add(err)
		}
		for i, w := range s.DeployWindows {
			_, err := ParseDeployWindow(fmt.Sprintf("%s.deploy_windows[%d]", key, i), w)
			add(err)
		}
		if s.ApprovalTimeout != nil && *s.ApprovalTimeout == 0 && !s.AutoPromote {
			add(&keyError{key + ".approval_timeout", "0 without auto_promote: true would abort every deploy at the gate; set auto_promote: true to promote at once, or leave approval_timeout out for the default (30m)"})
		}
		if s.Check.Passes < 0 || s.Check.Passes > 100 {
			add(&keyError{key + ".check.passes", "passes is between 1 and 100"})
		}
		for _, pct := range []struct {
			key string
			v   float64
		}{{"max_update_pct", s.Check.MaxUpdatePct}, {"max_delete_pct", s.Check.MaxDeletePct}} {
			if pct.v < 0 || pct.v > 100 {
				add(&keyError{key + ".check." + pct.key, "a percentage is between 0 and 100"})
			}
		}
		if t := s.Check.TSIG; t != nil && (t.Name == "" || t.SecretEnv == "") {
			add(&keyError{key + ".check.tsig", "a TSIG key needs a name and secret_env (the variable holding its secret)"})
		}
		add(s.validateZones(key))
		for i, e := range s.Check.Expect {
			if e.Name == "" || e.Type == "" {
				add(&keyError{fmt.Sprintf("%s.check.expect[%d]", key, i), "an expected record needs a name and a type"})
			}
		}
	}
	return errors.Join(errs...)
}

// expectedRecords converts check.expect into the deployer's terms.
func expectedRecords(expect []ExpectConfig) []deployer.ExpectedRecord {
	var out []deployer.ExpectedRecord
	for _, e := range expect {
		out = append(out, deployer.ExpectedRecord{Name: e.Name, Type: e.Type, Value: e.Value})
	}
	return out
}

// Service converts a service's configuration into the deployer's terms;
// main fills in the cloud, provisioner, switch and checker.
func (s *ServiceConfig) Service(name string) *deployer.Service {
	return &deployer.Service{
		Name:          name,
		Freezes:       freezeWindows("services."+name+".freezes", s.Freezes),
		DeployWindows: deployWindows("services."+name+".deploy_windows", s.DeployWindows),
		Roles:         slices.Clone(s.Servers),
		Check: deployer.CheckSpec{
			Zones: slices.Clone(s.Check.Zones), Expect: expectedRecords(s.Check.Expect),
			Passes: s.Check.Passes, MaxRounds: s.Check.MaxRounds,
			Interval: time.Duration(s.Check.Interval), Timeout: time.Duration(s.Check.Timeout),
		},
		Limits: deployer.ChangeLimits{MaxUpdatePct: s.Check.MaxUpdatePct, MaxDeletePct: s.Check.MaxDeletePct,
			ExpectUnchanged: s.Check.ExpectUnchanged},
		ApprovalTimeout:    s.ApprovalTimeout.Std(),
		ApprovalTimeoutSet: s.ApprovalTimeout != nil,
		AutoPromote:        s.AutoPromote,
		FourEyes:           s.FourEyes,
		RollbackWindow:     s.RollbackWindow.Std(),
		RollbackWindowSet:  s.RollbackWindow != nil,
		Timeouts: deployer.Timeouts{
			Create: time.Duration(s.Timeouts.Create), WaitRunning: time.Duration(s.Timeouts.WaitRunning),
			Provision: time.Duration(s.Timeouts.Provision), Check: time.Duration(s.Timeouts.Check),
			Switch: time.Duration(s.Timeouts.Switch), Retire: time.Duration(s.Timeouts.Retire),
		},
	}
}

// FreezeWindows are the top-level freezes, which apply to every service.
// The config was validated, so every freeze parses.
func (c *Config) FreezeWindows() []deployer.FreezeWindow {
	return freezeWindows("freezes", c.Freezes)
}

func freezeWindows(key string, fs []FreezeConfig) []deployer.FreezeWindow {
	var out []deployer.FreezeWindow
	for i, f := range fs {
		if w, err := ParseFreeze(fmt.Sprintf("%s[%d]", key, i), f); err == nil {
			out = append(out, w)
		}
	}
	return out
}

// Policy is the service's authorization in the bot's terms.
func (a AuthorizationConfig) Policy() bot.Policy {
	return bot.Policy{Deployers: a.Deployers, Approvers: a.Approvers, Admins: a.Admins, Channels: a.Channels}
}

// keyAt names the key whose value sits on line.
func keyAt(root *yaml.Node, line int) string {
	var found string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinKey(path, k.Value)
				if v.Line == line && found == "" && v.Kind == yaml.ScalarNode {
					found = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, "")
	if found == "" {
		return "value"
	}
	return found
}

// lineOf finds the line of a dotted key ("services.ns.check.zones"), or 0.
func lineOf(root *yaml.Node, key string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(key, ".") {
		part, index, indexed := strings.Cut(part, "[")
		if u, err := strconv.Unquote(part); err == nil {
			part = u
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if i, err := strconv.Atoi(strings.TrimSuffix(index, "]")); indexed && err == nil && next != nil && next.Kind == yaml.SequenceNode && i >= 0 && i < len(next.Content) {
			next = next.Content[i]
			line = next.Line
		}
		n = next
	}
	return line
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
