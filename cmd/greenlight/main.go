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
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // CRON_TZ zones of refresh schedules, on hosts without a zone database

	"golang.org/x/term"

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

// Main is the program, so tests can run it in-process: ParseFlags reads
// the command line and the configuration, Open builds and starts what they
// describe, Run serves the chat, and Close stops what Open started.
type Main struct {
	// Where the program runs: NewMain takes these from the process; a test
	// gives its own.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Interactive    bool // stdin is a terminal
	User           string
	Clock          deployer.Clock      // Open sets deployer.SystemClock when nil
	Getenv         func(string) string // default os.Getenv
	Log            *slog.Logger        // Open builds it from the flags and the configuration when nil

	// What ParseFlags reads: the flags as given, and the configuration
	// with them applied (Open reads only the configuration).
	Flags  Flags
	Config *Config

	// What Open builds and starts; Close stops it.
	running running
}

// Flags are the command line's settings. ParseFlags applies each one given
// over the configuration's.
type Flags struct {
	ConfigPath string        // --config; "" runs the embedded local mode
	DataDir    string        // --data: Config.Data
	Listen     string        // --listen: the one service's listen
	Admin      string        // --admin: admin.listen, host:port or "off"
	BootDelay  time.Duration // --boot-delay: local.boot_delay
	LogLevel   string        // --log-level: log.level
	LogFile    string        // --log-file: "" = the default for the terminal or pipe, "-" = standard error
}

// running is what Open builds and starts, from the store to the chat.
type running struct {
	cancel context.CancelFunc // ends the context the background goroutines and pipelines run under
	// background holds every goroutine Open starts: first sets retried,
	// switches becoming ready, the reconciler, the image refreshers and the
	// App Home's republishing. Close ends their context and waits for them.
	background sync.WaitGroup

	logOut  *os.File // the log file, when the log goes to one
	logSink *sink    // a log on standard error writes here: through the line editor at a terminal
	metrics *metrics.Metrics
	ready   *readiness
	admin   *adminServer // nil when the admin endpoints are off

	db       *storage.DB
	cloud    *local.Cloud // nil without a local service
	lbs      []*local.Balancer
	bakers   map[string]deployer.Baker // by service
	deployer *deployer.Deployer
	refresh  refreshers
	notifier *bot.Notifier
	router   *bot.Router
	shell    *shell.Shell
	slack    *slack.Adapter // nil without a slack section
	home     *slack.Home    // nil without a slack section
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
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
			return 0
		}
		fmt.Fprintln(m.Stderr, "greenlight:", err)
		return 2
	}
	if err := m.Open(ctx); err != nil {
		fmt.Fprintln(m.Stderr, "greenlight:", explainAccess(err))
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

// errVersion ends ParseFlags after --version printed the version.
var errVersion = errors.New("version printed")

// ParseFlags reads the command line and the configuration. Flag values are
// checked like the configuration's.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("greenlight", flag.ContinueOnError)
	bootDelaySet, version := false, false
	fs.StringVar(&m.Flags.ConfigPath, "config", "", "configuration `file` (default: the embedded local mode, configs/local.yaml)")
	fs.StringVar(&m.Flags.DataDir, "data", "", "data `directory` (default ./data, or the config's data)")
	fs.Func("listen", "`address` of the local load balancer, UDP and TCP (default 127.0.0.1:5300)", func(v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not host:port (like 127.0.0.1:5353)", v)
		}
		m.Flags.Listen = v
		return nil
	})
	fs.Func("boot-delay", "how long a local server takes to start, a `duration` (default 2s, from the config)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration (write it like 2s or 500ms)", v)
		}
		m.Flags.BootDelay, bootDelaySet = d, true
		return nil
	})
	fs.Func("log-level", "`level` of the log: debug, info, warn or error (default info, from the config)", func(v string) error {
		if err := checkLogLevel(v); err != nil {
			return err
		}
		m.Flags.LogLevel = v
		return nil
	})
	fs.StringVar(&m.Flags.Admin, "admin", "", "`address` of the admin endpoints (/metrics, /healthz, /readyz), or off (default from the config's admin.listen, else off)")
	fs.StringVar(&m.Flags.LogFile, "log-file", "", "where the log goes: a `file`, or - for standard error (default: DATA/greenlight.log at a terminal, standard error otherwise)")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	fs.SetOutput(io.Discard) // a mistake is said once, by Main
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(m.Stderr, "usage: greenlight [flags]\n       greenlight check-config FILE\n       greenlight version\n\nWith no --config, greenlight runs the embedded local mode: type /deploy help.\n\n")
			fs.SetOutput(m.Stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w (see greenlight -h)", err)
	}
	if version {
		fmt.Fprintln(m.Stdout, versionString())
		return errVersion
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see greenlight -h)", fs.Arg(0))
	}
	flags := m.Flags
	var err error
	if flags.ConfigPath == "" {
		f, ferr := configs.Files.Open("local.yaml")
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		m.Config, err = LoadConfig(f, "configs/local.yaml")
	} else {
		f, ferr := os.Open(flags.ConfigPath)
		if ferr != nil {
			return fmt.Errorf("open the configuration: %w", ferr)
		}
		defer f.Close()
		m.Config, err = LoadConfig(f, flags.ConfigPath)
	}
	if err != nil {
		return err
	}
	if flags.DataDir != "" {
		m.Config.Data = flags.DataDir
	}
	if m.Config.Data == "" {
		m.Config.Data = "./data"
	}
	if flags.Listen != "" {
		if len(m.Config.Services) != 1 {
			return errors.New("--listen needs a configuration with exactly one service; set each service's listen instead")
		}
		for _, s := range m.Config.Services {
			s.Listen = flags.Listen
		}
	}
	if bootDelaySet {
		m.Config.Local.BootDelay = Duration(flags.BootDelay)
	}
	if flags.LogLevel != "" {
		m.Config.Log.Level = flags.LogLevel
	}
	if flags.Admin != "" {
		if flags.Admin != AdminOff {
			if _, _, err := net.SplitHostPort(flags.Admin); err != nil {
				return fmt.Errorf("--admin %q: want host:port or off", flags.Admin)
			}
		}
		m.Config.Admin.Listen = flags.Admin
	}
	return nil
}

