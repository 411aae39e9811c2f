package shell

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/greenlight/greenlight/commands"
)

// History is the terminal's command history, kept in a file (one command
// a line, oldest first) so the arrow keys reach commands typed before a
// restart. It implements golang.org/x/term's History.
type History struct {
	path    string
	max     int
	mu      sync.Mutex
	entries []string // oldest first
}

// OpenHistory reads the history kept at path (none yet is fine) and keeps
// at most max commands.
func OpenHistory(path string, max int) (*History, error) {
	h := &History{path: path, max: max}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the command history: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), commands.MaxTextBytes+1)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			h.entries = append(h.entries, line)
		}
	}
	// A line too long for the scanner ends the reading; what came before stays.
	if len(h.entries) > max {
		h.entries = h.entries[len(h.entries)-max:]
	}
	return h, nil
}

// Add records a command, unless it is blank, repeats the last one, or is
// too long to be one; the file is rewritten when it has grown to twice max.
func (h *History) Add(entry string) {
	entry = strings.TrimSpace(entry)
	h.mu.Lock()
	defer h.mu.Unlock()
	if entry == "" || len(entry) > commands.MaxTextBytes || strings.ContainsAny(entry, "\r\n") ||
		(len(h.entries) > 0 && h.entries[len(h.entries)-1] == entry) {
		return
	}
	h.entries = append(h.entries, entry)
	if len(h.entries) > 2*h.max {
		h.entries = h.entries[len(h.entries)-h.max:]
		_ = os.WriteFile(h.path, []byte(strings.Join(h.entries, "\n")+"\n"), 0o600)
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return // the history is a convenience: the command still runs
	}
	defer f.Close()
	fmt.Fprintln(f, entry)
}

// Len is how many commands the history holds.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return min(len(h.entries), h.max)
}

// At is the idx-th most recent command (0 = the last one).
func (h *History) At(idx int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if idx < 0 || idx >= min(len(h.entries), h.max) {
		panic(fmt.Sprintf("history index %d out of range", idx))
	}
	return h.entries[len(h.entries)-1-idx]
}
