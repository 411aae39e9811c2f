package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
)

// Groups resolves Slack user groups (S…) into their members through
// usergroups.users.list, caching each answer for a short TTL so an
// authorization check does not call Slack every time.
type Groups struct {
	client *slackapi.Client
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]groupEntry
}

type groupEntry struct {
	members []string
	fetched time.Time
}

var _ bot.GroupResolver = (*Groups)(nil)

// NewGroups returns a resolver caching for ttl (default 1 minute).
func NewGroups(client *slackapi.Client, ttl time.Duration, now func() time.Time) *Groups {
	if ttl <= 0 {
		ttl = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Groups{client: client, ttl: ttl, now: now, cache: map[string]groupEntry{}}
}

// Members returns the members of group.
func (g *Groups) Members(ctx context.Context, group string) ([]string, error) {
	g.mu.Lock()
	e, ok := g.cache[group]
	g.mu.Unlock()
	if ok && g.now().Sub(e.fetched) < g.ttl {
		return e.members, nil
	}
	members, err := g.client.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		if ok {
			return e.members, nil // Slack is unreachable: the last answer is better than none
		}
		return nil, fmt.Errorf("look up the members of user group %s: %w", group, err)
	}
	g.mu.Lock()
	g.cache[group] = groupEntry{members: members, fetched: g.now()}
	g.mu.Unlock()
	return members, nil
}
