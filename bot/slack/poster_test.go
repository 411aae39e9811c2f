package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/logbuf"
)

const testToken = "xoxb-test-secret-0123456789"

// slackCall is one Web API call the fake Slack answered successfully.
type slackCall struct {
	Method   string
	Channel  string
	TS       string // posted: the new message's ts; updated: the message's
	ThreadTS string
	User     string
	Text     string
	Blocks   []slackapi.Block
	At       time.Time
}

// shown is the call's blocks as a person reads them.
func (c slackCall) shown(t *testing.T) string { return strings.Join(blockTexts(t, c.Blocks), "\n") }

func (c slackCall) hasActions() bool {
	for _, b := range c.Blocks {
		if _, ok := b.(*slackapi.ActionBlock); ok {
			return true
		}
	}
	return false
}

// fault is how the fake Slack fails a call.
type fault struct {
	status     int    // HTTP status; 0 = 200
	retryAfter string // Retry-After header
	err        string // Slack error code in an ok:false answer
}

// fakeSlack is slack-go's slacktest server with chat.postMessage,
// chat.update and chat.postEphemeral answered as Slack answers them, and
// recorded.
type fakeSlack struct {
	t      *testing.T
	client *slackapi.Client

	mu    sync.Mutex
	calls []slackCall    // answered ok
	tries map[string]int // every call, by method
	fails map[string]int // failed calls, by method
	ts    int            // the last ts handed out
	fault func(method string, try int, channel string) *fault
	hang  chan struct{} // when set, calls wait until it is closed
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t, tries: map[string]int{}, fails: map[string]int{}}
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
			c.Handle("/"+m, f.handler(m))
		}
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	f.client = slackapi.New(testToken, slackapi.OptionAPIURL(srv.GetAPIURL()))
	return f
}

func (f *fakeSlack) handler(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tries[method]++
		try, hang, faultFn := f.tries[method], f.hang, f.fault
		f.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if faultFn != nil {
			if fl := faultFn(method, try, r.Form.Get("channel")); fl != nil {
				f.mu.Lock()
				f.fails[method]++
				f.mu.Unlock()
				if fl.retryAfter != "" {
					w.Header().Set("Retry-After", fl.retryAfter)
				}
				if fl.status != 0 {
					w.WriteHeader(fl.status)
					fmt.Fprint(w, "<html>Slack is having trouble</html>")
					return
				}
				json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": fl.err})
				return
			}
		}
		c := slackCall{Method: method, Channel: r.Form.Get("channel"), ThreadTS: r.Form.Get("thread_ts"),
			User: r.Form.Get("user"), Text: r.Form.Get("text"), At: time.Now()}
		if raw := r.Form.Get("blocks"); raw != "" {
			var blocks slackapi.Blocks
			if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
				f.t.Errorf("%s: blocks do not decode: %v", method, err)
			}
			c.Blocks = blocks.BlockSet
		}
		f.mu.Lock()
		if method == "chat.update" {
			c.TS = r.Form.Get("ts")
		} else {
			f.ts++
			c.TS = fmt.Sprintf("1763906400.%06d", f.ts)
		}
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		answer := map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS, "text": c.Text}
		if method == "chat.postEphemeral" {
			answer = map[string]any{"ok": true, "message_ts": c.TS}
		}
		json.NewEncoder(w).Encode(answer)
	}
}

func (f *fakeSlack) setFault(fn func(method string, try int, channel string) *fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

// answered returns the successful calls, optionally of one method only.
func (f *fakeSlack) answered(method string) []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []slackCall
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSlack) counts(method string) (tries, fails int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[method], f.fails[method]
}

// updatesOf returns the chat.update calls of the message ts.
func (f *fakeSlack) updatesOf(ts string) []slackCall {
	var out []slackCall
	for _, c := range f.answered("chat.update") {
		if c.TS == ts {
			out = append(out, c)
		}
	}
	return out
}

// latest is what Slack shows for the message ts: its last update, or its post.
func (f *fakeSlack) latest(ts string) (slackCall, bool) {
	var last slackCall
	found := false
	for _, c := range f.answered("") {
		if c.TS == ts {
			last, found = c, true
		}
	}
	return last, found
}

// refStore is the deployer's SaveRefs: it merges refs into a deployment's.
type refStore struct {
	mu   sync.Mutex
	refs map[uint64]map[string]string
}

