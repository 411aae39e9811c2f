package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/linode/linodego"
	"golang.org/x/crypto/ssh"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/command"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/linode"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/deployer/nginx"
	"github.com/greenlight/greenlight/deployer/zones"
)

// Environment variables greenlight reads its cloud secrets from.
const (
	EnvLinodeToken = "LINODE_TOKEN"
	EnvLinodeURL   = "LINODE_URL" // linodego's own: another API endpoint (tests, proxies)
	EnvSSHKey      = "GREENLIGHT_SSH_KEY"
)

// linodeHTTPTimeout bounds one API request; the Cloud retries within its budget.
const linodeHTTPTimeout = time.Minute

// wireService gives svc its cloud, provisioner and switch, as sc says.
func (m *Main) wireService(ctx context.Context, svc *deployer.Service, sc *ServiceConfig, checker *dnscheck.Checker) error {
	switch sc.Cloud {
	case "", "local":
		if m.running.cloud == nil {
			bootDelay := time.Duration(m.Config.Local.BootDelay)
			if bootDelay == 0 {
				bootDelay = -1 // the config says no delay; the cloud reads 0 as "default"
			}
			var err error
			m.running.cloud, err = local.New(local.Options{Dir: m.Config.Data, BootDelay: bootDelay, Clock: m.Clock, Logger: m.Log})
			if err != nil {
				return fmt.Errorf("start the local cloud: %w", err)
			}
		}
		svc.Cloud, svc.Provisioner = m.running.cloud, m.running.cloud
		m.running.bakers[svc.Name] = m.running.cloud
		if zo := sc.zonesOptions(); zo != nil {
			m.running.cloud.ShipZones(svc.Name, *zo)
			svc.Zones = m.running.cloud.ZoneSource(svc.Name)
		}
	case "linode":
		cloud, err := m.linodeCloud(svc, sc)
		if err != nil {
			return err
		}
		svc.Cloud, svc.BaseImage = cloud, sc.Linode.Image
		m.running.bakers[svc.Name] = cloud
		if svc.Provisioner, err = m.provisioner(svc, sc, checker); err != nil {
			return err
		}
	}
	sw, err := m.trafficSwitch(ctx, svc, sc)
	if err != nil {
		return fmt.Errorf("set up the %s switch of %s: %w", switchKind(sc), svc.Name, err)
	}
	svc.Switch = sw
	return nil
}

func switchKind(sc *ServiceConfig) string {
	if sc.Switch.Kind == "" {
		return "local"
	}
	return sc.Switch.Kind
}

// linodeClient is a linodego client with the token from LINODE_TOKEN and,
// when LINODE_URL is set, that endpoint. Each user gets its own: the Cloud
// and the switches set its retry and debug behaviour.
func (m *Main) linodeClient() (*linodego.Client, error) {
	token := m.getenv(EnvLinodeToken)
	if token == "" {
		return nil, fmt.Errorf("%s is not set: greenlight needs a Linode API token (Linodes, NodeBalancers, Images and Domains read/write) to run a Linode service", EnvLinodeToken)
	}
	observe := func(op string, code int, retry bool) {
		m.running.metrics.CloudRequest("linode", op, code)
		if retry {
			m.running.metrics.CloudRetry("linode", op)
		}
	}
	c := linodego.NewClient(&http.Client{Timeout: linodeHTTPTimeout, Transport: &linode.Transport{Observe: observe}})
	if u := m.getenv(EnvLinodeURL); u != "" {
		c.SetBaseURL(u)
	}
	c.SetToken(token)
	return &c, nil
}

