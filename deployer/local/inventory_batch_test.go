package local

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// Creates that arrive while the inventory is being written share the next
// write: the file is written once for all of them, not once each, and a
// new Cloud on the same directory finds every server.
func TestInventoryWritesAreShared(t *testing.T) {
	dir := t.TempDir()
	c := newTestCloud(t, dir)
	ctx := context.Background()
	if _, err := c.Images(ctx, "ns"); err != nil { // seed the images first
		t.Fatal(err)
	}
	const n = 20
	c.flushMu.Lock() // a write in progress
	before := c.writes.Load()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := c.Create(ctx, deployer.ServerSpec{Service: "ns", Role: "ns1", Name: fmt.Sprintf("ns1-%d", i), Image: "local/ns-v1",
				Tags: []string{deployer.TagGreenlight, deployer.ServiceTag("ns")}})
			errs <- err
		})
	}
	// Each server boots at once, a second change to share the write.
	eventually.True(t, "every create and boot to be recorded", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		running := 0
		for _, rec := range c.inv.Servers {
			if rec.Status == statusRunning {
				running++
			}
		}
		return running == n
	})
	c.flushMu.Unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := c.writes.Load() - before; got != 1 {
		t.Errorf("%d creates wrote the inventory %d times, want once", n, got)
	}
	c.Close()
	again := newTestCloud(t, dir)
	servers, err := again.ListByTag(ctx, deployer.TagGreenlight)
	if err != nil || len(servers) != n {
		t.Fatalf("after reopening: %d servers, %v; want %d", len(servers), err, n)
	}
}