func (s *refStore) SaveRefs(_ context.Context, id uint64, refs map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == nil {
		s.refs = map[uint64]map[string]string{}
	}
	if s.refs[id] == nil {
		s.refs[id] = map[string]string{}
	}
	maps.Copy(s.refs[id], refs)
	return nil
}

func (s *refStore) get(id uint64) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.refs[id])
}

type testPoster struct {
	*Poster
	logs *logbuf.Buffer
	stop func() // cancels Run and waits for it (bounded)
}

// startPoster runs a Poster against f with test-sized backoffs.
func startPoster(t *testing.T, f *fakeSlack, cfg Config, refs RefSaver, setup ...func(*Poster)) testPoster {
	t.Helper()
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.BotToken = testToken
	p := NewPoster(f.client, cfg, refs, log)
	p.backoffMin, p.backoffMax, p.callTimeout = 10*time.Millisecond, 100*time.Millisecond, 2*time.Second
	for _, fn := range setup {
		fn(p)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of its context ending")
			}
			if strings.Contains(logs.String(), testToken) {
				t.Errorf("the bot token was logged:\n%s", logs.String())
			}
		})
	}
	t.Cleanup(stop)
	return testPoster{Poster: p, logs: logs, stop: stop}
}

var testNow = time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)

// testDeploy is deploy #7 of ns by U0ALICE1, asked for in C0DEPLOYS.
func testDeploy() deployer.Deployment {
	return deployer.Deployment{
		ID: 7, Service: "ns", Requester: "U0ALICE1", Reason: "monthly patches", ImageOld: "img-1", ImageNew: "img-2",
		Old:   []deployer.Server{{Name: "ns1-6"}, {Name: "ns2-6"}},
		Next:  []deployer.Server{{Name: "ns1-7"}, {Name: "ns2-7"}},
		Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning, Created: testNow,
		Refs: map[string]string{deployer.RefChannel: "C0DEPLOYS"},
	}
}

// step marks the steps before name done and name running, with detail.
func step(d deployer.Deployment, name deployer.StepName, detail string) deployer.Deployment {
	d = d.Clone()
	for i := range d.Steps {
		s := &d.Steps[i]
		switch {
		case s.Name == name:
			s.Status, s.Started, s.Detail = deployer.StatusRunning, testNow, detail
			return d
		default:
			s.Status, s.Started, s.Finished = deployer.StatusDone, testNow, testNow.Add(time.Second)
		}
	}
	return d
}

// send renders ev as the Notifier does and sends its messages to p.
func send(t *testing.T, p *Poster, ev deployer.Event) []bot.Message {
	t.Helper()
	n := &bot.Notifier{Now: func() time.Time { return testNow.Add(time.Minute) }}
	msgs := n.Messages(ev)
	for _, m := range msgs {
		if err := p.Send(t.Context(), m); err != nil {
			t.Fatalf("Send(%s): %v", m.Key, err)
		}
	}
	return msgs
}

func stepEvent(d deployer.Deployment) deployer.Event {
	return deployer.Event{Kind: deployer.EventStep, Deployment: d}
}

