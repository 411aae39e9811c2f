package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// Refs keys the Poster keeps with a deployment, so that after a restart it
// updates the same messages instead of posting new ones.
const (
	RefSlackChannel  = "slack.channel" // the channel of the deploy's thread
	RefSlackThread   = "slack.thread"  // the ts of the thread's parent message
	RefSlackTSPrefix = "slack.ts."     // + message key: the ts of a keyed message
)

// Delivery defaults; tests shorten them.
const (
	defaultCallTimeout  = 15 * time.Second // one Web API call
	defaultFlushTimeout = 2 * time.Second  // the last delivery when Run ends
	defaultBackoffMin   = time.Second      // first wait after a 5xx or network error
	defaultBackoffMax   = time.Minute      // longest wait between tries
	defaultForget       = 6 * time.Hour    // a delivered, quiet thread is forgotten after this
	maxPendingPosts     = 200              // unposted messages kept per thread while Slack is away
)

// Poster shows bot messages in Slack: it implements bot.Chat.
//
// Send only records a message's latest state and wakes Run, which delivers:
// a deploy's messages (Thread "deploy-N") go into one thread under a parent
// message in the deploy's channel, keyed messages are posted once and then
// updated in place (at most once per Config.UpdateInterval, skipping
// intermediate states), unkeyed ones are posted once, in order. Top-level
// messages go to the configured channel; ephemeral ones to their User
// (chat.postEphemeral), in the deploy's thread when it is known. Rate
// limits are honoured, 5xx and network errors retried with backoff, and
// when Slack comes back the latest state of every message is shown. Thread
// and message timestamps are saved through the RefSaver, so after a
// restart the same messages are updated.
type Poster struct {
	client *slackapi.Client
	cfg    Config
	refs   RefSaver
	log    *slog.Logger

	callTimeout  time.Duration
	flushTimeout time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	forget       time.Duration

	wake chan struct{}

	mu          sync.Mutex
	threads     map[string]*postThread
	order       []*postThread // oldest first: delivery order between threads
	pausedUntil time.Time     // no call before this (Retry-After, backoff)
	backoff     time.Duration
	failing     bool // the last call failed and was to be retried
}

var _ bot.Chat = (*Poster)(nil)

// postThread is a deploy's thread, or (key "") the top-level messages.
type postThread struct {
	key      string
	deployID uint64
	channel  string     // the thread's channel; Slack's ID for it once posted
	fallback string     // where to post the parent when channel refuses it
	parent   *postEntry // nil at top level
	posts    []*postEntry
	keyed    map[string]*postEntry
	dead     bool // the parent could not be posted: the thread's messages are dropped
	touched  time.Time
}

// postEntry is one Slack message: its latest state and what Slack shows.
type postEntry struct {
	key     string
	msg     bot.Message
	version uint64 // of msg; bumped by every Send
	shown   uint64 // the version Slack shows (or that was given up on)
	channel string // top level: where to post
	ts      string // "" until posted
	queued  bool   // in its thread's posts
	sent    time.Time
	touched time.Time
}

// NewPoster returns a Poster; Run delivers what Send queues.
func NewPoster(client *slackapi.Client, cfg Config, refs RefSaver, log *slog.Logger) *Poster {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poster{
		client: client, cfg: cfg, refs: refs, log: log,
		callTimeout: defaultCallTimeout, flushTimeout: defaultFlushTimeout,
		backoffMin: defaultBackoffMin, backoffMax: defaultBackoffMax, forget: defaultForget,
		wake:    make(chan struct{}, 1),
		threads: map[string]*postThread{},
	}
}