func (m *Main) linodeCloud(svc *deployer.Service, sc *ServiceConfig) (*linode.Cloud, error) {
	client, err := m.linodeClient()
	if err != nil {
		return nil, err
	}
	l := sc.Linode
	opts := linode.Options{
		Client: client, Region: l.region(sc.Servers), Regions: l.Regions, Type: l.Type, Image: l.Image,
		AuthorizedKeys: l.AuthorizedKeys, Tags: l.Tags, FirewallID: l.FirewallID,
		Port: sc.Check.Port, PollInterval: time.Duration(l.PollInterval),
		CallOptions: linode.CallOptions{Clock: m.Clock, Logger: m.Log.With("service", svc.Name)},
		// A NodeBalancer reaches its nodes only on their private addresses.
		PrivateIP: sc.Switch.Kind == "nodebalancer",
	}
	if zo := sc.zonesOptions(); zo != nil {
		svc.Zones = zoneLoader(*zo)
	}
	if kind := sc.Provisioner.Kind; kind == "" || kind == "cloud-init" {
		name, src, err := readTemplate(sc.Provisioner.UserData, "cloud-init/nsd.yaml")
		if err != nil {
			return nil, fmt.Errorf("services.%s.provisioner.user_data: %w", svc.Name, err)
		}
		udo := linode.UserDataOptions{Name: name, Source: src, Zones: svc.Check.Zones, ZoneFiles: sc.zonesOptions(),
			TransferFrom: sc.Check.TransferFrom}
		if t := sc.Check.TSIG; t != nil {
			secret := m.getenv(t.SecretEnv)
			if secret == "" {
				return nil, fmt.Errorf("services.%s.check.tsig: the environment variable %s holding the TSIG secret is not set", svc.Name, t.SecretEnv)
			}
			udo.TSIG = &linode.TSIGVars{Name: t.Name, Algorithm: tsigAlgorithm(t.Algorithm), Secret: secret}
		}
		ud, err := linode.NewUserData(udo)
		if err != nil {
			return nil, fmt.Errorf("services.%s.provisioner.user_data: %w", svc.Name, err)
		}
		opts.UserData = ud.Render
		if udo.ZoneFiles != nil {
			// The user data carries the files: loading them also checks
			// that it fits Linode's limit, before anything is created.
			svc.Zones = ud
		}
	}
	return linode.New(opts)
}

// zoneLoader is a ZoneSource reading a zones directory.
func zoneLoader(opts zones.Options) deployer.ZoneSource {
	return deployer.ZoneSourceFunc(func(ctx context.Context) (deployer.ZoneContent, error) {
		set, err := zones.Load(ctx, opts)
		if err != nil {
			return deployer.ZoneContent{}, err
		}
		return set.Content, nil
	})
}

// tsigAlgorithm is nsd's name for a TSIG algorithm ("hmac-sha256." →
// "hmac-sha256"); the default is hmac-sha256.
func tsigAlgorithm(a string) string {
	a = strings.TrimSuffix(a, ".")
	if a == "" {
		return "hmac-sha256"
	}
	return a
}

// provisioner is what makes a running Linode serve: waiting for cloud-init
// to start the DNS server, a command, or nothing.
func (m *Main) provisioner(svc *deployer.Service, sc *ServiceConfig, checker *dnscheck.Checker) (deployer.Provisioner, error) {
	switch sc.Provisioner.Kind {
	case "none":
		return deployer.NoProvisioning{}, nil
	case "command":
		p := sc.Provisioner
		zonesDir := ""
		if sc.Zones != nil {
			zonesDir = sc.Zones.Dir
		}
		return command.New(command.Options{Args: p.Command, Dir: p.Dir, Timeout: time.Duration(p.Timeout), ZonesDir: zonesDir,
			Logger: m.Log.With("service", svc.Name, "provisioner", "command")})
	default:
		return deployer.AwaitDNS{Checker: checker, Zones: svc.Check.Zones, Clock: m.Clock,
			Timeout: svc.Check.Timeout, Logger: m.Log.With("service", svc.Name, "provisioner", "cloud-init")}, nil
	}
}

// trafficSwitch builds the service's switch.
func (m *Main) trafficSwitch(ctx context.Context, svc *deployer.Service, sc *ServiceConfig) (deployer.Switch, error) {
	cfg := sc.Switch
	switch cfg.Kind {
	case "", "local":
		lb, err := local.NewBalancer(sc.Listen, local.BalancerOptions{Logger: m.Log.With("service", svc.Name)})
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s is already in use (another greenlight or DNS server?); choose another address with --listen 127.0.0.1:5353, or the service's listen in the config", sc.Listen)
		}
		if err != nil {
			return nil, fmt.Errorf("start the load balancer on %s: %w", sc.Listen, err)
		}
		m.running.lbs = append(m.running.lbs, lb)
		m.running.metrics.WatchBalancer(svc.Name, lb)
		return lb, nil
	case "nodebalancer":
		return m.nodeBalancerSwitch(ctx, svc, sc)
	case "dns-records":
		client, err := m.linodeClient()
		if err != nil {
			return nil, err
		}
		return linode.NewDNSRecordSwitch(linode.DNSRecordOptions{
			Client: client, DomainID: cfg.DomainID, Names: cfg.Names, TTL: time.Duration(cfg.TTL),
			Propagation: time.Duration(cfg.Propagation), Endpoints: cfg.Endpoints,
			CallOptions: linode.CallOptions{Clock: m.Clock, Logger: m.Log.With("service", svc.Name)},
		})
	case "nginx":
		return m.nginxSwitch(svc, cfg)
	}
	return nil, fmt.Errorf("unknown switch %q", cfg.Kind)
}