// The deploy thread: a parent in the deploy's channel, the checklist in its
// thread updated in place, replies in order, refs saved; announcements go
// to the configured channel.
func TestPosterDeployThread(t *testing.T) {
	f := newFakeSlack(t)
	refs := &refStore{}
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, refs)
	d := testDeploy()

	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	eventually.True(t, "the parent and the checklist", func() bool { return len(f.answered("chat.postMessage")) == 2 })
	posts := f.answered("chat.postMessage")
	parent, checklist := posts[0], posts[1]
	wantTitle := "Deploy #7 of ns by <@U0ALICE1>: img-1 → img-2 — monthly patches"
	if parent.Channel != "C0DEPLOYS" || parent.ThreadTS != "" || parent.Text != wantTitle || parent.shown(t) != "section: "+wantTitle {
		t.Errorf("parent = %+v, shown %q; want %q in C0DEPLOYS, top level", parent, parent.shown(t), wantTitle)
	}
	if checklist.Channel != "C0DEPLOYS" || checklist.ThreadTS != parent.TS {
		t.Errorf("checklist in %s thread %q, want C0DEPLOYS thread %s", checklist.Channel, checklist.ThreadTS, parent.TS)
	}
	if s := checklist.shown(t); !strings.Contains(s, ":hourglass_flowing_sand: *Take the deploy lock*") || !strings.Contains(s, ":white_circle: *Plan*") {
		t.Errorf("checklist shows:\n%s", s)
	}

	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "2 servers")))
	eventually.True(t, "the checklist updated in place", func() bool {
		c, _ := f.latest(checklist.TS)
		return c.Method == "chat.update" && strings.Contains(c.shown(t), ":hourglass_flowing_sand: *Create the next set* (1m0s) — 2 servers")
	})
	up := f.updatesOf(checklist.TS)[0]
	if up.Channel != "C0DEPLOYS" || !strings.Contains(up.shown(t), ":white_check_mark: *Take the deploy lock* (1s)") {
		t.Errorf("update in %s shows:\n%s", up.Channel, up.shown(t))
	}

	d2 := step(d, deployer.StepProvision, "")
	send(t, p.Poster, deployer.Event{Kind: deployer.EventProblem, Deployment: d2, Text: "provision failed: <ns1-7> exit 2"})
	send(t, p.Poster, deployer.Event{Kind: deployer.EventInfo, Deployment: d2, Text: "retrying provision"})
	eventually.True(t, "the replies", func() bool { return len(f.answered("chat.postMessage")) == 4 })
	posts = f.answered("chat.postMessage")
	for i, want := range []string{"section: :x: provision failed: &lt;ns1-7&gt; exit 2", "section: retrying provision"} {
		if c := posts[2+i]; c.ThreadTS != parent.TS || c.shown(t) != want {
			t.Errorf("reply %d in thread %q shows %q, want %q in %s", i, c.ThreadTS, c.shown(t), want, parent.TS)
		}
	}

	wantRefs := map[string]string{"slack.channel": "C0DEPLOYS", "slack.thread": parent.TS, "slack.ts.deploy-7/checklist": checklist.TS}
	eventually.True(t, "the refs saved", func() bool { return maps.Equal(refs.get(7), wantRefs) })

	ann := bot.Message{Level: bot.LevelSuccess, Text: "New golden image img-3 for ns",
		Actions: []bot.Action{{ID: bot.ActionDeployNow, Label: "Deploy now", Value: "ns image=img-3"}}}
	if err := p.Send(t.Context(), ann); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the announcement", func() bool { return len(f.answered("chat.postMessage")) == 5 })
	a := f.answered("chat.postMessage")[4]
	if a.Channel != "C0ANNOUNCE" || a.ThreadTS != "" || !a.hasActions() {
		t.Errorf("announcement = %+v", a)
	}
	if n := len(f.answered("chat.postEphemeral")); n != 0 {
		t.Errorf("%d ephemeral messages", n)
	}
}

// Many states in quick succession become few updates, never closer than
// UpdateInterval, and the last shows the last state.
func TestPosterCoalescesUpdates(t *testing.T) {
	f := newFakeSlack(t)
	const interval = 200 * time.Millisecond
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: interval}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the checklist", func() bool { return len(f.answered("chat.postMessage")) == 2 })
	ts := f.answered("chat.postMessage")[1].TS

	for i := range 20 {
		send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, fmt.Sprintf("state %d", i))))
	}
	eventually.True(t, "the last state", func() bool {
		c, _ := f.latest(ts)
		return strings.Contains(c.shown(t), "state 19")
	})
	ups := f.updatesOf(ts)
	if len(ups) > 3 {
		t.Errorf("%d updates for 20 states sent at once; want at most 3", len(ups))
	}
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].At.Sub(ups[i-1].At); gap < interval*9/10 {
			t.Errorf("updates %d and %d %v apart, interval %v", i-1, i, gap, interval)
		}
	}
	if n := len(f.answered("chat.postMessage")); n != 2 {
		t.Errorf("%d posts, want the parent and the checklist only", n)
	}
}

