package goroutines_test

import (
	"strings"
	"testing"

	"github.com/greenlight/greenlight/internal/goroutines"
)

func parked(stop <-chan struct{}) { <-stop }

func TestStacksShowOthersNotTheCaller(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() { close(started); parked(stop) }()
	<-started
	var found bool
	for id, stack := range goroutines.Stacks() {
		if !strings.HasPrefix(stack, "goroutine "+id+" ") {
			t.Errorf("stack under ID %q starts %q", id, strings.SplitN(stack, "\n", 2)[0])
		}
		if strings.Contains(stack, "TestStacksShowOthersNotTheCaller(") && !strings.Contains(stack, "func1") {
			t.Errorf("the caller's own stack is listed:\n%s", stack)
		}
		found = found || strings.Contains(stack, "goroutines_test.parked(")
	}
	close(stop)
	if !found {
		t.Error("the parked goroutine is not listed")
	}
}
