package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

// blockTexts lists each block as "type: text" (sections and context) or
// "actions: id/value/style[/confirm]…", the way a person reads the message.
func blockTexts(t *testing.T, blocks []slackapi.Block) []string {
	t.Helper()
	var out []string
	for _, b := range blocks {
		switch b := b.(type) {
		case *slackapi.SectionBlock:
			out = append(out, "section: "+b.Text.Text)
		case *slackapi.ContextBlock:
			var parts []string
			for _, e := range b.ContextElements.Elements {
				if txt, ok := e.(*slackapi.TextBlockObject); ok {
					parts = append(parts, txt.Text)
				}
			}
			out = append(out, "context: "+strings.Join(parts, " "))
		case *slackapi.ActionBlock:
			var parts []string
			for _, e := range b.Elements.ElementSet {
				btn, ok := e.(*slackapi.ButtonBlockElement)
				if !ok {
					t.Fatalf("action element %T, want a button", e)
				}
				s := btn.ActionID + "/" + btn.Value + "/" + string(btn.Style) + "/" + btn.Text.Text
				if btn.Confirm != nil {
					s += "/confirm:" + btn.Confirm.Text.Text
				}
				parts = append(parts, s)
			}
			out = append(out, "actions: "+strings.Join(parts, " "))
		default:
			out = append(out, string(b.BlockType()))
		}
	}
	return out
}

