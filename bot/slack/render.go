package slack

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// Slack's limits on what a message may hold.
const (
	maxBlocks       = 50   // blocks in a message
	maxSectionText  = 3000 // characters in a section's text
	maxContextText  = 2000 // characters in a context element
	maxFallbackText = 3000 // characters of the notification text (Slack allows more; nobody reads it)
	maxButtonText   = 75
	maxButtonValue  = 2000
	maxConfirmTitle = 100
	maxConfirmText  = 300
	maxConfirmLabel = 30
	truncated       = "… (truncated)"
)

// actionsBlockID names the buttons' block; clicks carry it back as block_id.
const actionsBlockID = "greenlight-actions"

// Blocks renders m as Block Kit: the checklist (title, one line per step,
// the footer as context), the text (prefixed by its level's emoji), then
// the buttons. Text that came from people is escaped; Slack mentions in it
// are kept, and the requester is mentioned.
func Blocks(m bot.Message) []slackapi.Block {
	var body, tail []slackapi.Block
	if c := m.Checklist; c != nil {
		if c.Title != "" {
			body = append(body, textSection(levelEmoji(m.Level)+"*"+mrkdwnText(c.Title, m.User)+"*"))
		}
		lines := make([]string, 0, len(c.Items))
		for _, it := range c.Items {
			lines = append(lines, checklistLine(it, m.User))
		}
		body = append(body, textSections(lines)...)
		if c.Footer != "" {
			tail = append(tail, slackapi.NewContextBlock("",
				slackapi.NewTextBlockObject(slackapi.MarkdownType, clipText(mrkdwnText(c.Footer, m.User), maxContextText), false, false)))
		}
	}
	if m.Text != "" {
		prefix := ""
		if m.Checklist == nil {
			prefix = levelEmoji(m.Level)
		}
		body = append(body, textSections(strings.Split(prefix+mrkdwnText(m.Text, m.User), "\n"))...)
	}
	if len(m.Actions) > 0 {
		tail = append(tail, buttonsBlock(m.Actions))
	}
	if len(body)+len(tail) > maxBlocks {
		body = append(body[:maxBlocks-len(tail)-1], textSection(truncated))
	}
	if len(body)+len(tail) == 0 {
		body = append(body, textSection(" ")) // a message needs something to show
	}
	return append(body, tail...)
}

// Text is m as one line of mrkdwn for notifications and clients that cannot
// show blocks.
func Text(m bot.Message) string {
	var parts []string
	if c := m.Checklist; c != nil {
		if c.Title != "" {
			parts = append(parts, mrkdwnText(c.Title, m.User))
		}
		if s := checklistCurrent(c); s != "" {
			parts = append(parts, s)
		}
		if c.Footer != "" {
			parts = append(parts, mrkdwnText(c.Footer, m.User))
		}
	}
	if m.Text != "" {
		parts = append(parts, mrkdwnText(m.Text, m.User))
	}
	return clipText(levelEmoji(m.Level)+strings.Join(parts, " — "), maxFallbackText)
}

// checklistCurrent names the step a checklist is on (running or failed).
func checklistCurrent(c *bot.Checklist) string {
	for _, it := range c.Items {
		if it.Status == deployer.StatusRunning || it.Status == deployer.StatusFailed {
			return fmt.Sprintf("%s: %s", it.Title, it.Status)
		}
	}
	return ""
}

// StatusEmoji is a step status as a Slack emoji.
func StatusEmoji(s deployer.StepStatus) string {
	switch s {
	case deployer.StatusDone:
		return ":white_check_mark:"
	case deployer.StatusRunning:
		return ":hourglass_flowing_sand:"
	case deployer.StatusFailed:
		return ":x:"
	case deployer.StatusSkipped:
		return ":heavy_minus_sign:"
	}
	return ":white_circle:"
}

// levelEmoji is the emoji (and a space) that marks a message's level, or "".
func levelEmoji(l bot.Level) string {
	switch l {
	case bot.LevelError:
		return ":x: "
	case bot.LevelWarning:
		return ":warning: "
	case bot.LevelSuccess:
		return ":white_check_mark: "
	}
	return ""
}

// checklistLine is one checklist step: emoji, title, duration, detail. A detail
// of several lines (a command's output) follows as a code block.
func checklistLine(it bot.Item, user string) string {
	var b strings.Builder
	title := it.Title
	if title == "" {
		title = string(it.Step)
	}
	fmt.Fprintf(&b, "%s *%s*", StatusEmoji(it.Status), mrkdwnText(title, user))
	if it.Duration > 0 {
		fmt.Fprintf(&b, " (%s)", bot.Round(it.Duration))
	}
	detail := strings.TrimSpace(it.Detail)
	first, rest, multi := strings.Cut(detail, "\n")
	if first != "" {
		b.WriteString(" — " + mrkdwnText(first, user))
	}
	if multi && strings.TrimSpace(rest) != "" {
		b.WriteString("\n```" + escapeText(rest) + "```")
	}
	return b.String()
}

func textSection(text string) *slackapi.SectionBlock {
	return slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, false), nil, nil)
}

