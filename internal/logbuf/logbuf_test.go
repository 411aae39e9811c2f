package logbuf_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/greenlight/greenlight/internal/logbuf"
)

var _ io.Writer = (*logbuf.Buffer)(nil)

func TestZeroValue(t *testing.T) {
	var b logbuf.Buffer
	if got := b.String(); got != "" {
		t.Fatalf("String of a new buffer = %q", got)
	}
	fmt.Fprintf(&b, "ns1-%d ", 7)
	fmt.Fprintf(&b, "answers")
	if got := b.String(); got != "ns1-7 answers" {
		t.Fatalf("String = %q, want %q", got, "ns1-7 answers")
	}
}

// Loggers on many goroutines write to one buffer while the test reads it:
// no record is lost or torn (go test -race checks the reads).
func TestConcurrentLoggers(t *testing.T) {
	const goroutines, records = 8, 100
	var b logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range records {
				log.Info("step done", "goroutine", g, "record", i)
			}
		})
	}
	wg.Go(func() {
		for range records {
			_ = b.String()
		}
	})
	wg.Wait()

	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != goroutines*records {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*records)
	}
	seen := map[[2]int]bool{}
	for _, l := range lines {
		var rec struct{ Goroutine, Record int }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("torn record %q: %v", l, err)
		}
		seen[[2]int{rec.Goroutine, rec.Record}] = true
	}
	if len(seen) != goroutines*records {
		t.Errorf("%d distinct records, want %d", len(seen), goroutines*records)
	}
}
