package bot

import "time"

// ChatObserver is told about a chat adapter's traffic: each request it
// takes in (kind: command, click, mention; result: ok, busy, refused,
// error), how long acknowledging it took, and whether it is connected.
// The metrics package implements it.
type ChatObserver interface {
	ChatRequest(adapter, kind, result string)
	ChatAck(adapter string, d time.Duration)
	ChatConnected(adapter string, up bool)
}

// NopObserver observes nothing.
type NopObserver struct{}

// ChatRequest does nothing.
func (NopObserver) ChatRequest(adapter, kind, result string) {}

// ChatAck does nothing.
func (NopObserver) ChatAck(adapter string, d time.Duration) {}

// ChatConnected does nothing.
func (NopObserver) ChatConnected(adapter string, up bool) {}
