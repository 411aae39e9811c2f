// Command greenlight is a ChatOps bot for blue/green deploys of servers that
// must never stop answering. With no configuration it runs the embedded
// local mode: a terminal chat and a local cloud of in-process DNS servers
// behind a load balancer on 127.0.0.1:5300.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // CRON_TZ zones of refresh schedules, on hosts without a zone database

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/bot/shell"
	"github.com/greenlight/greenlight/bot/slack"
	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/metrics"
	"github.com/greenlight/greenlight/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	os.Exit(m.Main(ctx, os.Args[1:]))
}

// Main is the program, so tests can run it in-process.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Interactive    bool // stdin is a terminal
	User           string
	Clock          deployer.Clock

	ConfigPath string
	DataDir    string
	Listen     string
	Admin      string // admin endpoints' address, or "off"
	BootDelay  time.Duration
	LogLevel   string

	Config  *Config
	Log     *slog.Logger
	Metrics *metrics.Metrics

	ready *readiness
	admin *adminServer

	db       *storage.DB
	cloud    *local.Cloud
	lbs      []*local.Balancer
	Deployer *deployer.Deployer
	Notifier *bot.Notifier
	Router   *bot.Router
	Shell    *shell.Shell
	Slack    *slack.Adapter // nil without a slack section
	home     *slack.Home
	Getenv   func(string) string // default os.Getenv
	cancel   context.CancelFunc
	bakers   map[string]deployer.Baker // by service
	refresh  refreshers
	// background runs the reconciler and the image refresh until Close.
	background sync.WaitGroup
}

// NewMain returns a Main reading the process's standard streams.
func NewMain() *Main {
	user := os.Getenv("USER")
	if user == "" {
		user = "local"
	}
	interactive := false
	if fi, err := os.Stdin.Stat(); err == nil {
		interactive = fi.Mode()&os.ModeCharDevice != 0
	}
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Interactive: interactive, User: user, Clock: deployer.SystemClock{}}
}

// Main runs the whole program and returns its exit code.
func (m *Main) Main(ctx context.Context, args []string) int {
	if code, ok := m.subcommand(args); ok {
		return code
	}
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(m.Stderr, "greenlight:", err)
		return 2
	}
	if err := m.Open(ctx); err != nil {
		fmt.Fprintln(m.Stderr, "greenlight:", err)
		m.Close()
		return 1
	}
	err := m.Run(ctx)
	if cerr := m.Close(); cerr != nil {
		fmt.Fprintln(m.Stderr, "greenlight:", cerr)
	}
	if failed, ok := errors.AsType[*shell.ErrLastDeployFailed](err); ok {
		fmt.Fprintf(m.Stderr, "greenlight: %v\n", failed)
		return 1
	}
	if err != nil {
		fmt.Fprintln(m.Stderr, "greenlight:", err)
		return 1
	}
	return 0
}

// ParseFlags reads the command line and the configuration.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("greenlight", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.ConfigPath, "config", "", "configuration `file` (default: the embedded local mode, configs/local.yaml)")
	fs.StringVar(&m.DataDir, "data", "", "data `directory` (default ./data, or the config's data)")
	fs.StringVar(&m.Listen, "listen", "", "address of the local load balancer, UDP and TCP (default 127.0.0.1:5300)")
	fs.StringVar(&m.Admin, "admin", "", "`address` of the admin endpoints (/metrics, /healthz, /readyz), or off (default from the config's admin.listen, else off)")
	fs.DurationVar(&m.BootDelay, "boot-delay", -1, "how long a local server takes to start (default from the config, 2s)")
	fs.StringVar(&m.LogLevel, "log-level", "", "debug, info, warn or error (default from the config)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: greenlight [flags]\n       greenlight check-config FILE\n       greenlight version\n\nWith no --config, greenlight runs the embedded local mode: type /deploy help.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see greenlight -h)", fs.Arg(0))
	}
	var err error
	if m.ConfigPath == "" {
		f, ferr := configs.Files.Open("local.yaml")
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		m.Config, err = LoadConfig(f, "configs/local.yaml")
	} else {
		f, ferr := os.Open(m.ConfigPath)
		if ferr != nil {
			return fmt.Errorf("open the configuration: %w", ferr)
		}
		defer f.Close()
		m.Config, err = LoadConfig(f, m.ConfigPath)
	}
	if err != nil {
		return err
	}
	if m.DataDir == "" {
		m.DataDir = m.Config.Data
	}
	if m.DataDir == "" {
		m.DataDir = "./data"
	}
	if m.Listen != "" {
		if len(m.Config.Services) != 1 {
			return errors.New("--listen needs a configuration with exactly one service; set each service's listen instead")
		}
		for _, s := range m.Config.Services {
			s.Listen = m.Listen
		}
	}
	if m.BootDelay >= 0 {
		m.Config.Local.BootDelay = Duration(m.BootDelay)
	}
	if m.LogLevel != "" {
		m.Config.Log.Level = m.LogLevel
	}
	if m.Admin != "" {
		if m.Admin != AdminOff {
			if _, _, err := net.SplitHostPort(m.Admin); err != nil {
				return fmt.Errorf("--admin %q: want host:port or off", m.Admin)
			}
		}
		m.Config.Admin.Listen = m.Admin
	}
	return nil
}

