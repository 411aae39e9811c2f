package slack

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// shown is the call's blocks as a person reads them.
func shown(t *testing.T, c slacktest.Call) string {
	return strings.Join(blockTexts(t, c.BlockSet()), "\n")
}

func hasActions(c slacktest.Call) bool {
	for _, b := range c.BlockSet() {
		if _, ok := b.(*slackapi.ActionBlock); ok {
			return true
		}
	}
	return false
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
func startPoster(t *testing.T, f *slacktest.Server, cfg Config, refs RefSaver, setup ...func(*Poster)) testPoster {
	t.Helper()
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.BotToken = slacktest.BotToken
	p := NewPoster(f.Client(), cfg, refs, log)
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
			if strings.Contains(logs.String(), slacktest.BotToken) {
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
	f := slacktest.New(t)
	refs := &refStore{}
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, refs)
	d := testDeploy()

	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	eventually.True(t, "the parent and the checklist", func() bool { return len(f.CallsTo("chat.postMessage")) == 2 })
	posts := f.CallsTo("chat.postMessage")
	parent, checklist := posts[0], posts[1]
	wantTitle := "Deploy #7 of ns by <@U0ALICE1>: img-1 → img-2 — monthly patches"
	if parent.Channel != "C0DEPLOYS" || parent.ThreadTS != "" || parent.Text != wantTitle || shown(t, parent) != "section: "+wantTitle {
		t.Errorf("parent = %+v, shown %q; want %q in C0DEPLOYS, top level", parent, shown(t, parent), wantTitle)
	}
	if checklist.Channel != "C0DEPLOYS" || checklist.ThreadTS != parent.TS {
		t.Errorf("checklist in %s thread %q, want C0DEPLOYS thread %s", checklist.Channel, checklist.ThreadTS, parent.TS)
	}
	if s := shown(t, checklist); !strings.Contains(s, ":hourglass_flowing_sand: *Take the deploy lock*") || !strings.Contains(s, ":white_circle: *Plan*") {
		t.Errorf("checklist shows:\n%s", s)
	}

	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "2 servers")))
	eventually.True(t, "the checklist updated in place", func() bool {
		c, _ := f.Latest(checklist.TS)
		return c.Method == "chat.update" && strings.Contains(shown(t, c), ":hourglass_flowing_sand: *Create the next set* (1m0s) — 2 servers")
	})
	up := f.UpdatesOf(checklist.TS)[0]
	if up.Channel != "C0DEPLOYS" || !strings.Contains(shown(t, up), ":white_check_mark: *Take the deploy lock* (1s)") {
		t.Errorf("update in %s shows:\n%s", up.Channel, shown(t, up))
	}

	d2 := step(d, deployer.StepProvision, "")
	send(t, p.Poster, deployer.Event{Kind: deployer.EventProblem, Deployment: d2, Text: "provision failed: <ns1-7> exit 2"})
	send(t, p.Poster, deployer.Event{Kind: deployer.EventInfo, Deployment: d2, Text: "retrying provision"})
	eventually.True(t, "the replies", func() bool { return len(f.CallsTo("chat.postMessage")) == 4 })
	posts = f.CallsTo("chat.postMessage")
	for i, want := range []string{"section: :x: provision failed: &lt;ns1-7&gt; exit 2", "section: retrying provision"} {
		if c := posts[2+i]; c.ThreadTS != parent.TS || shown(t, c) != want {
			t.Errorf("reply %d in thread %q shows %q, want %q in %s", i, c.ThreadTS, shown(t, c), want, parent.TS)
		}
	}

	wantRefs := map[string]string{"slack.channel": "C0DEPLOYS", "slack.thread": parent.TS, "slack.ts.deploy-7/checklist": checklist.TS}
	eventually.True(t, "the refs saved", func() bool { return maps.Equal(refs.get(7), wantRefs) })

	ann := bot.Message{Level: bot.LevelSuccess, Text: "New golden image img-3 for ns",
		Actions: []bot.Action{{ID: bot.ActionDeployNow, Label: "Deploy now", Value: "ns image=img-3"}}}
	if err := p.Send(t.Context(), ann); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the announcement", func() bool { return len(f.CallsTo("chat.postMessage")) == 5 })
	a := f.CallsTo("chat.postMessage")[4]
	if a.Channel != "C0ANNOUNCE" || a.ThreadTS != "" || !hasActions(a) {
		t.Errorf("announcement = %+v", a)
	}
	if n := len(f.CallsTo("chat.postEphemeral")); n != 0 {
		t.Errorf("%d ephemeral messages", n)
	}
}

