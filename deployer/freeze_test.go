package deployer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/greenlight/greenlight/deployer"
)

func mustWindow(t testing.TB, name, start, end, reason string) deployer.FreezeWindow {
	t.Helper()
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := p.Parse(start)
	if err != nil {
		t.Fatal(err)
	}
	e, err := p.Parse(end)
	if err != nil {
		t.Fatal(err)
	}
	var loc *time.Location
	if zone, ok := strings.CutPrefix(end, "CRON_TZ="); ok {
		name, _, _ := strings.Cut(zone, " ")
		if loc, err = time.LoadLocation(name); err != nil {
			t.Fatal(err)
		}
	}
	return deployer.FreezeWindow{Name: name, Reason: reason, Start: s, End: e, Location: loc}
}

// A freeze is computed from its cron start and end alone: inside, outside,
// at each boundary, across New Year and across both DST changes.
func TestFreezeWindowAt(t *testing.T) {
	yearEnd := mustWindow(t, "year-end", "CRON_TZ=Europe/Berlin 0 18 23 12 *", "CRON_TZ=Europe/Berlin 0 8 2 1 *", "holidays")
	weekend := mustWindow(t, "weekend", "CRON_TZ=Europe/Berlin 0 18 * * 5", "CRON_TZ=Europe/Berlin 0 8 * * 1", "no one on call")
	newYork := mustWindow(t, "close", "CRON_TZ=America/New_York 0 16 * * 1-5", "CRON_TZ=America/New_York 30 16 * * 1-5", "market close")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name      string
		w         deployer.FreezeWindow
		at        string
		inside    bool
		until     string // the end shown, when inside
		nextStart string // the next freeze's start, shown
	}{
		{"before the year-end freeze", yearEnd, "2026-12-20T12:00:00Z", false, "", "Wed 23 Dec 18:00 CET"},
		{"a second before it starts", yearEnd, "2026-12-23T16:59:59Z", false, "", "Wed 23 Dec 18:00 CET"},
		{"as it starts", yearEnd, "2026-12-23T17:00:00Z", true, "Sat 2 Jan 08:00 CET", "Thu 23 Dec 18:00 CET"},
		{"New Year's Eve", yearEnd, "2026-12-31T23:30:00Z", true, "Sat 2 Jan 08:00 CET", ""},
		{"New Year's Day", yearEnd, "2027-01-01T00:30:00Z", true, "Sat 2 Jan 08:00 CET", ""},
		{"a second before it ends", yearEnd, "2027-01-02T06:59:59Z", true, "Sat 2 Jan 08:00 CET", ""},
		{"as it ends", yearEnd, "2027-01-02T07:00:00Z", false, "", "Thu 23 Dec 18:00 CET"},
		{"weekend over the spring DST change", weekend, "2026-03-29T12:00:00Z", true, "Mon 30 Mar 08:00 CEST", ""},
		{"a second before the first summer-time end", weekend, "2026-03-30T05:59:59Z", true, "Mon 30 Mar 08:00 CEST", ""},
		{"the first summer-time end", weekend, "2026-03-30T06:00:00Z", false, "", "Fri 3 Apr 18:00 CEST"},
		{"weekend over the autumn DST change", weekend, "2026-10-25T12:00:00Z", true, "Mon 26 Oct 08:00 CET", ""},
		{"a second before the first winter-time end", weekend, "2026-10-26T06:59:59Z", true, "Mon 26 Oct 08:00 CET", ""},
		{"the first winter-time end", weekend, "2026-10-26T07:00:00Z", false, "", "Fri 30 Oct 18:00 CET"},
		{"New York close, summer time", newYork, "2026-07-01T20:10:00Z", true, "Wed 1 Jul 16:30 EDT", ""},
		{"New York close, an hour later in UTC in winter", newYork, "2026-12-01T20:10:00Z", false, "", "Tue 1 Dec 16:00 EST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := deployer.NewManualClock(utc(tc.at))
			cur, next := tc.w.At(clock.Now())
			if (cur != nil) != tc.inside {
				t.Fatalf("inside = %v, want %v", cur != nil, tc.inside)
			}
			if cur != nil && cur.Until() != tc.until {
				t.Errorf("until %q, want %q", cur.Until(), tc.until)
			}
			if tc.nextStart != "" {
				if next == nil {
					t.Fatal("no next freeze")
				}
				if got := deployer.FreezeTime(next.Start, next.Location); got != tc.nextStart {
					t.Errorf("next starts %q, want %q", got, tc.nextStart)
				}
			}
		})
	}
}