// nodeBalancerSwitch fronts the service with its NodeBalancer, or, when
// its roles are in several regions, each role with the NodeBalancer of
// its region. A NodeBalancer reaches only Linodes of its own region, so
// each one's region is checked against its roles' here, at start-up.
func (m *Main) nodeBalancerSwitch(ctx context.Context, svc *deployer.Service, sc *ServiceConfig) (deployer.Switch, error) {
	cfg := sc.Switch
	client, err := m.linodeClient()
	if err != nil {
		return nil, err
	}
	var ids []int
	roles := map[int][]string{}
	for _, role := range sc.Servers {
		id := cfg.nodeBalancerOf(role)
		if _, seen := roles[id]; !seen {
			ids = append(ids, id)
		}
		roles[id] = append(roles[id], role)
	}
	var routes []deployer.RoleRoute
	for _, id := range ids {
		info, err := linode.LookUpNodeBalancer(ctx, client, id, linode.DefaultPort)
		if err != nil {
			return nil, err
		}
		for _, role := range roles[id] {
			if region := sc.Linode.regionOf(role, sc.Servers); info.Region != region {
				return nil, fmt.Errorf("NodeBalancer %d is in %s but %s's %s servers are created in %s: a NodeBalancer reaches only Linodes of its own region (use a NodeBalancer in %s, or put %s in %s with linode.regions)",
					id, info.Region, svc.Name, role, region, region, role, info.Region)
			}
		}
		endpoints := info.Endpoints
		if len(ids) == 1 && len(cfg.Endpoints) > 0 {
			endpoints = cfg.Endpoints
		}
		sw, err := linode.NewNodeBalancerSwitch(linode.NodeBalancerOptions{
			Client: client, NodeBalancerID: id, Endpoints: endpoints,
			DrainWait:   time.Duration(cfg.DrainWait),
			CallOptions: linode.CallOptions{Clock: m.Clock, Logger: m.Log.With("service", svc.Name, "nodebalancer", id)},
		})
		if err != nil {
			return nil, err
		}
		if len(ids) == 1 {
			return sw, nil
		}
		routes = append(routes, deployer.RoleRoute{Roles: roles[id], Switch: sw})
	}
	rs, err := deployer.NewRoleSwitch(sc.Servers, routes)
	if err != nil {
		return nil, err
	}
	if len(cfg.Endpoints) > 0 {
		rs = rs.WithEndpoints(cfg.Endpoints)
	}
	return rs, nil
}