func TestRenderBlocks(t *testing.T) {
	approve := bot.Action{ID: bot.ActionApprove, Label: "Approve", Style: "primary", Value: "ns#7"}
	abort := bot.Action{ID: bot.ActionAbort, Label: "Abort", Style: "danger", Value: "ns#7", Confirm: "Abort deploy #7 and delete ns1-7?"}
	checklist := &bot.Checklist{
		Title: "Deploy #7 of ns by U0ALICE1: img-1 → img-2 — fix <b> & co",
		Items: []bot.Item{
			{Step: deployer.StepLock, Title: "Lock", Status: deployer.StatusDone, Duration: 12 * time.Millisecond, Detail: "held by deploy #7"},
			{Step: deployer.StepCreate, Title: "Create next set", Status: deployer.StatusRunning, Duration: 3*time.Second + 456*time.Millisecond},
			{Step: deployer.StepProvision, Title: "Provision", Status: deployer.StatusFailed, Detail: "exit 2\nansible: <fatal> host unreachable"},
			{Step: deployer.StepApproval, Title: "Approval", Status: deployer.StatusSkipped},
			{Step: deployer.StepRetire, Title: "Retire", Status: deployer.StatusPending},
		},
		Footer: "Waiting for approval until 14:03:00 UTC",
	}
	tests := []struct {
		name string
		m    bot.Message
		want []string
		text string // Text(m)
	}{
		{
			name: "checklist",
			m:    bot.Message{Key: "deploy-7/checklist", Checklist: checklist, User: "U0ALICE1"},
			want: []string{
				"section: *Deploy #7 of ns by <@U0ALICE1>: img-1 → img-2 — fix &lt;b&gt; &amp; co*",
				"section: :white_check_mark: *Lock* (12ms) — held by deploy #7\n" +
					":hourglass_flowing_sand: *Create next set* (3.46s)\n" +
					":x: *Provision* — exit 2\n```ansible: &lt;fatal&gt; host unreachable```\n" +
					":heavy_minus_sign: *Approval*\n" +
					":white_circle: *Retire*",
				"context: Waiting for approval until 14:03:00 UTC",
			},
			text: "Deploy #7 of ns by <@U0ALICE1>: img-1 → img-2 — fix &lt;b&gt; &amp; co — Create next set: running — Waiting for approval until 14:03:00 UTC",
		},
		{
			name: "error",
			m:    bot.Message{Level: bot.LevelError, Text: "check next failed: ns1-7 answered SERVFAIL for example.test SOA"},
			want: []string{"section: :x: check next failed: ns1-7 answered SERVFAIL for example.test SOA"},
			text: ":x: check next failed: ns1-7 answered SERVFAIL for example.test SOA",
		},
		{
			name: "warning",
			m:    bot.Message{Level: bot.LevelWarning, Text: "Approval deadline passed"},
			want: []string{"section: :warning: Approval deadline passed"},
			text: ":warning: Approval deadline passed",
		},
		{
			name: "success",
			m:    bot.Message{Level: bot.LevelSuccess, Text: "ns is live on img-2"},
			want: []string{"section: :white_check_mark: ns is live on img-2"},
			text: ":white_check_mark: ns is live on img-2",
		},
		{
			name: "info keeps mentions, escapes the rest",
			m: bot.Message{Level: bot.LevelInfo, User: "alice",
				Text: "alice asks <@U0BOB123|bob> and <!subteam^S0OPS123> in <#C0DEPLOY1>: a<b && <!channel> <https://evil.example|x> &amp; done"},
			want: []string{"section: alice asks <@U0BOB123|bob> and <!subteam^S0OPS123> in <#C0DEPLOY1>: a&lt;b &amp;&amp; &lt;!channel&gt; &lt;https://evil.example|x&gt; &amp; done"},
			text: "alice asks <@U0BOB123|bob> and <!subteam^S0OPS123> in <#C0DEPLOY1>: a&lt;b &amp;&amp; &lt;!channel&gt; &lt;https://evil.example|x&gt; &amp; done",
		},
		{
			name: "user IDs become mentions",
			m:    bot.Message{User: "U1", Text: "Approved by W0CAROL12 at 14:03; asked by U1; UPDATE 2 is not a user"},
			want: []string{"section: Approved by <@W0CAROL12> at 14:03; asked by <@U1>; UPDATE 2 is not a user"},
			text: "Approved by <@W0CAROL12> at 14:03; asked by <@U1>; UPDATE 2 is not a user",
		},
		{
			name: "approval buttons",
			m:    bot.Message{Level: bot.LevelWarning, Text: "Deploy #7 of ns is ready to switch", Actions: []bot.Action{approve, abort}},
			want: []string{
				"section: :warning: Deploy #7 of ns is ready to switch",
				"actions: approve/ns#7/primary/Approve abort/ns#7/danger/Abort/confirm:Abort deploy #7 and delete ns1-7?",
			},
			text: ":warning: Deploy #7 of ns is ready to switch",
		},
		{
			name: "decided: no buttons",
			m:    bot.Message{Text: "Deploy #7 of ns: Approved by U0BOB123 at 14:03:00 UTC."},
			want: []string{"section: Deploy #7 of ns: Approved by <@U0BOB123> at 14:03:00 UTC."},
			text: "Deploy #7 of ns: Approved by <@U0BOB123> at 14:03:00 UTC.",
		},
		{
			name: "deploy-now button",
			m: bot.Message{Level: bot.LevelSuccess, Text: "New golden image img-3 for ns",
				Actions: []bot.Action{{ID: bot.ActionDeployNow, Label: "Deploy now", Value: "ns image=img-3"}}},
			want: []string{"section: :white_check_mark: New golden image img-3 for ns", "actions: deploy-now/ns image=img-3//Deploy now"},
			text: ":white_check_mark: New golden image img-3 for ns",
		},
		{
			name: "bake announcement",
			m: bot.RefreshMessage(refresh.Event{Service: "ns", Kind: refresh.EventFinished, BuildID: "20261123-0400", Trigger: "U0ALICE1",
				Image: deployer.Image{ID: "private/123", Label: "ns-golden-20261123-0400"}, Took: 372 * time.Second,
				Pruned: []deployer.Image{{ID: "private/99", Label: "ns-golden-<old>"}}}),
			want: []string{
				"section: :white_check_mark: Image private/123 ready: ns-golden-20261123-0400, built in 6m12s; pruned 1 old image\n• ns-golden-&lt;old&gt;",
				"actions: deploy-now/ns image=private/123/primary/Deploy now/confirm:Start a deploy of ns with image ns-golden-20261123-0400?",
			},
			text: ":white_check_mark: Image private/123 ready: ns-golden-20261123-0400, built in 6m12s; pruned 1 old image\n• ns-golden-&lt;old&gt;",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks := Blocks(tc.m)
			got := blockTexts(t, blocks)
			if strings.Join(got, "\n|") != strings.Join(tc.want, "\n|") {
				t.Errorf("Blocks:\ngot  %q\nwant %q", got, tc.want)
			}
			if got := Text(tc.m); got != tc.text {
				t.Errorf("Text:\ngot  %q\nwant %q", got, tc.text)
			}
			// What Slack receives must be valid Block Kit JSON that reads back.
			raw, err := json.Marshal(slackapi.Blocks{BlockSet: blocks})
			if err != nil {
				t.Fatal(err)
			}
			var back slackapi.Blocks
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatalf("blocks do not read back: %v\n%s", err, raw)
			}
			if len(back.BlockSet) != len(blocks) {
				t.Errorf("read back %d blocks, sent %d", len(back.BlockSet), len(blocks))
			}
		})
	}
}