// During a freeze of the config a deploy is refused in plain words; an
// override deploys anyway and says so in the deploy's thread; a deploy
// already in flight finishes.
func TestFreezeRefusesAndOverride(t *testing.T) {
	ctx := context.Background()
	// A freeze starting five minutes after epoch and lasting a day, in UTC.
	window := mustWindow(t, "year-end", "5 12 1 11 *", "0 13 2 11 *", "holidays")
	h := newHarness(t, func(o *options) { o.freezes = []deployer.FreezeWindow{window} })

	d := h.deploy("alice", deployer.Options{Image: imageV2})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	h.advance(10 * time.Minute) // the freeze starts; the approval deadline (30m) is still ahead
	if _, err := h.dep.Approve(ctx, "ns", d.ID, "bob"); err != nil {
		t.Fatalf("approve during a freeze: %v", err)
	}
	h.closeWindow(d.ID)

	_, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "alice"})
	var fe *deployer.FrozenError
	if !errors.As(err, &fe) {
		t.Fatalf("deploy during a freeze: %v", err)
	}
	want := "ns is frozen (year-end: holidays) until Mon 2 Nov 13:00 UTC, set in the config — an admin can deploy anyway with --override-freeze"
	if err.Error() != want {
		t.Errorf("refusal:\n got %s\nwant %s", err, want)
	}
	st, err := h.dep.Status(ctx, "ns")
	if err != nil || len(st.Frozen) != 1 || st.NextFreeze == nil {
		t.Fatalf("status: %+v, %v", st, err)
	}

	d = h.deploy("carol", deployer.Options{Image: imageV1, OverrideFreeze: true})
	if got := strings.Join(h.rep.texts(deployer.EventInfo, d.ID), "\n"); !strings.Contains(got, "ns is frozen (year-end: holidays) until Mon 2 Nov 13:00 UTC, set in the config; carol deploys anyway with --override-freeze.") {
		t.Errorf("the override is not in the thread: %q", got)
	}
	log, _ := h.store.AuditLog(50)
	var overrides, refused int
	for _, e := range log {
		switch e.Action {
		case "override freeze":
			overrides++
		case "refused deploy":
			refused++
		}
	}
	if overrides != 1 || refused != 1 {
		t.Errorf("audit: %d overrides, %d refused deploys; want 1 and 1", overrides, refused)
	}
	if _, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "dave", Options: deployer.Options{DryRun: true}}); err != nil {
		t.Errorf("a dry run during a freeze: %v", err)
	}
}

// A freeze set in chat survives a restart, ends at its time or when
// unfrozen, and freezing every service freezes ns.
func TestAdHocFreezeSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	until := h.clock.Now().Add(2 * time.Hour)
	if _, err := h.dep.Freeze(ctx, deployer.FreezeRequest{Service: "ns", User: "ops", Reason: "incident 42", Until: until}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	_, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "alice"})
	if err == nil || err.Error() != "ns is frozen (incident 42) until Sun 1 Nov 14:00 UTC, set by ops — an admin can deploy anyway with --override-freeze" {
		t.Fatalf("deploy after restart: %v", err)
	}
	h.advance(2 * time.Hour)
	d := h.deploy("alice", deployer.Options{Image: imageV2, AutoApprove: true})
	h.closeWindow(d.ID)

	if _, err := h.dep.Freeze(ctx, deployer.FreezeRequest{User: "ops", Reason: "migration"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "alice"}); err == nil || !strings.Contains(err.Error(), "until someone unfreezes it, set by ops") {
		t.Fatalf("deploy during a freeze of every service: %v", err)
	}
	if _, err := h.dep.Unfreeze(ctx, "ns", "ops"); err == nil || !strings.Contains(err.Error(), "ns has no freeze set in chat; it is frozen (migration)") {
		t.Errorf("unfreeze of ns while every service is frozen: %v", err)
	}
	if _, err := h.dep.Unfreeze(ctx, "", "ops"); err != nil {
		t.Fatal(err)
	}
	h.restart()
	d = h.deploy("alice", deployer.Options{Image: imageV1})
	h.waitPhase(d.ID, deployer.PhaseFailed) // v1's serial is lower; what counts is that it started
	for _, tc := range []struct {
		name string
		req  deployer.FreezeRequest
		want string
	}{
		{"no reason", deployer.FreezeRequest{Service: "ns", User: "ops"}, "needs a reason"},
		{"in the past", deployer.FreezeRequest{Service: "ns", User: "ops", Reason: "x", Until: h.clock.Now().Add(-time.Minute)}, "has passed"},
		{"unknown service", deployer.FreezeRequest{Service: "web", User: "ops", Reason: "x"}, "unknown service"},
	} {
		if _, err := h.dep.Freeze(ctx, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
