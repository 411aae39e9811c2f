package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// fakeHost is an Executor that keeps files in memory and plays an nginx
// master with workers: nginx -t answers with TestOutput/TestFails, and
// nginx -s reload replaces the workers unless NoReload is set.
type fakeHost struct {
	TestFails  bool
	TestOutput string
	NoReload   bool // the reload signal is sent, but nginx keeps its old workers

	mu      sync.Mutex
	files   map[string][]byte
	calls   []string
	workers map[int]bool // pid → shutting down
	nextPID int
}

var _ Executor = (*fakeHost)(nil)

func newFakeHost(files map[string]string) *fakeHost {
	h := &fakeHost{files: map[string][]byte{}, workers: map[int]bool{100: false, 101: false}, nextPID: 102}
	for p, data := range files {
		h.files[p] = []byte(data)
	}
	h.files["/run/nginx.pid"] = []byte("42\n")
	return h
}

func (h *fakeHost) Run(_ context.Context, cmd string, args ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := commandLine(cmd, args)
	h.calls = append(h.calls, line)
	fail := func(out string, status int) ([]byte, error) {
		return []byte(out), &ExitError{Cmd: line, Status: status}
	}
	switch {
	case cmd == "cat" && len(args) == 2:
		if data, ok := h.files[args[1]]; ok {
			return bytes.Clone(data), nil
		}
		return fail("cat: "+args[1]+": No such file or directory\n", 1)
	case cmd == "test" && len(args) == 2:
		if _, ok := h.files[args[1]]; ok {
			return nil, nil
		}
		return fail("", 1)
	case cmd == "rm":
		delete(h.files, args[len(args)-1])
		return nil, nil
	case cmd == "nginx" && slices.Equal(args, []string{"-t"}):
		if h.TestFails {
			return fail(h.TestOutput, 1)
		}
		return []byte("nginx: configuration file /etc/nginx/nginx.conf test is successful\n"), nil
	case cmd == "nginx" && slices.Equal(args, []string{"-s", "reload"}):
		if !h.NoReload {
			for pid := range h.workers {
				h.workers[pid] = true
			}
			h.workers[h.nextPID] = false
			h.workers[h.nextPID+1] = false
			h.nextPID += 2
		}
		return nil, nil
	case cmd == "pgrep" && slices.Equal(args, []string{"-a", "-P", "42"}):
		var out strings.Builder
		for _, pid := range slices.Sorted(maps.Keys(h.workers)) {
			title := "nginx: worker process"
			if h.workers[pid] {
				title += " is shutting down"
			}
			fmt.Fprintf(&out, "%d %s\n", pid, title)
		}
		return []byte(out.String()), nil
	}
	return fail("fake host: unknown command "+line, 127)
}

func (h *fakeHost) WriteFile(_ context.Context, path string, data []byte, _ fs.FileMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "write "+path)
	h.files[path] = bytes.Clone(data)
	return nil
}

// finish ends the old workers, as nginx does once their connections close.
func (h *fakeHost) finish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	maps.DeleteFunc(h.workers, func(_ int, old bool) bool { return old })
}

func (h *fakeHost) file(path string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.files[path]
	return string(b), ok
}

