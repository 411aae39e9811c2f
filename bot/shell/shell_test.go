package shell

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

type fakeDeployments struct {
	active *deployer.Deployment // in flight when the shell stops
	phase  deployer.Phase
	idle   int // WaitIdle calls
}

func (f *fakeDeployments) WaitIdle(context.Context) error { f.idle++; return nil }
func (f *fakeDeployments) Services() []string             { return []string{"ns"} }
func (f *fakeDeployments) Status(_ context.Context, service string) (deployer.Status, error) {
	st := deployer.Status{Service: service}
	if f.active != nil {
		st.Active = f.active
	}
	return st, nil
}
func (f *fakeDeployments) Deployment(_ context.Context, id uint64) (deployer.Deployment, error) {
	return deployer.Deployment{ID: id, Phase: f.phase}, nil
}

// routerDeployer answers every deploy with #1.
type routerDeployer struct{ bot.Deployer }

func (routerDeployer) Services() []string { return []string{"ns"} }
func (routerDeployer) Deploy(_ context.Context, r deployer.Request) (deployer.Deployment, error) {
	return deployer.Deployment{ID: 1, Service: r.Service}, nil
}

func TestPipeExitReflectsLastDeploy(t *testing.T) {
	tests := []struct {
		phase   deployer.Phase
		wantErr bool
	}{
		{deployer.PhaseSucceeded, false},
		{deployer.PhaseRollbackWindow, false},
		{deployer.PhaseAborted, false},
		{deployer.PhaseFailed, true},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		fd := &fakeDeployments{phase: tc.phase}
		s := &Shell{In: strings.NewReader("/deploy ns\n\nquit\n/deploy ns\n"), Out: &out, User: "alice",
			Router: &bot.Router{Deployer: routerDeployer{}}, Deployer: fd}
		err := s.Run(context.Background())
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: Run = %v, want error %v", tc.phase, err, tc.wantErr)
		}
		if fd.idle != 1 {
			t.Errorf("%s: WaitIdle called %d times, want 1", tc.phase, fd.idle)
		}
		if got := strings.Count(out.String(), "Started deploy #1"); got != 1 {
			t.Errorf("%s: %d deploys started, want 1 (input stops at quit):\n%s", tc.phase, got, out.String())
		}
	}
}

