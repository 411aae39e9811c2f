package nginx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testSSHServer is an SSH server on loopback that runs each "exec" request
// with sh -c on this machine, for one client key.
type testSSHServer struct {
	addr string

	mu    sync.Mutex
	execs []string // the command lines it ran
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newECDSASigner(t testing.TB) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startSSHServer serves with hostKeys, letting in only client.
func startSSHServer(t testing.TB, client ssh.PublicKey, hostKeys ...ssh.Signer) *testSSHServer {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), client.Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("unknown client key")
		},
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testSSHServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() { s.serve(c, cfg, &wg) })
		}
	})
	return s
}

func (s *testSSHServer) serve(c net.Conn, cfg *ssh.ServerConfig, wg *sync.WaitGroup) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { s.session(ch, creqs) })
	}
}

// session answers an "exec" request by running its command with sh -c,
// stdin and stdout on the channel, and reports the exit status.
func (s *testSSHServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		var payload struct{ Command string }
		if req.Type != "exec" || ssh.Unmarshal(req.Payload, &payload) != nil {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		s.mu.Lock()
		s.execs = append(s.execs, payload.Command)
		s.mu.Unlock()
		cmd := exec.Command("sh", "-c", payload.Command)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		cmd.WaitDelay = 5 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so a kill reaches sh's children too
		kill := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		status := 255
		if err := cmd.Start(); err == nil {
			go func() {
				// A signal, or the client closing the channel, kills the command.
				for r := range reqs {
					if r.Type == "signal" {
						kill()
					}
					r.Reply(r.Type == "signal", nil)
				}
				kill()
			}()
			err = cmd.Wait()
			status = 0
			if e, ok := errors.AsType[*exec.ExitError](err); ok && e.Exited() {
				status = e.ExitCode()
			} else if err != nil {
				status = 255
			}
		}
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
		return
	}
}

