// Package nginxtest starts a real nginx with the stream module for tests:
// its own prefix directory, loopback only, a stream config file a switch
// writes, stopped when the test ends.
package nginxtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// StreamModule is where Debian's libnginx-mod-stream puts the module.
const StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Install is how to get what these tests need on Debian.
const Install = "apt-get install -y nginx libnginx-mod-stream procps"

// Nginx is a running nginx started by a test.
type Nginx struct {
	Bin        string
	Dir        string // the prefix directory
	Conf       string // nginx.conf
	PIDFile    string
	ErrorLog   string
	StreamConf string // the file the switch writes, included in the stream block
	Addr       string // a free 127.0.0.1:port, UDP and TCP, for the switch to listen on
}

// RequireTool fails the test in CI, and skips it elsewhere, when something
// the test needs is not installed.
func RequireTool(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not installed; install it with: %s", what, install)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI must run this test, not skip it)")
	}
	t.Skip(msg)
}

// Binary returns the nginx to test with, or stops the test when nginx, its
// stream module or pgrep is missing.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			RequireTool(t, "nginx", Install)
		}
		bin = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(StreamModule); err != nil {
		RequireTool(t, "nginx's stream module ("+StreamModule+")", Install)
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		RequireTool(t, "pgrep", "apt-get install -y procps")
	}
	return bin
}

// Start starts nginx (master and two workers, in the foreground as the
// test's child) with an empty stream config, listening nowhere until a
// switch writes StreamConf and reloads it.
func Start(t testing.TB) *Nginx {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	n := &Nginx{
		Bin:        bin,
		Dir:        dir,
		Conf:       filepath.Join(dir, "nginx.conf"),
		PIDFile:    filepath.Join(dir, "nginx.pid"),
		ErrorLog:   filepath.Join(dir, "error.log"),
		StreamConf: filepath.Join(dir, "stream.conf"),
		Addr:       FreeAddr(t),
	}
	userLine := ""
	if os.Geteuid() == 0 {
		// As root nginx runs its workers as "nobody nobody" unless told
		// otherwise; Debian's group for that is nogroup.
		group := "nobody"
		if _, err := user.LookupGroup("nogroup"); err == nil {
			group = "nogroup"
		}
		userLine = "user nobody " + group + ";"
	}
	conf := fmt.Sprintf(`# nginx for a greenlight test
load_module %s;
%s
daemon off;
master_process on;
worker_processes 2;
pid %s;
error_log %s notice;
events { worker_connections 512; }
stream {
    include %s;
}
`, StreamModule, userLine, n.PIDFile, n.ErrorLog, n.StreamConf)
	if err := os.WriteFile(n.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.StreamConf, []byte("# empty until the first switch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, n.Args()...)
	// If the test binary dies without its cleanups, nginx goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(n.ErrorLog); err == nil {
				t.Logf("nginx error log:\n%s", Tail(string(b), 40))
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("nginx did not stop within 10s of SIGTERM")
		}
	})
	started := eventually.Holds(eventually.Limit, func() bool {
		if n.workers() > 0 {
			return true
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nginx exited at start: %v\n%s", err, out.String())
		default:
		}
		return false
	})
	if !started {
		t.Fatalf("nginx did not start its workers within %s\n%s", eventually.Limit, out.String())
	}
	return n
}

// workers counts the master's worker processes, 0 before it has written
// its PID file.
func (n *Nginx) workers() int {
	b, err := os.ReadFile(n.PIDFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	return len(strings.Fields(string(out)))
}

// Args are the command-line flags that point nginx at this instance.
func (n *Nginx) Args() []string {
	return []string{"-p", n.Dir + "/", "-c", n.Conf}
}

// FreeAddr returns a loopback address whose port is free for UDP and TCP.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return ""
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