func (m *Main) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if m.Config.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(m.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(m.Stderr, opts))
}

// Open wires storage, the cloud, the load balancers, the deployer and the
// chat, then restores traffic and resumes deploys left in flight.
func (m *Main) Open(ctx context.Context) error {
	if m.Log == nil {
		m.Log = m.logger()
	}
	if m.Clock == nil {
		m.Clock = deployer.SystemClock{}
	}
	m.Metrics = metrics.New()
	m.ready = newReadiness()
	m.ready.wait("store", "not open yet")
	m.ready.wait("chat", "not started yet")
	for _, name := range slices.Sorted(maps.Keys(m.Config.Services)) {
		m.ready.wait("switch "+name, "traffic not pointed at the live set yet")
	}
	if addr := m.Config.Admin.Listen; addr != "" && addr != AdminOff {
		if err := m.startAdmin(addr); err != nil {
			return err
		}
	}
	var err error
	m.db, err = storage.Open(filepath.Join(m.DataDir, "greenlight.db"), storage.Options{Clock: m.Clock})
	if err != nil {
		return err
	}
	m.ready.done("store")
	m.bakers = map[string]deployer.Baker{}
	checker := dnscheck.New(dnscheck.Options{Clock: m.Clock, Logger: m.Log})
	auth := &bot.Authorizer{Policies: map[string]bot.Policy{}}
	var services []*deployer.Service
	for _, name := range slices.Sorted(maps.Keys(m.Config.Services)) {
		sc := m.Config.Services[name]
		svc := sc.Service(name)
		svc.Checker = checker
		if err := m.wireService(ctx, svc, sc, checker); err != nil {
			return err
		}
		if sc.Check.CompareZones == nil || *sc.Check.CompareZones {
			opts, err := sc.Check.compareOptions(name)
			if err != nil {
				return err
			}
			svc.Compare = checker.Comparer(opts)
		}
		services = append(services, svc)
		if pol := sc.Authorization.Policy(); len(pol.Deployers)+len(pol.Approvers)+len(pol.Admins)+len(pol.Channels) > 0 {
			auth.Policies[name] = pol
		}
	}
	if auth.Open() {
		m.Log.Warn("no authorization is configured: everyone may deploy and approve")
	}
	m.Shell = &shell.Shell{In: m.Stdin, Out: m.Stdout, User: m.User, Interactive: m.Interactive}
	m.Notifier = &bot.Notifier{Chats: []bot.Chat{m.Shell}, Log: m.Log, Now: m.Clock.Now}
	m.Deployer, err = deployer.New(deployer.Config{Store: m.db, Clock: m.Clock, Reporter: m.Metrics.Reporter(m.Notifier), Logger: m.Log, Services: services})
	if err != nil {
		return err
	}
	m.Metrics.ServiceNames(m.Deployer.Services())
	for _, svc := range services {
		t := svc.Timeouts
		m.Metrics.LockLimit(svc.Name, svc.ApprovalTimeout+svc.RollbackWindow+
			t.Create+t.WaitRunning+t.Provision+2*t.Check+t.Switch+t.Retire)
	}
	m.Metrics.WatchServices(m.Deployer)
	m.Notifier.Approvers = func(service string) []string { return auth.Policies[service].Approvers }
	m.Router = &bot.Router{Deployer: m.Deployer, Auth: auth, Audit: m.db}
	if err := m.openRefresh(services); err != nil {
		return err
	}
	m.Shell.Router, m.Shell.Deployer = m.Router, m.Deployer
	if m.Config.Slack != nil {
		if err := m.openSlack(auth); err != nil {
			return err
		}
	}

	var runCtx context.Context
	runCtx, m.cancel = context.WithCancel(ctx)
	if err := m.Deployer.Start(runCtx); err != nil {
		return err
	}
	for _, svc := range services {
		if _, err := m.Deployer.Seed(runCtx, svc.Name, ""); err != nil {
			return fmt.Errorf("build the first set of %s: %w", svc.Name, err)
		}
		m.ready.done("switch " + svc.Name)
		if err := m.banner(runCtx, svc); err != nil {
			return err
		}
	}
	if m.Slack == nil {
		m.ready.done("chat")
	}
	m.background.Go(func() { m.reconcileLoop(runCtx) })
	for _, r := range m.refresh {
		m.background.Go(func() { r.Run(runCtx) })
	}
	if m.Interactive && m.Slack == nil {
		fmt.Fprintln(m.Stdout, "Type /deploy help for commands, /deploy ns to deploy, quit to leave.")
	}
	return nil
}

