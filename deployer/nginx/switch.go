// Package nginx is a deployer.Switch for nginx stream load balancers: it
// renders the upstream servers of a DNS service into a stream config file
// from a template (configs/nginx/stream.conf.tmpl), writes it on every load
// balancer host, has `nginx -t` check it there, and only when every host
// accepts it reloads nginx gracefully.
//
// Hosts are reached through an Executor: LocalExecutor for nginx on this
// machine, SSHExecutor for load balancers elsewhere (host keys checked
// against known_hosts, always). Each host needs nginx with the stream
// module, cat, test, rm, mv and pgrep (procps), and a user allowed to write
// the config file and signal nginx.
//
// A graceful reload keeps every TCP connection and every query that has
// not reached an old worker yet. The one thing it loses: UDP queries an old
// worker has forwarded and still waits on when the reload tells it to shut
// down. nginx ends those sessions without an answer ("disconnected on
// shutdown" in its info log), so their clients retry, as DNS clients do
// over UDP. That is at most one query per client in flight at that instant
// (the tests see 0-2 per reload at about 1500 UDP queries a second).
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

var _ deployer.Switch = (*Switch)(nil)

// Defaults of Options.
const (
	DefaultNginxBinary    = "nginx"
	DefaultPIDFile        = "/run/nginx.pid" // Debian's and Ubuntu's
	DefaultUpstream       = "greenlight"
	DefaultUDPTimeout     = 3 * time.Second
	DefaultTCPTimeout     = 10 * time.Second
	DefaultConnectTimeout = 2 * time.Second
	DefaultReloadTimeout  = 15 * time.Second
)

// pollInterval is how often Accept and Drain look at nginx's processes.
const pollInterval = 50 * time.Millisecond

// drainErrorGrace is how long Drain keeps trying while it cannot see a
// host's processes, before it gives up with an error.
const drainErrorGrace = 5 * time.Second

// Host is one load balancer.
type Host struct {
	Name     string   // for messages: "lb1"
	Executor Executor // how to reach it
	Endpoint string   // the address clients query through it, host:port
}

// Options configure a Switch.
type Options struct {
	Hosts []Host
	// ConfigPath is the absolute path of the stream config file on every
	// host; nginx.conf includes it inside its stream block.
	ConfigPath string
	// The text/template the file is rendered from, with TemplateData:
	// either its source in Template, or TemplatePath in TemplateFS (such
	// as "nginx/stream.conf.tmpl" in the configs directory).
	Template     string
	TemplateFS   fs.FS
	TemplatePath string
	// NginxBinary and NginxArgs start the nginx command lines: NginxArgs
	// go before -t and -s reload, e.g. -p prefix -c nginx.conf. For a user
	// who may run only nginx through sudo: "sudo" and ["-n", "nginx"].
	NginxBinary string // default "nginx"
	NginxArgs   []string
	// PIDFile is where nginx keeps its master's process ID, as nginx.conf's
	// pid directive says; default /run/nginx.pid.
	PIDFile string
	// Listen is what nginx listens on for the service, UDP and TCP: a port
	// ("53") or address:port ("192.0.2.1:53", "[::]:53").
	Listen         string
	Upstream       string        // the upstream block's name, unique per service; default "greenlight"
	UDPTimeout     time.Duration // how long a UDP query waits for its answer; default 3s
	TCPTimeout     time.Duration // how long a TCP connection may sit idle; default 10s
	ConnectTimeout time.Duration // connecting to a server over TCP; default 2s
	ReloadTimeout  time.Duration // for nginx to start workers with the new config; default 15s
	Logger         *slog.Logger  // default slog.Default()
}

// TemplateData is what the stream config template is rendered with.
type TemplateData struct {
	Upstream       string
	Listen         string
	Servers        []TemplateServer // never empty
	UDPTimeout     string           // nginx time: "3s", "1500ms"
	TCPTimeout     string
	ConnectTimeout string
}

// TemplateServer is one server in TemplateData.
type TemplateServer struct {
	Name string // "ns1-7"
	Addr string // "192.0.2.10:53", "[2001:db8::10]:53"
}

// Switch sends a service's DNS traffic through nginx stream load balancers
// to one set of servers.
type Switch struct {
	hosts []Host
	tmpl  *template.Template
	opts  Options
	log   *slog.Logger

	mu sync.Mutex // one Accept at a time
}

