package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	slackapi "github.com/slack-go/slack"
)

// recorder is a testing.TB that keeps what the fake reports instead of
// failing the test, so refusals can be tested.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// take returns what was reported since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.errs
	r.errs = nil
	return out
}

func section(text string) slackapi.Block {
	return slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, false), nil, nil)
}

func button(label, value string) slackapi.Block {
	return slackapi.NewActionBlock("greenlight-actions", slackapi.NewButtonBlockElement("approve", value,
		slackapi.NewTextBlockObject(slackapi.PlainTextType, label, false, false)))
}

// Calls are refused as Slack refuses them: a wrong or missing token
// quietly, a request greenlight has no reason to send failing the test.
func TestRefusesWhatSlackRefuses(t *testing.T) {
	rec := &recorder{TB: t}
	s := New(rec)
	ctx := t.Context()
	client := s.Client()
	with := func(token string) *slackapi.Client {
		return slackapi.New(token, slackapi.OptionAPIURL(s.APIURL()), slackapi.OptionAppLevelToken(token))
	}
	parent, parentTS, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("parent", false))
	if err != nil || parent != "C1" {
		t.Fatalf("post: %q %v", parent, err)
	}
	many := make([]slackapi.Block, 51)
	for i := range many {
		many[i] = section(fmt.Sprint(i))
	}

	tests := []struct {
		name     string
		call     func() error
		code     string
		reported bool // the test fails: greenlight must not send it
	}{
		{"no token", func() error {
			resp, err := http.PostForm(s.APIURL()+"chat.postMessage", url.Values{"channel": {"C1"}, "text": {"x"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var r slackapi.SlackResponse
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				return err
			}
			return errors.New(r.Error)
		}, "not_authed", false},
		{"another workspace's token", func() error {
			_, _, err := with("xoxb-1-2-another").PostMessageContext(ctx, "C1", slackapi.MsgOptionText("x", false))
			return err
		}, "invalid_auth", false},
		{"the app token for a bot method", func() error {
			_, _, err := with(AppToken).PostMessageContext(ctx, "C1", slackapi.MsgOptionText("x", false))
			return err
		}, "not_allowed_token_type", false},
		{"the bot token for Socket Mode", func() error {
			_, _, err := with(BotToken).StartSocketModeContext(ctx)
			return err
		}, "not_allowed_token_type", false},
		{"no channel", func() error {
			_, _, err := client.PostMessageContext(ctx, "", slackapi.MsgOptionText("x", false))
			return err
		}, "channel_not_found", true},
		{"nothing to show", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1")
			return err
		}, "no_text", true},
		{"text too long", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText(strings.Repeat("x", 40001), false))
			return err
		}, "msg_too_long", true},
		{"section text too long", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionBlocks(section(strings.Repeat("é", 3001))))
			return err
		}, "invalid_blocks", true},
		{"51 blocks", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionBlocks(many...))
			return err
		}, "invalid_blocks", true},
		{"button text too long", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionBlocks(button(strings.Repeat("b", 76), "ns#7")))
			return err
		}, "invalid_blocks", true},
		{"empty section", func() error {
			_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionBlocks(section("")))
			return err
		}, "invalid_blocks", true},
		{"update of a message never posted", func() error {
			_, _, _, err := client.UpdateMessageContext(ctx, "C1", "1763906400.999999", slackapi.MsgOptionText("x", false))
			return err
		}, "message_not_found", false},
		{"update in another channel", func() error {
			_, _, _, err := client.UpdateMessageContext(ctx, "C2", parentTS, slackapi.MsgOptionText("x", false))
			return err
		}, "message_not_found", false},
		{"ephemeral for nobody", func() error {
			_, err := client.PostEphemeralContext(ctx, "C1", "", slackapi.MsgOptionText("x", false))
			return err
		}, "user_not_in_channel", true},
		{"a modal published", func() error {
			_, err := client.PublishViewContext(ctx, slackapi.PublishViewContextRequest{UserID: "U1",
				View: slackapi.HomeTabViewRequest{Type: slackapi.VTModal, Blocks: slackapi.Blocks{BlockSet: []slackapi.Block{section("x")}}}})
			return err
		}, "invalid_arguments", true},
		{"an unknown user group", func() error {
			_, err := client.GetUserGroupMembersContext(ctx, "S404")
			return err
		}, "no_such_subteam", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var se slackapi.SlackErrorResponse
			if !errors.As(err, &se) && (err == nil || err.Error() != tc.code) {
				t.Fatalf("err = %v, want Slack's %s", err, tc.code)
			}
			if se.Err != "" && se.Err != tc.code {
				t.Errorf("error %s, want %s", se.Err, tc.code)
			}
			if got := rec.take(); (len(got) > 0) != tc.reported {
				t.Errorf("reported %q; want reported: %v", got, tc.reported)
			}
		})
	}
	if n := len(s.Calls()); n != 1 {
		t.Errorf("%d calls recorded, want the one accepted: %v", n, s.Calls())
	}
}