// openSlack makes Slack the chat: commands and clicks come from it, deploy
// threads and the App Home go to it. The terminal is not read.
func (m *Main) openSlack(auth *bot.Authorizer) error {
	sc := m.Config.Slack
	cfg := slack.Config{Mode: sc.Mode, Listen: sc.Listen, Channel: sc.Channel, APIURL: sc.APIURL,
		BotToken: m.getenv("SLACK_BOT_TOKEN"), AppToken: m.getenv("SLACK_APP_TOKEN"), SigningSecret: m.getenv("SLACK_SIGNING_SECRET")}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var err error
	m.Slack, err = slack.New(cfg, slack.Dependencies{Router: m.Router, Refs: m.Deployer, Log: m.Log.With("chat", "slack"),
		Observer: chatObserver{m}})
	if err != nil {
		return fmt.Errorf("start the Slack adapter: %w", err)
	}
	client := slack.NewClient(cfg)
	auth.Groups = slack.NewGroups(client, time.Minute, m.Clock.Now)
	m.home = slack.NewHome(client, m.Deployer, m.Log.With("chat", "slack-home"))
	m.Slack.OnHomeOpened = func(ctx context.Context, user string) {
		if err := m.home.Opened(ctx, user); err != nil {
			m.Log.Warn("could not publish the App Home", "user", user, "err", err)
		}
	}
	m.Notifier.Chats = []bot.Chat{m.Slack.Chat(), m.home}
	return nil
}

func (m *Main) getenv(name string) string {
	if m.Getenv != nil {
		return m.Getenv(name)
	}
	return os.Getenv(name)
}

// banner says where a service answers and which set serves it.
func (m *Main) banner(ctx context.Context, svc *deployer.Service) error {
	st, err := m.Deployer.Status(ctx, svc.Name)
	if err != nil {
		return err
	}
	addr := svc.Switch.Endpoints()[0]
	servers, image, note := st.Live.Servers, st.Live.Image, ""
	if d := st.Active; d != nil && d.Phase == deployer.PhaseRollbackWindow {
		servers, image = d.Next, d.ImageNew
		note = fmt.Sprintf("; deploy #%d is in its rollback window", d.ID)
	}
	host, port, _ := net.SplitHostPort(addr)
	fmt.Fprintf(m.Stdout, "%s: %s serves %s on image %s%s (dig @%s -p %s %s SOA +nsid)\n",
		svc.Name, addr, serverNames(servers), image, note, host, port, svc.Check.Zones[0])
	return nil
}

// Run serves Slack until ctx is cancelled, or, without Slack, reads
// commands until input ends or ctx is cancelled.
func (m *Main) Run(ctx context.Context) error {
	if m.Slack == nil {
		return m.Shell.Run(ctx)
	}
	go m.home.Run(ctx)
	return m.Slack.Run(ctx)
}

// Close stops the pipelines at a safe point (their state is persisted),
// then the load balancers, the cloud and the store.
func (m *Main) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.background.Wait()
	m.stopAdmin()
	for _, r := range m.refresh {
		r.Wait()
	}
	if m.Deployer != nil {
		m.Deployer.Wait()
	}
	var errs []error
	for _, lb := range m.lbs {
		errs = append(errs, lb.Close())
	}
	if m.cloud != nil {
		errs = append(errs, m.cloud.Close())
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	return errors.Join(errs...)
}

func serverNames(servers []deployer.Server) string {
	var out string
	for i, s := range servers {
		if i > 0 {
			out += ", "
		}
		out += s.Name
	}
	return out
}
