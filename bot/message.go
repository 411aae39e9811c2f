// Package bot is greenlight's adapter-neutral chat layer: the message model
// (a progress checklist updated in place, decisions, errors, buttons), the
// router from parsed commands to deployer actions, authorization, and the
// Reporter that turns pipeline events into messages. Adapters (bot/shell,
// bot/slack) render messages and feed commands and clicks in.
package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// Level is how a message should stand out.
type Level string

// Message levels.
const (
	LevelInfo    Level = "info"
	LevelSuccess Level = "success"
	LevelWarning Level = "warning"
	LevelError   Level = "error"
)

// Message is one chat message. A message with a Key replaces the message
// sent earlier with the same Key (update in place).
type Message struct {
	Key       string // identity for updates in place; "" = always a new message
	Thread    string // the thread it belongs to ("deploy-7"); "" = top level
	Level     Level
	Text      string
	Checklist *Checklist
	Actions   []Action
	Ephemeral bool   // only User sees it
	User      string // who asked, for ephemeral replies and mentions
	DeployID  uint64 // the deployment it is about, 0 if none
	Service   string
	Refs      map[string]string // adapter references persisted with the deployment
}

// Checklist is a deployment's progress, one item per step.
type Checklist struct {
	Title  string
	Items  []Item
	Footer string
}

// Item is one step in a checklist.
type Item struct {
	Step     deployer.StepName
	Title    string
	Status   deployer.StepStatus
	Duration time.Duration
	Detail   string
	Started  time.Time // zero until the step starts
	Finished time.Time // zero until it ends
}

// Action is a button. Value carries the service and deployment it acts on.
type Action struct {
	ID      string // ActionApprove, ActionAbort, ActionRollback, ActionRetire, ActionDeployNow
	Label   string
	Style   string // "primary", "danger" or ""
	Value   string // "ns#7", or "ns image=ID" for deploy-now
	Confirm string // a confirmation question, "" for none
}

// Action IDs.
const (
	ActionApprove   = "approve"
	ActionAbort     = "abort"
	ActionRollback  = "rollback"
	ActionRetire    = "retire"
	ActionDeployNow = "deploy-now"
)

// ActionValue encodes the service and deployment a button acts on.
func ActionValue(service string, id uint64) string { return fmt.Sprintf("%s#%d", service, id) }

// Chat is what an adapter offers the bot: a way to show messages.
type Chat interface {
	Send(ctx context.Context, m Message) error
}

// StatusIcon is a step status as one character, the same in every adapter.
func StatusIcon(s deployer.StepStatus) string {
	switch s {
	case deployer.StatusDone:
		return "✓"
	case deployer.StatusRunning:
		return "…"
	case deployer.StatusFailed:
		return "✗"
	case deployer.StatusSkipped:
		return "–"
	}
	return "·"
}

// ChecklistOf renders a deployment as a checklist.
func ChecklistOf(d deployer.Deployment, now time.Time) *Checklist {
	c := &Checklist{Title: DeployTitle(d)}
	for _, s := range d.Steps {
		it := Item{Step: s.Name, Title: s.Name.Title(), Status: s.Status, Detail: s.Detail, Duration: s.Duration(),
			Started: s.Started, Finished: s.Finished}
		if s.Status == deployer.StatusRunning && !s.Started.IsZero() {
			it.Duration = now.Sub(s.Started)
		}
		c.Items = append(c.Items, it)
	}
	switch {
	case d.Phase == deployer.PhaseAwaitingApproval:
		c.Footer = fmt.Sprintf("Waiting for approval until %s", deployer.TimeOfDay(d.ApprovalDeadline))
	case d.Phase == deployer.PhaseRollbackWindow:
		c.Footer = fmt.Sprintf("Live; rollback possible until %s", deployer.TimeOfDay(d.RollbackDeadline))
	case d.Phase.Final():
		c.Footer = fmt.Sprintf("%s after %s", PhaseText(d.Phase), Round(d.Duration(now)))
	}
	return c
}

// DeployTitle is the line that heads a deployment's thread.
func DeployTitle(d deployer.Deployment) string {
	t := fmt.Sprintf("Deploy #%d of %s by %s", d.ID, d.Service, d.Requester)
	if d.ImageNew != "" {
		old := d.ImageOld
		if old == "" {
			old = "(none)"
		}
		t += fmt.Sprintf(": %s → %s", old, d.ImageNew)
	}
	if d.Options.DryRun {
		t += " (dry run)"
	}
	if d.Reason != "" {
		t += " — " + d.Reason
	}
	return t
}

// Round shortens a duration for people.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