// logger builds the log as --log-level, --log-file and the config say. At
// a terminal the log goes to DATA/greenlight.log unless --log-file says
// otherwise, so it never writes over the chat.
func (m *Main) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	m.running.logSink = &sink{w: m.Stderr}
	var out io.Writer = m.running.logSink
	switch path := m.logPath(); path {
	case "":
	default:
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, dataDirError("create the directory of the log", filepath.Dir(path), err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, dataDirError("open the log", path, err)
		}
		m.running.logOut, out = f, f
	}
	opts := &slog.HandlerOptions{Level: level}
	if m.Config.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return slog.New(slog.NewTextHandler(out, opts)), nil
}

// logPath is the file the log goes to, or "" for standard error.
func (m *Main) logPath() string {
	switch {
	case m.Flags.LogFile == "-":
		return ""
	case m.Flags.LogFile != "":
		return m.Flags.LogFile
	case m.Interactive && m.Config.Slack == nil:
		return filepath.Join(m.Config.Data, "greenlight.log")
	}
	return ""
}

// dataDirError says what could not be done with a path and, when the
// system refused, which user greenlight runs as.
func dataDirError(what, path string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return fmt.Errorf("%s %s: permission denied; %s", what, path, accessHint())
}

// accessHint names the user greenlight runs as and what to do.
func accessHint() string {
	who := "this user"
	if u, err := user.Current(); err == nil {
		who = fmt.Sprintf("user %s (uid %s)", u.Username, u.Uid)
	}
	return fmt.Sprintf("greenlight runs as %s: give that user access to the data directory, or choose another with --data", who)
}