// New checks opts, parses the template and renders it once for a sample
// server, so a broken template stops start-up rather than a deploy.
func New(opts Options) (*Switch, error) {
	if len(opts.Hosts) == 0 {
		return nil, errors.New("nginx switch: no load balancer hosts")
	}
	seen := map[string]bool{}
	for i, h := range opts.Hosts {
		switch {
		case h.Name == "":
			return nil, fmt.Errorf("nginx switch: host %d has no name", i+1)
		case seen[h.Name]:
			return nil, fmt.Errorf("nginx switch: host %s is listed twice", h.Name)
		case h.Executor == nil:
			return nil, fmt.Errorf("nginx switch: host %s has no executor (SSH or local)", h.Name)
		case h.Endpoint == "":
			return nil, fmt.Errorf("nginx switch: host %s has no endpoint, the address clients query through it", h.Name)
		}
		seen[h.Name] = true
	}
	if !path.IsAbs(opts.ConfigPath) {
		return nil, fmt.Errorf("nginx switch: the stream config path must be absolute, not %q", opts.ConfigPath)
	}
	if err := checkListen(opts.Listen); err != nil {
		return nil, fmt.Errorf("nginx switch: %w", err)
	}
	if opts.Upstream == "" {
		opts.Upstream = DefaultUpstream
	}
	if !wordOf(opts.Upstream, "_") {
		return nil, fmt.Errorf("nginx switch: upstream name %q may hold only letters, digits and _", opts.Upstream)
	}
	if opts.NginxBinary == "" {
		opts.NginxBinary = DefaultNginxBinary
	}
	if opts.PIDFile == "" {
		opts.PIDFile = DefaultPIDFile
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.UDPTimeout, DefaultUDPTimeout)
	def(&opts.TCPTimeout, DefaultTCPTimeout)
	def(&opts.ConnectTimeout, DefaultConnectTimeout)
	def(&opts.ReloadTimeout, DefaultReloadTimeout)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	tmpl, err := parseTemplate(opts)
	if err != nil {
		return nil, err
	}
	s := &Switch{hosts: slices.Clone(opts.Hosts), tmpl: tmpl, opts: opts, log: opts.Logger}
	if _, err := s.Render([]deployer.Server{{Name: "sample", Addr: "192.0.2.1:53"}}); err != nil {
		return nil, err
	}
	return s, nil
}

func parseTemplate(opts Options) (*template.Template, error) {
	src, name := opts.Template, "stream config template"
	switch {
	case src != "" && opts.TemplateFS != nil:
		return nil, errors.New("nginx switch: give the template either as source or as a file, not both")
	case src == "" && opts.TemplateFS == nil:
		return nil, errors.New("nginx switch: no stream config template (configs/nginx/stream.conf.tmpl)")
	case src == "":
		b, err := fs.ReadFile(opts.TemplateFS, opts.TemplatePath)
		if err != nil {
			return nil, fmt.Errorf("nginx switch: read the stream config template: %w", err)
		}
		src, name = string(b), opts.TemplatePath
	}
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("nginx switch: the stream config template is broken: %w", err)
	}
	return t, nil
}

// Endpoints are the addresses clients query through each host.
func (s *Switch) Endpoints() []string {
	out := make([]string, len(s.hosts))
	for i, h := range s.hosts {
		out[i] = h.Endpoint
	}
	return out
}

// Render returns the stream config that sends traffic to servers.
func (s *Switch) Render(servers []deployer.Server) ([]byte, error) {
	if len(servers) == 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "the load balancers need at least one server to send traffic to")
	}
	data := TemplateData{
		Upstream:       s.opts.Upstream,
		Listen:         s.opts.Listen,
		UDPTimeout:     nginxTime(s.opts.UDPTimeout),
		TCPTimeout:     nginxTime(s.opts.TCPTimeout),
		ConnectTimeout: nginxTime(s.opts.ConnectTimeout),
	}
	for _, srv := range servers {
		if !wordOf(srv.Name, "._-") {
			return nil, deployer.Errorf(deployer.CodeInvalid, "server name %q cannot go in an nginx config: use letters, digits, '.', '_' and '-'", srv.Name)
		}
		addr, err := upstreamAddr(srv.Addr)
		if err != nil {
			return nil, &deployer.Error{Code: deployer.CodeInvalid, Message: fmt.Sprintf("%s has no address nginx can send traffic to; is it running?", srv.Name), Err: err}
		}
		data.Servers = append(data.Servers, TemplateServer{Name: srv.Name, Addr: addr})
	}
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, data); err != nil {
		// The template is the operator's: what it trips on is theirs to read.
		return nil, deployer.Errorf(deployer.CodeInvalid, "render the nginx stream config: %v", err)
	}
	return buf.Bytes(), nil
}