// Approve (primary) and Abort (danger, confirm) carry "ns#7"; after the
// decision the message is updated without buttons.
func TestPosterApprovalButtons(t *testing.T) {
	f := newFakeSlack(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := step(testDeploy(), deployer.StepApproval, "")
	d.Phase, d.ApprovalDeadline = deployer.PhaseAwaitingApproval, testNow.Add(30*time.Minute)
	d.Checks = []string{"ns1-7: example.test SOA serial 2026112301, AA, NSID ns1-7 (UDP, TCP)"}
	send(t, p.Poster, deployer.Event{Kind: deployer.EventApproval, Deployment: d})
	eventually.True(t, "the approval message", func() bool { return len(f.answered("chat.postMessage")) == 3 })
	posts := f.answered("chat.postMessage")
	approval := posts[2]
	if approval.ThreadTS != posts[0].TS {
		t.Errorf("approval in thread %q, want %s", approval.ThreadTS, posts[0].TS)
	}
	var buttons *slackapi.ActionBlock
	for _, b := range approval.Blocks {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			buttons = ab
		}
	}
	if buttons == nil || len(buttons.Elements.ElementSet) != 2 {
		t.Fatalf("approval blocks:\n%s", approval.shown(t))
	}
	tests := []struct {
		id, style string
		confirm   bool
	}{{"approve", "primary", false}, {"abort", "danger", true}}
	for i, tc := range tests {
		btn := buttons.Elements.ElementSet[i].(*slackapi.ButtonBlockElement)
		if btn.ActionID != tc.id || btn.Value != "ns#7" || string(btn.Style) != tc.style || (btn.Confirm != nil) != tc.confirm {
			t.Errorf("button %d = %s value %q style %q confirm %v; want %s ns#7 %s confirm %v",
				i, btn.ActionID, btn.Value, btn.Style, btn.Confirm != nil, tc.id, tc.style, tc.confirm)
		}
	}
	if !strings.Contains(approval.shown(t), "serial 2026112301") {
		t.Errorf("approval does not show the checks:\n%s", approval.shown(t))
	}

	d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: "U0BOB1234", At: testNow.Add(3 * time.Minute)}
	d.Phase = deployer.PhaseRunning
	send(t, p.Poster, deployer.Event{Kind: deployer.EventDecision, Deployment: d, Step: deployer.StepApproval,
		Text: "Approved by U0BOB1234 at 14:03:00 UTC."})
	eventually.True(t, "the approval updated", func() bool { return len(f.updatesOf(approval.TS)) > 0 })
	up := f.updatesOf(approval.TS)[0]
	if up.hasActions() || !strings.Contains(up.shown(t), "Approved by <@U0BOB1234>") {
		t.Errorf("after the decision the approval shows:\n%s", up.shown(t))
	}
	eventually.True(t, "the decision reply", func() bool { return len(f.answered("chat.postMessage")) == 4 })
}

// After a restart, a new Poster given the saved refs updates the same
// messages; a message not posted before goes into the same thread.
func TestPosterRestartUsesRefs(t *testing.T) {
	f := newFakeSlack(t)
	refs := &refStore{}
	cfg := Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}
	first := startPoster(t, f, cfg, refs)
	d := testDeploy()
	send(t, first.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the refs saved", func() bool { return len(refs.get(7)) == 3 })
	first.stop()
	posts := f.answered("chat.postMessage")
	parentTS, checklistTS := posts[0].TS, posts[1].TS

	// The deployer's record now carries the refs; every event brings them.
	d = step(d, deployer.StepProvision, "cloud-init")
	maps.Copy(d.Refs, refs.get(7))
	second := startPoster(t, f, cfg, refs)
	send(t, second.Poster, stepEvent(d))
	eventually.True(t, "the checklist updated", func() bool { return len(f.updatesOf(checklistTS)) == 1 })
	if n := len(f.answered("chat.postMessage")); n != 2 {
		t.Fatalf("%d posts after the restart, want none new", n)
	}
	if s := f.updatesOf(checklistTS)[0].shown(t); !strings.Contains(s, "*Provision* (1m0s) — cloud-init") {
		t.Errorf("update shows:\n%s", s)
	}

	d = step(d, deployer.StepApproval, "")
	d.Phase, d.ApprovalDeadline = deployer.PhaseAwaitingApproval, testNow.Add(30*time.Minute)
	send(t, second.Poster, deployer.Event{Kind: deployer.EventApproval, Deployment: d})
	eventually.True(t, "the approval posted", func() bool { return len(f.answered("chat.postMessage")) == 3 })
	if c := f.answered("chat.postMessage")[2]; c.ThreadTS != parentTS || c.Channel != "C0DEPLOYS" {
		t.Errorf("approval posted in %s thread %q, want C0DEPLOYS thread %s", c.Channel, c.ThreadTS, parentTS)
	}
	eventually.True(t, "the approval's ref", func() bool { return refs.get(7)["slack.ts.deploy-7/approval"] != "" })
	if got := refs.get(7)["slack.thread"]; got != parentTS {
		t.Errorf("slack.thread = %q, want %q", got, parentTS)
	}
}