// Many states in quick succession become few updates, never closer than
// UpdateInterval, and the last shows the last state.
func TestPosterCoalescesUpdates(t *testing.T) {
	f := slacktest.New(t)
	const interval = 200 * time.Millisecond
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: interval}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the checklist", func() bool { return len(f.CallsTo("chat.postMessage")) == 2 })
	ts := f.CallsTo("chat.postMessage")[1].TS

	for i := range 20 {
		send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, fmt.Sprintf("state %d", i))))
	}
	eventually.True(t, "the last state", func() bool {
		c, _ := f.Latest(ts)
		return strings.Contains(shown(t, c), "state 19")
	})
	ups := f.UpdatesOf(ts)
	if len(ups) > 3 {
		t.Errorf("%d updates for 20 states sent at once; want at most 3", len(ups))
	}
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].At.Sub(ups[i-1].At); gap < interval*9/10 {
			t.Errorf("updates %d and %d %v apart, interval %v", i-1, i, gap, interval)
		}
	}
	if n := len(f.CallsTo("chat.postMessage")); n != 2 {
		t.Errorf("%d posts, want the parent and the checklist only", n)
	}
}

// Approve (primary) and Abort (danger, confirm) carry "ns#7"; after the
// decision the message is updated without buttons.
func TestPosterApprovalButtons(t *testing.T) {
	f := slacktest.New(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := step(testDeploy(), deployer.StepApproval, "")
	d.Phase, d.ApprovalDeadline = deployer.PhaseAwaitingApproval, testNow.Add(30*time.Minute)
	d.Checks = []string{"ns1-7: example.test SOA serial 2026112301, AA, NSID ns1-7 (UDP, TCP)"}
	send(t, p.Poster, deployer.Event{Kind: deployer.EventApproval, Deployment: d})
	eventually.True(t, "the approval message", func() bool { return len(f.CallsTo("chat.postMessage")) == 3 })
	posts := f.CallsTo("chat.postMessage")
	approval := posts[2]
	if approval.ThreadTS != posts[0].TS {
		t.Errorf("approval in thread %q, want %s", approval.ThreadTS, posts[0].TS)
	}
	var buttons *slackapi.ActionBlock
	for _, b := range approval.BlockSet() {
		if ab, ok := b.(*slackapi.ActionBlock); ok {
			buttons = ab
		}
	}
	if buttons == nil || len(buttons.Elements.ElementSet) != 2 {
		t.Fatalf("approval blocks:\n%s", shown(t, approval))
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
	if !strings.Contains(shown(t, approval), "serial 2026112301") {
		t.Errorf("approval does not show the checks:\n%s", shown(t, approval))
	}

	d.Approval = &deployer.Decision{Kind: deployer.DecisionApprove, By: "U0BOB1234", At: testNow.Add(3 * time.Minute)}
	d.Phase = deployer.PhaseRunning
	send(t, p.Poster, deployer.Event{Kind: deployer.EventDecision, Deployment: d, Step: deployer.StepApproval,
		Text: "Approved by U0BOB1234 at 14:03:00 UTC."})
	eventually.True(t, "the approval updated", func() bool { return len(f.UpdatesOf(approval.TS)) > 0 })
	up := f.UpdatesOf(approval.TS)[0]
	if hasActions(up) || !strings.Contains(shown(t, up), "Approved by <@U0BOB1234>") {
		t.Errorf("after the decision the approval shows:\n%s", shown(t, up))
	}
	eventually.True(t, "the decision reply", func() bool { return len(f.CallsTo("chat.postMessage")) == 4 })
}

// After a restart, a new Poster given the saved refs updates the same
// messages; a message not posted before goes into the same thread.
func TestPosterRestartUsesRefs(t *testing.T) {
	f := slacktest.New(t)
	refs := &refStore{}
	cfg := Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}
	first := startPoster(t, f, cfg, refs)
	d := testDeploy()
	send(t, first.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the refs saved", func() bool { return len(refs.get(7)) == 3 })
	first.stop()
	posts := f.CallsTo("chat.postMessage")
	parentTS, checklistTS := posts[0].TS, posts[1].TS

	// The deployer's record now carries the refs; every event brings them.
	d = step(d, deployer.StepProvision, "cloud-init")
	maps.Copy(d.Refs, refs.get(7))
	second := startPoster(t, f, cfg, refs)
	send(t, second.Poster, stepEvent(d))
	eventually.True(t, "the checklist updated", func() bool { return len(f.UpdatesOf(checklistTS)) == 1 })
	if n := len(f.CallsTo("chat.postMessage")); n != 2 {
		t.Fatalf("%d posts after the restart, want none new", n)
	}
	if s := shown(t, f.UpdatesOf(checklistTS)[0]); !strings.Contains(s, "*Provision* (1m0s) — cloud-init") {
		t.Errorf("update shows:\n%s", s)
	}

	d = step(d, deployer.StepApproval, "")
	d.Phase, d.ApprovalDeadline = deployer.PhaseAwaitingApproval, testNow.Add(30*time.Minute)
	send(t, second.Poster, deployer.Event{Kind: deployer.EventApproval, Deployment: d})
	eventually.True(t, "the approval posted", func() bool { return len(f.CallsTo("chat.postMessage")) == 3 })
	if c := f.CallsTo("chat.postMessage")[2]; c.ThreadTS != parentTS || c.Channel != "C0DEPLOYS" {
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
		fault  func(slacktest.Attempt) *slacktest.Fault
		method string        // the method that fails
		min    time.Duration // the least time the retries must take
	}{
		{
			name: "429 on post",
			fault: func(a slacktest.Attempt) *slacktest.Fault {
				if a.Method == "chat.postMessage" && a.Try == 1 {
					return slacktest.RateLimited(time.Second)
				}
				return nil
			},
			method: "chat.postMessage", min: time.Second,
		},
		{
			name: "429 on update",
			fault: func(a slacktest.Attempt) *slacktest.Fault {
				if a.Method == "chat.update" && a.Try <= 2 {
					return slacktest.RateLimited(time.Second)
				}
				return nil
			},
			method: "chat.update", min: 2 * time.Second,
		},
		{
			name: "500s on post",
			fault: func(a slacktest.Attempt) *slacktest.Fault {
				if a.Method == "chat.postMessage" && a.Try <= 4 {
					return slacktest.HTTPError(http.StatusInternalServerError)
				}
				return nil
			},
			method: "chat.postMessage",
		},
		{
			name: "503s and internal_error on update",
			fault: func(a slacktest.Attempt) *slacktest.Fault {
				switch {
				case a.Method == "chat.update" && a.Try <= 3:
					return slacktest.HTTPError(http.StatusServiceUnavailable)
				case a.Method == "chat.update" && a.Try <= 5:
					return slacktest.Error("internal_error")
				}
				return nil
			},
			method: "chat.update",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := slacktest.New(t)
			f.SetFault(tc.fault)
			p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
			d := testDeploy()
			start := time.Now()
			send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "state 0")))
			if tc.method == "chat.update" {
				eventually.True(t, "the checklist", func() bool { return len(f.CallsTo("chat.postMessage")) == 2 })
				start = time.Now()
				send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "state 1")))
				eventually.True(t, "a failed update", func() bool { _, fails := f.Counts("chat.update"); return fails > 0 })
				send(t, p.Poster, stepEvent(step(d, deployer.StepProvision, "state 2")))
			}
			want := map[string]string{"chat.postMessage": "state 0", "chat.update": "state 2"}[tc.method]
			eventually.True(t, "the latest state shown", func() bool {
				posts := f.CallsTo("chat.postMessage")
				if len(posts) < 2 {
					return false
				}
				c, _ := f.Latest(posts[1].TS)
				return strings.Contains(shown(t, c), want)
			})
			if took := time.Since(start); took < tc.min {
				t.Errorf("delivered after %v; Retry-After asked for %v", took, tc.min)
			}
			if tries, fails := f.Counts(tc.method); fails == 0 || tries <= fails {
				t.Errorf("%s: %d tries, %d failed", tc.method, tries, fails)
			}
			if n := len(f.CallsTo("chat.postMessage")); n != 2 {
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
	f := slacktest.New(t)
	var mu sync.Mutex
	down := true
	f.SetFault(func(slacktest.Attempt) *slacktest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return slacktest.HTTPError(http.StatusBadGateway)
		}
		return nil
	})
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	for i, s := range []deployer.StepName{deployer.StepLock, deployer.StepPlan, deployer.StepCreate} {
		send(t, p.Poster, stepEvent(step(d, s, fmt.Sprintf("state %d", i))))
	}
	eventually.True(t, "a few failed tries", func() bool { _, fails := f.Counts("chat.postMessage"); return fails >= 3 })
	send(t, p.Poster, deployer.Event{Kind: deployer.EventProblem, Deployment: d, Text: "create failed: quota"})
	final := step(d, deployer.StepWaitRunning, "final state")
	send(t, p.Poster, stepEvent(final))
	mu.Lock()
	down = false
	mu.Unlock()

	eventually.True(t, "the thread caught up", func() bool { return len(f.CallsTo("chat.postMessage")) == 3 })
	posts := f.CallsTo("chat.postMessage")
	if !strings.Contains(posts[0].Text, "Deploy #7 of ns") || !strings.Contains(shown(t, posts[1]), "final state") ||
		!strings.Contains(shown(t, posts[2]), "create failed: quota") || posts[2].ThreadTS != posts[0].TS {
		t.Errorf("after the outage the thread shows:\n%s\n%s\n%s", posts[0].Text, shown(t, posts[1]), shown(t, posts[2]))
	}
	if n := len(f.CallsTo("chat.update")); n != 0 {
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
	f := slacktest.New(t)
	var mu sync.Mutex
	updateErr := "msg_too_long"
	f.SetFault(func(a slacktest.Attempt) *slacktest.Fault {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case a.Method == "chat.postMessage" && a.Channel == "C0PRIVATE":
			return slacktest.Error("not_in_channel")
		case a.Method == "chat.update" && updateErr != "":
			e := updateErr
			updateErr = ""
			return slacktest.Error(e)
		}
		return nil
	})
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	d.Refs[deployer.RefChannel] = "C0PRIVATE"
	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	eventually.True(t, "the thread in the fallback channel", func() bool { return len(f.CallsTo("chat.postMessage")) == 2 })
	posts := f.CallsTo("chat.postMessage")
	if posts[0].Channel != "C0ANNOUNCE" || posts[1].Channel != "C0ANNOUNCE" || posts[1].ThreadTS != posts[0].TS {
		t.Errorf("thread posted as %+v / %+v", posts[0], posts[1])
	}
	ts := posts[1].TS

	send(t, p.Poster, stepEvent(step(d, deployer.StepPlan, "dropped")))
	eventually.True(t, "the refused update", func() bool { _, fails := f.Counts("chat.update"); return fails == 1 })
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "shown")))
	eventually.True(t, "the next update", func() bool { return len(f.UpdatesOf(ts)) == 1 })
	if s := shown(t, f.UpdatesOf(ts)[0]); !strings.Contains(s, "shown") {
		t.Errorf("update shows:\n%s", s)
	}

	mu.Lock()
	updateErr = "message_not_found"
	mu.Unlock()
	send(t, p.Poster, stepEvent(step(d, deployer.StepProvision, "reposted")))
	eventually.True(t, "the checklist posted again", func() bool { return len(f.CallsTo("chat.postMessage")) == 3 })
	if c := f.CallsTo("chat.postMessage")[2]; c.ThreadTS != posts[0].TS || !strings.Contains(shown(t, c), "reposted") {
		t.Errorf("repost in thread %q shows:\n%s", c.ThreadTS, shown(t, c))
	}
	logs := p.logs.String()
	for _, want := range []string{"not_in_channel", "msg_too_long", "message_not_found"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// No channel at all: Send says so at once.
	q := NewPoster(f.Client(), Config{}, nil, nil)
	if err := q.Send(t.Context(), bot.Message{Thread: "deploy-8", DeployID: 8, Text: "x"}); err == nil {
		t.Errorf("Send with no channel anywhere: no error")
	}
}

