package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	glslack "github.com/greenlight/greenlight/bot/slack"
	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
	"github.com/greenlight/greenlight/internal/eventually"
)

// buttonsOf decodes the buttons in a message's Block Kit JSON.
func buttonsOf(t *testing.T, raw string) []*slackapi.ButtonBlockElement {
	t.Helper()
	var blocks slackapi.Blocks
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		t.Fatalf("blocks do not decode: %v\n%s", err, raw)
	}
	var out []*slackapi.ButtonBlockElement
	for _, b := range blocks.BlockSet {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				if btn, ok := e.(*slackapi.ButtonBlockElement); ok {
					out = append(out, btn)
				}
			}
		}
	}
	return out
}

// announcementClick is the block_actions payload Slack sends when user
// clicks btn in the top-level message ts of channel, whose blocks are raw.
func announcementClick(t *testing.T, user, channel, ts, raw string, btn *slackapi.ButtonBlockElement, responseURL string) string {
	t.Helper()
	p := map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": "T0001"},
		"api_app_id": "A0GREENLIT",
		"token":      "gIkuvaNzQIHg97ATvDxqgjtO",
		"container":  map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
		"team":       map[string]any{"id": "T0001", "domain": "example"},
		"channel":    map[string]any{"id": channel, "name": "ops"},
		"message": map[string]any{"type": "message", "subtype": "bot_message", "text": "Image ready", "ts": ts, "bot_id": "B0GREENLIT",
			"blocks": json.RawMessage(raw)},
		"state":        map[string]any{"values": map[string]any{}},
		"response_url": responseURL,
		"actions": []any{map[string]any{
			"action_id": btn.ActionID, "block_id": "greenlight-actions", "text": btn.Text, "value": btn.Value,
			"style": btn.Style, "type": "button", "action_ts": "1700000456.840180",
		}},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"payload": {string(b)}}.Encode()
}

