package shell

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/term"
)

type keys struct {
	io.Reader
	io.Writer
}

// TestHistoryOutlivesARestart: the up arrow in golang.org/x/term's line
// editor reaches commands typed before greenlight restarted.
func TestHistoryOutlivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	h, err := OpenHistory(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	first := term.NewTerminal(keys{strings.NewReader("/deploy status\r/deploy status\r\r/deploy history\r"), io.Discard}, "greenlight> ")
	first.History = h
	for range 4 {
		if _, err := first.ReadLine(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "/deploy status\n/deploy history\n" {
		t.Fatalf("history file %q, %v; want each command once", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("history file mode: %v %v", fi.Mode(), err)
	}

	h, err = OpenHistory(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	again := term.NewTerminal(keys{strings.NewReader("\x1b[A\x1b[A\r"), io.Discard}, "greenlight> ")
	again.History = h
	line, err := again.ReadLine()
	if err != nil || line != "/deploy status" {
		t.Fatalf("two arrows up after a restart: %q, %v; want /deploy status", line, err)
	}
	for i := range 10 {
		h.Add(strings.Repeat("x", i+1))
	}
	if h.Len() != 3 || h.At(0) != "xxxxxxxxxx" {
		t.Fatalf("history keeps %d, newest %q; want 3, the last added", h.Len(), h.At(0))
	}
}