// Slack hanging: Send returns at once however many messages come, and Run
// still returns soon after its context ends.
func TestPosterSendNeverBlocks(t *testing.T) {
	f := slacktest.New(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) }) // runs before the server stops
	f.SetHang(hang)
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
	eventually.True(t, "a call hanging", func() bool { tries, _ := f.Counts("chat.postMessage"); return tries > 0 })

	start := time.Now()
	p.stop()
	if took := time.Since(start); took > defaultFlushTimeout+2*time.Second {
		t.Errorf("Run took %v to return", took)
	}
}

// When Run's context ends, the latest states are flushed (within the
// flush bound) even before the update interval has passed.
func TestPosterFinalFlush(t *testing.T) {
	f := slacktest.New(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: time.Hour}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepCreate, "")))
	eventually.True(t, "the checklist", func() bool { return len(f.CallsTo("chat.postMessage")) == 2 })
	ts := f.CallsTo("chat.postMessage")[1].TS
	done := d.Clone()
	for i := range done.Steps {
		done.Steps[i].Status = deployer.StatusDone
	}
	done.Phase, done.Finished = deployer.PhaseSucceeded, testNow.Add(5*time.Minute)
	send(t, p.Poster, deployer.Event{Kind: deployer.EventFinished, Deployment: done, Text: "ns is live on img-2"})
	p.stop()
	c, _ := f.Latest(ts)
	if c.Method != "chat.update" || !strings.Contains(shown(t, c), "succeeded after 5m0s") {
		t.Errorf("after Run returned the checklist shows (%s):\n%s", c.Method, shown(t, c))
	}
	posts := f.CallsTo("chat.postMessage")
	if len(posts) != 3 || !strings.Contains(shown(t, posts[2]), "ns is live on img-2") {
		for _, c := range f.Calls() {
			t.Logf("%s %s %s thread=%s\n%s", c.Method, c.Channel, c.TS, c.ThreadTS, shown(t, c))
		}
		t.Logf("logs:\n%s", p.logs.String())
		t.Errorf("the summary reply was not flushed: %d posts", len(posts))
	}
	// The parent now carries the outcome.
	if ups := f.UpdatesOf(posts[0].TS); len(ups) != 1 || !strings.HasPrefix(ups[0].Text, ":white_check_mark: Deploy #7") {
		t.Errorf("parent updates: %+v", ups)
	}
}