// Accept renders servers into the stream config, writes it on every host
// and has nginx test it there. Only if every host passes does it reload
// nginx on each and wait until nginx's workers run the new config: then new
// queries and connections go to servers only, while the old workers finish
// what they have (see Drain). If any host rejects the config, every host
// gets its previous file back, nothing is reloaded, and the old servers keep
// serving.
func (s *Switch) Accept(ctx context.Context, servers []deployer.Server) error {
	conf, err := s.Render(servers)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	// Check nginx runs, and keep each host's current file, to put back if
	// anything fails.
	prev := make([]previous, len(s.hosts))
	if err := s.each(func(i int, h Host) error {
		if _, err := s.workers(ctx, h); err != nil {
			return err
		}
		p, err := s.readConfig(ctx, h)
		prev[i] = p
		return err
	}); err != nil {
		return deployer.Wrapf(err, "nothing was switched")
	}

	written := make([]bool, len(s.hosts))
	err = s.each(func(i int, h Host) error {
		if err := h.Executor.WriteFile(ctx, s.opts.ConfigPath, conf, 0o644); err != nil {
			return deployer.Wrapf(err, "could not write %s on %s", s.opts.ConfigPath, h.Name)
		}
		written[i] = true
		return s.test(ctx, h)
	})
	if err != nil {
		msg := "nothing was switched and the old servers keep serving"
		if rerr := s.restore(ctx, prev, written); rerr != nil {
			msg += fmt.Sprintf(", but putting the previous config back failed (%s): fix it before nginx next reloads", deployer.ErrorMessage(rerr))
		}
		return deployer.Wrapf(err, "%s", msg)
	}

	reloaded := make([]bool, len(s.hosts))
	err = s.each(func(i int, h Host) error {
		if err := s.reload(ctx, h); err != nil {
			return err
		}
		reloaded[i] = true
		return nil
	})
	if err != nil {
		var done []string
		failed := make([]bool, len(s.hosts))
		for i, h := range s.hosts {
			failed[i] = !reloaded[i]
			if reloaded[i] {
				done = append(done, h.Name)
			}
		}
		msg := "nginx did not reload, so nothing was switched"
		if len(done) > 0 {
			msg = fmt.Sprintf("nginx did not reload everywhere: %s already sends traffic to %s, the others do not",
				strings.Join(done, ", "), names(servers))
		}
		if rerr := s.restore(ctx, prev, failed); rerr != nil {
			msg += fmt.Sprintf("; putting the previous config back failed too (%s)", deployer.ErrorMessage(rerr))
		}
		return deployer.Wrapf(err, "%s", msg)
	}
	s.log.Info("nginx sends traffic to", "servers", names(servers), "hosts", len(s.hosts))
	return nil
}

// Drain waits until nginx on every host has no workers left from an older
// config: after Accept's graceful reload those workers carry exactly the
// queries and connections that reached the previous servers, and nginx ends
// each one when its connections close (UDP: after the answer or the UDP
// timeout; TCP: when the client hangs up or sits idle for the TCP timeout).
// nginx cannot tell which servers an old worker's connections go to, so
// Drain waits for all of them, whatever servers says.
//
// When ctx ends first, Drain logs what is left and returns nil: the switch
// has happened either way, and nginx's worker_shutdown_timeout, if set,
// cuts the rest. It returns an error only when it cannot see a host's
// processes (nginx not running, pid file unreadable, SSH down) for 5s, or
// still cannot when ctx ends.
func (s *Switch) Drain(ctx context.Context, servers []deployer.Server) error {
	left := make([]int, len(s.hosts))
	var failingSince time.Time
	for {
		err := s.each(func(i int, h Host) error {
			ws, err := s.workers(ctx, h)
			if err != nil {
				return err
			}
			left[i] = 0
			for _, w := range ws {
				if w.old {
					left[i]++
				}
			}
			return nil
		})
		total := 0
		for _, n := range left {
			total += n
		}
		if err == nil && total == 0 {
			s.log.Info("nginx drained", "servers", names(servers))
			return nil
		}
		switch {
		case err == nil || ctx.Err() != nil:
			// A look cut short by the deadline is no news.
			failingSince = time.Time{}
		case failingSince.IsZero():
			failingSince = time.Now()
		case time.Since(failingSince) > drainErrorGrace:
			return deployer.Wrapf(err, "could not see whether nginx finished the old traffic")
		}
		select {
		case <-ctx.Done():
			if !failingSince.IsZero() {
				return deployer.Wrapf(err, "could not see whether nginx finished the old traffic")
			}
			s.log.Warn("drain deadline passed; nginx workers of the old config still finish their connections",
				"servers", names(servers), "old_workers", total, "err", ctx.Err())
			return nil
		case <-time.After(pollInterval):
		}
	}
}

