package slack

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// Home publishes the App Home tab: each service's live image and servers,
// its lock, the deploy in flight and the last five deploys. It republishes
// for the people who opened it when a deploy changes step.
type Home struct {
	client   *slackapi.Client
	deployer bot.Deployer
	log      *slog.Logger
	keep     time.Duration // how long an opener counts as having the tab open

	mu      sync.Mutex
	openers map[string]time.Time
	dirty   chan struct{}
}

var _ bot.Chat = (*Home)(nil)

// NewHome returns a Home; Run republishes in the background.
func NewHome(client *slackapi.Client, d bot.Deployer, log *slog.Logger) *Home {
	return &Home{client: client, deployer: d, log: log, keep: 30 * time.Minute,
		openers: map[string]time.Time{}, dirty: make(chan struct{}, 1)}
}

// Opened publishes the tab for user, who just opened it.
func (h *Home) Opened(ctx context.Context, user string) error {
	h.mu.Lock()
	h.openers[user] = h.deployer.Now()
	h.mu.Unlock()
	return h.publish(ctx, user)
}

// Send notes that a deployment changed, so the tab is republished.
func (h *Home) Send(_ context.Context, m bot.Message) error {
	if m.Checklist == nil {
		return nil
	}
	select {
	case h.dirty <- struct{}{}:
	default:
	}
	return nil
}

// Run republishes for recent openers after changes, at most once a second,
// until ctx ends.
func (h *Home) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.dirty:
		}
		h.mu.Lock()
		var users []string
		now := h.deployer.Now()
		for u, at := range h.openers {
			if now.Sub(at) > h.keep {
				delete(h.openers, u)
				continue
			}
			users = append(users, u)
		}
		h.mu.Unlock()
		for _, u := range users {
			if err := h.publish(ctx, u); err != nil && h.log != nil {
				h.log.Warn("could not republish the App Home", "user", u, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (h *Home) publish(ctx context.Context, user string) error {
	view, err := h.View(ctx)
	if err != nil {
		return err
	}
	_, err = h.client.PublishViewContext(ctx, slackapi.PublishViewContextRequest{UserID: user, View: view})
	if err != nil {
		return fmt.Errorf("publish the App Home for %s: %w", user, err)
	}
	return nil
}

// View builds the tab from the deployer's state.
func (h *Home) View(ctx context.Context) (slackapi.HomeTabViewRequest, error) {
	now := h.deployer.Now()
	blocks := []slackapi.Block{slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType, "greenlight", false, false))}
	for _, name := range h.deployer.Services() {
		st, err := h.deployer.Status(ctx, name)
		if err != nil {
			return slackapi.HomeTabViewRequest{}, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "*%s*\n", name)
		t := bot.TrafficOf(st)
		if len(t.Servers) == 0 {
			b.WriteString("No live set yet.\n")
		} else {
			fmt.Fprintf(&b, "Traffic on %s, `%s`\n", homeServers(t.Servers), t.Image)
		}
		if t.Moving != "" {
			fmt.Fprintf(&b, ":warning: %s\n", t.Moving)
		}
		if t.Attention != "" {
			fmt.Fprintf(&b, ":rotating_light: %s\n", t.Attention)
		}
		if len(t.Kept) > 0 {
			fmt.Fprintf(&b, "Kept for rollback until %s: %s, `%s`\n", t.KeptUntil.UTC().Format("15:04 MST"), homeServers(t.Kept), t.KeptImage)
		}
		if st.Lock == nil {
			b.WriteString("Lock: free\n")
		} else {
			holder := st.Lock.Holder
			if st.Lock.DeployID != 0 {
				holder = fmt.Sprintf("deploy #%d by %s", st.Lock.DeployID, homeMention(st.Lock.Holder))
			}
			fmt.Fprintf(&b, "Lock: held by %s since %s\n", holder, st.Lock.Since.UTC().Format("15:04 MST"))
		}
		for _, f := range st.Frozen {
			fmt.Fprintf(&b, ":snowflake: Frozen (%s) until %s, %s\n", f.About(), f.Until(), f.SetBy())
		}
		if f := st.NextFreeze; f != nil {
			fmt.Fprintf(&b, "Next freeze: %s\n", bot.NextFreezeText(*f))
		}
		if d := st.Active; d != nil {
			where := bot.PhaseText(d.Phase)
			if d.Phase == deployer.PhaseRunning {
				where = "at *" + d.CurrentStep().Title() + "*"
			}
			fmt.Fprintf(&b, "In flight: deploy #%d by %s, %s (%s)\n", d.ID, homeMention(d.Requester), where, bot.Round(d.Duration(now)))
		}
		history, err := h.deployer.History(ctx, name, 5)
		if err != nil {
			return slackapi.HomeTabViewRequest{}, err
		}
		if len(history) > 0 {
			b.WriteString("Last deploys:\n")
		}
		for _, d := range history {
			fmt.Fprintf(&b, "• #%d %s %s → %s, %s in %s", d.ID, homeMention(d.Requester), homeOrDash(d.ImageOld), homeOrDash(d.ImageNew), bot.PhaseText(d.Phase), bot.Round(d.Duration(now)))
			if d.Phase == deployer.PhaseFailed {
				b.WriteString(" at " + homeClip(bot.FailureText(d), 300))
			}
			b.WriteString("\n")
		}
		blocks = append(blocks, slackapi.NewDividerBlock(),
			slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, homeClip(b.String(), 3000), false, false), nil, nil))
	}
	return slackapi.HomeTabViewRequest{Type: slackapi.VTHomeTab, Blocks: slackapi.Blocks{BlockSet: blocks}}, nil
}

func homeServers(servers []deployer.Server) string {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// homeMention shows a Slack user ID as a mention and anything else as it is.
func homeMention(user string) string {
	if len(user) > 1 && (user[0] == 'U' || user[0] == 'W') && strings.ToUpper(user) == user {
		return "<@" + user + ">"
	}
	return user
}

func homeOrDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func homeClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("… (truncated)")] + "… (truncated)"
}
