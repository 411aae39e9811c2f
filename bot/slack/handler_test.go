package slack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
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

// fakeDeployer records what the router asked of it; deploy and approve can
// be replaced (to block, or to refuse).
type fakeDeployer struct {
	mu      sync.Mutex
	calls   []string
	deploy  func(deployer.Request) (deployer.Deployment, error)
	approve func(service string, id uint64, user string) (deployer.Deployment, error)
}

var _ bot.Deployer = (*fakeDeployer)(nil)

func (f *fakeDeployer) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns what was asked so far.
func (f *fakeDeployer) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeDeployer) Services() []string { return []string{"ns"} }
func (f *fakeDeployer) Deploy(_ context.Context, r deployer.Request) (deployer.Deployment, error) {
	if r.Options.Image != "" {
		f.record("deploy %s --image %s by %s in %s: %s", r.Service, r.Options.Image, r.User, r.Refs[deployer.RefChannel], r.Reason)
	} else {
		f.record("deploy %s by %s in %s: %s", r.Service, r.User, r.Refs[deployer.RefChannel], r.Reason)
	}
	if f.deploy != nil {
		return f.deploy(r)
	}
	return deployer.Deployment{ID: 7, Service: r.Service}, nil
}
func (f *fakeDeployer) Approve(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.record("approve %s#%d by %s", s, id, u)
	if f.approve != nil {
		return f.approve(s, id, u)
	}
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Abort(_ context.Context, s string, id uint64, u, _ string) (deployer.Deployment, error) {
	f.record("abort %s#%d by %s", s, id, u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Rollback(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.record("rollback %s#%d by %s", s, id, u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Retire(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.record("retire %s#%d by %s", s, id, u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Freeze(_ context.Context, req deployer.FreezeRequest) (deployer.Freeze, error) {
	f.record("freeze %s by %s", req.Service, req.User)
	return deployer.Freeze{Service: req.Service, Reason: req.Reason, End: req.Until, By: req.User}, nil
}
func (f *fakeDeployer) Unfreeze(_ context.Context, s, u string) (deployer.Freeze, error) {
	f.record("unfreeze %s by %s", s, u)
	return deployer.Freeze{Service: s, By: "ops", Reason: "r"}, nil
}
func (f *fakeDeployer) Lock(_ context.Context, s, u, r string) (deployer.Lock, error) {
	f.record("lock %s by %s", s, u)
	return deployer.Lock{Service: s, Holder: u, Reason: r}, nil
}
func (f *fakeDeployer) Unlock(_ context.Context, s, u string, _ bool) (deployer.Lock, error) {
	f.record("unlock %s by %s", s, u)
	return deployer.Lock{Service: s, Holder: u}, nil
}
func (f *fakeDeployer) Resolve(_ context.Context, s string, id uint64, u string, to deployer.TrafficTarget) (deployer.Deployment, error) {
	f.record("resolve %s #%d --to %s by %s", s, id, to, u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Status(_ context.Context, s string) (deployer.Status, error) {
	f.record("status %s", s)
	return deployer.Status{Service: s}, nil
}
func (f *fakeDeployer) History(context.Context, string, int) ([]deployer.Deployment, error) {
	return nil, nil
}
func (f *fakeDeployer) Deployment(_ context.Context, id uint64) (deployer.Deployment, error) {
	return deployer.Deployment{}, &deployer.NotFoundError{What: fmt.Sprintf("deployment #%d", id)}
}
func (f *fakeDeployer) Now() time.Time { return time.Date(2026, 11, 23, 14, 3, 0, 0, time.UTC) }

type harness struct {
	a     *glslack.Adapter
	d     *fakeDeployer
	slack *slacktest.Server
	base  string       // http://127.0.0.1:port
	stop  func() error // ends Run's context and waits for it to return
}

// setup is what a test changes in the adapter it starts.
type setup struct {
	policies map[string]bot.Policy
	config   func(*glslack.Config)
	onHome   func(ctx context.Context, user string)
	socket   func(f *slacktest.Server, n int, c *websocket.Conn) // Socket Mode: serves the n-th WebSocket connection
	observer bot.ChatObserver
}

// start runs an adapter over a router over d, against a fake Slack, in
// HTTP mode on a loopback port unless s.config says otherwise.
func start(t testing.TB, d *fakeDeployer, s setup) *harness {
	t.Helper()
	fs := slacktest.New(t)
	if s.socket != nil {
		fs.ServeSocket(s.socket)
	}
	cfg := glslack.Config{Mode: "http", Listen: "127.0.0.1:0", Channel: "C_OPS", APIURL: fs.APIURL(),
		BotToken: slacktest.BotToken, SigningSecret: slacktest.SigningSecret}
	if s.config != nil {
		s.config(&cfg)
	}
	var log *slog.Logger
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tt.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	router := &bot.Router{Deployer: d, Auth: &bot.Authorizer{Policies: s.policies}}
	a, err := glslack.New(cfg, glslack.Dependencies{Router: router, Log: log, Observer: s.observer})
	if err != nil {
		t.Fatal(err)
	}
	a.OnHomeOpened = s.onHome
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("Run did not return after its context ended")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h := &harness{a: a, d: d, slack: fs, stop: stop}
	if cfg.Mode == "http" {
		eventually.True(t, "the HTTP server", func() bool { return a.Addr() != nil })
		h.base = "http://" + a.Addr().String()
	}
	return h
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// untimed is c without the moment Slack received it, to compare whole calls.
func untimed(c slacktest.Call) slacktest.Call {
	c.At = time.Time{}
	return c
}

func TestSlashCommandIsAcknowledgedThenAnsweredEphemerally(t *testing.T) {
	d := &fakeDeployer{}
	h := start(t, d, setup{})

	// With a response_url: the answer goes there, ephemeral.
	code, body := do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType,
		slacktest.SlashCommand("U_ALICE", "C_OPS", "ns --reason 'new image'", h.slack.HookURL("commands/1"))))
	if code != http.StatusOK || body != "" {
		t.Fatalf("ack: %d %q, want an empty 200", code, body)
	}
	eventually.True(t, "the answer on response_url", func() bool { return len(h.slack.Calls()) == 1 })
	got := h.slack.Calls()[0]
	want := slacktest.Call{Method: "response_url", Hook: "commands/1", ResponseType: "ephemeral", Text: "Started deploy #7 of ns."}
	if untimed(got) != want {
		t.Errorf("answer %+v, want %+v", got, want)
	}
	if calls := d.Calls(); !slices.Equal(calls, []string{"deploy ns by U_ALICE in C_OPS: new image"}) {
		t.Errorf("deployer calls %q", calls)
	}

	// Without one: chat.postEphemeral to the person in the channel.
	code, _ = do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "status ns", "")))
	if code != http.StatusOK {
		t.Fatalf("ack: %d", code)
	}
	eventually.True(t, "chat.postEphemeral", func() bool { return len(h.slack.Calls()) == 2 })
	got = h.slack.Calls()[1]
	if got.Method != "chat.postEphemeral" || got.Channel != "C_OPS" || got.User != "U_ALICE" || !strings.HasPrefix(got.Text, "ns: no live set yet") {
		t.Errorf("answer %+v", got)
	}

	// A mistyped command gets usage, marked as an error, and echoed input is escaped.
	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "stauts <!channel>", h.slack.HookURL("commands/3"))))
	eventually.True(t, "the usage answer", func() bool { return len(h.slack.Calls()) == 3 })
	got = h.slack.Calls()[2]
	if !strings.HasPrefix(got.Text, ":x: ") || !strings.Contains(got.Text, "did you mean status?") || strings.Contains(got.Text, "<!channel>") {
		t.Errorf("usage answer %q", got.Text)
	}
}

func TestButtonClicks(t *testing.T) {
	d := &fakeDeployer{approve: func(s string, id uint64, u string) (deployer.Deployment, error) {
		if u == "U_CAROL" {
			return deployer.Deployment{}, deployer.Errorf(deployer.CodeConflict, "deploy #%d was already approved by U_BOB at 14:03", id)
		}
		return deployer.Deployment{ID: id, Service: s}, nil
	}}
	policies := map[string]bot.Policy{"ns": {Approvers: []string{"U_BOB", "U_CAROL"}}}
	h := start(t, d, setup{policies: policies})

	tests := []struct {
		user, action, value string
		wantCall            string // "" = the deployer is not asked
		wantText            string
	}{
		{"U_BOB", bot.ActionApprove, "ns#7", "approve ns#7 by U_BOB", ":white_check_mark: Approved deploy #7 of ns; switching traffic."},
		{"U_CAROL", bot.ActionApprove, "ns#7", "approve ns#7 by U_CAROL", ":x: deploy #7 was already approved by U_BOB at 14:03"},
		{"U_MALLORY", bot.ActionApprove, "ns#7", "", ":x: not allowed: you are not among the approvers of ns"},
		{"U_BOB", bot.ActionAbort, "ns#7", "abort ns#7 by U_BOB", ":warning: Aborting deploy #7 of ns."},
		{"U_BOB", bot.ActionRollback, "ns#x", "", ":x: malformed deploy number in button value \"ns#x\""},
	}
	for i, tc := range tests {
		before := len(d.Calls())
		hook := fmt.Sprintf("actions/%d", i)
		code, body := do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType,
			slacktest.BlockActionsForm(tc.user, "C_OPS", tc.action, tc.value, h.slack.HookURL(hook))))
		if code != http.StatusOK || body != "" {
			t.Fatalf("%d: ack %d %q, want an empty 200", i, code, body)
		}
		eventually.True(t, "the click's answer", func() bool { return len(h.slack.Calls()) == i+1 })
		got := h.slack.Calls()[i]
		want := slacktest.Call{Method: "response_url", Hook: hook, ResponseType: "ephemeral", Text: tc.wantText}
		if untimed(got) != want {
			t.Errorf("%d: answer %+v, want %+v", i, got, want)
		}
		calls := d.Calls()[before:]
		if (tc.wantCall == "" && len(calls) != 0) || (tc.wantCall != "" && !slices.Equal(calls, []string{tc.wantCall})) {
			t.Errorf("%d: deployer calls %q, want %q", i, calls, tc.wantCall)
		}
	}
}

