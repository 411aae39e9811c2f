// Package command is a deployer.Provisioner that runs an external command
// for each new server — the hook operators already use, such as
// `ansible-playbook -i {{.Inventory}} site.yml --limit {{.Name}}`.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// Options configure a Provisioner.
type Options struct {
	// Args is the command and its arguments, each a text/template over
	// Vars: {{.Name}}, {{.Role}}, {{.Addr}}, {{.IP}}, {{.Image}}, {{.Inventory}},
	// {{.ZonesDir}}.
	Args []string
	// ZonesDir is the service's zones directory, for the hook to copy to
	// the server; "" when the image carries the zone files.
	ZonesDir string
	Dir      string        // working directory; "" = greenlight's
	Timeout  time.Duration // per server; default 15m
	TailLen  int           // lines of output quoted in chat on failure; default 15
	Logger   *slog.Logger
	TempDir  string // where inventories are written; default os.TempDir()
}

// Vars are what an argument template may use.
type Vars struct {
	Name, Role, Addr, IP, Image string
	Inventory                   string // an INI inventory naming this server: "ns1-7 ansible_host=192.0.2.7"
	ZonesDir                    string // the zones directory (absolute); "" without one
}

// Provisioner runs the command once per server.
type Provisioner struct {
	opts Options
	args []*template.Template
}

var _ deployer.Provisioner = (*Provisioner)(nil)

// New parses the argument templates.
func New(opts Options) (*Provisioner, error) {
	if len(opts.Args) == 0 {
		return nil, errors.New("the command provisioner needs a command")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Minute
	}
	if opts.TailLen <= 0 {
		opts.TailLen = 15
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.ZonesDir != "" {
		// The hook may run in another directory (Dir): give it an absolute path.
		abs, err := filepath.Abs(opts.ZonesDir)
		if err != nil {
			return nil, fmt.Errorf("the zones directory %s: %w", opts.ZonesDir, err)
		}
		opts.ZonesDir = abs
	}
	p := &Provisioner{opts: opts}
	for i, a := range opts.Args {
		t, err := template.New(fmt.Sprintf("arg%d", i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("provisioner argument %q: %w", a, err)
		}
		p.args = append(p.args, t)
	}
	return p, nil
}

// Provision runs the command for s. On failure the error quotes the tail
// of its output, for the chat; the whole output goes to the log.
func (p *Provisioner) Provision(ctx context.Context, s deployer.Server) error {
	ip, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		ip = s.Addr
	}
	inv, err := os.CreateTemp(p.opts.TempDir, "greenlight-inventory-*.ini")
	if err != nil {
		return &deployer.Error{Code: deployer.CodeFailed, Message: "could not write the inventory for " + s.Name, Err: err}
	}
	defer os.Remove(inv.Name())
	fmt.Fprintf(inv, "[%s]\n%s ansible_host=%s\n", s.Role, s.Name, ip)
	if err := inv.Close(); err != nil {
		return &deployer.Error{Code: deployer.CodeFailed, Message: "could not write the inventory for " + s.Name, Err: err}
	}
	vars := Vars{Name: s.Name, Role: s.Role, Addr: s.Addr, IP: ip, Image: s.Image, Inventory: inv.Name(), ZonesDir: p.opts.ZonesDir}
	argv := make([]string, len(p.args))
	for i, t := range p.args {
		var b strings.Builder
		if err := t.Execute(&b, vars); err != nil {
			return deployer.Errorf(deployer.CodeInvalid, "provisioner argument %d for %s: %v", i, s.Name, err)
		}
		argv[i] = b.String()
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = p.opts.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	p.opts.Logger.Info("provisioner finished", "server", s.Name, "command", filepath.Base(argv[0]),
		"duration", time.Since(start), "err", runErr, "output", out.String())
	if runErr == nil {
		return nil
	}
	why := runErr.Error()
	if ctx.Err() == context.DeadlineExceeded {
		why = fmt.Sprintf("timed out after %s", p.opts.Timeout)
	}
	return &deployer.Error{Code: deployer.CodeFailed, Err: runErr,
		Message: fmt.Sprintf("%s for %s failed (%s); last lines:\n%s", filepath.Base(argv[0]), s.Name, why, tail(out.String(), p.opts.TailLen))}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
