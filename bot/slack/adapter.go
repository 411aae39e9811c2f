// Package slack is greenlight's Slack adapter, built on slack-go: slash
// commands, button clicks and mentions come in over Socket Mode (default)
// or signed HTTP requests; deploy threads go out as Block Kit messages
// updated in place.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
)

// Config is the slack section of greenlight's configuration, plus the
// secrets main reads from the environment.
type Config struct {
	Mode    string // "socket" (default) or "http"
	Listen  string // http mode: address of the HTTP server, e.g. 127.0.0.1:3000
	Channel string // announcements, and deploys started outside a channel
	APIURL  string // Web API base URL, "" for Slack's; socket mode connects through it too

	BotToken      string // SLACK_BOT_TOKEN, xoxb-
	AppToken      string // SLACK_APP_TOKEN, xapp- (socket mode)
	SigningSecret string // SLACK_SIGNING_SECRET (http mode)

	Workers        int           // handlers of commands and clicks; default 8
	QueueSize      int           // waiting commands before "busy"; default 256
	UpdateInterval time.Duration // at most one chat.update per message this often; default 1s
	MaxBody        int64         // http mode request limit; default 1 MiB
}

// Validate reports a missing secret or a bad setting, naming it.
func (c Config) Validate() error {
	switch c.Mode {
	case "", "socket":
		if c.AppToken == "" {
			return errors.New("socket mode needs SLACK_APP_TOKEN (an xapp- app-level token) in the environment")
		}
	case "http":
		if c.SigningSecret == "" {
			return errors.New("http mode needs SLACK_SIGNING_SECRET in the environment")
		}
		if c.Listen == "" {
			return errors.New("slack.listen: http mode needs an address to listen on")
		}
	default:
		return fmt.Errorf("slack.mode: %q is not a mode (socket or http)", c.Mode)
	}
	if c.BotToken == "" {
		return errors.New("the Slack adapter needs SLACK_BOT_TOKEN (an xoxb- bot token) in the environment")
	}
	return nil
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = "socket"
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.UpdateInterval <= 0 {
		c.UpdateInterval = time.Second
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
}

// RefSaver keeps a deployment's Slack references (channel, thread and
// message timestamps) with its record.
type RefSaver interface {
	SaveRefs(ctx context.Context, id uint64, refs map[string]string) error
}

// NewClient builds the slack-go Web API client for cfg.
func NewClient(cfg Config) *slackapi.Client {
	cfg.defaults()
	// A bounded timeout, and enough idle connections for every worker, so a
	// slow Slack costs a worker at most 30s and a burst reuses connections.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Workers + 4
	opts := []slackapi.Option{slackapi.OptionHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: transport})}
	if cfg.APIURL != "" {
		opts = append(opts, slackapi.OptionAPIURL(cfg.APIURL))
	}
	if cfg.AppToken != "" {
		opts = append(opts, slackapi.OptionAppLevelToken(cfg.AppToken))
	}
	return slackapi.New(cfg.BotToken, opts...)
}

// Dependencies are what the adapter drives.
type Dependencies struct {
	Router   *bot.Router
	Refs     RefSaver
	Log      *slog.Logger
	Observer bot.ChatObserver // requests, acknowledgement times, connection; default none
}
