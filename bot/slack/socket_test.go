package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlight/greenlight/bot"
	glslack "github.com/greenlight/greenlight/bot/slack"
	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// ack is an acknowledgement greenlight sent over a Socket Mode connection.
type ack struct {
	Conn       int             `json:"-"`
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

func socketMode(c *glslack.Config) {
	c.Mode, c.AppToken, c.SigningSecret, c.Listen = "socket", slacktest.AppToken, "", ""
}

// socketScript serves Socket Mode connections: it writes each message of
// the n-th script ("{hooks}/" becomes the fake's response_url prefix), and
// after an envelope greenlight must acknowledge, reads the ack and reports
// it. A script ending in "" keeps its connection open until the client
// leaves; one that ends otherwise closes it.
type socketScript struct {
	t       testing.TB
	scripts [][]string
	acks    chan ack
	gate    chan struct{} // a "{gate}" message waits for it to close
}

func (s *socketScript) serve(f *slacktest.Server, n int, c *websocket.Conn) {
	if n > len(s.scripts) {
		s.t.Errorf("unexpected Socket Mode connection #%d", n)
		return
	}
	for _, msg := range s.scripts[n-1] {
		if msg == "" {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}
		if msg == "{gate}" {
			select {
			case <-s.gate:
			case <-time.After(10 * time.Second):
				s.t.Errorf("connection #%d: the gate never opened", n)
				return
			}
			continue
		}
		msg = strings.ReplaceAll(msg, "{hooks}/", f.HookURL(""))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			s.t.Errorf("connection #%d: write: %v", n, err)
			return
		}
		var env struct {
			EnvelopeID string `json:"envelope_id"`
			Type       string `json:"type"`
		}
		_ = json.Unmarshal([]byte(msg), &env)
		if env.EnvelopeID == "" || !slices.Contains([]string{"slash_commands", "interactive", "events_api"}, env.Type) {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var a ack
		if err := c.ReadJSON(&a); err != nil {
			s.t.Errorf("connection #%d: no ack for %s: %v", n, env.EnvelopeID, err)
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		a.Conn = n
		s.acks <- a
	}
}

// next returns the next ack, failing after 10 s.
func (s *socketScript) next(t *testing.T) ack {
	t.Helper()
	select {
	case a := <-s.acks:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no Socket Mode ack")
		return ack{}
	}
}

func TestSocketMode(t *testing.T) {
	clickAcked := make(chan struct{})
	d := &fakeDeployer{approve: func(s string, id uint64, u string) (deployer.Deployment, error) {
		select {
		case <-clickAcked: // the work waits for the ack: the ack did not wait for the work
			return deployer.Deployment{ID: id, Service: s}, nil
		case <-time.After(10 * time.Second):
			return deployer.Deployment{}, fmt.Errorf("the click was not acknowledged before its work")
		}
	}}
	script := &socketScript{t: t, acks: make(chan ack, 10), scripts: [][]string{
		{ // the first connection: one of each, then Slack asks for a reconnect
			slacktest.Hello,
			slacktest.Envelope("env-cmd-1", "slash_commands", slacktest.SlashCommandJSON("U_ALICE", "C_OPS", "ns --reason socket", "{hooks}/socket-cmd-1")),
			slacktest.Envelope("env-click-1", "interactive", slacktest.BlockActions("U_BOB", "C_OPS", bot.ActionApprove, "ns#7", "{hooks}/socket-click-1")),
			slacktest.Envelope("env-evt-1", "events_api", slacktest.AppMention("Ev01", "U_CAROL", "C_OPS", "<@U0BOT> status ns", "1700000000.000300")),
			`{"type":"from_the_future","envelope_id":"env-odd"}`,
			`{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-test"}}`,
		},
		{ // the second: the connection greenlight opened again by itself
			slacktest.Hello,
			slacktest.Envelope("env-cmd-2", "slash_commands", slacktest.SlashCommandJSON("U_ALICE", "C_OPS", "lock ns", "{hooks}/socket-cmd-2")),
			"",
		},
	}}
	obs := &recordingObserver{}
	h := start(t, d, setup{config: socketMode, socket: script.serve, observer: obs})

	var acks []string
	for range 4 {
		a := script.next(t)
		if a.EnvelopeID == "env-click-1" {
			close(clickAcked)
		}
		if len(a.Payload) != 0 && string(a.Payload) != "null" {
			t.Errorf("ack of %s carries %s, want no payload", a.EnvelopeID, a.Payload)
		}
		acks = append(acks, fmt.Sprintf("#%d %s", a.Conn, a.EnvelopeID))
	}
	if want := []string{"#1 env-cmd-1", "#1 env-click-1", "#1 env-evt-1", "#2 env-cmd-2"}; !slices.Equal(acks, want) {
		t.Errorf("acks %q, want %q", acks, want)
	}
	if n := h.slack.Opens(); n != 2 {
		t.Errorf("apps.connections.open called %d times, want 2 (one reconnect)", n)
	}

	eventually.True(t, "four answers", func() bool { return len(h.slack.Calls()) == 4 })
	answers := map[string]slacktest.Call{}
	for _, c := range h.slack.Calls() {
		key := c.Hook
		if c.Method != "response_url" {
			key = c.Method
		}
		answers[key] = c
	}
	for key, want := range map[string]string{
		"socket-cmd-1":     "Started deploy #7 of ns.",
		"socket-click-1":   ":white_check_mark: Approved deploy #7 of ns; switching traffic.",
		"socket-cmd-2":     "ns is locked by U_ALICE",
		"chat.postMessage": "<@U_CAROL> ns: no live set yet",
	} {
		got, ok := answers[key]
		if !ok || !strings.HasPrefix(got.Text, want) {
			t.Errorf("answer %s: %+v, want text starting %q", key, got, want)
		}
		if ok && got.Method == "response_url" && got.ResponseType != "ephemeral" {
			t.Errorf("answer %s is %q, want ephemeral", key, got.ResponseType)
		}
	}
	if m := answers["chat.postMessage"]; m.Channel != "C_OPS" || m.ThreadTS != "1700000000.000300" {
		t.Errorf("mention answered in %s/%s, want its thread C_OPS/1700000000.000300", m.Channel, m.ThreadTS)
	}
	calls := d.Calls()
	slices.Sort(calls)
	want := []string{"approve ns#7 by U_BOB", "deploy ns by U_ALICE in C_OPS: socket", "lock ns by U_ALICE", "status ns"}
	if !slices.Equal(calls, want) {
		t.Errorf("deployer calls %q, want %q", calls, want)
	}
	// Each acknowledged envelope was counted with its acknowledgement time,
	// and the connection was reported.
	requests, acked, connected := obs.snapshot()
	slices.Sort(requests)
	if want := []string{"slack click ok", "slack command ok", "slack command ok", "slack event ok"}; !slices.Equal(requests, want) || acked != 4 || !connected {
		t.Errorf("observed requests %q, %d acks, connected %v; want %q, 4, true", requests, acked, connected, want)
	}
}

func TestSocketModeBusyTravelsInTheAck(t *testing.T) {
	release, busy := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	d := &fakeDeployer{deploy: func(r deployer.Request) (deployer.Deployment, error) {
		close(busy) // called once: the other commands are status
		<-release
		return deployer.Deployment{ID: 7, Service: r.Service}, nil
	}}
	script := &socketScript{t: t, acks: make(chan ack, 10), gate: busy, scripts: [][]string{{
		slacktest.Hello,
		slacktest.Envelope("env-work", "slash_commands", slacktest.SlashCommandJSON("U_ALICE", "C_OPS", "ns", "{hooks}/work")),
		"{gate}", // the only worker is now busy
		slacktest.Envelope("env-queued", "slash_commands", slacktest.SlashCommandJSON("U_ALICE", "C_OPS", "status ns", "{hooks}/queued")),
		slacktest.Envelope("env-busy", "slash_commands", slacktest.SlashCommandJSON("U_BOB", "C_OPS", "status ns", "{hooks}/busy")),
		"",
	}}}
	h := start(t, d, setup{socket: script.serve, config: func(c *glslack.Config) {
		socketMode(c)
		c.Workers, c.QueueSize = 1, 1
	}})

	for _, want := range []struct{ id, payload string }{
		{"env-work", ""},
		{"env-queued", ""},
		{"env-busy", `{"response_type":"ephemeral","text":"greenlight is busy, try again in a moment"}`},
	} {
		a := script.next(t)
		got := string(a.Payload)
		if got == "null" {
			got = ""
		}
		if a.EnvelopeID != want.id || got != want.payload {
			t.Errorf("ack %s with %s, want %s with %q", a.EnvelopeID, got, want.id, want.payload)
		}
	}
	once.Do(func() { close(release) })
	eventually.True(t, "the two accepted commands' answers", func() bool { return len(h.slack.Calls()) == 2 })
	var hooks []string
	for _, c := range h.slack.Calls() {
		hooks = append(hooks, c.Hook)
	}
	if !slices.Equal(hooks, []string{"work", "queued"}) {
		t.Errorf("answers to %q, want work and queued", hooks)
	}
	if calls := d.Calls(); !slices.Equal(calls, []string{"deploy ns by U_ALICE in C_OPS: ", "status ns"}) {
		t.Errorf("deployer calls %q", calls)
	}
}

func TestSocketModeRefusedTokenStopsRun(t *testing.T) {
	fs := slacktest.New(t)
	a, err := glslack.New(glslack.Config{AppToken: "xapp-1-A0GREENLIT-revoked", BotToken: slacktest.BotToken, APIURL: fs.APIURL()},
		glslack.Dependencies{Router: &bot.Router{Deployer: &fakeDeployer{}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "invalid_auth") {
			t.Errorf("Run: %v, want invalid_auth", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going with a refused app token")
	}
}

// recordingObserver records what the adapter reports for the metrics.
type recordingObserver struct {
	mu        sync.Mutex
	requests  []string
	acks      int
	connected bool
}

func (o *recordingObserver) ChatRequest(adapter, kind, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, adapter+" "+kind+" "+result)
}

func (o *recordingObserver) ChatAck(adapter string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acks++
}

func (o *recordingObserver) ChatConnected(adapter string, up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connected = up
}

func (o *recordingObserver) snapshot() ([]string, int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.requests), o.acks, o.connected
}