// textSections packs lines into as few sections as Slack's text limit allows;
// a line longer than the limit is cut.
func textSections(lines []string) []slackapi.Block {
	var out []slackapi.Block
	var cur strings.Builder
	n := -1 // characters in cur; -1 when it holds no line
	flush := func() {
		if n >= 0 && strings.TrimSpace(cur.String()) != "" {
			out = append(out, textSection(cur.String()))
		}
		cur.Reset()
		n = -1
	}
	for _, l := range lines {
		l = clipText(l, maxSectionText)
		ln := utf8.RuneCountInString(l)
		if n >= 0 && n+1+ln > maxSectionText {
			flush()
		}
		if n >= 0 {
			cur.WriteByte('\n')
			n++
		} else {
			n = 0
		}
		cur.WriteString(l)
		n += ln
	}
	flush()
	return out
}

// buttonsBlock renders buttons: action_id is the Action's ID and value its
// Value ("ns#7" for approve, abort and rollback; "ns image=ID" for deploy-now),
// so a click comes back to Router.HandleClick as the bot's command.
func buttonsBlock(actions []bot.Action) *slackapi.ActionBlock {
	if len(actions) > 25 {
		actions = actions[:25]
	}
	elems := make([]slackapi.BlockElement, 0, len(actions))
	for _, a := range actions {
		label := a.Label
		if label == "" {
			label = a.ID
		}
		btn := slackapi.NewButtonBlockElement(a.ID, clipText(a.Value, maxButtonValue),
			slackapi.NewTextBlockObject(slackapi.PlainTextType, clipText(label, maxButtonText), true, false))
		style := blockButtonStyle(a.Style)
		btn = btn.WithStyle(style)
		if a.Confirm != "" {
			btn.Confirm = slackapi.NewConfirmationBlockObject(
				slackapi.NewTextBlockObject(slackapi.PlainTextType, clipText(label+"?", maxConfirmTitle), false, false),
				slackapi.NewTextBlockObject(slackapi.PlainTextType, clipText(a.Confirm, maxConfirmText), false, false),
				slackapi.NewTextBlockObject(slackapi.PlainTextType, clipText(label, maxConfirmLabel), false, false),
				slackapi.NewTextBlockObject(slackapi.PlainTextType, "Cancel", false, false),
			).WithStyle(style)
		}
		elems = append(elems, btn)
	}
	return slackapi.NewActionBlock(actionsBlockID, elems...)
}

func blockButtonStyle(s string) slackapi.Style {
	switch s {
	case "primary":
		return slackapi.StylePrimary
	case "danger":
		return slackapi.StyleDanger
	}
	return slackapi.StyleDefault
}

// mrkdwnKeepRE matches what is kept as it is in text from people: user, channel
// and user-group mentions, and the entities Slack already escaped with.
// Broadcasts (<!channel>, <!here>, <!everyone>) are escaped, so a reason
// cannot page a whole channel.
var mrkdwnKeepRE = regexp.MustCompile(`<@[UW][A-Z0-9]+(\|[^<>]*)?>|<#C[A-Z0-9]+(\|[^<>]*)?>|<!subteam\^S[A-Z0-9]+(\|[^<>]*)?>|&(amp|lt|gt);`)

// bareUserIDRE matches a bare Slack user ID in text; it must hold a digit, so
// ordinary upper-case words are left alone.
var bareUserIDRE = regexp.MustCompile(`\b[UW][A-Z0-9]{6,}\b`)

// mrkdwnText escapes text for a mrkdwn field, keeps the mentions it holds and
// mentions bare Slack user IDs (and user, the requester) in it.
func mrkdwnText(text, user string) string {
	var b strings.Builder
	last := 0
	for _, loc := range mrkdwnKeepRE.FindAllStringIndex(text, -1) {
		b.WriteString(mentionIDs(escapeText(text[last:loc[0]]), user))
		b.WriteString(text[loc[0]:loc[1]])
		last = loc[1]
	}
	b.WriteString(mentionIDs(escapeText(text[last:]), user))
	return b.String()
}

// mentionIDs turns bare user IDs in escaped text into mentions.
func mentionIDs(text, user string) string {
	text = bareUserIDRE.ReplaceAllStringFunc(text, func(id string) string {
		if strings.ContainsAny(id, "0123456789") {
			return "<@" + id + ">"
		}
		return id
	})
	if looksLikeUserID(user) && !bareUserIDRE.MatchString(user) {
		text = regexp.MustCompile(`\b`+regexp.QuoteMeta(user)+`\b`).ReplaceAllString(text, "<@"+user+">")
	}
	return text
}

// looksLikeUserID reports whether s looks like a Slack user ID (U… or W…).
func looksLikeUserID(s string) bool {
	if len(s) < 2 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, r := range s[1:] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapeText escapes the three characters Slack's mrkdwn reserves.
func escapeText(s string) string { return mrkdwnEscaper.Replace(s) }

// clipText cuts s to at most n characters, ending in "… (truncated)",
// without leaving half an entity, half a mention or an open code block.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	keep := n - utf8.RuneCountInString(truncated)
	out := cutText(s, keep)
	if strings.Count(out, "```")%2 == 1 {
		out = cutText(s, keep-len("```"))
		if strings.Count(out, "```")%2 == 1 {
			out += "```"
		}
	}
	return out + truncated
}

// cutText keeps the first keep characters of s, less any entity or
// mention the cut would break.
func cutText(s string, keep int) string {
	keep = max(keep, 0)
	for i := range s {
		if keep == 0 {
			s = s[:i]
			break
		}
		keep--
	}
	if i := strings.LastIndexByte(s, '<'); i > strings.LastIndexByte(s, '>') {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '&'); i > strings.LastIndexByte(s, ';') {
		s = s[:i]
	}
	return s
}
