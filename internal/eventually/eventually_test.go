package eventually_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlight/greenlight/internal/eventually"
)

// recorder is a testing.TB that records Fatalf instead of ending the test.
// Its other methods are the real test's.
type recorder struct {
	testing.TB
	helpers int
	fatals  []string
}

func (r *recorder) Helper() { r.helpers++ }

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

func TestTrueWaitsForAnotherGoroutine(t *testing.T) {
	var done atomic.Bool
	go done.Store(true)
	r := &recorder{TB: t}
	eventually.True(r, "the work", done.Load)
	if len(r.fatals) > 0 || !done.Load() {
		t.Fatalf("True returned with done %v, failures %q", done.Load(), r.fatals)
	}
	if r.helpers == 0 {
		t.Error("True does not mark itself a helper: a failure would point into the package")
	}
}

func TestTrueStopsPollingOnceTheConditionHolds(t *testing.T) {
	calls := 0
	r := &recorder{TB: t}
	eventually.True(r, "the third call", func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 || len(r.fatals) > 0 {
		t.Fatalf("cond called %d times, failures %q; want 3 calls and none", calls, r.fatals)
	}
}

func TestWithinFailsNamingWhatItWaitedFor(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	start := time.Now()
	eventually.Within(r, 50*time.Millisecond, "deploy #7 to succeed", func() bool {
		calls++
		return false
	})
	took := time.Since(start)
	want := "gave up after 50ms waiting for deploy #7 to succeed"
	if len(r.fatals) != 1 || r.fatals[0] != want {
		t.Fatalf("failures %q, want [%q]", r.fatals, want)
	}
	if r.helpers == 0 {
		t.Error("Within does not mark itself a helper")
	}
	if took < 50*time.Millisecond || took > 5*time.Second {
		t.Errorf("Within gave up after %s, want 50ms", took)
	}
	if calls < 3 {
		t.Errorf("cond polled %d times in 50ms, want it polled every few milliseconds", calls)
	}
}

func TestHolds(t *testing.T) {
	if !eventually.Holds(time.Second, func() bool { return true }) {
		t.Error("Holds = false for a condition that holds")
	}
	if eventually.Holds(20*time.Millisecond, func() bool { return false }) {
		t.Error("Holds = true for a condition that never holds")
	}
	// The last poll is at the deadline, not a pause before it.
	start := time.Now()
	late := func() bool { return time.Since(start) >= 30*time.Millisecond }
	if !eventually.Holds(30*time.Millisecond, late) {
		t.Error("Holds = false for a condition that holds at its deadline")
	}
}