func TestClickInAppHomeAnswersByDirectMessage(t *testing.T) {
	d := &fakeDeployer{}
	h := start(t, d, setup{})
	payload := strings.Replace(slacktest.BlockActions("U_BOB", "", bot.ActionApprove, "ns#7", ""),
		`"channel":{"id":"","name":"ops"}`, `"view":{"id":"V1","type":"home"}`, 1)
	code, _ := do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType, url.Values{"payload": {payload}}.Encode()))
	if code != http.StatusOK {
		t.Fatalf("ack %d", code)
	}
	eventually.True(t, "the direct message", func() bool { return len(h.slack.Calls()) == 1 })
	if got := h.slack.Calls()[0]; got.Method != "chat.postMessage" || got.Channel != "U_BOB" || !strings.Contains(got.Text, "Approved deploy #7") {
		t.Errorf("answer %+v", got)
	}
}

func TestRefusedRequestsChangeNothing(t *testing.T) {
	d := &fakeDeployer{}
	h := start(t, d, setup{config: func(c *glslack.Config) { c.Workers = 1 }})
	command := slacktest.SlashCommand("U_EVE", "C_OPS", "ns", h.slack.HookURL("evil"))
	click := slacktest.BlockActionsForm("U_EVE", "C_OPS", bot.ActionApprove, "ns#7", h.slack.HookURL("evil"))
	mention := slacktest.AppMention("Ev_EVIL", "U_EVE", "C_OPS", "<@U0BOT> ns", "1700000000.000300")
	big := slacktest.SlashCommand("U_EVE", "C_OPS", "ns --reason "+strings.Repeat("x", 1<<20), "")

	now := time.Now().Unix()
	stale := strconv.FormatInt(now-6*60, 10)
	tests := []struct {
		name, path, ctype, body string
		edit                    func(r *http.Request)
		want                    int
	}{
		{"unsigned command", "/slack/commands", slacktest.FormType, command, func(r *http.Request) {
			r.Header.Del("X-Slack-Signature")
			r.Header.Del("X-Slack-Request-Timestamp")
		}, 401},
		{"no timestamp", "/slack/commands", slacktest.FormType, command, func(r *http.Request) { r.Header.Del("X-Slack-Request-Timestamp") }, 401},
		{"forged signature", "/slack/commands", slacktest.FormType, command, func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", slacktest.Sign("not-the-secret", now, command))
		}, 401},
		{"garbage signature", "/slack/commands", slacktest.FormType, command, func(r *http.Request) { r.Header.Set("X-Slack-Signature", "v0=zz") }, 401},
		{"stale, correctly signed", "/slack/commands", slacktest.FormType, command, func(r *http.Request) {
			r.Header.Set("X-Slack-Request-Timestamp", stale)
			r.Header.Set("X-Slack-Signature", slacktest.Sign(slacktest.SigningSecret, now-6*60, command))
		}, 401},
		{"signature of another body", "/slack/interactions", slacktest.FormType, click, func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", slacktest.Sign(slacktest.SigningSecret, now, slacktest.BlockActionsForm("U_BOB", "C_OPS", bot.ActionApprove, "ns#7", "")))
		}, 401},
		{"forged click", "/slack/interactions", slacktest.FormType, click, func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", slacktest.Sign("not-the-secret", now, click))
		}, 401},
		{"forged mention", "/slack/events", slacktest.JSONType, mention, func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", slacktest.Sign("not-the-secret", now, mention))
		}, 401},
		{"unsigned url_verification", "/slack/events", slacktest.JSONType, `{"token":"x","challenge":"c","type":"url_verification"}`,
			func(r *http.Request) { r.Header.Del("X-Slack-Signature") }, 401},
		{"oversized, correctly signed", "/slack/commands", slacktest.FormType, big, nil, 413},
		{"oversized without a length", "/slack/commands", slacktest.FormType, big, func(r *http.Request) {
			r.ContentLength = -1 // chunked: the limit is found while reading
			r.Body = io.NopCloser(strings.NewReader(big))
		}, 413},
		{"not POST", "/slack/commands", slacktest.FormType, command, func(r *http.Request) { r.Method = http.MethodGet }, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := slacktest.Signed(t, h.base+tc.path, tc.ctype, tc.body)
			if tc.edit != nil {
				tc.edit(req)
			}
			if code, body := do(t, req); code != tc.want {
				t.Errorf("status %d (%q), want %d", code, body, tc.want)
			}
		})
	}

	// One good command through the single worker: when its answer is back,
	// anything queued before it has run too. Only it reached the deployer.
	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "ns", h.slack.HookURL("good"))))
	eventually.True(t, "the good command's answer", func() bool { return len(h.slack.Calls()) > 0 })
	if calls := d.Calls(); !slices.Equal(calls, []string{"deploy ns by U_ALICE in C_OPS: "}) {
		t.Errorf("deployer calls %q, want only the good command", calls)
	}
	if calls := h.slack.Calls(); len(calls) != 1 || calls[0].Hook != "good" {
		t.Errorf("Slack calls %+v, want only the good command's answer", calls)
	}
}

