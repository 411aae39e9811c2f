package bot

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/greenlight/greenlight/deployer"
)

// Notifier turns pipeline events into messages and sends them to every chat.
// It implements deployer.Reporter; a chat that fails is logged, never
// allowed to fail the pipeline.
type Notifier struct {
	Chats []Chat
	Log   *slog.Logger
	Now   func() time.Time
	// Approvers, when set, names who may approve a service's deploys, so the
	// approval question mentions them.
	Approvers func(service string) []string
}

var _ deployer.Reporter = (*Notifier)(nil)

// Message keys of a deployment's thread.
func threadKey(id uint64) string    { return fmt.Sprintf("deploy-%d", id) }
func checklistKey(id uint64) string { return fmt.Sprintf("deploy-%d/checklist", id) }
func approvalKey(id uint64) string  { return fmt.Sprintf("deploy-%d/approval", id) }
func rollbackKey(id uint64) string  { return fmt.Sprintf("deploy-%d/rollback", id) }

// Report renders ev.
func (n *Notifier) Report(ctx context.Context, ev deployer.Event) {
	for _, m := range n.Messages(ev) {
		n.send(ctx, m)
	}
}

// Announce posts a message outside any deployment's thread.
func (n *Notifier) Announce(ctx context.Context, m Message) { n.send(ctx, m) }