// Send records m as the latest state of its message and wakes Run; it never
// waits for Slack. It fails only when m cannot be shown anywhere (no
// channel configured, an ephemeral message without a user).
func (p *Poster) Send(_ context.Context, m bot.Message) error {
	if m.Ephemeral && m.User == "" {
		return errors.New("slack: an ephemeral message needs a user")
	}
	m = ownCopy(m)
	now := time.Now()
	p.mu.Lock()
	err := p.record(m, now)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// ownCopy copies what m refers to, so a caller changing it later does not
// change what is shown (or race with the delivery).
func ownCopy(m bot.Message) bot.Message {
	m.Refs = maps.Clone(m.Refs)
	m.Actions = slices.Clone(m.Actions)
	if m.Checklist != nil {
		c := *m.Checklist
		c.Items = slices.Clone(c.Items)
		m.Checklist = &c
	}
	return m
}

// record files m under its thread and message. p.mu is held.
func (p *Poster) record(m bot.Message, now time.Time) error {
	if m.Ephemeral {
		return p.recordEphemeral(m, now)
	}
	th := p.threads[m.Thread]
	if th == nil {
		th = &postThread{key: m.Thread, keyed: map[string]*postEntry{}}
		if m.Thread != "" {
			th.deployID = m.DeployID
			th.channel, th.fallback = m.Refs[deployer.RefChannel], p.cfg.Channel
			if th.channel == "" || th.channel == th.fallback {
				th.channel, th.fallback = p.cfg.Channel, ""
			}
			th.parent = &postEntry{key: m.Thread + "/parent"}
			if ch, ts := m.Refs[RefSlackChannel], m.Refs[RefSlackThread]; ch != "" && ts != "" {
				// Posted before greenlight restarted: keep using that thread.
				th.channel, th.fallback, th.parent.ts, th.parent.channel = ch, "", ts, ch
			}
			if th.channel == "" {
				return fmt.Errorf("slack: no channel for %s (set slack.channel)", m.Thread)
			}
		}
		p.threads[m.Thread] = th
		p.order = append(p.order, th)
	}
	th.touched = now
	if th.dead {
		p.log.Debug("slack: message dropped, its thread could not be posted", "thread", th.key, "key", m.Key)
		return nil
	}
	if th.deployID == 0 && th.parent != nil {
		th.deployID = m.DeployID
	}
	channel := th.channel
	if th.parent == nil {
		if channel = p.topChannel(m); channel == "" {
			return errors.New("slack: no channel for top-level messages (set slack.channel)")
		}
	}
	if pe := th.parent; pe != nil && (pe.version == 0 || m.Checklist != nil) {
		pm := threadParent(m)
		if pe.version == 0 || pm.Text != pe.msg.Text || pm.Level != pe.msg.Level {
			pe.msg = pm
			pe.version++
			if pe.ts != "" && pe.shown == 0 {
				pe.shown = pe.version // adopted after a restart: assume it shows this
			}
		}
		pe.touched = now
	}

	var e *postEntry
	if m.Key != "" {
		e = th.keyed[m.Key]
		if e == nil {
			e = &postEntry{key: m.Key, channel: channel}
			if ts := m.Refs[RefSlackTSPrefix+m.Key]; ts != "" && th.parent != nil && th.parent.ts != "" {
				e.ts, e.channel = ts, th.channel // posted before a restart: update it
			}
			th.keyed[m.Key] = e
		}
	} else {
		e = &postEntry{channel: channel}
	}
	e.msg = m
	e.version++
	e.touched = now
	if e.ts == "" && !e.queued {
		p.enqueue(th, e)
	}
	return nil
}

// recordEphemeral queues an ephemeral message: in its deploy's thread when
// that thread is being shown (after its parent), else on its own, in the
// thread its refs name if any. It never starts a thread. p.mu is held.
func (p *Poster) recordEphemeral(m bot.Message, now time.Time) error {
	th := p.threads[m.Thread]
	channel := ""
	if th == nil || th.dead || th.parent == nil {
		th = p.threads[""]
		if th == nil {
			th = &postThread{keyed: map[string]*postEntry{}}
			p.threads[""] = th
			p.order = append(p.order, th)
		}
		channel = m.Refs[RefSlackChannel]
		if channel == "" || m.Refs[RefSlackThread] == "" {
			channel = p.topChannel(m)
		}
		if channel == "" {
			return errors.New("slack: no channel for an ephemeral message (set slack.channel)")
		}
	}
	th.touched = now
	p.enqueue(th, &postEntry{msg: m, version: 1, channel: channel, touched: now})
	return nil
}

// topChannel is where a message outside a thread goes: the channel it was
// asked for in, else the configured one.
func (p *Poster) topChannel(m bot.Message) string {
	if ch := m.Refs[deployer.RefChannel]; ch != "" {
		return ch
	}
	return p.cfg.Channel
}

// enqueue adds e to th's posts, dropping the oldest unkeyed one when too
// many wait. p.mu is held.
func (p *Poster) enqueue(th *postThread, e *postEntry) {
	e.queued = true
	th.posts = append(th.posts, e)
	if len(th.posts) > maxPendingPosts {
		p.dropOldest(th)
	}
}

// dropOldest gives up the oldest waiting unkeyed post of th (never the
// first, which may be on its way). p.mu is held.
func (p *Poster) dropOldest(th *postThread) {
	for i := 1; i < len(th.posts); i++ {
		if th.posts[i].key == "" {
			p.log.Warn("slack: too many messages waiting; dropping one", "thread", th.key)
			th.posts[i].queued = false
			th.posts = append(th.posts[:i], th.posts[i+1:]...)
			return
		}
	}
}

// threadParent is the parent of m's thread: the checklist's title, or a
// title built from m.
func threadParent(m bot.Message) bot.Message {
	pm := bot.Message{Thread: m.Thread, User: m.User, DeployID: m.DeployID, Service: m.Service}
	switch {
	case m.Checklist != nil && m.Checklist.Title != "":
		pm.Text = m.Checklist.Title
		if m.Level != bot.LevelInfo {
			pm.Level = m.Level // the outcome, once there is one
		}
	case m.DeployID != 0:
		pm.Text = fmt.Sprintf("Deploy #%d of %s by %s", m.DeployID, m.Service, m.User)
	default:
		pm.Text = m.Thread
	}
	return pm
}

// delivery is one Web API call to make.
type delivery struct {
	th       *postThread
	e        *postEntry
	parent   bool
	update   bool
	msg      bot.Message
	version  uint64
	channel  string
	ts       string // update: the message's ts
	threadTS string // post: the thread to post in
}

// Run delivers what Send records until ctx ends, then makes a last attempt
// to show the latest states, and returns nil. A call under way when ctx
// ends may finish (so it is not made twice); no call outlives ctx by more
// than flushTimeout.
func (p *Poster) Run(ctx context.Context) error {
	calls, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	var watcher sync.WaitGroup
	defer watcher.Wait()
	defer cancelCalls()
	watcher.Go(func() { // calls end flushTimeout after ctx, or when Run returns
		select {
		case <-ctx.Done():
		case <-calls.Done():
			return
		}
		t := time.NewTimer(p.flushTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelCalls()
		case <-calls.Done():
		}
	})

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		wait := p.deliver(ctx, calls, false)
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
		case <-p.wake:
		case <-tick:
		}
		timer.Stop()
	}
	p.deliver(calls, calls, true)
	return nil
}