// Slack failing: rate limits are waited out, 5xx and transient errors
// retried, and the latest state ends up shown.
func TestPosterRetries(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(method string, try int, channel string) *fault
		method string        // the method that fails
		min    time.Duration // the least time the retries must take
	}{
		{
			name: "429 on post",
			fault: func(m string, try int, _ string) *fault {
				if m == "chat.postMessage" && try == 1 {
					return &fault{status: http.StatusTooManyRequests, retryAfter: "1"}
				}
				return nil
			},
			method: "chat.postMessage", min: time.Second,
		},
		{
			name: "429 on update",
			fault: func(m string, try int, _ string) *fault {
				if m == "chat.update" && try <= 2 {
					return &fault{status: http.StatusTooManyRequests, retryAfter: "1"}
				}
				return nil
			},
			method: "chat.update", min: 2 * time.Second,
		},
		{
			name: "500s on post",
			fault: func(m string, try int, _ string) *fault {
				if m == "chat.postMessage" && try <= 4 {
					return &fault{status: http.StatusInternalServerError}
				}
				return nil
			},
			method: "chat.postMessage",
		},
		{
			name: "503s and internal_error on update",
			fault: func(m string, try int, _ string) *fault {
				switch {
				case m == "chat.update" && try <= 3:
					return &fault{status: http.StatusServiceUnavailable}
				case m == "chat.update" && try <= 5:
					return &fault{err: "internal_error"}
				}
				return nil
			},
			method: "chat.update",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.setFault(tc.fault)
			p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
			d := testDeploy()
			start := time.Now()
			send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "state 0")))
			if tc.method == "chat.update" {
				eventually.True(t, "the checklist", func() bool { return len(f.answered("chat.postMessage")) == 2 })
				start = time.Now()
				send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "state 1")))
				eventually.True(t, "a failed update", func() bool { _, fails := f.counts("chat.update"); return fails > 0 })
				send(t, p.Poster, stepEvent(step(d, deployer.StepProvision, "state 2")))
			}
			want := map[string]string{"chat.postMessage": "state 0", "chat.update": "state 2"}[tc.method]
			eventually.True(t, "the latest state shown", func() bool {
				posts := f.answered("chat.postMessage")
				if len(posts) < 2 {
					return false
				}
				c, _ := f.latest(posts[1].TS)
				return strings.Contains(c.shown(t), want)
			})
			if took := time.Since(start); took < tc.min {
				t.Errorf("delivered after %v; Retry-After asked for %v", took, tc.min)
			}
			if tries, fails := f.counts(tc.method); fails == 0 || tries <= fails {
				t.Errorf("%s: %d tries, %d failed", tc.method, tries, fails)
			}
			if n := len(f.answered("chat.postMessage")); n != 2 {
				t.Errorf("%d posts, want 2 (no duplicates)", n)
			}
			if !strings.Contains(p.logs.String(), "will retry") {
				t.Errorf("retries not logged:\n%s", p.logs.String())
			}
		})
	}
}

// Slack down for a while: Send keeps returning at once, states pile up as
// one latest state per message, and when Slack is back the thread catches up.
func TestPosterCatchesUpAfterOutage(t *testing.T) {
	f := newFakeSlack(t)
	var mu sync.Mutex
	down := true
	f.setFault(func(string, int, string) *fault {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return &fault{status: http.StatusBadGateway}
		}
		return nil
	})
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	for i, s := range []deployer.StepName{deployer.StepLock, deployer.StepPlan, deployer.StepCreate} {
		send(t, p.Poster, stepEvent(step(d, s, fmt.Sprintf("state %d", i))))
	}
	eventually.True(t, "a few failed tries", func() bool { _, fails := f.counts("chat.postMessage"); return fails >= 3 })
	send(t, p.Poster, deployer.Event{Kind: deployer.EventProblem, Deployment: d, Text: "create failed: quota"})
	final := step(d, deployer.StepWaitRunning, "final state")
	send(t, p.Poster, stepEvent(final))
	mu.Lock()
	down = false
	mu.Unlock()

	eventually.True(t, "the thread caught up", func() bool { return len(f.answered("chat.postMessage")) == 3 })
	posts := f.answered("chat.postMessage")
	if !strings.Contains(posts[0].Text, "Deploy #7 of ns") || !strings.Contains(posts[1].shown(t), "final state") ||
		!strings.Contains(posts[2].shown(t), "create failed: quota") || posts[2].ThreadTS != posts[0].TS {
		t.Errorf("after the outage the thread shows:\n%s\n%s\n%s", posts[0].Text, posts[1].shown(t), posts[2].shown(t))
	}
	if n := len(f.answered("chat.update")); n != 0 {
		t.Errorf("%d updates; the first post already had the latest state", n)
	}
	if !strings.Contains(p.logs.String(), "reachable again") {
		t.Errorf("recovery not logged:\n%s", p.logs.String())
	}
}