func TestURLVerification(t *testing.T) {
	h := start(t, &fakeDeployer{}, setup{})
	challenge := "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
	code, body := do(t, slacktest.Signed(t, h.base+"/slack/events", slacktest.JSONType,
		`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"`+challenge+`","type":"url_verification"}`))
	if code != http.StatusOK || body != challenge {
		t.Fatalf("got %d %q, want 200 with the challenge", code, body)
	}
}

func TestMentionAnswersInItsThread(t *testing.T) {
	d := &fakeDeployer{}
	homes := make(chan string, 1)
	h := start(t, d, setup{onHome: func(_ context.Context, user string) { homes <- user }})
	post := func(body string) {
		t.Helper()
		if code, resp := do(t, slacktest.Signed(t, h.base+"/slack/events", slacktest.JSONType, body)); code != http.StatusOK || resp != "" {
			t.Fatalf("ack %d %q", code, resp)
		}
	}
	post(slacktest.AppMention("Ev01", "U_ALICE", "C_OPS", "<@U0BOT> status ns", "1700000000.000300"))
	eventually.True(t, "the thread reply", func() bool { return len(h.slack.Calls()) == 1 })
	got := h.slack.Calls()[0]
	if got.Method != "chat.postMessage" || got.Channel != "C_OPS" || got.ThreadTS != "1700000000.000300" ||
		!strings.HasPrefix(got.Text, "<@U_ALICE> ns: no live set yet") {
		t.Errorf("reply %+v", got)
	}

	// Slack retrying the same event does not run it again; a mention inside
	// a thread is answered in that thread; &amp; is the parser's &.
	post(slacktest.AppMention("Ev01", "U_ALICE", "C_OPS", "<@U0BOT> status ns", "1700000000.000300"))
	threaded := strings.Replace(slacktest.AppMention("Ev02", "U_ALICE", "C_OPS", "lock ns --reason a&amp;b <@U0BOT>", "1700000000.000400"),
		`"event_ts"`, `"thread_ts":"1700000000.000100","event_ts"`, 1)
	post(threaded)
	eventually.True(t, "the second reply", func() bool { return len(h.slack.Calls()) == 2 })
	got = h.slack.Calls()[1]
	if got.ThreadTS != "1700000000.000100" || !strings.Contains(got.Text, "ns is locked by U_ALICE") {
		t.Errorf("reply %+v", got)
	}
	if calls := d.Calls(); !slices.Equal(calls, []string{"status ns", "lock ns by U_ALICE"}) {
		t.Errorf("deployer calls %q", calls)
	}

	post(`{"token":"x","team_id":"T0001","api_app_id":"A0GREENLIT","type":"event_callback","event_id":"Ev03","event_time":1700000000,
 "event":{"type":"app_home_opened","user":"U_ALICE","channel":"D0001","tab":"home","event_ts":"1700000000.000500"}}`)
	select {
	case u := <-homes:
		if u != "U_ALICE" {
			t.Errorf("home opened for %q", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnHomeOpened was not called")
	}
	// An event type greenlight does not know is acknowledged and ignored.
	post(`{"token":"x","team_id":"T0001","type":"event_callback","event_id":"Ev04","event":{"type":"brand_new_event","user":"U1"}}`)
}

func TestFullQueueAnswersBusy(t *testing.T) {
	release := make(chan struct{})
	d := &fakeDeployer{deploy: func(r deployer.Request) (deployer.Deployment, error) {
		<-release
		return deployer.Deployment{ID: 7, Service: r.Service}, nil
	}}
	h := start(t, d, setup{config: func(c *glslack.Config) { c.Workers, c.QueueSize = 1, 1 }})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "ns", h.slack.HookURL("first"))))
	eventually.True(t, "the worker to be busy", func() bool { return len(d.Calls()) == 1 })
	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "status ns", h.slack.HookURL("queued"))))

	// The queue is full: a command is told so in its acknowledgement...
	code, body := do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_BOB", "C_OPS", "status ns", h.slack.HookURL("third"))))
	if code != http.StatusOK || !strings.Contains(body, `"response_type":"ephemeral"`) || !strings.Contains(body, "greenlight is busy, try again in a moment") {
		t.Errorf("busy ack %d %q", code, body)
	}
	// ...and a click, whose acknowledgement cannot carry text, on its response_url.
	code, _ = do(t, slacktest.Signed(t, h.base+"/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U_BOB", "C_OPS", bot.ActionApprove, "ns#7", h.slack.HookURL("click"))))
	if code != http.StatusOK {
		t.Errorf("click ack %d", code)
	}
	eventually.True(t, "the busy notice", func() bool { return len(h.slack.Calls()) == 1 })
	if got := h.slack.Calls()[0]; got.Hook != "click" || got.ResponseType != "ephemeral" || !strings.Contains(got.Text, "greenlight is busy") {
		t.Errorf("busy notice %+v", got)
	}

	close(release)
	eventually.True(t, "the queued command", func() bool { return len(h.slack.Calls()) == 3 })
	var hooks []string
	for _, c := range h.slack.Calls() {
		hooks = append(hooks, c.Hook)
	}
	if want := []string{"click", "first", "queued"}; !slices.Equal(hooks, want) {
		t.Errorf("answers to %q, want %q", hooks, want)
	}
	if calls := d.Calls(); !slices.Equal(calls, []string{"deploy ns by U_ALICE in C_OPS: ", "status ns"}) {
		t.Errorf("deployer calls %q: the refused ones must not run", calls)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	router := &bot.Router{Deployer: &fakeDeployer{}}
	tests := []struct {
		cfg  glslack.Config
		want string
	}{
		{glslack.Config{BotToken: "xoxb-1"}, "SLACK_APP_TOKEN"},
		{glslack.Config{Mode: "http", Listen: "127.0.0.1:0", BotToken: "xoxb-1"}, "SLACK_SIGNING_SECRET"},
		{glslack.Config{AppToken: "xapp-1"}, "SLACK_BOT_TOKEN"},
	}
	for _, tc := range tests {
		if _, err := glslack.New(tc.cfg, glslack.Dependencies{Router: router}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := glslack.New(glslack.Config{AppToken: "xapp-1", BotToken: "xoxb-1"}, glslack.Dependencies{}); err == nil {
		t.Error("New without a router succeeded")
	}
}

func TestRunStopsWhenListenFails(t *testing.T) {
	a, err := glslack.New(glslack.Config{Mode: "http", Listen: "127.0.0.1:-1", BotToken: "xoxb-1", SigningSecret: "s"},
		glslack.Dependencies{Router: &bot.Router{Deployer: &fakeDeployer{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "slack http mode") {
		t.Fatalf("Run: %v, want the listen error", err)
	}
}

func TestShutdownFinishesAcknowledgedWork(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	d := &fakeDeployer{deploy: func(r deployer.Request) (deployer.Deployment, error) {
		<-release
		return deployer.Deployment{ID: 7, Service: r.Service}, nil
	}}
	h := start(t, d, setup{config: func(c *glslack.Config) { c.Workers = 1 }})
	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_ALICE", "C_OPS", "ns", h.slack.HookURL("running"))))
	eventually.True(t, "the worker to be busy", func() bool { return len(d.Calls()) == 1 })
	do(t, slacktest.Signed(t, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_BOB", "C_OPS", "status ns", h.slack.HookURL("queued"))))

	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	// The listener closes; the two acknowledged commands are still owed answers.
	eventually.True(t, "the listener to close", func() bool {
		_, err := http.Post(h.base+"/slack/commands", slacktest.FormType, strings.NewReader(""))
		return err != nil
	})
	once.Do(func() { close(release) })
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	var hooks []string
	for _, c := range h.slack.Calls() {
		hooks = append(hooks, c.Hook)
	}
	if !slices.Equal(hooks, []string{"running", "queued"}) {
		t.Errorf("answers to %q, want both acknowledged commands answered", hooks)
	}

	// After Run, the handler still refuses to take work it could not do.
	code, body := do(t, slacktest.Signed(t, httptestURL(t, h.a.HTTPHandler())+"/slack/commands", slacktest.FormType, slacktest.SlashCommand("U_BOB", "C_OPS", "status ns", "")))
	if code != http.StatusOK || !strings.Contains(body, "greenlight is shutting down") {
		t.Errorf("after Run: %d %q", code, body)
	}
}

// httptestURL serves h on a loopback port for the rest of the test.
func httptestURL(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
