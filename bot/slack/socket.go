package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/greenlight/greenlight/bot"
)

// runSocket connects through Socket Mode (apps.connections.open with the
// app token, then the WebSocket it names) and handles envelopes until ctx
// ends. slack-go reconnects on its own when Slack asks or the connection
// drops; it gives up only when Slack refuses the token.
func (a *Adapter) runSocket(ctx context.Context) error {
	smc := socketmode.New(a.client, socketmode.OptionLog(socketLog{a.log}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- smc.RunContext(ctx) }()
	for {
		select {
		case err := <-ran:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w", err)
		case evt := <-smc.Events:
			a.socketEvent(ctx, smc, evt)
		case <-ctx.Done():
			<-ran // RunContext stops with ctx; its event sends give up on ctx too
			return nil
		}
	}
}

// socketEvent acknowledges an envelope and queues its work. A slash command
// is queued first so that "busy" can travel in its acknowledgement; clicks
// and events are acknowledged before anything else.
func (a *Adapter) socketEvent(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	received := time.Now()
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		a.log.Debug("slack socket mode connecting")
	case socketmode.EventTypeConnected:
		a.log.Info("slack socket mode connected")
		a.obs.ChatConnected(adapterName, true)
	case socketmode.EventTypeHello:
		a.log.Debug("slack socket mode hello")
	case socketmode.EventTypeConnectionError:
		a.log.Warn("slack socket mode connection failed; retrying", "err", socketErr(evt.Data))
		a.obs.ChatConnected(adapterName, false)
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("Slack refused the app token (SLACK_APP_TOKEN)")
		a.obs.ChatConnected(adapterName, false)
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		a.log.Warn("slack socket mode", "event", evt.Type, "err", socketErr(evt.Data))

	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slackapi.SlashCommand)
		if !ok || cmd.UserID == "" {
			a.ack(ctx, smc, evt, nil)
			a.log.Warn("slack: malformed slash command ignored", "data", fmt.Sprintf("%T", evt.Data))
			return
		}
		var payload any
		result := "ok"
		if err := a.enqueue(a.slashTask(cmd)); err != nil {
			a.log.Warn("slack: command not queued", "user", cmd.UserID, "err", err)
			payload = ephemeral(bot.ErrorText(err))
			result = "busy"
		}
		a.ack(ctx, smc, evt, payload)
		a.observe("command", result, received)

	case socketmode.EventTypeInteractive:
		a.ack(ctx, smc, evt, nil)
		a.observe("click", "ok", received)
		ic, ok := evt.Data.(slackapi.InteractionCallback)
		if !ok {
			a.log.Warn("slack: malformed interaction ignored", "data", fmt.Sprintf("%T", evt.Data))
			return
		}
		if ic.Type != slackapi.InteractionTypeBlockActions {
			a.log.Debug("slack interaction ignored", "type", ic.Type)
			return
		}
		for _, j := range a.clickTasks(ic) {
			_ = a.submit(j)
		}

	case socketmode.EventTypeEventsAPI:
		a.ack(ctx, smc, evt, nil)
		a.observe("event", "ok", received)
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			a.log.Warn("slack: malformed event ignored", "data", fmt.Sprintf("%T", evt.Data))
			return
		}
		if ev.Type != slackevents.CallbackEvent {
			a.log.Debug("slack event ignored", "type", ev.Type)
			return
		}
		if j, ok := a.eventTask(ev); ok {
			_ = a.submit(j)
		}

	default:
		a.log.Debug("slack socket mode event ignored", "type", evt.Type)
	}
}

// observe reports a request of kind acknowledged after received.
func (a *Adapter) observe(kind, result string, received time.Time) {
	a.obs.ChatRequest(adapterName, kind, result)
	a.obs.ChatAck(adapterName, time.Since(received))
}

// ack acknowledges evt's envelope, with payload (or none).
func (a *Adapter) ack(ctx context.Context, smc *socketmode.Client, evt socketmode.Event, payload any) {
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		a.log.Warn("slack: envelope without an ID, cannot acknowledge", "type", evt.Type)
		return
	}
	if err := smc.AckCtx(ctx, evt.Request.EnvelopeID, payload); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("slack: acknowledgement not sent", "envelope", evt.Request.EnvelopeID, "err", err)
	}
}

// socketErr is the error an event carries, for the log.
func socketErr(data any) any {
	switch d := data.(type) {
	case *slackapi.ConnectionErrorEvent:
		return d.Error()
	case *slackapi.IncomingEventError:
		return d.Error()
	case *socketmode.ErrorBadMessage:
		return d.Cause
	case *socketmode.ErrorWriteFailed:
		return d.Cause
	}
	return data
}

// socketLog sends slack-go's Socket Mode log lines to slog at debug level.
type socketLog struct{ log *slog.Logger }

func (l socketLog) Output(_ int, s string) error {
	l.log.Debug(strings.TrimSpace(s), "component", "socketmode")
	return nil
}