// Errors that retrying cannot fix are logged and dropped; the next state
// still gets through. A deploy channel the bot cannot post in falls back
// to the configured channel; a message deleted in Slack is posted again.
func TestPosterPermanentErrors(t *testing.T) {
	f := newFakeSlack(t)
	var mu sync.Mutex
	updateErr := "msg_too_long"
	f.setFault(func(m string, try int, channel string) *fault {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case m == "chat.postMessage" && channel == "C0PRIVATE":
			return &fault{err: "not_in_channel"}
		case m == "chat.update" && updateErr != "":
			e := updateErr
			updateErr = ""
			return &fault{err: e}
		}
		return nil
	})
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	d.Refs[deployer.RefChannel] = "C0PRIVATE"
	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	eventually.True(t, "the thread in the fallback channel", func() bool { return len(f.answered("chat.postMessage")) == 2 })
	posts := f.answered("chat.postMessage")
	if posts[0].Channel != "C0ANNOUNCE" || posts[1].Channel != "C0ANNOUNCE" || posts[1].ThreadTS != posts[0].TS {
		t.Errorf("thread posted as %+v / %+v", posts[0], posts[1])
	}
	ts := posts[1].TS

	send(t, p.Poster, stepEvent(step(d, deployer.StepPlan, "dropped")))
	eventually.True(t, "the refused update", func() bool { _, fails := f.counts("chat.update"); return fails == 1 })
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "shown")))
	eventually.True(t, "the next update", func() bool { return len(f.updatesOf(ts)) == 1 })
	if s := f.updatesOf(ts)[0].shown(t); !strings.Contains(s, "shown") {
		t.Errorf("update shows:\n%s", s)
	}

	mu.Lock()
	updateErr = "message_not_found"
	mu.Unlock()
	send(t, p.Poster, stepEvent(step(d, deployer.StepProvision, "reposted")))
	eventually.True(t, "the checklist posted again", func() bool { return len(f.answered("chat.postMessage")) == 3 })
	if c := f.answered("chat.postMessage")[2]; c.ThreadTS != posts[0].TS || !strings.Contains(c.shown(t), "reposted") {
		t.Errorf("repost in thread %q shows:\n%s", c.ThreadTS, c.shown(t))
	}
	logs := p.logs.String()
	for _, want := range []string{"not_in_channel", "msg_too_long", "message_not_found"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// No channel at all: Send says so at once.
	q := NewPoster(f.client, Config{}, nil, nil)
	if err := q.Send(t.Context(), bot.Message{Thread: "deploy-8", DeployID: 8, Text: "x"}); err == nil {
		t.Errorf("Send with no channel anywhere: no error")
	}
}

// Slack hanging: Send returns at once however many messages come, and Run
// still returns soon after its context ends.
func TestPosterSendNeverBlocks(t *testing.T) {
	f := newFakeSlack(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) }) // runs before the server stops
	f.mu.Lock()
	f.hang = hang
	f.mu.Unlock()
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE"}, &refStore{},
		func(p *Poster) { p.callTimeout = time.Hour }) // only the end of Run ends a call

	sent := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := range 500 {
			d := testDeploy()
			d.ID = uint64(1 + i%5)
			n := &bot.Notifier{Now: func() time.Time { return testNow }}
			for _, m := range n.Messages(stepEvent(step(d, deployer.StepCreate, fmt.Sprint(i)))) {
				_ = p.Send(context.Background(), m)
			}
			_ = p.Send(context.Background(), bot.Message{Thread: fmt.Sprintf("deploy-%d", d.ID), DeployID: d.ID, Text: fmt.Sprint(i), Refs: d.Refs})
		}
		sent <- time.Since(start)
	}()
	select {
	case took := <-sent:
		t.Logf("1000 Sends took %v while Slack hangs", took)
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked while Slack hangs")
	}
	eventually.True(t, "a call hanging", func() bool { tries, _ := f.counts("chat.postMessage"); return tries > 0 })

	start := time.Now()
	p.stop()
	if took := time.Since(start); took > defaultFlushTimeout+2*time.Second {
		t.Errorf("Run took %v to return", took)
	}
}