// Accepted messages are recorded as Slack shows them: posts get a ts,
// updates change what the message shows, ephemeral messages are for one
// person.
func TestRecordsMessages(t *testing.T) {
	s := New(t)
	ctx := t.Context()
	client := s.Client()
	_, parent, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("parent", false))
	if err != nil {
		t.Fatal(err)
	}
	_, reply, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("reply", false),
		slackapi.MsgOptionBlocks(section("*checklist*"), button("Approve", "ns#7")), slackapi.MsgOptionTS(parent))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := client.UpdateMessageContext(ctx, "C1", reply, slackapi.MsgOptionText("updated", false),
		slackapi.MsgOptionBlocks(section("*done*"))); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PostEphemeralContext(ctx, "C1", "U1", slackapi.MsgOptionText("for you", false), slackapi.MsgOptionTS(parent)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range s.Calls() {
		got = append(got, fmt.Sprintf("%s %s %s user=%s thread=%s", c.Method, c.Channel, c.Text, c.User, c.ThreadTS))
	}
	want := []string{
		"chat.postMessage C1 parent user= thread=",
		"chat.postMessage C1 reply user= thread=" + parent,
		"chat.update C1 updated user= thread=" + parent,
		"chat.postEphemeral C1 for you user=U1 thread=" + parent,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if parent == reply || s.CallsTo("chat.postEphemeral")[0].TS == reply {
		t.Errorf("the same ts handed out twice: %s %s", parent, reply)
	}
	if c, ok := s.Latest(reply); !ok || c.Text != "updated" || len(c.BlockSet()) != 1 {
		t.Errorf("latest of the reply: %+v %v", c, ok)
	}
	if ups := s.UpdatesOf(reply); len(ups) != 1 || !strings.Contains(ups[0].String(), "*done*") {
		t.Errorf("updates of the reply: %v", ups)
	}
	if tries, fails := s.Counts("chat.postMessage"); tries != 2 || fails != 0 {
		t.Errorf("chat.postMessage: %d tries, %d failed", tries, fails)
	}
}

// Faults fail calls as Slack and its edge do, and slack-go sees them as
// it would see Slack's.
func TestFaults(t *testing.T) {
	s := New(t)
	ctx := t.Context()
	client := s.Client()
	var (
		mu   sync.Mutex
		seen []Attempt
	)
	s.SetFault(func(a Attempt) *Fault {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, a)
		switch a.N {
		case 1:
			return RateLimited(2 * time.Second)
		case 2:
			return HTTPError(http.StatusServiceUnavailable)
		case 3:
			return Error("channel_not_found")
		}
		return nil
	})
	_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("x", false))
	var rl *slackapi.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("first call: %v, want rate limited for 2s", err)
	}
	_, _, err = client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("x", false))
	var sc slackapi.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != http.StatusServiceUnavailable {
		t.Errorf("second call: %v, want a 503", err)
	}
	_, _, err = client.PostMessageContext(ctx, "C2", slackapi.MsgOptionText("x", false))
	var se slackapi.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "channel_not_found" {
		t.Errorf("third call: %v, want channel_not_found", err)
	}
	if _, err := client.PublishViewContext(ctx, slackapi.PublishViewContextRequest{UserID: "U1",
		View: slackapi.HomeTabViewRequest{Type: slackapi.VTHomeTab, Blocks: slackapi.Blocks{BlockSet: []slackapi.Block{section("home")}}}}); err != nil {
		t.Errorf("fourth call: %v", err)
	}
	if tries, fails := s.Counts("chat.postMessage"); tries != 3 || fails != 3 {
		t.Errorf("chat.postMessage: %d tries, %d failed; want 3, 3", tries, fails)
	}
	want := []Attempt{{"chat.postMessage", 1, 1, "C1"}, {"chat.postMessage", 2, 2, "C1"}, {"chat.postMessage", 3, 3, "C2"}, {"views.publish", 1, 4, ""}}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("attempts %v, want %v", seen, want)
	}
	if c := s.Calls(); len(c) != 1 || c[0].Method != "views.publish" || c[0].User != "U1" || !strings.Contains(c[0].View, `"type":"home"`) {
		t.Errorf("calls %v, want the view published", c)
	}

	// A hanging Slack holds calls until released, or until the caller gives up.
	s.SetFault(nil)
	release := make(chan struct{})
	s.SetHang(release)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := client.PostMessageContext(short, "C1", slackapi.MsgOptionText("x", false)); err == nil {
		t.Error("a call to a hanging Slack returned without error before its deadline")
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := client.PostMessageContext(ctx, "C1", slackapi.MsgOptionText("late", false))
		done <- err
	}()
	close(release)
	if err := <-done; err != nil {
		t.Errorf("after the release: %v", err)
	}
}