// An ephemeral message goes to its person only, in the deploy's thread.
func TestPosterEphemeral(t *testing.T) {
	f := slacktest.New(t)
	p := startPoster(t, f, Config{Channel: "C0ANNOUNCE", UpdateInterval: 20 * time.Millisecond}, &refStore{})
	d := testDeploy()
	send(t, p.Poster, stepEvent(step(d, deployer.StepLock, "")))
	if err := p.Send(t.Context(), bot.Message{Thread: "deploy-7", DeployID: 7, Ephemeral: true, User: "U0BOB1234",
		Level: bot.LevelError, Text: "not allowed: approve needs the approvers of ns", Refs: d.Refs}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the ephemeral reply", func() bool { return len(f.CallsTo("chat.postEphemeral")) == 1 })
	e := f.CallsTo("chat.postEphemeral")[0]
	parent := f.CallsTo("chat.postMessage")[0]
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
	eventually.True(t, "the second ephemeral reply", func() bool { return len(f.CallsTo("chat.postEphemeral")) == 2 })
	if e := f.CallsTo("chat.postEphemeral")[1]; e.Channel != "C0DEPLOYS" || e.ThreadTS != "1763900000.000001" {
		t.Errorf("ephemeral = %+v", e)
	}
	if n := len(f.CallsTo("chat.postMessage")); n != 2 {
		t.Errorf("%d posts, want the parent and checklist of deploy #7 only", n)
	}
	if err := p.Send(t.Context(), bot.Message{Ephemeral: true, Text: "x"}); err == nil {
		t.Errorf("an ephemeral message without a user: no error")
	}
}