// When Run's context ends, the latest states are flushed (within the
// flush bound) even before the update interval has passed.
func TestPosterFinalFlush(t *testing.T) {
	f := newFakeSlack(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: time.Hour}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the checklist", func() bool { return len(f.answered("chat.postMessage")) == 2 })
	ts := f.answered("chat.postMessage")[1].TS
	done := d.Clone()
	for i := range done.Steps {
		done.Steps[i].Status = deployer.StatusDone
	}
	done.Phase, done.Finished = deployer.PhaseSucceeded, testNow.Add(5*time.Minute)
	send(t, p.Poster, deployer.Event{Kind: deployer.EventFinished, Deployment: done, Text: "ns is live on img-2"})
	p.stop()
	c, _ := f.latest(ts)
	if c.Method != "chat.update" || !strings.Contains(c.shown(t), "succeeded after 5m0s") {
		t.Errorf("after Run returned the checklist shows (%s):\n%s", c.Method, c.shown(t))
	}
	posts := f.answered("chat.postMessage")
	if len(posts) != 3 || !strings.Contains(posts[2].shown(t), "ns is live on img-2") {
		for _, c := range f.answered("") {
			t.Logf("%s %s %s thread=%s\n%s", c.Method, c.Channel, c.TS, c.ThreadTS, c.shown(t))
		}
		t.Logf("logs:\n%s", p.logs.String())
		t.Errorf("the summary reply was not flushed: %d posts", len(posts))
	}
	// The parent now carries the outcome.
	if ups := f.updatesOf(posts[0].TS); len(ups) != 1 || !strings.HasPrefix(ups[0].Text, ":white_check_mark: Deploy #7") {
		t.Errorf("parent updates: %+v", ups)
	}
}

// An ephemeral message goes to its person only, in the deploy's thread.
func TestPosterEphemeral(t *testing.T) {
	f := newFakeSlack(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	if err := p.Send(t.Context(), bot.Message{Thread: "deploy-7", DeployID: 7, Ephemeral: true, User: "U0BOB1234",
		Level: bot.LevelError, Text: "not allowed: approve needs the approvers of ns", Refs: d.Refs}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the ephemeral reply", func() bool { return len(f.answered("chat.postEphemeral")) == 1 })
	e := f.answered("chat.postEphemeral")[0]
	parent := f.answered("chat.postMessage")[0]
	if e.User != "U0BOB1234" || e.Channel != "C0DEPLOYS" || e.ThreadTS != parent.TS || !strings.HasPrefix(e.Text, ":x: not allowed") {
		t.Errorf("ephemeral = %+v", e)
	}
	// A deploy this Poster has not shown (greenlight restarted): its refs
	// name the thread; no parent is posted for an ephemeral message.
	other := map[string]string{deployer.RefChannel: "C0DEPLOYS", "slack.channel": "C0DEPLOYS", "slack.thread": "1763900000.000001"}
	if err := p.Send(t.Context(), bot.Message{Thread: "deploy-6", DeployID: 6, Ephemeral: true, User: "U0BOB1234",
		Text: "deploy #6 is no longer waiting", Refs: other}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the second ephemeral reply", func() bool { return len(f.answered("chat.postEphemeral")) == 2 })
	if e := f.answered("chat.postEphemeral")[1]; e.Channel != "C0DEPLOYS" || e.ThreadTS != "1763900000.000001" {
		t.Errorf("ephemeral = %+v", e)
	}
	if n := len(f.answered("chat.postMessage")); n != 2 {
		t.Errorf("%d posts, want the parent and checklist of deploy #7 only", n)
	}
	if err := p.Send(t.Context(), bot.Message{Ephemeral: true, Text: "x"}); err == nil {
		t.Errorf("an ephemeral message without a user: no error")
	}
}