func (h *fakeHost) ran(prefix string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

const fakeConf = "/etc/nginx/greenlight/ns.conf"

// fakeSwitch is a switch over hosts lb1, lb2, … with the project's template.
func fakeSwitch(t testing.TB, hosts ...*fakeHost) *Switch {
	t.Helper()
	opts := Options{
		ConfigPath: fakeConf, TemplateFS: os.DirFS("../../configs"), TemplatePath: "nginx/stream.conf.tmpl",
		Listen: "53", ReloadTimeout: 300 * time.Millisecond, Logger: testLogger(t),
	}
	for i, h := range hosts {
		opts.Hosts = append(opts.Hosts, Host{Name: fmt.Sprintf("lb%d", i+1), Executor: h, Endpoint: fmt.Sprintf("192.0.2.%d:53", i+1)})
	}
	return newSwitch(t, opts)
}

var setA = []deployer.Server{{Name: "ns1-1", Addr: "192.0.2.11:53"}, {Name: "ns2-1", Addr: "192.0.2.12:53"}}
var setB = []deployer.Server{{Name: "ns1-2", Addr: "192.0.2.21:53"}, {Name: "ns2-2", Addr: "[2001:db8::22]:53"}}

func TestAcceptAllHostsOrNone(t *testing.T) {
	lb1, lb2 := newFakeHost(nil), newFakeHost(nil)
	sw := fakeSwitch(t, lb1, lb2)
	ctx := t.Context()
	if err := sw.Accept(ctx, setA); err != nil {
		t.Fatalf("Accept(A): %v", err)
	}
	confA, _ := lb1.file(fakeConf)
	if c2, _ := lb2.file(fakeConf); c2 != confA || !strings.Contains(confA, "server 192.0.2.11:53;  # ns1-1") {
		t.Fatalf("after Accept(A) the hosts hold\n%s\nand\n%s", confA, c2)
	}
	if got := sw.Endpoints(); !slices.Equal(got, []string{"192.0.2.1:53", "192.0.2.2:53"}) {
		t.Errorf("Endpoints = %q", got)
	}
	lb1.finish()
	lb2.finish()

	// lb2 rejects B: neither host reloads, both keep A's file.
	lb2.TestFails = true
	lb2.TestOutput = "nginx: [emerg] invalid port in upstream \"x\" in /etc/nginx/greenlight/ns.conf:5\nnginx: configuration file /etc/nginx/nginx.conf test failed\n"
	lb1.calls, lb2.calls = nil, nil
	err := sw.Accept(ctx, setB)
	if err == nil {
		t.Fatal("Accept(B) succeeded though lb2 rejects it")
	}
	want := `nothing was switched and the old servers keep serving: nginx on lb2 rejected the new config: nginx: [emerg] invalid port in upstream "x" in /etc/nginx/greenlight/ns.conf:5`
	if deployer.ErrorMessage(err) != want {
		t.Errorf("error\n%s\nwant\n%s", deployer.ErrorMessage(err), want)
	}
	if cause := "nginx -t exited with status 1"; err.Error() != want+": "+cause {
		t.Errorf("for the log\n%s\nwant the message, then %q", err, cause)
	}
	for i, h := range []*fakeHost{lb1, lb2} {
		if c, _ := h.file(fakeConf); c != confA {
			t.Errorf("lb%d holds after the rejected switch:\n%s", i+1, c)
		}
		if h.ran("nginx -s reload") {
			t.Errorf("lb%d reloaded though lb2 rejected the config", i+1)
		}
	}

	// A host without the file yet gets none back.
	lb3 := newFakeHost(nil)
	lb3.TestFails, lb3.TestOutput = true, "nginx: [emerg] unknown directive \"x\"\n"
	if err := fakeSwitch(t, lb3).Accept(ctx, setA); err == nil {
		t.Fatal("Accept succeeded on a host that rejects it")
	}
	if _, ok := lb3.file(fakeConf); ok {
		t.Error("the rejected file stayed on a host that had none")
	}
}

func TestAcceptReloadFailsOnOneHost(t *testing.T) {
	lb1, lb2 := newFakeHost(map[string]string{fakeConf: "# before\n"}), newFakeHost(map[string]string{fakeConf: "# before\n"})
	lb2.NoReload = true
	err := fakeSwitch(t, lb1, lb2).Accept(t.Context(), setB)
	if err == nil {
		t.Fatal("Accept succeeded though lb2 never reloaded")
	}
	for _, want := range []string{"lb1 already sends traffic to ns1-2, ns2-2", "nginx on lb2 did not start workers with the new config within 300ms"} {
		if !strings.Contains(deployer.ErrorMessage(err), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if c, _ := lb2.file(fakeConf); c != "# before\n" {
		t.Errorf("lb2 keeps the file it did not load:\n%s", c)
	}
	if c, _ := lb1.file(fakeConf); !strings.Contains(c, "ns1-2") {
		t.Errorf("lb1 lost the file it loaded:\n%s", c)
	}
}

func TestDrainWaitsForOldWorkers(t *testing.T) {
	lb1, lb2 := newFakeHost(nil), newFakeHost(nil)
	sw := fakeSwitch(t, lb1, lb2)
	ctx := t.Context()
	if err := sw.Accept(ctx, setA); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sw.Drain(ctx, setA) }()
	lb1.finish()
	select {
	case err := <-done:
		t.Fatalf("Drain returned (%v) while lb2 has old workers", err)
	case <-time.After(200 * time.Millisecond):
	}
	lb2.finish()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Drain did not return once the old workers were gone")
	}

	// Where nginx does not run, Drain says so instead of waiting forever.
	lb1.mu.Lock()
	delete(lb1.files, "/run/nginx.pid")
	lb1.mu.Unlock()
	short, cancel := context.WithTimeout(ctx, 2*time.Second) // long enough for one look, however busy the machine
	defer cancel()
	if err := sw.Drain(short, setA); err == nil || !strings.Contains(deployer.ErrorMessage(err), "nginx does not seem to run on lb1") {
		t.Errorf("Drain with nginx gone from lb1: %v", err)
	}
}

func TestRender(t *testing.T) {
	sw := fakeSwitch(t, newFakeHost(nil))
	conf, err := sw.Render(setB)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"upstream greenlight {",
		"    server 192.0.2.21:53;  # ns1-2\n",
		"    server [2001:db8::22]:53;  # ns2-2\n",
		"    listen 53 udp;\n",
		"    listen 53;\n",
		"    proxy_responses 1;\n",
		"    proxy_timeout 3s;\n",
		"    proxy_timeout 10s;\n",
		"    proxy_connect_timeout 2s;\n",
		"# Servers: ns1-2, ns2-2\n",
	} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("rendered config lacks %q:\n%s", want, conf)
		}
	}
	if bytes.Contains(conf, []byte("{{")) || bytes.Contains(conf, []byte("Fields (")) {
		t.Errorf("the template's own comment leaked into the config:\n%s", conf)
	}

	for i, tc := range []struct {
		servers []deployer.Server
		want    string
	}{
		{nil, "at least one server"},
		{[]deployer.Server{{Name: "ns1-2"}}, "ns1-2 has no address"},
		{[]deployer.Server{{Name: "ns1-2", Addr: "192.0.2.1"}}, "ns1-2 has no address"},
		{[]deployer.Server{{Name: "ns1-2", Addr: "192.0.2.1:53; include /etc/passwd"}}, "not a port number"},
		{[]deployer.Server{{Name: "ns1-2", Addr: "evil;host:53"}}, "neither an IP address nor a host name"},
		{[]deployer.Server{{Name: "ns1-2", Addr: "192.0.2.1:99999"}}, "not a port number"},
		{[]deployer.Server{{Name: "ns1\n}", Addr: "192.0.2.1:53"}}, "cannot go in an nginx config"},
		{[]deployer.Server{{Name: "", Addr: "192.0.2.1:53"}}, "cannot go in an nginx config"},
	} {
		_, err := sw.Render(tc.servers)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: Render(%+v) = %v, want an error saying %q", i, tc.servers, err, tc.want)
		}
		if code := deployer.ErrorCode(err); code != deployer.CodeInvalid {
			t.Errorf("%d: error code %q, want %q", i, code, deployer.CodeInvalid)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	good := func() Options {
		return Options{
			Hosts:      []Host{{Name: "lb1", Executor: LocalExecutor{}, Endpoint: "192.0.2.1:53"}},
			ConfigPath: fakeConf, Template: "{{range .Servers}}{{.Addr}}{{end}}", Listen: "53",
		}
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("New(good): %v", err)
	}
	for i, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Hosts = nil }, "no load balancer hosts"},
		{func(o *Options) { o.Hosts = append(o.Hosts, o.Hosts[0]) }, "host lb1 is listed twice"},
		{func(o *Options) { o.Hosts[0].Executor = nil }, "host lb1 has no executor"},
		{func(o *Options) { o.Hosts[0].Endpoint = "" }, "host lb1 has no endpoint"},
		{func(o *Options) { o.ConfigPath = "ns.conf" }, "must be absolute"},
		{func(o *Options) { o.Listen = "" }, "no listen address"},
		{func(o *Options) { o.Listen = "53 udp; include x" }, "listen"},
		{func(o *Options) { o.Listen = "192.0.2.1:0" }, "not a port number"},
		{func(o *Options) { o.Upstream = "ns-upstream" }, "upstream name"},
		{func(o *Options) { o.Template = "" }, "no stream config template"},
		{func(o *Options) { o.TemplateFS = fstest.MapFS{} }, "either as source or as a file"},
		{func(o *Options) { o.Template, o.TemplateFS, o.TemplatePath = "", fstest.MapFS{}, "nginx/x.tmpl" }, "read the stream config template"},
		{func(o *Options) { o.Template = "{{range .Servers}}" }, "the stream config template is broken"},
		{func(o *Options) { o.Template = "{{.Upstreams}}" }, "can't evaluate field Upstreams"},
	} {
		o := good()
		tc.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: New = %v, want an error saying %q", i, err, tc.want)
		}
	}
	for _, listen := range []string{"53", "5353", "127.0.0.1:5353", "[::]:53", "*:53", "lb.example:53"} {
		o := good()
		o.Listen = listen
		if _, err := New(o); err != nil {
			t.Errorf("New with listen %q: %v", listen, err)
		}
	}
}

