package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Executor runs commands and writes files on one load balancer host.
type Executor interface {
	// Run runs cmd with args (no shell) and returns what it wrote to
	// standard output and standard error, interleaved. A command that ran
	// and exited non-zero returns its output and an *ExitError.
	Run(ctx context.Context, cmd string, args ...string) (output []byte, err error)
	// WriteFile replaces path with data, atomically: readers see the old
	// file or the new one, never a part.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
}

// ExitError says a command ran and exited with a non-zero status.
type ExitError struct {
	Cmd    string // the command line, for messages
	Status int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s exited with status %d", e.Cmd, e.Status)
}

// exitStatus returns the status of a command that ran and failed.
func exitStatus(err error) (int, bool) {
	if e, ok := errors.AsType[*ExitError](err); ok {
		return e.Status, true
	}
	return 0, false
}

// LocalExecutor runs commands and writes files on this machine.
type LocalExecutor struct{}

var _ Executor = LocalExecutor{}

// Run runs cmd with args on this machine.
func (LocalExecutor) Run(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, cmd, args...)
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = &out
	// A daemon the command leaves behind must not keep Run waiting for
	// the pipes it inherited.
	c.WaitDelay = time.Second
	err := c.Run()
	if e, ok := errors.AsType[*exec.ExitError](err); ok && e.Exited() && ctx.Err() == nil {
		return out.Bytes(), &ExitError{Cmd: commandLine(cmd, args), Status: e.ExitCode()}
	}
	if err != nil && ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("run %s: %w", commandLine(cmd, args), ctx.Err())
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("run %s: %w", commandLine(cmd, args), err)
	}
	return out.Bytes(), nil
}

// WriteFile writes data to a temporary file beside path and renames it over
// path.
func (LocalExecutor) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".greenlight-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// commandLine is cmd and args as a POSIX shell reads them back.
func commandLine(cmd string, args []string) string {
	words := make([]string, 0, 1+len(args))
	words = append(words, shellQuote(cmd))
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell: words made only of safe characters
// stay as they are; anything else goes in single quotes, with each single
// quote written as '\”.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@,+%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
