package slack

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// Both transports turn what Slack sends into tasks: a slash command, a button
// click or a mention becomes a call to the router plus the place its answer
// goes. Tasks are acknowledged to Slack when queued and run on the worker pool.

// task is one acknowledged piece of work waiting for a worker.
type task struct {
	what string // "command", "click", "mention", "home": for logs
	user string
	to   replyTo
	do   func(ctx context.Context) bot.Reply
}

// replyTo is where a task's answers go.
type replyTo struct {
	channel     string
	user        string // the person who asked; ephemeral answers are for them only
	responseURL string // Slack's per-request reply hook; preferred for ephemeral answers
	threadTS    string // mentions: answer visibly in this thread instead
}

// Why a task could not be queued. The text is what the person reads.
var (
	errBusy     = deployer.Errorf(deployer.CodeConflict, "greenlight is busy, try again in a moment")
	errStopping = deployer.Errorf(deployer.CodeConflict, "greenlight is shutting down, try again in a moment")
)

// commandTask runs text as a /deploy command (a slash command's text, or a
// mention with the mention removed).
func (a *Adapter) commandTask(what, user, channel, text string, to replyTo) task {
	return task{what: what, user: user, to: to, do: func(ctx context.Context) bot.Reply {
		a.log.Info("slack command", "via", what, "user", user, "channel", channel, "text", text)
		return a.router.Handle(ctx, bot.Request{User: user, Channel: channel, Text: text})
	}}
}

// slashTask is the task for a slash command; its answers are ephemeral.
func (a *Adapter) slashTask(cmd slackapi.SlashCommand) task {
	to := replyTo{channel: cmd.ChannelID, user: cmd.UserID, responseURL: cmd.ResponseURL}
	return a.commandTask("command", cmd.UserID, cmd.ChannelID, cmd.Text, to)
}

// clickTasks are the tasks for a block_actions interaction: one per button
// (Slack sends one). The answer, refusals included, is ephemeral to the
// person who clicked.
func (a *Adapter) clickTasks(ic slackapi.InteractionCallback) []task {
	channel := ic.Channel.ID
	if channel == "" {
		channel = ic.Container.ChannelID
	}
	user := ic.User.ID
	to := replyTo{channel: channel, user: user, responseURL: ic.ResponseURL}
	var tasks []task
	for _, act := range ic.ActionCallback.BlockActions {
		if act == nil {
			continue
		}
		click := bot.Click{User: user, Channel: channel, Action: act.ActionID, Value: act.Value}
		tasks = append(tasks, task{what: "click", user: user, to: to, do: func(ctx context.Context) bot.Reply {
			a.log.Info("slack click", "user", user, "channel", channel, "action", click.Action, "value", click.Value,
				"message", ic.Container.MessageTs)
			return a.router.HandleClick(ctx, click)
		}})
	}
	return tasks
}

// eventTask is the task for an Events API callback, or ok=false when greenlight
// does not act on it (an unknown event, a bot's mention, a retry already seen).
func (a *Adapter) eventTask(ev slackevents.EventsAPIEvent) (task, bool) {
	cb, _ := ev.Data.(*slackevents.EventsAPICallbackEvent)
	if cb != nil && cb.EventID != "" && !a.seen.first(cb.EventID) {
		a.log.Debug("slack event already handled", "event_id", cb.EventID)
		return task{}, false
	}
	switch inner := ev.InnerEvent.Data.(type) {
	case *slackevents.AppMentionEvent:
		if inner.BotID != "" || inner.User == "" {
			return task{}, false // bots do not drive deploys
		}
		thread := inner.ThreadTimeStamp
		if thread == "" {
			thread = inner.TimeStamp
		}
		to := replyTo{channel: inner.Channel, user: inner.User, threadTS: thread}
		return a.commandTask("mention", inner.User, inner.Channel, mentionCommand(inner.Text, botUserIDs(cb)), to), true
	case *slackevents.AppHomeOpenedEvent:
		hook := a.OnHomeOpened
		if hook == nil || inner.Tab == "messages" {
			return task{}, false
		}
		user := inner.User
		return task{what: "home", user: user, do: func(ctx context.Context) bot.Reply {
			hook(ctx, user)
			return bot.Reply{}
		}}, true
	}
	a.log.Debug("slack event ignored", "type", ev.InnerEvent.Type)
	return task{}, false
}

