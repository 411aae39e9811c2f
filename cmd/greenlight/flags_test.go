package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/greenlight/greenlight/internal/logbuf"
)

// TestCommandLineIsSaidOnce runs greenlight as a person starts it and reads
// what it prints: mistakes once, with where to look; help without odd
// defaults; the version alone.
func TestCommandLineIsSaidOnce(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    string // all of standard output; "" = nothing
		wantErr    string // all of standard error, when set
		errHas     []string
		errHasNone []string
	}{
		{name: "bad log level", args: []string{"--log-level", "verbose"}, code: 2,
			wantErr: "greenlight: invalid value \"verbose\" for flag -log-level: \"verbose\" is not a level (debug, info, warn, error) (see greenlight -h)\n"},
		{name: "bad boot delay", args: []string{"--boot-delay", "soon"}, code: 2,
			wantErr: "greenlight: invalid value \"soon\" for flag -boot-delay: \"soon\" is not a duration (write it like 2s or 500ms) (see greenlight -h)\n"},
		{name: "bad listen", args: []string{"--listen", "localhost"}, code: 2,
			wantErr: "greenlight: invalid value \"localhost\" for flag -listen: \"localhost\" is not host:port (like 127.0.0.1:5353) (see greenlight -h)\n"},
		{name: "unknown flag", args: []string{"--colour"}, code: 2,
			wantErr: "greenlight: flag provided but not defined: -colour (see greenlight -h)\n"},
		{name: "help", args: []string{"-h"}, code: 0,
			errHas:     []string{"usage: greenlight [flags]", "-boot-delay duration", "(default 2s, from the config)", "-log-file file", "-version"},
			errHasNone: []string{"-1ns", ") (default", "invalid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut := &logbuf.Buffer{}, &logbuf.Buffer{}
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut, User: "alice"}
			if code := m.Main(context.Background(), tc.args); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if out.String() != tc.wantOut {
				t.Errorf("standard output %q, want %q", out, tc.wantOut)
			}
			if tc.wantErr != "" && errOut.String() != tc.wantErr {
				t.Errorf("standard error:\n%s\nwant:\n%s", errOut, tc.wantErr)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(errOut.String(), s) {
					t.Errorf("standard error lacks %q:\n%s", s, errOut)
				}
			}
			for _, s := range tc.errHasNone {
				if strings.Contains(errOut.String(), s) {
					t.Errorf("standard error has %q:\n%s", s, errOut)
				}
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	out, errOut := &logbuf.Buffer{}, &logbuf.Buffer{}
	m := &Main{Stdout: out, Stderr: errOut}
	if code := m.Main(context.Background(), []string{"--version"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := out.String(); !strings.HasPrefix(got, "greenlight ") || strings.Count(got, "\n") != 1 || errOut.String() != "" {
		t.Fatalf("--version printed %q and %q; want one line on standard output", got, errOut)
	}
}

// TestPortClashSuggestsListen: the load balancer's address already taken
// says so and names the flag that moves it.
func TestPortClashSuggestsListen(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	errOut := &logbuf.Buffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: &logbuf.Buffer{}, Stderr: errOut, User: "alice"}
	code := m.Main(context.Background(), []string{"--data", t.TempDir(), "--listen", addr, "--log-file", "-"})
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := "greenlight: set up the local switch of ns: " + addr + " is already in use (another greenlight or DNS server?); choose another address with --listen 127.0.0.1:5353, or the service's listen in the config\n"
	if got := errOut.String(); !strings.HasSuffix(got, want) {
		t.Fatalf("standard error:\n%s\nwant it to end:\n%s", got, want)
	}
}

func TestDataDirErrorNamesTheUser(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/srv/data/greenlight.db", Err: syscall.EACCES}
	tests := []struct {
		name string
		err  error
		want string // prefix, then the hint
	}{
		{"data file", dataDirError("open the data file", "/srv/data/greenlight.db", denied), "open the data file /srv/data/greenlight.db: permission denied; "},
		{"anything else", explainAccess(fmt.Errorf("start the local cloud: %w", denied)), "start the local cloud: open /srv/data/greenlight.db: permission denied; "},
		{"said once", explainAccess(dataDirError("open the log", "/srv/data/greenlight.log", denied)), "open the log /srv/data/greenlight.log: permission denied; "},
	}
	for _, tc := range tests {
		got := tc.err.Error()
		if !strings.HasPrefix(got, tc.want+"greenlight runs as user ") || strings.Count(got, "greenlight runs as") != 1 ||
			!strings.HasSuffix(got, ": give that user access to the data directory, or choose another with --data") {
			t.Errorf("%s: got %q", tc.name, got)
		}
	}
	if err := explainAccess(errors.New("disk full")); err.Error() != "disk full" {
		t.Errorf("a refusal of another kind changed: %v", err)
	}
}

// TestInteractiveLogGoesToAFile: at a terminal the log is written to the
// data directory and the greeting says where; --log-file - keeps it on
// standard error.
func TestInteractiveLogGoesToAFile(t *testing.T) {
	tests := []struct {
		name    string
		logFile []string
		inFile  bool
	}{
		{"default", nil, true},
		{"standard error", []string{"--log-file", "-"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			args := append([]string{"--data", data, "--listen", "127.0.0.1:0", "--boot-delay", "0s"}, tc.logFile...)
			p := startMain(t, func(m *Main) { m.Interactive = true }, args...)
			p.waitOutput(`quit to leave\.`)
			path := filepath.Join(data, "greenlight.log")
			b, err := os.ReadFile(path)
			if tc.inFile {
				p.waitOutput(`The log is in ` + regexp.QuoteMeta(path) + ` \(--log-file - shows it here\)\.`)
				if err != nil || !strings.Contains(string(b), "no authorization is configured") {
					t.Fatalf("log file %s: %v %q", path, err, b)
				}
				if strings.Contains(p.errOut.String(), "level=") {
					t.Fatalf("the log reached standard error: %s", p.errOut)
				}
				return
			}
			if err == nil {
				t.Fatalf("a log file was written: %q", b)
			}
			if strings.Contains(p.out.String(), "The log is in") || !strings.Contains(p.errOut.String(), "no authorization is configured") {
				t.Fatalf("out %q, err %q", p.out, p.errOut)
			}
		})
	}
}

func TestNoColor(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{{nil, true}, {map[string]string{"NO_COLOR": "1"}, false}} {
		m := &Main{Getenv: func(k string) string { return tc.env[k] }}
		if got := m.wantColor(); got != tc.want {
			t.Errorf("NO_COLOR %q: colour %v, want %v", tc.env["NO_COLOR"], got, tc.want)
		}
	}
}

// TestPipedOutputHasNoColour: a deploy run from a pipe prints no escape
// sequences, even with a terminal's environment.
func TestPipedOutputHasNoColour(t *testing.T) {
	p := start(t, t.TempDir())
	p.typeLine("/deploy ns --image local/ns-broken")
	p.waitOutput(`failed after`)
	if strings.Contains(p.out.String(), "\x1b") {
		t.Fatalf("escape sequences in piped output: %q", p.out.String())
	}
}