// response_url takes ephemeral answers; replacing the message clicked fails the test.
func TestHooks(t *testing.T) {
	rec := &recorder{TB: t}
	s := New(rec)
	ctx := t.Context()
	if err := slackapi.PostWebhookContext(ctx, s.HookURL("commands/1"), &slackapi.WebhookMessage{ResponseType: "ephemeral", Text: "Started deploy #7 of ns."}); err != nil {
		t.Fatal(err)
	}
	c := s.Calls()[0]
	c.At = time.Time{}
	if want := (Call{Method: "response_url", Hook: "commands/1", ResponseType: "ephemeral", Text: "Started deploy #7 of ns."}); c != want {
		t.Errorf("call %+v, want %+v", c, want)
	}
	if err := slackapi.PostWebhookContext(ctx, s.HookURL("actions/1"), &slackapi.WebhookMessage{ReplaceOriginal: true, Text: "x"}); err == nil {
		t.Error("replace_original accepted")
	}
	if err := slackapi.PostWebhookContext(ctx, s.HookURL("actions/2"), &slackapi.WebhookMessage{}); err == nil {
		t.Error("an empty message accepted")
	}
	if got := rec.take(); len(got) != 2 {
		t.Errorf("reported %q, want the two refusals", got)
	}
	if n := len(s.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// Socket Mode: apps.connections.open with the app token names a WebSocket
// the test serves.
func TestSocketMode(t *testing.T) {
	s := New(t)
	served := make(chan int, 1)
	s.ServeSocket(func(_ *Server, n int, c *websocket.Conn) {
		served <- n
		_ = c.WriteMessage(websocket.TextMessage, []byte(Hello))
	})
	client := slackapi.New(BotToken, slackapi.OptionAPIURL(s.APIURL()), slackapi.OptionAppLevelToken(AppToken))
	_, wsURL, err := client.StartSocketModeContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, msg, err := conn.ReadMessage()
	if err != nil || string(msg) != Hello {
		t.Fatalf("read %q, %v; want hello", msg, err)
	}
	if n := <-served; n != 1 || s.Opens() != 1 {
		t.Errorf("connection #%d, %d opens; want the first of one", n, s.Opens())
	}
}

// Requests signed here pass slack-go's verifier, which greenlight uses;
// the payloads parse as slack-go parses Slack's.
func TestSignedRequestsVerify(t *testing.T) {
	for _, tc := range []struct {
		contentType, body string
		parse             func(r *http.Request) error
	}{
		{FormType, SlashCommand("U1", "C1", "ns --reason x", "http://127.0.0.1/hooks/1"), func(r *http.Request) error {
			cmd, err := slackapi.SlashCommandParse(r)
			if err == nil && (cmd.UserID != "U1" || cmd.ChannelID != "C1" || cmd.Text != "ns --reason x" || cmd.Command != "/deploy") {
				err = fmt.Errorf("parsed %+v", cmd)
			}
			return err
		}},
		{FormType, BlockActionsForm("U1", "C1", "approve", "ns#7", "http://127.0.0.1/hooks/2"), func(r *http.Request) error {
			ic, err := slackapi.InteractionCallbackParse(r)
			if err == nil && (ic.Type != slackapi.InteractionTypeBlockActions || ic.User.ID != "U1" || ic.Channel.ID != "C1" ||
				len(ic.ActionCallback.BlockActions) != 1 || ic.ActionCallback.BlockActions[0].Value != "ns#7") {
				err = fmt.Errorf("parsed %+v", ic)
			}
			return err
		}},
		{JSONType, AppMention("Ev1", "U1", "C1", "<@U0BOT> status", "1700000000.000100"), nil},
	} {
		req := Signed(t, "http://127.0.0.1/slack", tc.contentType, tc.body)
		sv, err := slackapi.NewSecretsVerifier(req.Header, SigningSecret)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = sv.Write([]byte(tc.body))
		if err := sv.Ensure(); err != nil {
			t.Errorf("%s: signature refused: %v", tc.body[:20], err)
		}
		if tc.parse != nil {
			if err := tc.parse(req); err != nil {
				t.Errorf("%s: %v", tc.body[:20], err)
			}
		}
	}
	stale := SignedAt(t, time.Now().Add(-6*time.Minute), "http://127.0.0.1/slack", FormType, "x=1")
	if _, err := slackapi.NewSecretsVerifier(stale.Header, SigningSecret); err == nil {
		t.Error("a request signed six minutes ago passed")
	}
}