// botUserIDs are the bot users an event was delivered for: the mention to strip.
func botUserIDs(cb *slackevents.EventsAPICallbackEvent) []string {
	if cb == nil {
		return nil
	}
	var ids []string
	for _, au := range cb.Authorizations {
		if au.IsBot && au.UserID != "" {
			ids = append(ids, au.UserID)
		}
	}
	return ids
}

var userMention = regexp.MustCompile(`<@([A-Z0-9]+)(?:\|[^>]*)?>`)

// slackUnescape undoes the escaping Slack applies to message text.
var slackUnescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// mentionCommand is the command in a mention's text: "<@Ubot> status ns" →
// "status ns". The bot's own mentions are removed; without knowing the bot's
// ID, the leading mention (or else the first) is.
func mentionCommand(text string, botIDs []string) string {
	cut := func(loc []int) {
		before, after := strings.TrimRight(text[:loc[0]], " "), strings.TrimLeft(text[loc[1]:], " ")
		if before != "" && after != "" {
			before += " "
		}
		text = before + after
	}
	if len(botIDs) == 0 {
		if loc := userMention.FindStringIndex(text); loc != nil {
			cut(loc)
		}
	}
	for len(botIDs) > 0 {
		found := userMention.FindAllStringSubmatchIndex(text, -1)
		i := slices.IndexFunc(found, func(m []int) bool { return slices.Contains(botIDs, text[m[2]:m[3]]) })
		if i < 0 {
			break
		}
		cut(found[i])
	}
	text = strings.TrimLeft(strings.TrimSpace(text), ":, ")
	return slackUnescape.Replace(strings.TrimSpace(text))
}

// eventIDs remembers the last Events API event IDs, so a retried delivery
// does not run a command twice.
type eventIDs struct {
	mu    sync.Mutex
	set   map[string]struct{}
	order []string // ring of the remembered IDs
	next  int
}

func newEventIDs(n int) *eventIDs {
	return &eventIDs{set: make(map[string]struct{}, n), order: make([]string, n)}
}

// first reports whether id is new, and remembers it.
func (s *eventIDs) first(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[id]; ok {
		return false
	}
	if old := s.order[s.next]; old != "" {
		delete(s.set, old)
	}
	s.order[s.next] = id
	s.next = (s.next + 1) % len(s.order)
	s.set[id] = struct{}{}
	return true
}

// deliver sends a task's reply where it belongs; failures are logged, since
// there is nobody left to tell.
func (a *Adapter) deliver(ctx context.Context, j task, reply bot.Reply) {
	for _, m := range reply.Messages {
		if err := a.post(ctx, j.to, m); err != nil {
			a.log.Warn("slack reply not delivered", "via", j.what, "user", j.to.user, "channel", j.to.channel, "err", err)
		}
	}
}

// post shows one router message, rendered by Text (level emoji, escaped
// text, user IDs as mentions): in the mention's thread (visible), or to the
// person only (response_url, else chat.postEphemeral), or, without a channel
// (a click in App Home), as a direct message.
func (a *Adapter) post(ctx context.Context, to replyTo, m bot.Message) error {
	text := Text(m)
	switch {
	case to.threadTS != "":
		if to.user != "" {
			text = "<@" + to.user + "> " + text
		}
		_, _, err := a.client.PostMessageContext(ctx, to.channel, slackapi.MsgOptionText(text, false), slackapi.MsgOptionTS(to.threadTS))
		return err
	case !m.Ephemeral && to.channel != "":
		_, _, err := a.client.PostMessageContext(ctx, to.channel, slackapi.MsgOptionText(text, false))
		return err
	}
	if to.responseURL != "" {
		err := slackapi.PostWebhookCustomHTTPContext(ctx, to.responseURL, a.hooks,
			&slackapi.WebhookMessage{ResponseType: slackapi.ResponseTypeEphemeral, Text: text})
		if err == nil || to.channel == "" {
			return err
		}
		a.log.Warn("slack response_url failed; answering with chat.postEphemeral", "user", to.user, "err", err)
	}
	if to.channel == "" {
		_, _, err := a.client.PostMessageContext(ctx, to.user, slackapi.MsgOptionText(text, false))
		return err
	}
	_, err := a.client.PostEphemeralContext(ctx, to.channel, to.user, slackapi.MsgOptionText(text, false))
	return err
}

// ephemeralBody is a slash command's immediate answer (HTTP response body or
// Socket Mode ack payload).
type ephemeralBody struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

func ephemeral(text string) ephemeralBody {
	return ephemeralBody{ResponseType: slackapi.ResponseTypeEphemeral, Text: text}
}
