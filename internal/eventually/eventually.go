// Package eventually is how tests wait for something another goroutine
// does: poll a condition every few milliseconds until it holds, and give up
// after a bound. Tests never sleep for any other reason; deadlines inside
// greenlight go through deployer.Clock, which tests drive by hand.
package eventually

import (
	"testing"
	"time"
)

// Limit is how long True waits for its condition.
const Limit = 10 * time.Second

// maxInterval is the longest pause between two polls. The first polls come
// sooner, so a condition that holds at once costs no time, and one that
// takes seconds is not asked a thousand times a second.
const maxInterval = 10 * time.Millisecond

// True polls cond until it holds, and fails t, naming what it waited for,
// when it has not held within Limit.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Limit, what, cond)
}

// Within is True with its own bound d.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Holds(d, cond) {
		t.Fatalf("gave up after %s waiting for %s", d, what)
	}
}

// Holds polls cond until it holds or d has passed, and reports whether it
// held. It is for callers whose failure message says more than what they
// waited for, such as the state they last saw.
func Holds(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, maxInterval)
	}
	return true
}
