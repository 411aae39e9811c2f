package local

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/goroutines"
)

// TestMain fails the run when goroutines outlive the tests: every server,
// balancer and boot timer must be gone once its test's cleanup has run.
func TestMain(m *testing.M) {
	code := m.Run()
	// A fuzz worker's exit status means "the input crashed me" to the
	// coordinator, which runs this check itself.
	worker := flag.Lookup("test.fuzzworker")
	if code == 0 && (worker == nil || worker.Value.String() != "true") {
		var leaked []string
		gone := eventually.Holds(5*time.Second, func() bool {
			leaked = leakedGoroutines()
			return len(leaked) == 0
		})
		if !gone {
			fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines are the stacks of the goroutines still running that this
// package or miekg/dns runs or started. Others, such as the signal handler
// of the fuzzing engine, are not the package's to stop.
func leakedGoroutines() []string {
	var out []string
	for _, g := range goroutines.Stacks() {
		if strings.Contains(g, "greenlight/deployer/local.") || strings.Contains(g, "github.com/miekg/dns.") {
			out = append(out, g)
		}
	}
	return out
}
