// Package goroutines shows a test the goroutines that are running, so it
// can find those that outlive what started them.
package goroutines

import (
	"runtime"
	"strings"
)

// Stacks returns the stack of every goroutine but the caller's, by
// goroutine ID ("17").
func Stacks() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // runtime.Stack puts the caller's first
			continue
		}
		head, _, _ := strings.Cut(g, "\n")
		id, _, _ := strings.Cut(strings.TrimPrefix(head, "goroutine "), " ")
		out[id] = g
	}
	return out
}