// TestChecklistPrintsChanges: a deploy followed here prints each step once,
// as it ends, then the summary; a deploy seen only at its end, whole.
func TestChecklistPrintsChanges(t *testing.T) {
	var out bytes.Buffer
	s := &Shell{Out: &out}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	d := deployer.Deployment{ID: 4, Service: "ns", Requester: "alice", Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning, Created: now}
	n := &bot.Notifier{Chats: []bot.Chat{s}, Now: func() time.Time { return now.Add(3 * time.Second) }}
	report := func(kind deployer.EventKind, text string) {
		n.Report(context.Background(), deployer.Event{Kind: kind, Deployment: d.Clone(), Text: text})
	}
	st := d.Step(deployer.StepLock)
	st.Status, st.Started, st.Finished, st.Detail = deployer.StatusDone, now, now, "ns locked by deploy #4"
	report(deployer.EventStep, "")
	report(deployer.EventStep, "") // the same state again prints nothing
	st = d.Step(deployer.StepPlan)
	st.Status, st.Started = deployer.StatusRunning, now
	report(deployer.EventStep, "") // running: not shown in a pipe
	st.Status, st.Finished, st.Detail = deployer.StatusDone, now.Add(12*time.Millisecond), "image a → b"
	report(deployer.EventStep, "")
	st = d.Step(deployer.StepCreate)
	st.Status, st.Started, st.Finished, st.Detail = deployer.StatusFailed, now, now.Add(time.Second), "create ns1-4: quota"
	d.Phase, d.Finished, d.Error = deployer.PhaseFailed, now.Add(2*time.Second), "Create the next set failed: create ns1-4: quota"
	d.Old, d.Next = []deployer.Server{{Name: "ns1-3"}, {Name: "ns2-3"}}, []deployer.Server{{Name: "ns1-4"}, {Name: "ns2-4"}}
	d.Aftermath = "Traffic never moved from ns1-3, ns2-3; the next set (ns1-4, ns2-4) was deleted and the lock released."
	report(deployer.EventFinished, "Deploy #4 of ns failed after 2s: create failed: create ns1-4: quota")

	want := []string{
		"Deploy #4 of ns by alice\n",
		"  #4 10:00:00 ✓ Take the deploy lock                   0s  ns locked by deploy #4\n",
		"  #4 10:00:00 ✓ Plan                                 12ms  image a → b\n",
		"  #4 10:00:01 ✗ Create the next set                    1s  create ns1-4: quota\n",
		"#4 ✗ Deploy #4 of ns failed after 2s at Create the next set (the checklist says why). " +
			"Traffic never moved from ns1-3, ns2-3; the next set (ns1-4, ns2-4) was deleted and the lock released.\n",
	}
	got := out.String()
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("output lacks %q in order:\n%s", w, got)
		}
		last = i
	}
	if strings.Count(got, "Take the deploy lock") != 1 || strings.Count(got, "quota") != 1 || strings.Contains(got, "Approval") {
		t.Errorf("a step printed twice, or a skipped one printed:\n%s", got)
	}

	var whole bytes.Buffer
	late := &Shell{Out: &whole}
	(&bot.Notifier{Chats: []bot.Chat{late}, Now: n.Now}).Report(context.Background(), deployer.Event{Kind: deployer.EventFinished, Deployment: d.Clone()})
	for _, w := range []string{"┌ Deploy #4 of ns by alice\n", "│ 10:00:01 ✗ Create the next set", "└ failed after 2s\n"} {
		if !strings.Contains(whole.String(), w) {
			t.Errorf("a deploy seen only at its end lacks %q:\n%s", w, whole.String())
		}
	}
}