// deliver makes the calls that are due, with calls as their context, while
// ctx lasts, and returns how long until the next one is due (-1: none
// waiting). final ignores the update interval and stops at the first error
// that would need a retry.
func (p *Poster) deliver(ctx, calls context.Context, final bool) time.Duration {
	for ctx.Err() == nil {
		p.mu.Lock()
		paused := time.Until(p.pausedUntil)
		p.mu.Unlock()
		if paused > 0 {
			if !final {
				return paused
			}
			t := time.NewTimer(paused)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return -1
			}
		}
		p.mu.Lock()
		j, wait := p.next(time.Now(), final)
		p.mu.Unlock()
		if j == nil {
			return wait
		}
		retry := p.do(calls, j)
		if retry && final {
			return -1
		}
	}
	return -1
}

// next picks the next call to make, or says how long until one is due.
// p.mu is held.
func (p *Poster) next(now time.Time, final bool) (*delivery, time.Duration) {
	wait := time.Duration(-1)
	soonest := func(d time.Duration) {
		if wait < 0 || d < wait {
			wait = d
		}
	}
	due := func(e *postEntry) bool {
		if e.ts == "" || e.version <= e.shown {
			return false
		}
		at := e.sent.Add(p.cfg.UpdateInterval)
		if final || !at.After(now) {
			return true
		}
		soonest(at.Sub(now))
		return false
	}
	update := func(th *postThread, e *postEntry, parent bool) *delivery {
		ch := e.channel
		if ch == "" {
			ch = th.channel
		}
		return &delivery{th: th, e: e, parent: parent, update: true, msg: e.msg, version: e.version, channel: ch, ts: e.ts}
	}
	p.forgetQuiet(now)
	for _, th := range p.order {
		if th.dead {
			continue
		}
		if pe := th.parent; pe != nil {
			if pe.ts == "" {
				if len(th.posts) > 0 {
					return &delivery{th: th, e: pe, parent: true, msg: pe.msg, version: pe.version, channel: th.channel}, 0
				}
			} else if due(pe) {
				return update(th, pe, true), 0
			}
		}
		if len(th.posts) > 0 {
			e := th.posts[0]
			j := &delivery{th: th, e: e, msg: e.msg, version: e.version, channel: e.channel}
			if th.parent != nil {
				j.channel, j.threadTS = th.channel, th.parent.ts
			}
			if e.msg.Ephemeral && th.parent == nil && e.channel == e.msg.Refs[RefSlackChannel] {
				j.threadTS = e.msg.Refs[RefSlackThread]
			}
			return j, 0
		}
		for _, e := range th.keyed {
			if due(e) {
				return update(th, e, false), 0
			}
		}
	}
	return nil, wait
}