// previous is a host's config file before Accept.
type previous struct {
	data   []byte
	exists bool
}

func (s *Switch) readConfig(ctx context.Context, h Host) (previous, error) {
	out, err := h.Executor.Run(ctx, "cat", "--", s.opts.ConfigPath)
	if err == nil {
		return previous{data: out, exists: true}, nil
	}
	if _, ok := exitStatus(err); ok {
		// cat failed: fine if the file is not there yet.
		_, terr := h.Executor.Run(ctx, "test", "-e", s.opts.ConfigPath)
		if st, ok := exitStatus(terr); ok && st == 1 {
			return previous{}, nil
		}
	}
	return previous{}, deployer.Wrapf(withOutput(err, out), "could not read %s on %s", s.opts.ConfigPath, h.Name)
}

// restore puts back the previous file on the hosts marked in which.
func (s *Switch) restore(ctx context.Context, prev []previous, which []bool) error {
	// Putting things back must not fail just because the deadline that
	// made the switch fail has passed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.each(func(i int, h Host) error {
		if !which[i] {
			return nil
		}
		var err error
		if prev[i].exists {
			err = h.Executor.WriteFile(ctx, s.opts.ConfigPath, prev[i].data, 0o644)
		} else {
			_, err = h.Executor.Run(ctx, "rm", "-f", "--", s.opts.ConfigPath)
		}
		if err != nil {
			s.log.Error("putting the previous nginx stream config back failed", "host", h.Name, "path", s.opts.ConfigPath, "err", err)
			return deployer.Wrapf(err, "on %s", h.Name)
		}
		s.log.Info("put the previous nginx stream config back", "host", h.Name, "path", s.opts.ConfigPath)
		return nil
	})
}

// test runs nginx -t on h; its complaint, if any, is phrased for the chat.
func (s *Switch) test(ctx context.Context, h Host) error {
	out, err := h.Executor.Run(ctx, s.opts.NginxBinary, s.nginxArgs("-t")...)
	if err == nil {
		s.log.Debug("nginx -t passed", "host", h.Name, "output", string(out))
		return nil
	}
	if _, ok := exitStatus(err); ok {
		return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf("nginx on %s rejected the new config: %s", h.Name, complaint(out)), Err: err}
	}
	return deployer.Wrapf(withOutput(err, out), "could not run nginx -t on %s", h.Name)
}

// reload signals nginx on h to reload and waits until it runs workers with
// the new config and none of the old workers takes new traffic.
func (s *Switch) reload(ctx context.Context, h Host) error {
	before, err := s.workers(ctx, h)
	if err != nil {
		return err
	}
	out, err := h.Executor.Run(ctx, s.opts.NginxBinary, s.nginxArgs("-s", "reload")...)
	if err != nil {
		return deployer.Wrapf(err, "nginx -s reload failed on %s: %s", h.Name, complaint(out))
	}
	old := map[int]bool{}
	for _, w := range before {
		old[w.pid] = true
	}
	signalled := time.Now()
	deadline := signalled.Add(s.opts.ReloadTimeout)
	for polls := 1; ; polls++ {
		ws, err := s.workers(ctx, h)
		if err != nil {
			return err
		}
		fresh, stale := 0, 0
		for _, w := range ws {
			switch {
			case !old[w.pid]:
				fresh++
			case !w.old:
				stale++ // has not begun to shut down yet
			}
		}
		if fresh > 0 && stale == 0 {
			s.log.Debug("nginx reloaded", "host", h.Name, "took", time.Since(signalled), "polls", polls)
			return nil
		}
		if time.Now().After(deadline) {
			return deployer.Errorf(deployer.CodeFailed, "nginx on %s did not start workers with the new config within %s; its error log says why (often: the listen address is taken)",
				h.Name, s.opts.ReloadTimeout)
		}
		select {
		case <-ctx.Done():
			return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf("stopped waiting for nginx on %s to reload", h.Name), Err: ctx.Err()}
		case <-time.After(pollInterval):
		}
	}
}

// worker is one nginx worker process.
type worker struct {
	pid int
	old bool // shutting down: it serves an older config's connections
}