// A bake is announced in the channel, updated in place when it ends, with a
// Deploy now button; a click on it by a deployer of the service starts a
// deploy of that image, and one by anybody else starts nothing.
func TestRefreshAnnouncementDeployNow(t *testing.T) {
	d := &fakeDeployer{}
	policies := map[string]bot.Policy{"ns": {Deployers: []string{"U_DEP"}, Approvers: []string{"U_APP"}}}
	h := start(t, d, setup{policies: policies, config: func(c *glslack.Config) { c.UpdateInterval = 10 * time.Millisecond }})
	n := &bot.Notifier{Chats: []bot.Chat{h.a.Chat()}}
	ctx := context.Background()

	started := refresh.Event{Service: "ns", Kind: refresh.EventStarted, BuildID: "20261123-0400", Trigger: "schedule", Base: "linode/debian12"}
	n.Refresh(ctx, started)
	eventually.True(t, "the started announcement", func() bool { return len(h.slack.CallsTo("chat.postMessage")) == 1 })
	post := h.slack.CallsTo("chat.postMessage")[0]
	if post.Channel != "C_OPS" || post.ThreadTS != "" || post.Text != "Baking a new image of ns from linode/debian12 (build 20261123-0400, scheduled)" {
		t.Fatalf("started announcement %+v", post)
	}

	finished := started
	finished.Kind, finished.Took = refresh.EventFinished, 6*time.Minute+12*time.Second
	finished.Image = deployer.Image{ID: "private/123", Label: "ns-golden-20261123-0400", Golden: true}
	finished.Pruned = []deployer.Image{{ID: "private/100", Label: "ns-golden-20261101-0400"}, {ID: "private/101", Label: "ns-golden-20261108-0400"}}
	n.Refresh(ctx, finished)
	eventually.True(t, "the announcement updated in place", func() bool { return len(h.slack.CallsTo("chat.update")) == 1 })
	upd := h.slack.CallsTo("chat.update")[0]
	if upd.Channel != "C_OPS" || upd.TS != post.TS {
		t.Fatalf("update %+v, want the started message (%s in C_OPS) updated", upd, post.TS)
	}
	for _, w := range []string{":white_check_mark: Image private/123 ready: ns-golden-20261123-0400, built in 6m12s; pruned 2 old images",
		"• ns-golden-20261101-0400", "• ns-golden-20261108-0400"} {
		if !strings.Contains(upd.Blocks, w) {
			t.Errorf("finished announcement lacks %q:\n%s", w, upd.Blocks)
		}
	}
	if n := len(h.slack.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("%d messages posted, want the one announcement", n)
	}
	btns := buttonsOf(t, upd.Blocks)
	if len(btns) != 1 {
		t.Fatalf("%d buttons, want Deploy now", len(btns))
	}
	btn := btns[0]
	if btn.ActionID != bot.ActionDeployNow || btn.Value != "ns image=private/123" || btn.Text.Text != "Deploy now" || btn.Style != slackapi.StylePrimary {
		t.Fatalf("button %+v %q", btn, btn.Text.Text)
	}

	// A person who is not among ns's deployers is refused; nothing starts.
	before := len(h.slack.Calls())
	for i, user := range []string{"U_EVE", "U_APP"} {
		hook := fmt.Sprintf("deploy-now/refused/%d", i)
		code, body := do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType, announcementClick(t, user, "C_OPS", post.TS, upd.Blocks, btn, h.slack.HookURL(hook))))
		if code != http.StatusOK || body != "" {
			t.Fatalf("ack %d %q, want an empty 200", code, body)
		}
		eventually.True(t, "the refusal", func() bool { return len(h.slack.Calls()) == before+i+1 })
		want := slacktest.Call{Method: "response_url", Hook: hook, ResponseType: "ephemeral", Text: ":x: not allowed: you are not among the deployers of ns"}
		if got := h.slack.Calls()[before+i]; untimed(got) != want {
			t.Errorf("%s: answer %+v, want %+v", user, got, want)
		}
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Fatalf("deployer calls %q after refused clicks, want none", calls)
	}

	// A deployer's click starts the deploy a typed /deploy ns --image private/123 would.
	code, _ := do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType, announcementClick(t, "U_DEP", "C_OPS", post.TS, upd.Blocks, btn, h.slack.HookURL("deploy-now/ok"))))
	if code != http.StatusOK {
		t.Fatalf("ack %d", code)
	}
	eventually.True(t, "the deploy's answer", func() bool { return len(h.slack.Calls()) == before+3 })
	want := slacktest.Call{Method: "response_url", Hook: "deploy-now/ok", ResponseType: "ephemeral", Text: "Started deploy #7 of ns."}
	if got := h.slack.Calls()[before+2]; untimed(got) != want {
		t.Errorf("answer %+v, want %+v", got, want)
	}
	if calls := d.Calls(); !slices.Equal(calls, []string{"deploy ns --image private/123 by U_DEP in C_OPS: "}) {
		t.Errorf("deployer calls %q", calls)
	}

	// A forged value (well signed, but not one greenlight rendered) starts nothing.
	bad := *btn
	bad.Value = "ns image=private/123 --auto-approve"
	do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType, announcementClick(t, "U_DEP", "C_OPS", post.TS, upd.Blocks, &bad, h.slack.HookURL("deploy-now/bad"))))
	eventually.True(t, "the malformed click's answer", func() bool { return len(h.slack.Calls()) == before+4 })
	if got := h.slack.Calls()[before+3]; got.Hook != "deploy-now/bad" || !strings.Contains(got.Text, "malformed Deploy now button value") {
		t.Errorf("answer %+v", got)
	}
	if n := len(d.Calls()); n != 1 {
		t.Errorf("deployer calls %q, want only the deployer's click", d.Calls())
	}
}

// A bake that fails updates its announcement in place, with no button.
func TestRefreshFailureAnnouncement(t *testing.T) {
	h := start(t, &fakeDeployer{}, setup{config: func(c *glslack.Config) { c.UpdateInterval = 10 * time.Millisecond }})
	n := &bot.Notifier{Chats: []bot.Chat{h.a.Chat()}}
	started := refresh.Event{Service: "ns", Kind: refresh.EventStarted, BuildID: "20261123-1012", Trigger: "U0ALICE1", Base: "linode/debian12", Channel: "C_DNS"}
	n.Refresh(context.Background(), started)
	eventually.True(t, "the started announcement", func() bool { return len(h.slack.CallsTo("chat.postMessage")) == 1 })
	post := h.slack.CallsTo("chat.postMessage")[0]
	if post.Channel != "C_DNS" || !strings.Contains(post.Text, "asked for by <@U0ALICE1>") {
		t.Fatalf("started announcement %+v: want it in the job's channel, mentioning who asked", post)
	}
	failed := started
	failed.Kind, failed.Took, failed.Err = refresh.EventFailed, 3*time.Minute, deployer.Errorf(deployer.CodeFailed, "the builder did not boot within 10m")
	n.Refresh(context.Background(), failed)
	eventually.True(t, "the failure", func() bool { return len(h.slack.CallsTo("chat.update")) == 1 })
	upd := h.slack.CallsTo("chat.update")[0]
	if upd.TS != post.TS || upd.Text != ":x: Baking an image of ns failed after 3m: the builder did not boot within 10m" || len(buttonsOf(t, upd.Blocks)) != 0 {
		t.Errorf("failure %+v", upd)
	}
}