func TestApprovalShowsTheCommandsForTheButtons(t *testing.T) {
	var out bytes.Buffer
	s := &Shell{Out: &out}
	d := deployer.Deployment{ID: 2, Service: "ns", Requester: "alice", Steps: deployer.NewSteps(), Phase: deployer.PhaseAwaitingApproval,
		ImageOld: "local/ns-v1", ImageNew: "local/ns-v2", Checks: []string{"2 servers · 3/3 passes"},
		ApprovalDeadline: time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)}
	n := &bot.Notifier{Chats: []bot.Chat{s}}
	n.Report(context.Background(), deployer.Event{Kind: deployer.EventApproval, Deployment: d})
	for _, w := range []string{"ready to switch: local/ns-v1 → local/ns-v2", "• 2 servers · 3/3 passes", "before 10:30:00 UTC",
		"[Approve] type: /deploy approve ns #2", "[Abort] type: /deploy abort ns #2"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestTerminalOverwritesStartedStep: at a terminal a step's end replaces
// the line that said it started, and while it runs that line shows how long
// it has run, at most once a tick; colour marks done and failed steps.
func TestTerminalOverwritesStartedStep(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	now := at
	var out bytes.Buffer
	s := &Shell{Out: &out, Interactive: true, Line: noLines{}, Color: true, Now: func() time.Time { return now }}
	d := deployer.Deployment{ID: 1, Service: "ns", Requester: "alice", Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning, Created: at}
	n := &bot.Notifier{Chats: []bot.Chat{s}, Now: func() time.Time { return now }}
	step := func(name deployer.StepName, status deployer.StepStatus, detail string) {
		st := d.Step(name)
		st.Status, st.Detail = status, detail
		if status == deployer.StatusRunning {
			st.Started = now
		} else {
			st.Finished = now
		}
		n.Report(context.Background(), deployer.Event{Kind: deployer.EventStep, Deployment: d.Clone(), Step: name})
	}
	step(deployer.StepLock, deployer.StatusDone, "")
	step(deployer.StepWaitRunning, deployer.StatusRunning, "")
	out.Reset()
	s.tick() // under a second: nothing to say yet
	now = now.Add(1500 * time.Millisecond)
	s.tick()
	now = now.Add(time.Second)
	s.tick()
	step(deployer.StepWaitRunning, deployer.StatusDone, "running: ns1-1")
	step(deployer.StepProvision, deployer.StatusRunning, "")
	n.Report(context.Background(), deployer.Event{Kind: deployer.EventInfo, Deployment: d.Clone(), Text: "an unrelated message"})
	s.tick()
	now = now.Add(time.Second)
	step(deployer.StepProvision, deployer.StatusFailed, "hook failed")

	up := "\x1b[1A\x1b[2K"
	want := up + "  #1 10:00:00 … Wait until running                     2s\n" +
		up + "  #1 10:00:00 … Wait until running                     3s\n" +
		up + "  #1 10:00:02 \x1b[32m✓\x1b[0m Wait until running                   2.5s  running: ns1-1\n" +
		"  #1 10:00:02 … Provision\n" +
		"#1 an unrelated message\n" +
		"  #1 10:00:03 \x1b[31m✗\x1b[0m Provision                              1s  hook failed\n"
	if got := out.String(); got != want {
		t.Errorf("terminal output:\n%q\nwant:\n%q", got, want)
	}
}

// noLines is a line editor with nothing typed.
type noLines struct{}

func (noLines) ReadLine() (string, error) { return "", io.EOF }
func (noLines) SetPrompt(string)          {}

// TestPipeHasNoColour: piped output carries no escape sequences.
func TestPipeHasNoColour(t *testing.T) {
	var out bytes.Buffer
	s := &Shell{Out: &out}
	n := &bot.Notifier{Chats: []bot.Chat{s}}
	d := deployer.Deployment{ID: 1, Service: "ns", Requester: "alice", Steps: deployer.NewSteps(), Phase: deployer.PhaseFailed}
	d.Step(deployer.StepLock).Status = deployer.StatusDone
	d.Step(deployer.StepPlan).Status = deployer.StatusFailed
	n.Report(context.Background(), deployer.Event{Kind: deployer.EventFinished, Deployment: d, Text: "failed"})
	if strings.Contains(out.String(), "\x1b") {
		t.Fatalf("escape sequences in piped output: %q", out.String())
	}
}

func TestRefreshAnnouncements(t *testing.T) {
	img := deployer.Image{ID: "private/123", Label: "ns-golden-20261123-0400"}
	started := refresh.Event{Service: "ns", Kind: refresh.EventStarted, BuildID: "20261123-0400", Trigger: "schedule", Base: "linode/debian12"}
	finished := started
	finished.Kind, finished.Image, finished.Took, finished.Pruned = refresh.EventFinished, img, 6*time.Minute+12*time.Second, []deployer.Image{{ID: "private/99", Label: "ns-golden-20261101-0400"}}
	failed := refresh.Event{Service: "ns", Kind: refresh.EventFailed, BuildID: "20261124-0400", Trigger: "schedule", Took: 3 * time.Minute, Err: deployer.Errorf(deployer.CodeFailed, "quota")}
	tests := []struct {
		name   string
		events []refresh.Event
		want   string
	}{
		{"baked", []refresh.Event{started, started, finished}, "Baking a new image of ns from linode/debian12 (build 20261123-0400, scheduled)\n" +
			"✓ Image private/123 ready: ns-golden-20261123-0400, built in 6m12s; pruned 1 old image\n• ns-golden-20261101-0400\n" +
			"   type /deploy ns --image private/123 to deploy it\n"},
		{"failed", []refresh.Event{failed}, "✗ Baking an image of ns failed after 3m: quota\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n := &bot.Notifier{Chats: []bot.Chat{&Shell{Out: &out}}}
			for _, ev := range tc.events {
				n.Refresh(context.Background(), ev)
			}
			if got := out.String(); got != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestOverlongLinesAreRefusedAndReadingGoesOn: a line longer than the
// reader keeps is answered like any command over the limit, and the next
// line still runs.
func TestOverlongLinesAreRefusedAndReadingGoesOn(t *testing.T) {
	in := "/deploy help\n" + strings.Repeat("x", 70000) + "\n" + strings.Repeat("y", 5000) + "\r\n/deploy help\n" + strings.Repeat("z", 65537)
	var out bytes.Buffer
	s := &Shell{In: strings.NewReader(in), Out: &out, User: "alice",
		Router: &bot.Router{Deployer: routerDeployer{}}, Deployer: &fakeDeployments{}}
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v", err)
	}
	got := out.String()
	usage := "usage: /deploy SERVICE [flags] | /deploy COMMAND [args] — /deploy help lists every command\n"
	want := "> (a line of 70000 bytes)\n✗ that command is too long: 70000 bytes, the limit is 4000\n" + usage +
		"> (a line of 5000 bytes)\n✗ that command is too long: 5000 bytes, the limit is 4000\n" + usage +
		"> /deploy help\n"
	if !strings.Contains(got, want) {
		t.Errorf("output lacks\n%s\n---\n%s", want, got)
	}
	if !strings.HasSuffix(got, "> (a line of 65537 bytes)\n✗ that command is too long: 65537 bytes, the limit is 4000\n"+usage) {
		t.Errorf("the last line, without a line end, is not answered:\n%s", got[max(0, len(got)-300):])
	}
	if n := strings.Count(got, "> /deploy help\n"); n != 2 {
		t.Errorf("%d helps answered, want 2", n)
	}
	for _, slackWord := range []string{"channel", "button", "click"} {
		if strings.Contains(got, slackWord) {
			t.Errorf("the terminal's help speaks of a %s:\n%s", slackWord, got)
		}
	}
}

func FuzzReadLine(f *testing.F) {
	for _, s := range []string{"", "a\n", "a\r\nb", "\n\n", strings.Repeat("x", 40) + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReaderSize(strings.NewReader(in), 16)
		total := 0
		for {
			l, err := readLine(r, 32)
			if err != nil {
				break
			}
			if l.TooLong != (l.Size > 32) || l.TooLong && l.Text != "" || len(l.Text) > l.Size {
				t.Fatalf("line %q of size %d from %q", l.Text, l.Size, in)
			}
			total += l.Size
		}
		if total > len(in) {
			t.Fatalf("%d bytes read from %d", total, len(in))
		}
	})
}

// reportingDeployer reports as the real deployer does: from inside Deploy
// and Abort, before they return.
type reportingDeployer struct {
	bot.Deployer
	n *bot.Notifier
	d deployer.Deployment
}

func (r *reportingDeployer) Services() []string { return []string{"ns"} }
func (r *reportingDeployer) Deploy(ctx context.Context, req deployer.Request) (deployer.Deployment, error) {
	st := r.d.Step(deployer.StepLock)
	st.Status, st.Detail = deployer.StatusDone, "ns locked by deploy #1"
	r.n.Report(ctx, deployer.Event{Kind: deployer.EventStep, Deployment: r.d.Clone(), Step: deployer.StepLock})
	return r.d, nil
}
func (r *reportingDeployer) Abort(ctx context.Context, service string, id uint64, user, reason string) (deployer.Deployment, error) {
	r.d.Approval = &deployer.Decision{Kind: deployer.DecisionAbort, By: user}
	r.n.Report(ctx, deployer.Event{Kind: deployer.EventDecision, Deployment: r.d.Clone(), Step: deployer.StepProvision, Text: "Aborted by " + user + "; deleting the next set."})
	return r.d, nil
}

// TestAnswersComeBeforeWhatTheyCause: the answer to a typed command is
// printed before the messages the command caused.
func TestAnswersComeBeforeWhatTheyCause(t *testing.T) {
	var out bytes.Buffer
	s := &Shell{In: strings.NewReader("/deploy ns\n/deploy abort ns\n"), Out: &out, User: "alice", Deployer: &fakeDeployments{}}
	n := &bot.Notifier{Chats: []bot.Chat{s}}
	rd := &reportingDeployer{n: n, d: deployer.Deployment{ID: 1, Service: "ns", Requester: "alice", Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning}}
	s.Router = &bot.Router{Deployer: rd}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "> /deploy ns\n" +
		"Started deploy #1 of ns.\n" +
		"Deploy #1 of ns by alice\n" +
		"  #1 ✓ Take the deploy lock                   0s  ns locked by deploy #1\n" +
		"> /deploy abort ns\n" +
		"! Aborting deploy #1 of ns.\n" +
		"#1 Aborted by alice; deleting the next set.\n"
	if got := out.String(); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// TestQuittingSaysWhereDeploysAreLeft: quit (or Ctrl-C, or the end of
// piped input) with a deploy in flight says what state it is left in and
// that the next start resumes it.
func TestQuittingSaysWhereDeploysAreLeft(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	steps := func(done int) []deployer.StepState {
		s := deployer.NewSteps()
		for i := range s[:done] {
			s[i].Status = deployer.StatusDone
		}
		return s
	}
	next := []deployer.Server{{Name: "ns1-4"}, {Name: "ns2-4"}}
	tests := []struct {
		name        string
		interactive bool
		in          string
		d           deployer.Deployment
		want        string
	}{
		{"quit while a step runs", true, "quit\n",
			deployer.Deployment{ID: 4, Service: "ns", Phase: deployer.PhaseRunning, Steps: steps(3)},
			"Deploy #4 of ns is left at Wait until running; it stops at a safe point, and the next start runs that step again.\n"},
		{"quit at the approval gate", true, "quit\n",
			deployer.Deployment{ID: 4, Service: "ns", Phase: deployer.PhaseAwaitingApproval, Steps: steps(6), ApprovalDeadline: at.Add(30 * time.Minute)},
			"Deploy #4 of ns is left waiting for approval (until 10:30:00 UTC); it is saved, and the next start asks again.\n"},
		{"end of piped input in the rollback window", false, "",
			deployer.Deployment{ID: 4, Service: "ns", Phase: deployer.PhaseRollbackWindow, Steps: steps(9), Next: next, Traffic: deployer.Traffic{Target: deployer.TrafficNext, Settled: true, NextTouched: true}, RollbackDeadline: at.Add(15 * time.Minute)},
			"Deploy #4 of ns is left live on ns1-4, ns2-4, in its rollback window until 10:15:00 UTC; it is saved, and the next start resumes it (then the old set is retired).\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			d := tc.d
			s := &Shell{In: strings.NewReader(tc.in), Out: &out, User: "alice", Interactive: tc.interactive,
				Router: &bot.Router{Deployer: routerDeployer{}}, Deployer: &fakeDeployments{active: &d}}
			if err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); !strings.HasSuffix(got, tc.want) {
				t.Errorf("output:\n%q\nwant it to end with:\n%q", got, tc.want)
			}
		})
	}

	t.Run("Ctrl-C", func(t *testing.T) {
		var out bytes.Buffer
		d := tests[0].d
		r, w := io.Pipe()
		defer w.Close()
		ctx, cancel := context.WithCancel(context.Background())
		s := &Shell{In: r, Out: &out, User: "alice", Interactive: true,
			Router: &bot.Router{Deployer: routerDeployer{}}, Deployer: &fakeDeployments{active: &d}}
		cancel()
		if err := s.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); !strings.HasSuffix(got, tests[0].want) {
			t.Errorf("output:\n%q\nwant it to end with:\n%q", got, tests[0].want)
		}
	})
}
