package deployer_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// silentUntil is a Checker whose servers answer from the n-th query on, the
// way a server answers once cloud-init has installed and started nsd.
type silentUntil struct {
	n     int64
	calls atomic.Int64
}

func (c *silentUntil) Check(context.Context, []deployer.CheckTarget, deployer.CheckSpec) deployer.CheckReport {
	return deployer.CheckReport{}
}

func (c *silentUntil) Serials(_ context.Context, t deployer.CheckTarget, zones []string, _ time.Duration) (map[string]uint32, error) {
	if c.calls.Add(1) < c.n {
		return nil, errors.New(t.Name + ": SOA " + zones[0] + " over UDP: connection refused")
	}
	return map[string]uint32{zones[0]: 1}, nil
}

func TestAwaitDNS(t *testing.T) {
	cases := []struct {
		name      string
		answersAt int64 // the query that gets an answer
		cancelAt  int64 // cancel once this many queries went unanswered; 0 = never
		wantErr   string
	}{
		{"answers at once", 1, 0, ""},
		{"answers on the fourth try", 4, 0, ""},
		{"never answers", 1 << 40, 3, "ns1-7 did not answer DNS within"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := deployer.NewManualClock(epoch)
			checker := &silentUntil{n: tc.answersAt}
			p := deployer.AwaitDNS{Checker: checker, Zones: []string{zone}, Clock: clock, Interval: time.Second, Logger: discard()}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Provision(ctx, deployer.Server{Name: "ns1-7", Addr: "127.0.0.1:53"}) }()
			deadline := time.Now().Add(waitLimit)
			for {
				if time.Now().After(deadline) {
					t.Fatalf("Provision did not return (%d queries)", checker.calls.Load())
				}
				select {
				case err := <-done:
					if tc.wantErr == "" {
						if err != nil {
							t.Fatalf("Provision: %v", err)
						}
						if got := checker.calls.Load(); got != tc.answersAt {
							t.Errorf("queried %d times, want %d", got, tc.answersAt)
						}
						return
					}
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "connection refused") {
						t.Fatalf("Provision error = %v, want it to say %q and the last answer", err, tc.wantErr)
					}
					return
				default:
				}
				if clock.Waiters() > 0 {
					if tc.cancelAt > 0 && checker.calls.Load() >= tc.cancelAt {
						cancel()
						continue
					}
					clock.Advance(5 * time.Second)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func TestNoProvisioning(t *testing.T) {
	if err := (deployer.NoProvisioning{}).Provision(context.Background(), deployer.Server{Name: "ns1-1"}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
}
