// Package logbuf collects what several goroutines write (a logger's
// handler, a program's standard output and error) so that a test can read
// it while they go on writing.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer that goroutines may write to at once, each Write
// kept whole, and that String reads at any time. The zero value is an empty
// buffer ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