// knownHostsFile writes a known_hosts file with keys for addr.
func knownHostsFile(t testing.TB, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# greenlight test\n")
	b.WriteString(knownhosts.Line([]string{"elsewhere.example:22"}, newSigner(t).PublicKey()) + "\n")
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newSSHExecutor(t testing.TB, addr string, client ssh.Signer, knownHosts string) *SSHExecutor {
	t.Helper()
	e, err := NewSSHExecutor(SSHOptions{User: "greenlight", Addr: addr, Signer: client, KnownHostsFile: knownHosts, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSSHExecutor: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestSSHExecutorRightHostKey(t *testing.T) {
	hostKey, client := newSigner(t), newSigner(t)
	srv := startSSHServer(t, client.PublicKey(), hostKey)
	e := newSSHExecutor(t, srv.addr, client, knownHostsFile(t, srv.addr, hostKey.PublicKey()))
	ctx := t.Context()

	// Arguments arrive exactly as given, whatever the shell would make of them.
	args := []string{"it's", "$HOME", "`id`", "a;b", "two  spaces", "", `back\slash`, "*", "\"q\"", "new\nline", "-n"}
	out, err := e.Run(ctx, "printf", append([]string{"[%s]"}, args...)...)
	if err != nil {
		t.Fatalf("Run printf: %v (%s)", err, out)
	}
	want := "[" + strings.Join(args, "][") + "]"
	if string(out) != want {
		t.Errorf("Run printf printed\n%q\nwant\n%q", out, want)
	}

	out, err = e.Run(ctx, "sh", "-c", "echo out; echo err >&2; exit 3")
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Status != 3 {
		t.Errorf("exit 3: got %v (%T), want an *ExitError with status 3", err, err)
	}
	if !strings.Contains(string(out), "out\n") || !strings.Contains(string(out), "err\n") {
		t.Errorf("exit 3: output %q lacks stdout or stderr", out)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "stream 'ns'.conf")
	for i, data := range []string{"first\n", "second, $(not run)\n"} {
		if err := e.WriteFile(ctx, path, []byte(data), 0o640); err != nil {
			t.Fatalf("WriteFile %d: %v", i, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("WriteFile %d: file holds %q (%v), want %q", i, got, err, data)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
			t.Errorf("WriteFile %d: mode %v, want 0640", i, fi.Mode().Perm())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("WriteFile left %d files in the directory, want 1", len(ents))
	}
	err = e.WriteFile(ctx, filepath.Join(dir, "missing", "x.conf"), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "missing/x.conf") || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("WriteFile into a missing directory: %v, want the shell's complaint", err)
	}

	// A cancelled command returns promptly.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.Run(cctx, "sleep", "10"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run sleep 10 with a 200ms deadline: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the cancelled Run took %v", d)
	}
	// The connection survives and is reused.
	if out, err := e.Run(ctx, "echo", "again"); err != nil || string(out) != "again\n" {
		t.Errorf("Run after a cancelled one: %q, %v", out, err)
	}
}

func TestSSHExecutorRefusesHostKeys(t *testing.T) {
	hostKey, client := newSigner(t), newSigner(t)
	srv := startSSHServer(t, client.PublicKey(), hostKey)
	for i, tc := range []struct {
		name  string
		known []ssh.PublicKey
		is    error
		says  []string
	}{
		{"unknown host", nil, ErrUnknownHostKey, []string{"host key is unknown", ssh.FingerprintSHA256(hostKey.PublicKey())}},
		{"changed key", []ssh.PublicKey{newSigner(t).PublicKey()}, ErrChangedHostKey, []string{"host key has changed", "intercepting"}},
	} {
		kh := knownHostsFile(t, srv.addr, tc.known...)
		e := newSSHExecutor(t, srv.addr, client, kh)
		_, err := e.Run(t.Context(), "touch", filepath.Join(t.TempDir(), "should-not-exist"))
		if !errors.Is(err, tc.is) {
			t.Fatalf("%d %s: Run: %v, want %v", i, tc.name, err, tc.is)
		}
		for _, want := range append(tc.says, srv.addr, kh, "refused") {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d %s: error %q does not say %q", i, tc.name, err, want)
			}
		}
		if err := e.WriteFile(t.Context(), filepath.Join(t.TempDir(), "x"), []byte("x"), 0o644); !errors.Is(err, tc.is) {
			t.Errorf("%d %s: WriteFile: %v, want %v", i, tc.name, err, tc.is)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.execs) > 0 {
		t.Errorf("the server ran %q for a client that refused its key", srv.execs)
	}
}

// TestSSHExecutorAsksForTheKnownKeyType: a host with an Ed25519 and an
// ECDSA key, of which known_hosts holds only the ECDSA one, is asked for
// that one rather than refused as changed.
func TestSSHExecutorAsksForTheKnownKeyType(t *testing.T) {
	ed, ec, client := newSigner(t), newECDSASigner(t), newSigner(t)
	srv := startSSHServer(t, client.PublicKey(), ed, ec)
	e := newSSHExecutor(t, srv.addr, client, knownHostsFile(t, srv.addr, ec.PublicKey()))
	if out, err := e.Run(t.Context(), "echo", "ok"); err != nil || string(out) != "ok\n" {
		t.Fatalf("Run: %q, %v", out, err)
	}
}

func TestSSHExecutorWrongClientKey(t *testing.T) {
	hostKey, client := newSigner(t), newSigner(t)
	srv := startSSHServer(t, client.PublicKey(), hostKey)
	e := newSSHExecutor(t, srv.addr, newSigner(t), knownHostsFile(t, srv.addr, hostKey.PublicKey()))
	_, err := e.Run(t.Context(), "true")
	if err == nil || !strings.Contains(err.Error(), "log in to "+srv.addr+" as greenlight") {
		t.Fatalf("Run with a key the server does not know: %v", err)
	}
}

func TestNewSSHExecutorNeedsKnownHosts(t *testing.T) {
	client := newSigner(t)
	for i, tc := range []struct {
		opts SSHOptions
		want string
	}{
		{SSHOptions{User: "u", Addr: "lb1", Signer: client}, "no known_hosts file"},
		{SSHOptions{User: "u", Addr: "lb1", Signer: client, KnownHostsFile: "/nonexistent/known_hosts"}, "read known_hosts"},
		{SSHOptions{Addr: "lb1", Signer: client, KnownHostsFile: "x"}, "no user"},
		{SSHOptions{User: "u", Addr: "lb1", KnownHostsFile: "x"}, "no private key"},
	} {
		if _, err := NewSSHExecutor(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: NewSSHExecutor: %v, want %q", i, err, tc.want)
		}
	}
	e, err := NewSSHExecutor(SSHOptions{User: "u", Addr: "lb1.example", Signer: client, KnownHostsFile: knownHostsFile(t, "x:22")})
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr() != "lb1.example:22" {
		t.Errorf("Addr = %q, want port 22 added", e.Addr())
	}
}

// TestSwitchOverSSH switches a real nginx through the SSH executor.
func TestSwitchOverSSH(t *testing.T) {
	ng := startNginx(t)
	a := startBackends(t, "ns1-1", "ns2-1")
	b := startBackends(t, "ns1-2", "ns2-2")
	hostKey, client := newSigner(t), newSigner(t)
	srv := startSSHServer(t, client.PublicKey(), hostKey)
	e := newSSHExecutor(t, srv.addr, client, knownHostsFile(t, srv.addr, hostKey.PublicKey()))
	sw := newSwitch(t, ng.options(t, e))
	ctx := t.Context()
	for _, set := range [][]deployer.Server{a, b} {
		if err := sw.Accept(ctx, set); err != nil {
			t.Fatalf("Accept(%s): %v", names(set), err)
		}
		answeredBy(t, ng.addr, set)
		if err := sw.Drain(ctx, a); err != nil {
			t.Fatalf("Drain: %v", err)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var sawReload bool
	for _, c := range srv.execs {
		sawReload = sawReload || strings.HasSuffix(c, "-s reload")
	}
	if !sawReload {
		t.Errorf("no nginx -s reload went over SSH; commands: %q", srv.execs)
	}
}
