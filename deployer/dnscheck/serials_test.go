package dnscheck_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
)

func TestSerials(t *testing.T) {
	tests := []struct {
		name    string
		handler func(h *zoneHandler)
		setup   setup
		zones   []string
		want    map[string]uint32
		wantErr string // the error's chat message
		wantIs  error  // a cause the error wraps
	}{{
		name:  "over UDP",
		zones: []string{"example.test", "example.test."},
		want:  map[string]uint32{"example.test": liveSerial, "example.test.": liveSerial},
	}, {
		name:    "truncated over UDP, then over TCP",
		handler: func(h *zoneHandler) { h.truncateUDP = true },
		zones:   []string{"example.test"},
		want:    map[string]uint32{"example.test": liveSerial},
	}, {
		name:  "no answer over UDP, then over TCP",
		setup: udpDrops,
		zones: []string{"example.test"},
		want:  map[string]uint32{"example.test": liveSerial},
	}, {
		name:    "no answer at all",
		setup:   allHang,
		zones:   []string{"example.test"},
		wantErr: "ns1-7: SOA example.test. over TCP timed out after 200ms",
		wantIs:  os.ErrDeadlineExceeded,
	}, {
		name:    "SERVFAIL",
		handler: func(h *zoneHandler) { h.rcode = dns.RcodeServerFailure },
		zones:   []string{"example.test"},
		wantErr: "ns1-7: SOA example.test. over UDP answered SERVFAIL",
	}, {
		name:    "a zone it does not serve",
		zones:   []string{"example.test", "other.test"},
		wantErr: "ns1-7: SOA other.test. over UDP answered REFUSED",
	}, {
		name:    "nothing listening",
		setup:   closed,
		zones:   []string{"example.test"},
		wantErr: "ns1-7: SOA example.test. over UDP failed: connection refused",
		wantIs:  syscall.ECONNREFUSED,
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newZoneHandler(t, liveSerial, "ns1-7")
			if tt.handler != nil {
				tt.handler(h)
			}
			target := deployer.CheckTarget{Name: "ns1-7", Addr: serve(t, h, tt.setup)}
			c := dnscheck.New(dnscheck.Options{Logger: testLogger(t)})

			got, err := c.Serials(t.Context(), target, tt.zones, 200*time.Millisecond)

			if tt.wantErr == "" {
				if err != nil || !mapsEqual(got, tt.want) {
					t.Errorf("%d: Serials = %v, %v; want %v", i, got, err, tt.want)
				}
				return
			}
			e, ok := errors.AsType[*deployer.Error](err)
			if !ok || e.Message != tt.wantErr || e.Code != deployer.CodeFailed {
				t.Fatalf("%d: err = %#v; want a failure saying %q", i, err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("%d: err = %v; want it to wrap %v", i, err, tt.wantIs)
			}
		})
	}
}

func TestSerialsCancelled(t *testing.T) {
	h := newZoneHandler(t, liveSerial, "ns1-7")
	target := deployer.CheckTarget{Name: "ns1-7", Addr: serve(t, h, allHang)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := dnscheck.New(dnscheck.Options{}).Serials(ctx, target, []string{"example.test"}, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
}