func TestRenderBlocksConfirmDialog(t *testing.T) {
	m := bot.Message{Actions: []bot.Action{{ID: bot.ActionRollback, Label: "Rollback", Style: "danger", Value: "ns#7", Confirm: "Switch ns back to ns1-6, ns2-6?"}}}
	blocks := Blocks(m)
	ab, ok := blocks[len(blocks)-1].(*slackapi.ActionBlock)
	if !ok {
		t.Fatalf("last block is %T, want actions", blocks[len(blocks)-1])
	}
	btn := ab.Elements.ElementSet[0].(*slackapi.ButtonBlockElement)
	c := btn.Confirm
	if c == nil || c.Title.Text != "Rollback?" || c.Text.Text != "Switch ns back to ns1-6, ns2-6?" || c.Confirm.Text != "Rollback" ||
		c.Deny == nil || c.Deny.Text != "Cancel" || c.Style != slackapi.StyleDanger {
		t.Fatalf("confirm dialog = %+v", c)
	}
	for _, o := range []*slackapi.TextBlockObject{c.Title, c.Text, c.Confirm, c.Deny} {
		if o.Type != slackapi.PlainTextType {
			t.Errorf("confirm text %q is %s, Slack wants plain_text", o.Text, o.Type)
		}
	}
}

// Slack refuses sections over 3000 characters and messages over 50 blocks.
func TestRenderBlocksLimits(t *testing.T) {
	long := strings.Repeat("x<y ", 2000) // 8000 characters, 12000 escaped
	var many []string
	for i := range 600 {
		many = append(many, strings.Repeat("line ", 60)+string(rune('a'+i%26)))
	}
	var items []bot.Item
	for range 200 {
		items = append(items, bot.Item{Title: "Step", Status: deployer.StatusDone, Detail: strings.Repeat("d", 400)})
	}
	buttons := []bot.Action{{ID: bot.ActionApprove, Label: "Approve", Value: "ns#7"}}
	tests := []struct {
		name      string
		m         bot.Message
		truncated bool
	}{
		{"one long line", bot.Message{Level: bot.LevelError, Text: long, Actions: buttons}, true},
		{"many lines", bot.Message{Text: strings.Join(many, "\n"), Actions: buttons}, true},
		{"long checklist", bot.Message{Checklist: &bot.Checklist{Title: "Deploy #7", Items: items, Footer: strings.Repeat("f", 5000)}, Actions: buttons}, true},
		{"fits", bot.Message{Text: strings.Join(many[:40], "\n"), Actions: buttons}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks := Blocks(tc.m)
			if len(blocks) > maxBlocks {
				t.Errorf("%d blocks, Slack takes at most %d", len(blocks), maxBlocks)
			}
			if _, ok := blocks[len(blocks)-1].(*slackapi.ActionBlock); !ok {
				t.Errorf("the buttons were cut: last block is %T", blocks[len(blocks)-1])
			}
			all := strings.Join(blockTexts(t, blocks), "\n")
			for _, b := range blocks {
				var text string
				switch b := b.(type) {
				case *slackapi.SectionBlock:
					text = b.Text.Text
				case *slackapi.ContextBlock:
					text = b.ContextElements.Elements[0].(*slackapi.TextBlockObject).Text
				}
				if n := utf8.RuneCountInString(text); n > maxSectionText {
					t.Errorf("a block holds %d characters, Slack takes at most %d", n, maxSectionText)
				}
				if strings.Contains(text, "&l…") || strings.HasSuffix(strings.TrimSuffix(text, truncated), "&") {
					t.Errorf("an entity was cut in half: …%s", text[max(0, len(text)-40):])
				}
			}
			if got := strings.Contains(all, truncated); got != tc.truncated {
				t.Errorf("truncated = %v, want %v", got, tc.truncated)
			}
			if n := utf8.RuneCountInString(Text(tc.m)); n > maxFallbackText {
				t.Errorf("Text holds %d characters", n)
			}
		})
	}
}

func TestRenderClipText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"aaaa &amp; bbbbbbbbbbbbbbbbbbbb", 22, "aaaa " + truncated},
		{"see <@U0ALICE1> now and then again", 25, "see " + truncated},
		{"out:\n```line one\nline two\nline three```", 30, "out:\n```line o```" + truncated},
		{"ééééééééééééééééééééééééé", 20, "ééééééé" + truncated}, // characters, not bytes
	}
	for i, tc := range tests {
		got := clipText(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("%d: clipText(%q, %d) = %q, want %q", i, tc.in, tc.n, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > tc.n {
			t.Errorf("%d: %d characters, limit %d", i, n, tc.n)
		}
	}
}