func (n *Notifier) send(ctx context.Context, m Message) {
	for _, c := range n.Chats {
		if err := c.Send(ctx, m); err != nil && n.Log != nil {
			n.Log.Warn("chat could not show a message", "key", m.Key, "err", err)
		}
	}
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// Messages renders one event as the messages that show it.
func (n *Notifier) Messages(ev deployer.Event) []Message {
	d := ev.Deployment
	if d.ID == 0 {
		// About a service, not a deploy (its traffic at start-up): no thread.
		return []Message{{Level: LevelWarning, Text: ev.Text, Service: d.Service}}
	}
	base := Message{Thread: threadKey(d.ID), DeployID: d.ID, Service: d.Service, User: d.Requester, Refs: d.Refs}
	checklist := base
	checklist.Key, checklist.Checklist = checklistKey(d.ID), ChecklistOf(d, n.now())
	checklist.Level = phaseLevel(d.Phase)
	reply := func(level Level, text string) Message {
		m := base
		m.Level, m.Text = level, text
		return m
	}
	switch ev.Kind {
	case deployer.EventStep:
		return []Message{checklist}
	case deployer.EventApproval:
		m := n.approvalMessage(d, true, "")
		if ev.Text != "" {
			m.Text += "\n" + ev.Text
		}
		return []Message{checklist, m}
	case deployer.EventDecision:
		out := []Message{reply(LevelInfo, ev.Text)}
		if ev.Step == deployer.StepApproval || (d.Approval != nil && d.Approval.Kind == deployer.DecisionAbort) {
			out = append(out, n.approvalMessage(d, false, ev.Text))
		}
		return out
	case deployer.EventRollback:
		m := base
		m.Key, m.Level, m.Text = rollbackKey(d.ID), LevelSuccess, ev.Text
		m.Actions = []Action{{ID: ActionRollback, Label: "Rollback", Style: "danger", Value: ActionValue(d.Service, d.ID),
			Confirm: fmt.Sprintf("Switch %s back to %s?", d.Service, serverList(d.Old))},
			{ID: ActionRetire, Label: "Retire now", Value: ActionValue(d.Service, d.ID),
				Confirm: fmt.Sprintf("Delete %s now? There is no rollback after this.", serverList(d.Old))}}
		return []Message{checklist, m}
	case deployer.EventProblem:
		if st := d.Step(ev.Step); st != nil && st.Status == deployer.StatusFailed && st.Detail != "" {
			// The checklist line says why; this says what happens now.
			return []Message{reply(LevelError, fmt.Sprintf("Deploy #%d failed at %s; cleaning up.", d.ID, ev.Step.Title()))}
		}
		return []Message{reply(LevelError, ev.Text)}
	case deployer.EventFinished:
		text := ev.Text
		switch d.Phase {
		case deployer.PhaseFailed:
			text = failedSummary(d, n.now())
		case deployer.PhaseAborted:
			text = abortedSummary(d, n.now())
		}
		out := []Message{checklist, reply(phaseLevel(d.Phase), text)}
		if !d.ApprovalDeadline.IsZero() {
			out = append(out, n.approvalMessage(d, false, closingText(d)))
		}
		if !d.RollbackDeadline.IsZero() {
			m := base
			m.Key, m.Level, m.Text = rollbackKey(d.ID), phaseLevel(d.Phase), closingText(d)
			out = append(out, m)
		}
		return out
	}
	return []Message{reply(LevelInfo, ev.Text)}
}

// approvalMessage asks for a decision (open) or records it (closed: no buttons).
func (n *Notifier) approvalMessage(d deployer.Deployment, open bool, decided string) Message {
	m := Message{Key: approvalKey(d.ID), Thread: threadKey(d.ID), DeployID: d.ID, Service: d.Service, User: d.Requester, Refs: d.Refs}
	var b strings.Builder
	if open {
		replace := "replace"
		if len(d.Next) == 1 {
			replace = "replaces"
		}
		fmt.Fprintf(&b, "Deploy #%d of %s is ready to switch: %s → %s (%s %s %s).\n", d.ID, d.Service,
			orNone(d.ImageOld), d.ImageNew, serverList(d.Next), replace, orNone(serverList(d.Old)))
		if d.Zones != nil {
			fmt.Fprintf(&b, "• ships %s\n", d.Zones.Summary())
		}
		for _, c := range d.Checks {
			fmt.Fprintf(&b, "• %s\n", c)
		}
		b.WriteString(DiffPreview(d, maxPreviewLines))
		if n.Approvers != nil {
			if who := n.Approvers(d.Service); len(who) > 0 {
				fmt.Fprintf(&b, "Approvers: %s\n", mentionList(who))
			}
		}
		fmt.Fprintf(&b, "Approve or abort before %s (/deploy approve %s · /deploy abort %s).", deployer.TimeOfDay(d.ApprovalDeadline), d.Service, d.Service)
		m.Level = LevelWarning
		m.Actions = []Action{
			{ID: ActionApprove, Label: "Approve", Style: "primary", Value: ActionValue(d.Service, d.ID)},
			{ID: ActionAbort, Label: "Abort", Style: "danger", Value: ActionValue(d.Service, d.ID),
				Confirm: fmt.Sprintf("Abort deploy #%d and delete %s?", d.ID, serverList(d.Next))},
		}
	} else {
		fmt.Fprintf(&b, "Deploy #%d of %s: %s", d.ID, d.Service, decided)
		m.Level = LevelInfo
	}
	m.Text = b.String()
	return m
}

// closingText says how a deployment's open question was closed.
func closingText(d deployer.Deployment) string {
	switch {
	case d.Phase == deployer.PhaseRolledBack && d.Rollback != nil:
		return fmt.Sprintf("Rolled back by %s at %s.", d.Rollback.By, deployer.TimeOfDay(d.Rollback.At))
	case d.Phase == deployer.PhaseSucceeded && d.Retire != nil:
		return fmt.Sprintf("Retired now by %s at %s; the old set was retired.", d.Retire.By, deployer.TimeOfDay(d.Retire.At))
	case d.Phase == deployer.PhaseSucceeded && !d.RollbackDeadline.IsZero():
		return fmt.Sprintf("Rollback window closed at %s; the old set was retired.", deployer.TimeOfDay(d.RollbackDeadline))
	case d.Approval != nil && d.Approval.Kind == deployer.DecisionAbort:
		return fmt.Sprintf("Aborted by %s at %s.", d.Approval.By, deployer.TimeOfDay(d.Approval.At))
	case d.Approval != nil:
		return fmt.Sprintf("Approved by %s at %s.", d.Approval.By, deployer.TimeOfDay(d.Approval.At))
	}
	return fmt.Sprintf("Ended: %s.", PhaseText(d.Phase))
}

func phaseLevel(p deployer.Phase) Level {
	switch p {
	case deployer.PhaseSucceeded, deployer.PhasePlanned:
		return LevelSuccess
	case deployer.PhaseFailed:
		return LevelError
	case deployer.PhaseAborted, deployer.PhaseRolledBack:
		return LevelWarning
	}
	return LevelInfo
}

func serverList(s []deployer.Server) string {
	names := make([]string, len(s))
	for i, x := range s {
		names[i] = x.Name
	}
	return strings.Join(names, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// maxPreviewLines is how much of a zone diff the approval message shows.
const maxPreviewLines = 8

// DiffPreview is the first lines of a deployment's zone diffs, with a count
// of the rest and the command that prints them all.
func DiffPreview(d deployer.Deployment, max int) string {
	var b strings.Builder
	shown, total := 0, 0
	for _, z := range d.Diffs {
		for _, l := range z.Lines {
			total++
			if shown < max {
				fmt.Fprintf(&b, "    %s\n", l)
				shown++
			}
		}
	}
	if total > shown {
		fmt.Fprintf(&b, "    … %d more lines: /deploy diff %s #%d\n", total-shown, d.Service, d.ID)
	}
	return b.String()
}

// mentionList names users and groups the way chat mentions them: user IDs
// as they are (adapters turn them into mentions), Slack user groups (S…) as
// <!subteam^S…>.
func mentionList(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		if isGroup(id) {
			out[i] = "<!subteam^" + id + ">"
		}
	}
	return strings.Join(out, ", ")
}

// failedSummary is the line that ends a failed deployment: where it failed
// (the checklist says why), and what was done about it, as the deploy's
// Aftermath says: where traffic is, what was deleted or kept, and whether
// the lock is free.
func failedSummary(d deployer.Deployment, now time.Time) string {
	text := fmt.Sprintf("Deploy #%d of %s failed after %s", d.ID, d.Service, Round(d.Duration(now)))
	step := failedStep(d)
	if st := d.Step(step); st == nil || st.Detail == "" || d.Aftermath == "" {
		// No checklist line says why, or a record from before Aftermath,
		// whose Error says what was done: the record's words as they are.
		if out := d.Outcome(); out != "" {
			return text + ": " + out
		}
		return text + "."
	}
	return fmt.Sprintf("%s at %s (the checklist says why). %s", text, step.Title(), d.Aftermath)
}

// abortedSummary ends an aborted deployment: who aborted it and why, and
// what was done, as the deploy's Aftermath says: traffic never moved, the
// next set was deleted, the lock is free.
func abortedSummary(d deployer.Deployment, now time.Time) string {
	took := Round(d.Duration(now))
	if d.Aftermath == "" && d.Error != "" {
		// A record from before Aftermath: its Error says who aborted it and
		// what was done.
		return fmt.Sprintf("Deploy #%d of %s ended after %s: %s", d.ID, d.Service, took, d.Error)
	}
	text := fmt.Sprintf("Deploy #%d of %s was aborted", d.ID, d.Service)
	if d.Approval != nil {
		text += " by " + d.Approval.By
		if d.Approval.Reason != "" {
			text += " (" + d.Approval.Reason + ")"
		}
	}
	text += " after " + took.String()
	if d.Aftermath == "" {
		return text + "."
	}
	return text + "; " + continued(d.Aftermath)
}

// continued is sentence s going on after a semicolon: its first letter in
// lower case.
func continued(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