func TestComplaint(t *testing.T) {
	for i, tc := range []struct{ out, want string }{
		{"nginx: [emerg] unknown directive \"x\" in /a.conf:3\nnginx: configuration file /etc/nginx/nginx.conf test failed\n",
			`nginx: [emerg] unknown directive "x" in /a.conf:3`},
		{"nginx: [warn] a\nnginx: [alert] b\nnginx: [emerg] c\n", "nginx: [alert] b · nginx: [emerg] c"},
		{"one\ntwo\nthree\nfour\n", "two · three · four"},
		{"", "(nginx said nothing)"},
		{strings.Repeat("x", 700), strings.Repeat("x", 600) + "…"},
	} {
		if got := complaint([]byte(tc.out)); got != tc.want {
			t.Errorf("%d: complaint = %q, want %q", i, got, tc.want)
		}
	}
}

func TestParseWorkers(t *testing.T) {
	out := "101 nginx: worker process\n102 nginx: worker process is shutting down\n103 nginx: cache manager process\nnonsense\n"
	got := parseWorkers([]byte(out))
	want := []worker{{101, false}, {102, true}}
	if !slices.Equal(got, want) {
		t.Errorf("parseWorkers = %+v, want %+v", got, want)
	}
}

func TestNginxTime(t *testing.T) {
	for d, want := range map[time.Duration]string{3 * time.Second: "3s", 1500 * time.Millisecond: "1500ms", time.Microsecond: "1ms", time.Minute: "60s"} {
		if got := nginxTime(d); got != want {
			t.Errorf("nginxTime(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestShellQuote: what commandLine quotes, sh reads back word for word.
func TestShellQuote(t *testing.T) {
	words := []string{"plain", "", "it's", "$HOME", "`id`", "a;b|c&d", "two  spaces", "tab\there", "new\nline", "*?[x]", "~", "-n", "a=b", "'", "''", "\\", "é"}
	line := commandLine("printf", append([]string{"<%s>"}, words...))
	out, err := exec.Command("sh", "-c", line).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %s: %v (%s)", line, err, out)
	}
	want := "<" + strings.Join(words, "><") + ">"
	if string(out) != want {
		t.Errorf("sh read back\n%q\nwant\n%q\nfrom %s", out, want, line)
	}
}

func TestLocalExecutor(t *testing.T) {
	var e LocalExecutor
	ctx := t.Context()
	out, err := e.Run(ctx, "sh", "-c", "echo out; echo err >&2; exit 4")
	if st, ok := exitStatus(err); !ok || st != 4 {
		t.Errorf("exit 4: %v", err)
	}
	if string(out) != "out\nerr\n" {
		t.Errorf("output %q", out)
	}
	if _, err := e.Run(ctx, "/nonexistent/cmd"); err == nil {
		t.Error("running a missing command succeeded")
	} else if _, ok := exitStatus(err); ok {
		t.Errorf("a missing command looks like one that ran: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.Run(short, "sleep", "5"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run past its deadline: %v", err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "stream.conf")
	for _, data := range []string{"one\n", "two\n"} {
		if err := e.WriteFile(ctx, path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != data {
			t.Errorf("file holds %q, want %q", b, data)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory, want 1", len(ents))
	}
	if err := e.WriteFile(ctx, filepath.Join(dir, "no", "x"), nil, 0o644); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// serverLine is how the project's template writes one upstream server.
var serverLine = regexp.MustCompile(`^    server [0-9A-Za-z.:\[\]-]+;  # [0-9A-Za-z._-]+$`)

// FuzzRender: whatever a cloud reports as a server's name and address,
// Render either refuses it or writes exactly one harmless server line.
func FuzzRender(f *testing.F) {
	for _, seed := range [][2]string{
		{"ns1-7", "192.0.2.10:53"}, {"ns2-7", "[2001:db8::1]:53"}, {"ns1", "ns1.example.com:5353"},
		{"ns1;", "192.0.2.1:53"}, {"ns1", "192.0.2.1:53;\ninclude /etc/passwd"}, {"x\n}", "a:1"}, {"ns1", "[fe80::1%eth0]:53"},
	} {
		f.Add(seed[0], seed[1])
	}
	sw := fakeSwitch(f, newFakeHost(nil))
	base, err := sw.Render(setA[:1])
	if err != nil {
		f.Fatal(err)
	}
	baseLines := bytes.Count(base, []byte("\n"))
	f.Fuzz(func(t *testing.T, name, addr string) {
		conf, err := sw.Render([]deployer.Server{{Name: name, Addr: addr}})
		if err != nil {
			return
		}
		if n := bytes.Count(conf, []byte("\n")); n != baseLines {
			t.Fatalf("Render(%q, %q) wrote %d lines, want %d:\n%s", name, addr, n, baseLines, conf)
		}
		var servers []string
		for line := range strings.Lines(string(conf)) {
			if strings.HasPrefix(line, "    server ") {
				servers = append(servers, strings.TrimSuffix(line, "\n"))
			}
		}
		if len(servers) != 1 || !serverLine.MatchString(servers[0]) {
			t.Fatalf("Render(%q, %q) wrote server lines %q", name, addr, servers)
		}
	})
}