// explainAccess adds who greenlight runs as to a refusal by the system.
// dataDirError's errors say it already and do not wrap the refusal, so it
// is said once.
func explainAccess(err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%w; %s", err, accessHint())
}

// Open wires storage, the cloud, the load balancers, the deployer and the
// chat, then restores traffic and resumes deploys left in flight.
func (m *Main) Open(ctx context.Context) error {
	run := &m.running
	if m.Log == nil {
		var err error
		if m.Log, err = m.logger(); err != nil {
			return err
		}
	}
	if m.Clock == nil {
		m.Clock = deployer.SystemClock{}
	}
	run.metrics = metrics.New()
	run.ready = newReadiness()
	run.ready.wait("store", "not open yet")
	run.ready.wait("chat", "not started yet")
	for _, name := range slices.Sorted(maps.Keys(m.Config.Services)) {
		run.ready.wait("switch "+name, "traffic not pointed at the live set yet")
	}
	if addr := m.Config.Admin.Listen; addr != "" && addr != AdminOff {
		if err := m.startAdmin(addr); err != nil {
			return err
		}
	}
	var err error
	run.db, err = storage.Open(filepath.Join(m.Config.Data, "greenlight.db"), storage.Options{Clock: m.Clock})
	if errors.Is(err, fs.ErrPermission) {
		return dataDirError("open the data file", filepath.Join(m.Config.Data, "greenlight.db"), err)
	}
	if err != nil {
		return err
	}
	run.ready.done("store")
	run.bakers = map[string]deployer.Baker{}
	checker := dnscheck.New(dnscheck.Options{Clock: m.Clock, Logger: m.Log})
	auth := &bot.Authorizer{Policies: map[string]bot.Policy{}}
	var services []*deployer.Service
	for _, name := range slices.Sorted(maps.Keys(m.Config.Services)) {
		sc := m.Config.Services[name]
		svc := sc.Service(name)
		svc.Freezes = append(svc.Freezes, m.Config.FreezeWindows()...)
		svc.Checker = checker
		if err := m.wireService(ctx, svc, sc, checker); err != nil {
			return err
		}
		if sc.Check.CompareZones == nil || *sc.Check.CompareZones {
			opts, err := sc.Check.compareOptions(name, m.getenv)
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
	run.shell = &shell.Shell{In: m.Stdin, Out: m.Stdout, User: m.User, Interactive: m.Interactive}
	run.notifier = &bot.Notifier{Chats: []bot.Chat{run.shell}, Log: m.Log, Now: m.Clock.Now}
	run.deployer, err = deployer.New(deployer.Config{Store: run.db, Clock: m.Clock, Reporter: run.metrics.Reporter(run.notifier), Logger: m.Log, Services: services})
	if err != nil {
		return err
	}
	run.metrics.ServiceNames(run.deployer.Services())
	for _, name := range run.deployer.Services() {
		svc, err := run.deployer.Service(name) // with the defaults filled in
		if err != nil {
			return err
		}
		run.metrics.LockLimit(svc.Name, svc.LockLimit())
	}
	run.metrics.WatchServices(run.deployer)
	run.notifier.Approvers = func(service string) []string { return auth.Policies[service].Approvers }
	run.router = &bot.Router{Deployer: run.deployer, Auth: auth, Audit: run.db, Log: m.Log}
	if err := m.openRefresh(services); err != nil {
		return err
	}
	run.shell.Router, run.shell.Deployer = run.router, run.deployer
	if m.Config.Slack != nil {
		if err := m.openSlack(auth); err != nil {
			return err
		}
	}

	var runCtx context.Context
	runCtx, run.cancel = context.WithCancel(ctx)
	if err := run.deployer.Start(runCtx); err != nil {
		return err
	}
	for _, svc := range services {
		if _, err := run.deployer.Seed(runCtx, svc.Name, ""); err != nil {
			// Start-up never waits on the cloud: say so and try again.
			m.Log.Error("could not build the first set; trying again", "service", svc.Name, "err", err)
			run.notifier.Announce(runCtx, bot.Message{Level: bot.LevelError, Service: svc.Name,
				Text: fmt.Sprintf("Could not build the first set of %s: %s. greenlight tries again every few minutes; /deploy status %s shows when it is up.", svc.Name, strings.ReplaceAll(bot.ErrorText(err), "\n", "; "), svc.Name)})
			run.background.Go(func() { m.seedLoop(runCtx, svc.Name) })
			continue
		}
		run.background.Go(func() {
			if run.deployer.WaitReady(runCtx, svc.Name) == nil {
				run.ready.done("switch " + svc.Name)
			}
		})
		if err := m.banner(runCtx, svc); err != nil {
			return err
		}
	}
	if run.slack == nil {
		run.ready.done("chat")
	}
	run.background.Go(func() { m.reconcileLoop(runCtx) })
	for _, r := range run.refresh {
		run.background.Go(func() { r.Run(runCtx) })
	}
	if run.home != nil {
		run.background.Go(func() { run.home.Run(runCtx) })
	}
	if m.Interactive && run.slack == nil {
		fmt.Fprintf(m.Stdout, "Type /deploy help for commands, /deploy %s to deploy, quit to leave.\n", services[0].Name)
		if path := m.logPath(); path != "" {
			fmt.Fprintf(m.Stdout, "The log is in %s (--log-file - shows it here).\n", path)
		}
	}
	return nil
}

// openSlack makes Slack the chat: commands and clicks come from it, deploy
// threads and the App Home go to it. The terminal is not read.
func (m *Main) openSlack(auth *bot.Authorizer) error {
	run := &m.running
	sc := m.Config.Slack
	cfg := slack.Config{Mode: sc.Mode, Listen: sc.Listen, Channel: sc.Channel, APIURL: sc.APIURL,
		BotToken: m.getenv("SLACK_BOT_TOKEN"), AppToken: m.getenv("SLACK_APP_TOKEN"), SigningSecret: m.getenv("SLACK_SIGNING_SECRET")}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var err error
	run.slack, err = slack.New(cfg, slack.Dependencies{Router: run.router, Refs: run.deployer, Log: m.Log.With("chat", "slack"),
		Observer: chatObserver{m}})
	if err != nil {
		return fmt.Errorf("start the Slack adapter: %w", err)
	}
	client := slack.NewClient(cfg)
	auth.Groups = slack.NewGroups(client, time.Minute, m.Clock.Now)
	run.home = slack.NewHome(client, run.deployer, m.Log.With("chat", "slack-home"))
	run.slack.OnHomeOpened = func(ctx context.Context, user string) {
		if err := run.home.Opened(ctx, user); err != nil {
			m.Log.Warn("could not publish the App Home", "user", user, "err", err)
		}
	}
	run.notifier.Chats = []bot.Chat{run.slack.Chat(), run.home}
	run.router.AnnounceIn = "in the announcements channel"
	return nil
}

func (m *Main) getenv(name string) string {
	if m.Getenv != nil {
		return m.Getenv(name)
	}
	return os.Getenv(name)
}

// banner says where a service answers and which set serves it.
// seedLoop builds a service's first set once the cloud lets it, waiting
// longer after each failure (1m, 2m, 4m … 30m).
func (m *Main) seedLoop(ctx context.Context, service string) {
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.Clock.After(wait):
		}
		live, err := m.running.deployer.Seed(ctx, service, "")
		if err == nil {
			m.running.ready.done("switch " + service)
			m.running.notifier.Announce(ctx, bot.Message{Level: bot.LevelSuccess, Service: service,
				Text: fmt.Sprintf("The first set of %s is up: %s.", service, serverNames(live.Servers))})
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.Log.Error("could not build the first set; trying again", "service", service, "in", wait, "err", err)
		wait = min(2*wait, 30*time.Minute)
	}
}

func (m *Main) banner(ctx context.Context, svc *deployer.Service) error {
	st, err := m.running.deployer.Status(ctx, svc.Name)
	if err != nil {
		return err
	}
	addr := svc.Switch.Endpoints()[0]
	t := bot.TrafficOf(st)
	servers, image, note := t.Servers, t.Image, ""
	if len(t.Kept) > 0 {
		note = fmt.Sprintf("; deploy #%d keeps %s for rollback until %s", t.DeployID, serverNames(t.Kept), deployer.TimeOfDay(t.KeptUntil))
	}
	host, port, _ := net.SplitHostPort(addr)
	fmt.Fprintf(m.Stdout, "%s: %s serves %s on image %s%s (dig @%s -p %s %s SOA +nsid)\n",
		svc.Name, addr, serverNames(servers), image, note, host, port, svc.Check.Zones[0])
	return nil
}

// Run serves Slack until ctx is cancelled, or, without Slack, reads
// commands until input ends or ctx is cancelled. It returns once what it
// started has stopped; what Open started runs until Close.
func (m *Main) Run(ctx context.Context) error {
	if m.running.slack == nil {
		restore, err := m.attachTerminal()
		if err != nil {
			m.Log.Warn("the terminal has no line editing", "err", err)
		}
		defer restore()
		return m.running.shell.Run(ctx)
	}
	return m.running.slack.Run(ctx)
}

// Close stops what Open started and waits for it: the background
// goroutines, the admin endpoints, the image refreshers and the pipelines
// (at a safe point; their state is persisted), then the load balancers,
// the cloud and the store.
func (m *Main) Close() error {
	run := &m.running
	if run.cancel != nil {
		run.cancel()
	}
	run.background.Wait()
	m.stopAdmin()
	for _, r := range run.refresh {
		r.Wait()
	}
	if run.deployer != nil {
		run.deployer.Wait()
	}
	var errs []error
	for _, lb := range run.lbs {
		errs = append(errs, lb.Close())
	}
	if run.cloud != nil {
		errs = append(errs, run.cloud.Close())
	}
	if run.db != nil {
		errs = append(errs, run.db.Close())
	}
	if run.logOut != nil {
		errs = append(errs, run.logOut.Close())
	}
	return errors.Join(errs...)
}

// attachTerminal gives the shell golang.org/x/term's line editor when
// standard input and output are a terminal: line editing, history kept in
// the data directory, colour (unless NO_COLOR is set) and the elapsed time
// of a running step. restore puts the terminal back as it was.
func (m *Main) attachTerminal() (restore func(), err error) {
	restore = func() {}
	in, ok := m.Stdin.(*os.File)
	out, ok2 := m.Stdout.(*os.File)
	if !m.Interactive || !ok || !ok2 || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return restore, nil
	}
	history, err := shell.OpenHistory(filepath.Join(m.Config.Data, "history"), 1000)
	if err != nil {
		return restore, err
	}
	state, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return restore, err
	}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, "greenlight> ")
	resize := func() {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 {
			t.SetSize(w, h)
		}
	}
	resize()
	stopResize := onResize(resize)
	t.History = history
	ticker := time.NewTicker(time.Second)
	m.running.shell.Line, m.running.shell.Out = t, t
	m.running.shell.Color = m.wantColor()
	m.running.shell.Tick, m.running.shell.Now = ticker.C, m.Clock.Now
	if m.running.logSink != nil {
		m.running.logSink.set(t) // log lines above the prompt, not through it
	}
	return func() {
		if m.running.logSink != nil {
			m.running.logSink.set(m.Stderr)
		}
		stopResize()
		ticker.Stop()
		_ = term.Restore(int(in.Fd()), state)
	}, nil
}

// sink is a writer that can be pointed elsewhere while it is in use.
type sink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *sink) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}

// wantColor reports whether a terminal should get colour: unless NO_COLOR
// is set to anything (https://no-color.org).
func (m *Main) wantColor() bool { return m.getenv("NO_COLOR") == "" }

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
