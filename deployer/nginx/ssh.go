package nginx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/greenlight/greenlight/deployer"
)

// Defaults of SSHOptions.
const (
	DefaultSSHTimeout     = 15 * time.Second
	DefaultSSHIdleTimeout = 30 * time.Second
)

// Host key problems an SSHExecutor refuses to connect through; match them
// with errors.Is. The error is a *deployer.Error whose message says what to
// check and where.
var (
	ErrUnknownHostKey = errors.New("host key is unknown")
	ErrChangedHostKey = errors.New("host key has changed")
	ErrRevokedHostKey = errors.New("host key is revoked")
)

// hostKeyError says why a host's key was refused, in words for the chat;
// dial gives its text as the message of a *deployer.Error.
type hostKeyError struct {
	Addr       string   // the host:port greenlight dialled
	KnownHosts string   // the known_hosts file consulted
	Offered    string   // the fingerprint the host presented: "SHA256:…"
	Known      []string // what known_hosts holds for the host: "file:line SHA256:…"
	Err        error    // ErrUnknownHostKey, ErrChangedHostKey or ErrRevokedHostKey
}

func (e *hostKeyError) Error() string {
	switch e.Err {
	case ErrUnknownHostKey:
		return fmt.Sprintf("refused to connect to %s over SSH: its host key is unknown "+
			"(%s is not in %s); check that fingerprint on the host itself, then add the key to %s",
			e.Addr, e.Offered, e.KnownHosts, e.KnownHosts)
	case ErrChangedHostKey:
		return fmt.Sprintf("refused to connect to %s over SSH: its host key has changed "+
			"(it offered %s, but %s); someone may be intercepting the connection, or the host was rebuilt: "+
			"find out which before you update %s",
			e.Addr, e.Offered, strings.Join(e.Known, ", "), e.KnownHosts)
	case ErrRevokedHostKey:
		return fmt.Sprintf("refused to connect to %s over SSH: its host key %s is marked revoked in %s",
			e.Addr, e.Offered, strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("refused to connect to %s over SSH: %v", e.Addr, e.Err)
}

func (e *hostKeyError) Unwrap() error { return e.Err }

// SSHOptions configure an SSHExecutor.
type SSHOptions struct {
	User string // the remote user; it must be allowed to write ConfigPath and run nginx
	Addr string // host or host:port; port 22 when it has none
	// Signer is the private key greenlight logs in with, e.g. from
	// ssh.ParsePrivateKey of a key held in an environment variable.
	Signer ssh.Signer
	// KnownHostsFile is an OpenSSH known_hosts file that must hold the
	// host's key. There is no way to skip the check.
	KnownHostsFile string
	Timeout        time.Duration // connecting and logging in; default 15s
	IdleTimeout    time.Duration // an unused connection is closed after it; default 30s
}

// SSHExecutor runs commands on a host over SSH, checking the host's key
// against a known_hosts file. It keeps one connection open while it is in
// use and closes it when idle; it is safe for concurrent use.
type SSHExecutor struct {
	user, addr string
	signer     ssh.Signer
	knownHosts string
	hostKeys   ssh.HostKeyCallback
	probe      ssh.PublicKey // a throwaway key, to ask known_hosts what it holds
	timeout    time.Duration
	idleAfter  time.Duration

	mu     sync.Mutex
	client *ssh.Client
	busy   int
	idle   *time.Timer
}

var _ Executor = (*SSHExecutor)(nil)

// NewSSHExecutor reads the known_hosts file and returns an executor that
// connects on first use.
func NewSSHExecutor(opts SSHOptions) (*SSHExecutor, error) {
	switch {
	case opts.User == "":
		return nil, errors.New("SSH executor: no user to log in as")
	case opts.Addr == "":
		return nil, errors.New("SSH executor: no host address")
	case opts.Signer == nil:
		return nil, fmt.Errorf("SSH executor for %s: no private key", opts.Addr)
	case opts.KnownHostsFile == "":
		return nil, fmt.Errorf("SSH executor for %s: no known_hosts file; host keys are always checked", opts.Addr)
	}
	addr := opts.Addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "22")
	}
	cb, err := knownhosts.New(opts.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("SSH executor for %s: read known_hosts: %w", addr, err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSSHTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultSSHIdleTimeout
	}
	return &SSHExecutor{
		user: opts.User, addr: addr, signer: opts.Signer,
		knownHosts: opts.KnownHostsFile, hostKeys: cb, probe: probe,
		timeout: opts.Timeout, idleAfter: opts.IdleTimeout,
	}, nil
}

// Addr is the host:port the executor connects to.
func (e *SSHExecutor) Addr() string { return e.addr }

// Run runs cmd with args on the host. The command line is quoted for the
// remote shell, so arguments arrive exactly as given.
func (e *SSHExecutor) Run(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	var out combinedOutput
	err := e.exec(ctx, commandLine(cmd, args), nil, &out)
	return out.Bytes(), err
}

// WriteFile streams data to a temporary file beside path on the host and
// renames it over path.
func (e *SSHExecutor) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	const script = `umask 077; cat > "$1" && chmod "$3" -- "$1" && mv -f -- "$1" "$2" || { rc=$?; rm -f -- "$1"; exit $rc; }`
	tmp := path + ".greenlight-tmp"
	line := commandLine("sh", []string{"-c", script, "sh", tmp, path, strconv.FormatUint(uint64(mode.Perm()), 8)})
	var out combinedOutput
	err := e.exec(ctx, line, bytes.NewReader(data), &out)
	if st, ok := exitStatus(err); ok {
		// The script is noise in a message; say what it did.
		err = &ExitError{Cmd: "cat > " + shellQuote(tmp) + " && mv", Status: st}
	}
	if err != nil {
		return fmt.Errorf("write %s on %s: %w%s", path, e.addr, err, outputSuffix(out.Bytes()))
	}
	return nil
}

