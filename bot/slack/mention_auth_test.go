package slack_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/internal/eventually"
)

// TestMentionIsAuthorized: a bare approve by mention, from a person who is
// not an approver, is refused in the thread and never reaches the deployer.
func TestMentionIsAuthorized(t *testing.T) {
	d := &fakeDeployer{}
	h := start(t, d, setup{policies: map[string]bot.Policy{"ns": {Approvers: []string{"U_APP"}}}})
	body := slacktest.AppMention("Ev09", "U_EVE", "C_OPS", "<@U0BOT> approve", "1700000000.000900")
	if code, _ := do(t, slacktest.Signed(t, h.base+"/slack/events", slacktest.JSONType, body)); code != http.StatusOK {
		t.Fatalf("ack %d", code)
	}
	eventually.True(t, "the thread reply", func() bool { return len(h.slack.Calls()) == 1 })
	if got := h.slack.Calls()[0]; got.ThreadTS != "1700000000.000900" || !strings.Contains(got.Text, "not allowed: you are not among the approvers of ns") {
		t.Errorf("reply %+v", got)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("the deployer was asked %q", calls)
	}
}
