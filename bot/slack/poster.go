package slack

import (
	"context"
	"log/slog"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
)

// Poster shows bot messages in Slack: it implements bot.Chat.
// (Placeholder: being replaced by the full coalescing poster.)
type Poster struct {
	client *slackapi.Client
	cfg    Config
	refs   RefSaver
	log    *slog.Logger
}

var _ bot.Chat = (*Poster)(nil)

// NewPoster returns a Poster; Run delivers what Send queues.
func NewPoster(client *slackapi.Client, cfg Config, refs RefSaver, log *slog.Logger) *Poster {
	cfg.defaults()
	return &Poster{client: client, cfg: cfg, refs: refs, log: log}
}

// Send queues m; it never blocks on Slack.
func (p *Poster) Send(ctx context.Context, m bot.Message) error { return nil }

// Run delivers queued messages until ctx ends.
func (p *Poster) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