// Close closes the connection, if one is open.
func (e *SSHExecutor) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idle != nil {
		e.idle.Stop()
	}
	if e.client == nil {
		return nil
	}
	err := e.client.Close()
	e.client = nil
	return err
}

// exec runs line in a session, feeding it stdin and collecting its output.
func (e *SSHExecutor) exec(ctx context.Context, line string, stdin io.Reader, out io.Writer) error {
	client, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release()
	sess, err := client.NewSession()
	if err != nil {
		// The connection went away while it sat idle; dial once more.
		e.drop(client)
		if client, err = e.acquire(ctx); err != nil {
			return err
		}
		defer e.release()
		if sess, err = client.NewSession(); err != nil {
			e.drop(client)
			return fmt.Errorf("open an SSH session on %s: %w", e.addr, err)
		}
	}
	defer sess.Close()
	sess.Stdin = stdin
	sess.Stdout = out
	sess.Stderr = out
	if err := sess.Start(line); err != nil {
		return fmt.Errorf("start %s on %s: %w", line, e.addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL) // best effort: not every server passes signals on
		sess.Close()
		return fmt.Errorf("%s on %s: %w", line, e.addr, ctx.Err())
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		return &ExitError{Cmd: line, Status: exit.ExitStatus()}
	default:
		return fmt.Errorf("%s on %s: %w", line, e.addr, err)
	}
}

// acquire returns the open connection, dialling one if there is none, and
// holds it open until release.
func (e *SSHExecutor) acquire(ctx context.Context) (*ssh.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idle != nil {
		e.idle.Stop()
	}
	if e.client == nil {
		c, err := e.dial(ctx)
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	e.busy++
	return e.client, nil
}

// release lets the connection close once nothing has used it for the idle
// timeout.
func (e *SSHExecutor) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busy--
	if e.busy > 0 || e.client == nil {
		return
	}
	c := e.client
	e.idle = time.AfterFunc(e.idleAfter, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.client == c && e.busy == 0 {
			c.Close()
			e.client = nil
		}
	})
}

// drop closes c and forgets it, if it is still the open connection.
func (e *SSHExecutor) drop(c *ssh.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.Close()
	if e.client == c {
		e.client = nil
	}
}

// dial connects and logs in, bounded by ctx and the timeout.
func (e *SSHExecutor) dial(ctx context.Context) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, &deployer.Error{Code: deployer.CodeFailed, Message: "could not connect to " + e.addr + " over SSH", Err: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	cfg := &ssh.ClientConfig{
		User:              e.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(e.signer)},
		HostKeyCallback:   e.checkHostKey,
		HostKeyAlgorithms: e.knownAlgorithms(conn.RemoteAddr()),
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, e.addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, &deployer.Error{Code: deployer.CodeFailed, Message: "could not connect to " + e.addr + " over SSH", Err: ctx.Err()}
	}
	if err != nil {
		if hk, ok := errors.AsType[*hostKeyError](err); ok {
			// Its text tells the operator what to check and where.
			return nil, &deployer.Error{Code: deployer.CodeFailed, Message: hk.Error(), Err: hk.Err}
		}
		return nil, &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf("could not log in to %s as %s over SSH", e.addr, e.user), Err: err}
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// checkHostKey checks key against known_hosts and turns a refusal into a
// *hostKeyError.
func (e *SSHExecutor) checkHostKey(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := e.hostKeys(hostname, remote, key)
	if err == nil {
		return nil
	}
	hk := &hostKeyError{Addr: e.addr, KnownHosts: e.knownHosts, Offered: ssh.FingerprintSHA256(key), Err: err}
	if ke, ok := errors.AsType[*knownhosts.KeyError](err); ok {
		hk.Err = ErrUnknownHostKey
		if len(ke.Want) > 0 {
			hk.Err = ErrChangedHostKey
		}
		for _, k := range ke.Want {
			hk.Known = append(hk.Known, fmt.Sprintf("%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
	}
	if re, ok := errors.AsType[*knownhosts.RevokedError](err); ok {
		hk.Err = ErrRevokedHostKey
		hk.Known = []string{fmt.Sprintf("%s:%d", re.Revoked.Filename, re.Revoked.Line)}
	}
	return hk
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for the host, so the server is asked for a key of a type we can
// check (otherwise a host with an RSA and an Ed25519 key could offer the one
// we do not know, and look as if its key had changed). Nil means the
// library's defaults.
func (e *SSHExecutor) knownAlgorithms(remote net.Addr) []string {
	ke, ok := errors.AsType[*knownhosts.KeyError](e.hostKeys(e.addr, remote, e.probe))
	if !ok {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		t := k.Key.Type()
		names := []string{t}
		if t == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos
}

// combinedOutput is a remote command's standard output and standard error,
// interleaved as they arrive. The SSH session copies each stream on its own
// goroutine, and a cancelled command's copies may still be writing when
// its caller reads what came so far, so writes and reads take a lock.
type combinedOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *combinedOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *combinedOutput) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// outputSuffix is ": " and the command's last line of output, or "".
func outputSuffix(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return ": " + last
	}
	return ""
}
