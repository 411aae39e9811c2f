package shell

import (
	"fmt"
	"strings"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// style is how output is dressed: colour only at a terminal that wants it.
type style struct{ color bool }

// ANSI colours.
const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

func (st style) paint(color, s string) string {
	if !st.color || s == "" {
		return s
	}
	return color + s + reset
}

// icon is a step's status: a green ✓, a red ✗.
func (st style) icon(s deployer.StepStatus) string {
	i := bot.StatusIcon(s)
	switch s {
	case deployer.StatusDone:
		return st.paint(green, i)
	case deployer.StatusFailed:
		return st.paint(red, i)
	}
	return i
}

// clockOf is when a step ended, or started while it runs, as a clock time
// followed by a space (UTC, like every time greenlight shows); "" when the
// step has no time (skipped).
func clockOf(it bot.Item) string {
	t := it.Finished
	if t.IsZero() || it.Status == deployer.StatusRunning {
		t = it.Started
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05") + " "
}

// itemLine is one step: "10:40:28 ✓ Plan   1ms  image …". A running step
// shows its elapsed time when Duration is set (the terminal's ticks).
func (st style) itemLine(it bot.Item) string {
	line := fmt.Sprintf("%s%s %-32s", clockOf(it), st.icon(it.Status), it.Title)
	switch it.Status {
	case deployer.StatusSkipped:
	case deployer.StatusRunning:
		if it.Duration > 0 {
			line += fmt.Sprintf(" %8s", it.Duration.Round(time.Second))
		}
	default:
		line += fmt.Sprintf(" %8s", bot.Round(it.Duration))
	}
	if it.Detail != "" {
		line += "  " + it.Detail
	}
	return strings.TrimRight(line, " ")
}

// RenderChecklist prints a whole checklist, without colour.
func RenderChecklist(c *bot.Checklist) string { return style{}.checklist(c) }

func (st style) checklist(c *bot.Checklist) string {
	var b strings.Builder
	fmt.Fprintf(&b, "┌ %s\n", c.Title)
	for _, it := range c.Items {
		fmt.Fprintf(&b, "│ %s\n", st.itemLine(it))
	}
	if c.Footer != "" {
		fmt.Fprintf(&b, "└ %s\n", c.Footer)
	}
	return b.String()
}

// checklistChange prints the steps that changed, and the one item printed
// when it is the only line (so a step's end can overwrite its start).
// Steps that have only started are shown at a terminal, where a person
// watches a slow step; a pipe gets each step once, when it ends. A deploy
// seen only at its end is printed whole.
func (st style) checklistChange(prev *bot.Message, m bot.Message, interactive bool) (string, *bot.Item) {
	c := m.Checklist
	var b strings.Builder
	lines := 0
	if prev == nil || prev.Checklist == nil {
		fmt.Fprintf(&b, "%s\n", c.Title)
		lines++
	}
	old := map[deployer.StepName]bot.Item{}
	if prev != nil && prev.Checklist != nil {
		for _, it := range prev.Checklist.Items {
			old[it.Step] = it
		}
	}
	var only *bot.Item
	for _, it := range c.Items {
		was, seen := old[it.Step]
		if it.Status == deployer.StatusPending || (seen && was.Status == it.Status && was.Detail == it.Detail) {
			continue
		}
		if it.Status == deployer.StatusRunning && !interactive {
			continue
		}
		if it.Status == deployer.StatusSkipped {
			continue // the steps a deploy did not need
		}
		if it.Status == deployer.StatusRunning {
			it.Duration = 0 // the ticks show it
		}
		fmt.Fprintf(&b, "  #%d %s\n", m.DeployID, st.itemLine(it))
		lines++
		only = &it
	}
	if m.Level != bot.LevelInfo && c.Footer != "" && (prev == nil || prev.Checklist == nil) {
		// The end of a deploy this terminal did not follow: the whole list.
		b.WriteString(st.checklist(c))
		lines += 2
	}
	if lines != 1 {
		only = nil
	}
	return b.String(), only
}

// text prints a message: its level as a coloured mark, then the commands
// its buttons stand for, so a shell user can type them.
func (st style) text(m bot.Message) string {
	var b strings.Builder
	prefix := ""
	switch m.Level {
	case bot.LevelError:
		prefix = st.paint(red, "✗") + " "
	case bot.LevelWarning:
		prefix = st.paint(yellow, "!") + " "
	case bot.LevelSuccess:
		prefix = st.paint(green, "✓") + " "
	}
	if m.DeployID != 0 && m.Thread != "" {
		prefix = fmt.Sprintf("#%d %s", m.DeployID, prefix)
	}
	b.WriteString(prefix + m.Text + "\n")
	for _, a := range m.Actions {
		if a.ID == bot.ActionDeployNow {
			if service, image, err := bot.ParseDeployNowValue(a.Value); err == nil {
				fmt.Fprintf(&b, "   type %s to deploy it\n", bot.DeployNowCommand(service, image))
				continue
			}
		}
		fmt.Fprintf(&b, "   [%s] type: %s\n", a.Label, actionCommand(a))
	}
	return b.String()
}

// actionCommand is the command a button stands for, so a shell user can type it.
func actionCommand(a bot.Action) string {
	service, id, err := bot.ParseActionValue(a.Value)
	if err != nil {
		return a.ID
	}
	return fmt.Sprintf("/deploy %s %s #%d", a.ID, service, id)
}
