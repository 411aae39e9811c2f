//go:build unix

package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// onResize calls f each time the terminal window changes size, until the
// returned stop is called; stop returns once f is no longer called.
func onResize(f func()) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-winch:
				f()
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(winch)
		close(done)
		watcher.Wait()
	}
}