func (m *Main) nginxSwitch(svc *deployer.Service, cfg SwitchConfig) (deployer.Switch, error) {
	opts := nginx.Options{ConfigPath: cfg.ConfigPath, Listen: cfg.Listen, PIDFile: cfg.PIDFile,
		Upstream: "greenlight_" + svc.Name, Logger: m.Log.With("service", svc.Name, "switch", "nginx")}
	if opts.Listen == "" {
		opts.Listen = "53"
	}
	if len(cfg.NginxCommand) > 0 {
		opts.NginxBinary, opts.NginxArgs = cfg.NginxCommand[0], cfg.NginxCommand[1:]
	}
	if cfg.Template == "" {
		opts.TemplateFS, opts.TemplatePath = configs.Files, "nginx/stream.conf.tmpl"
	} else {
		src, err := os.ReadFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("read the nginx template: %w", err)
		}
		opts.Template = string(src)
	}
	var signer ssh.Signer
	// Hosts that front the same roles share a switch; each role's servers
	// go to the hosts that serve it (serves: [ns1]), all of them otherwise.
	type group struct {
		roles []string
		hosts []nginx.Host
	}
	var groups []*group
	for _, h := range cfg.Hosts {
		host := nginx.Host{Name: h.Name, Endpoint: h.Endpoint, Executor: nginx.LocalExecutor{}}
		if h.SSH != "" {
			if signer == nil {
				var err error
				if signer, err = m.sshSigner(cfg); err != nil {
					return nil, err
				}
			}
			user := cfg.SSHUser
			if user == "" {
				user = "root"
			}
			known := cfg.KnownHosts
			if known == "" {
				home, _ := os.UserHomeDir()
				known = filepath.Join(home, ".ssh", "known_hosts")
			}
			exec, err := nginx.NewSSHExecutor(nginx.SSHOptions{User: user, Addr: h.SSH, Signer: signer, KnownHostsFile: known})
			if err != nil {
				return nil, err
			}
			host.Executor = exec
		}
		roles := slices.Sorted(slices.Values(h.Serves))
		i := slices.IndexFunc(groups, func(g *group) bool { return slices.Equal(g.roles, roles) })
		if i < 0 {
			groups = append(groups, &group{roles: roles})
			i = len(groups) - 1
		}
		groups[i].hosts = append(groups[i].hosts, host)
	}
	if len(groups) == 1 && len(groups[0].roles) == 0 {
		opts.Hosts = groups[0].hosts
		return nginx.New(opts)
	}
	var routes []deployer.RoleRoute
	for _, g := range groups {
		o := opts
		o.Hosts = g.hosts
		sw, err := nginx.New(o)
		if err != nil {
			return nil, err
		}
		routes = append(routes, deployer.RoleRoute{Roles: g.roles, Switch: sw})
	}
	rs, err := deployer.NewRoleSwitch(svc.Roles, routes)
	if err != nil {
		return nil, err
	}
	if len(cfg.Endpoints) > 0 {
		rs = rs.WithEndpoints(cfg.Endpoints)
	}
	return rs, nil
}

// sshSigner reads the private key greenlight logs in to load balancers
// with from the environment; the key never comes from the config file.
func (m *Main) sshSigner(cfg SwitchConfig) (ssh.Signer, error) {
	env := cfg.SSHKeyEnv
	if env == "" {
		env = EnvSSHKey
	}
	key := m.getenv(env)
	if key == "" {
		return nil, fmt.Errorf("%s is not set: the nginx switch needs the SSH private key (PEM) it logs in to the load balancers with", env)
	}
	signer, err := ssh.ParsePrivateKey([]byte(key))
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("the SSH key in %s has a passphrase; give greenlight a key without one (kept in a secret store)", env)
		}
		return nil, fmt.Errorf("the SSH key in %s does not parse as a private key", env)
	}
	return signer, nil
}

// readTemplate reads a template file, or the embedded default when path is
// empty, and returns its name and source.
func readTemplate(path, embedded string) (string, string, error) {
	if path == "" {
		src, err := configs.Files.ReadFile(embedded)
		return "configs/" + embedded, string(src), err
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	return path, string(src), nil
}

// DefaultReconcileInterval is how often the reconciler looks for orphans.
const DefaultReconcileInterval = time.Hour

// reconcileLoop looks for orphaned servers at start-up and then every
// reconcile.interval until ctx ends, and announces what it finds.
func (m *Main) reconcileLoop(ctx context.Context) {
	interval := time.Duration(m.Config.Reconcile.Interval)
	if interval <= 0 {
		interval = DefaultReconcileInterval
	}
	for {
		m.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.Clock.After(interval):
		}
	}
}

// reconcile runs one pass; orphans are announced, a failed pass is logged
// (it is tried again at the next interval).
func (m *Main) reconcile(ctx context.Context) {
	report, err := m.running.deployer.Reconcile(ctx, deployer.ReconcileOptions{Delete: m.Config.Reconcile.DeleteOrphans})
	if err != nil {
		if ctx.Err() == nil {
			m.Log.Warn("could not look for orphaned servers", "err", err)
		}
		return
	}
	m.Log.Info("reconciled", "servers", report.Checked, "orphans", len(report.Orphans))
	orphans := map[string]int{}
	for _, svc := range m.running.deployer.Services() {
		orphans[svc] = 0
	}
	for _, o := range report.Orphans {
		orphans[o.Service]++
	}
	for svc, n := range orphans {
		m.running.metrics.Orphans(svc, n)
	}
	if len(report.Orphans) > 0 {
		m.running.notifier.Announce(ctx, bot.Message{Level: bot.LevelWarning, Text: ":broom: " + report.Summary()})
	}
}