// forgetQuiet drops threads and top-level messages that are fully shown
// and quiet for p.forget; a later message about them carries their refs.
// p.mu is held.
func (p *Poster) forgetQuiet(now time.Time) {
	settled := func(e *postEntry) bool { return e.version <= e.shown && now.Sub(e.touched) > p.forget }
	kept := p.order[:0]
	for _, th := range p.order {
		if len(th.posts) == 0 && now.Sub(th.touched) > p.forget {
			for k, e := range th.keyed {
				if settled(e) {
					delete(th.keyed, k)
				}
			}
			if len(th.keyed) == 0 && (th.parent == nil || th.dead || settled(th.parent)) {
				delete(p.threads, th.key)
				continue
			}
		}
		kept = append(kept, th)
	}
	clear(p.order[len(kept):])
	p.order = kept
}

// do makes one call and records its outcome; it reports whether the call
// failed in a way worth retrying.
func (p *Poster) do(ctx context.Context, j *delivery) (retry bool) {
	cctx, cancel := context.WithTimeout(ctx, p.callTimeout)
	defer cancel()
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(Text(j.msg), false),
		slackapi.MsgOptionBlocks(Blocks(j.msg)...),
	}
	method := "chat.postMessage"
	var channel, ts string
	var err error
	switch {
	case j.update:
		method = "chat.update"
		channel, ts, _, err = p.client.UpdateMessageContext(cctx, j.channel, j.ts, opts...)
	case j.msg.Ephemeral:
		method = "chat.postEphemeral"
		if j.threadTS != "" {
			opts = append(opts, slackapi.MsgOptionTS(j.threadTS))
		}
		_, err = p.client.PostEphemeralContext(cctx, j.channel, j.msg.User, opts...)
	default:
		if j.threadTS != "" {
			opts = append(opts, slackapi.MsgOptionTS(j.threadTS))
		}
		channel, ts, err = p.client.PostMessageContext(cctx, j.channel, opts...)
	}
	if channel == "" {
		channel = j.channel
	}
	if ts == "" {
		ts = j.ts
	}
	if err != nil && ctx.Err() != nil {
		return false // out of time: shutting down
	}

	now := time.Now()
	p.mu.Lock()
	if err == nil {
		if p.failing {
			p.log.Info("slack: reachable again; catching up")
		}
		p.failing, p.backoff = false, 0
		id, refs := p.delivered(j, channel, ts, now)
		p.mu.Unlock()
		if len(refs) > 0 && id != 0 && p.refs != nil {
			if err := p.refs.SaveRefs(ctx, id, refs); err != nil {
				p.log.Warn("slack: could not save the thread's references; after a restart new messages will be posted", "deploy", id, "err", err)
			}
		}
		return false
	}
	defer p.mu.Unlock()
	if wait, ok := postRetryable(err); ok {
		if wait <= 0 {
			p.backoff = min(max(2*p.backoff, p.backoffMin), p.backoffMax)
			wait = p.backoff
		}
		p.pausedUntil = now.Add(wait)
		p.failing = true
		p.log.Warn("slack: call failed; will retry", "method", method, "thread", j.th.key, "key", j.msg.Key, "retry_in", wait, "err", err)
		return true
	}
	p.failed(j, method, err)
	return false
}

