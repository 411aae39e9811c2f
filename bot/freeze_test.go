package bot_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

// Status shows the freezes in force and the next one; a scheduled refresh
// whose auto_deploy met a freeze says it waits, and how to deploy later.
func TestFreezeTexts(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no zone database:", err)
	}
	now := time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC)
	inForce := deployer.Freeze{Service: "ns", Name: "year-end", Reason: "holidays", End: time.Date(2027, 1, 2, 7, 0, 0, 0, time.UTC), Location: berlin}
	byHand := deployer.Freeze{Service: "ns", Reason: "incident 42", Start: now, By: "U0OPS"}
	next := deployer.Freeze{Service: "ns", Name: "year-end", Reason: "holidays", Start: time.Date(2027, 12, 23, 17, 0, 0, 0, time.UTC),
		End: time.Date(2028, 1, 2, 7, 0, 0, 0, time.UTC), Location: berlin}
	st := deployer.Status{Service: "ns", Frozen: []deployer.Freeze{byHand, inForce}, NextFreeze: &next}
	text := bot.StatusText(st, now)
	for _, want := range []string{
		"  frozen: incident 42, until someone unfreezes it, set by U0OPS\n",
		"  frozen: year-end: holidays, until Sat 2 Jan 08:00 CET, set in the config\n",
		"  next freeze: year-end: holidays from Thu 23 Dec 18:00 CET until Sun 2 Jan 08:00 CET\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}

	ev := refresh.Event{Service: "ns", Kind: refresh.EventFinished, BuildID: "b", Trigger: "schedule", Image: deployer.Image{ID: "private/123", Label: "ns-golden"},
		DeployErr: fmt.Errorf("could not start a deploy of private/123: %w", &deployer.FrozenError{Service: "ns", Freeze: inForce})}
	msg := bot.RefreshMessage(ev)
	want := "auto_deploy waits: ns is frozen (year-end: holidays) until Sat 2 Jan 08:00 CET, set in the config. Deploy it once the freeze ends: /deploy ns --image private/123"
	if !strings.Contains(msg.Text, want) {
		t.Errorf("announcement:\n%s\nwant it to contain %q", msg.Text, want)
	}
}