// workers lists the worker processes of h's nginx master.
func (s *Switch) workers(ctx context.Context, h Host) ([]worker, error) {
	out, err := h.Executor.Run(ctx, "cat", "--", s.opts.PIDFile)
	if err != nil {
		return nil, deployer.Wrapf(withOutput(err, out), "nginx does not seem to run on %s: cannot read its pid file %s", h.Name, s.opts.PIDFile)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, deployer.Errorf(deployer.CodeFailed, "nginx does not seem to run on %s: its pid file %s is empty", h.Name, s.opts.PIDFile)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || master <= 1 {
		return nil, deployer.Errorf(deployer.CodeFailed, "nginx's pid file %s on %s holds %q, not a process ID", s.opts.PIDFile, h.Name, strings.TrimSpace(string(out)))
	}
	out, err = h.Executor.Run(ctx, "pgrep", "-a", "-P", strconv.Itoa(master))
	if st, ok := exitStatus(err); ok && st == 1 {
		return nil, nil // no children
	}
	if err != nil {
		return nil, deployer.Wrapf(withOutput(err, out), "cannot list nginx's processes on %s", h.Name)
	}
	return parseWorkers(out), nil
}

// parseWorkers reads pgrep -a lines: "1234 nginx: worker process".
func parseWorkers(out []byte) []worker {
	var ws []worker
	for line := range strings.Lines(string(out)) {
		pid, title, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || !strings.Contains(title, "worker process") {
			continue
		}
		ws = append(ws, worker{pid: n, old: strings.Contains(title, "shutting down")})
	}
	return ws
}

func (s *Switch) nginxArgs(args ...string) []string {
	return append(slices.Clone(s.opts.NginxArgs), args...)
}

// each runs fn for every host at once and joins their errors.
func (s *Switch) each(fn func(i int, h Host) error) error {
	errs := make([]error, len(s.hosts))
	var wg sync.WaitGroup
	for i, h := range s.hosts {
		wg.Go(func() { errs[i] = fn(i, h) })
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &hostsError{msg: strings.Join(msgs, "; "), errs: errs}
}

// hostsError is the errors of several hosts, in one line. Its text holds
// theirs, so deployer.ErrorMessage says each host's message in its place.
type hostsError struct {
	msg  string
	errs []error
}

func (e *hostsError) Error() string   { return e.msg }
func (e *hostsError) Unwrap() []error { return e.errs }

// withOutput adds the last line a failed command printed to its error, for
// the log.
func withOutput(err error, out []byte) error {
	if suffix := outputSuffix(out); suffix != "" {
		return fmt.Errorf("%w%s", err, suffix)
	}
	return err
}

// complaint is what nginx said that matters, for the chat: its [emerg],
// [alert], [crit] and [error] lines, or else its last lines.
func complaint(out []byte) string {
	var lines, serious []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lines = append(lines, line)
		for _, level := range []string{"[emerg]", "[alert]", "[crit]", "[error]"} {
			if strings.Contains(line, level) {
				serious = append(serious, line)
				break
			}
		}
	}
	pick := serious
	if len(pick) == 0 {
		pick = lines[max(0, len(lines)-3):]
	}
	if len(pick) > 3 {
		pick = pick[len(pick)-3:]
	}
	msg := strings.Join(pick, " · ")
	if msg == "" {
		return "(nginx said nothing)"
	}
	if len(msg) > 600 {
		msg = msg[:600] + "…"
	}
	return msg
}

// upstreamAddr checks a server's host:port and returns it as nginx writes it.
func upstreamAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if err := checkPort(port); err != nil {
		return "", err
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		return net.JoinHostPort(ip.String(), port), nil
	}
	if !hostname(host) {
		return "", fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return net.JoinHostPort(host, port), nil
}

// checkListen checks a listen value: a port, or address:port.
func checkListen(listen string) error {
	if listen == "" {
		return errors.New(`no listen address: give a port ("53") or address:port ("192.0.2.1:53")`)
	}
	if checkPort(listen) == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", listen, err)
	}
	if err := checkPort(port); err != nil {
		return fmt.Errorf("listen %q: %w", listen, err)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "*" && !hostname(host) {
		return fmt.Errorf("listen %q: %q is neither an IP address nor a host name", listen, host)
	}
	return nil
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%q is not a port number", port)
	}
	return nil
}

// hostname reports whether s looks like a DNS host name.
func hostname(s string) bool {
	return s != "" && len(s) <= 253 && wordOf(s, ".-") && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, ".")
}

// wordOf reports whether s is non-empty and made of ASCII letters, digits
// and the runes in extra.
func wordOf(s, extra string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

// nginxTime writes d as nginx reads a time: "3s", "1500ms".
func nginxTime(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", max(1, d.Milliseconds()))
}

func names(servers []deployer.Server) string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Name
	}
	return strings.Join(out, ", ")
}