// delivered records a successful call and returns the refs to save for the
// deployment it made them for. p.mu is held.
func (p *Poster) delivered(j *delivery, channel, ts string, now time.Time) (uint64, map[string]string) {
	e, th := j.e, j.th
	e.shown, e.sent = max(e.shown, j.version), now
	if j.update {
		return 0, nil
	}
	if j.msg.Ephemeral {
		th.unqueue(e)
		return 0, nil
	}
	e.ts, e.channel = ts, channel
	if j.parent {
		th.channel, th.fallback = channel, ""
		return th.deployID, map[string]string{RefSlackChannel: channel, RefSlackThread: ts}
	}
	th.unqueue(e)
	if th.parent == nil || e.key == "" {
		return 0, nil
	}
	return th.deployID, map[string]string{RefSlackChannel: th.channel, RefSlackThread: th.parent.ts, RefSlackTSPrefix + e.key: ts}
}

// failed records a call that cannot succeed as it is. p.mu is held.
func (p *Poster) failed(j *delivery, method string, err error) {
	e, th := j.e, j.th
	log := p.log.With("method", method, "channel", j.channel, "thread", th.key, "key", j.msg.Key, "err", err)
	switch {
	case j.parent && !j.update && th.fallback != "":
		log.Warn("slack: cannot post the deploy thread there; using the configured channel", "fallback", th.fallback)
		th.channel, th.fallback = th.fallback, ""
		for _, x := range th.keyed {
			x.channel = th.channel
		}
	case j.parent && !j.update:
		log.Error("slack: cannot post the deploy thread; its messages are dropped")
		th.dead = true
		for _, x := range th.posts {
			x.queued = false
		}
		th.posts = nil
	case j.update && isSlackError(err, "message_not_found", "cant_update_message") && !j.parent:
		log.Warn("slack: the message to update is gone; posting it again")
		e.ts = ""
		if !e.queued {
			p.enqueue(th, e)
		}
	default:
		log.Error("slack: message not shown")
		e.shown = max(e.shown, j.version)
		if !j.update {
			th.unqueue(e)
		}
	}
}

func (th *postThread) unqueue(e *postEntry) {
	for i, x := range th.posts {
		if x == e {
			th.posts = append(th.posts[:i], th.posts[i+1:]...)
			break
		}
	}
	e.queued = false
}

// postTransientErrors are Slack error codes worth retrying.
var postTransientErrors = []string{"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}

// postRetryable reports whether err is worth retrying and, for a rate limit,
// how long Slack asked to wait (0: use the backoff).
func postRetryable(err error) (time.Duration, bool) {
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return max(rl.RetryAfter, time.Second), true
	}
	var sc slackapi.StatusCodeError
	if errors.As(err, &sc) {
		return 0, sc.Retryable() || sc.Code == http.StatusRequestTimeout
	}
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return 0, isSlackError(err, postTransientErrors...)
	}
	return 0, true // network errors, timeouts, a proxy's error page
}

// isSlackError reports whether err is a Slack error response with one of codes.
func isSlackError(err error, codes ...string) bool {
	var se slackapi.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Err == c {
			return true
		}
	}
	return false
}
