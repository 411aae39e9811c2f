package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/greenlight/greenlight/bot"
)

const (
	taskTimeout    = time.Minute      // one command or click, its reply included
	noticeTimeout  = 10 * time.Second // a "busy" notice
	drainGrace     = 20 * time.Second // how long shutdown waits for acknowledged work
	hookTimeout    = 10 * time.Second // HTTP client for response_url
	maxNotices     = 32               // "busy" notices in flight at once
	rememberEvents = 1024             // Events API IDs kept for de-duplication
)

// adapterName is the adapter label of the chat metrics.
const adapterName = "slack"

// Adapter is greenlight in Slack: it receives slash commands, button clicks
// and mentions (Socket Mode or signed HTTP requests), acknowledges each at
// once, runs it through the router on a bounded worker pool, and answers;
// its Poster shows the deploy threads.
type Adapter struct {
	// OnHomeOpened, when set (before Run), is called on the worker pool when
	// someone opens the app's Home tab.
	OnHomeOpened func(ctx context.Context, userID string)

	cfg     Config
	obs     bot.ChatObserver
	client  *slackapi.Client
	poster  *Poster
	router  *bot.Router
	log     *slog.Logger
	handler http.Handler
	hooks   *http.Client // posts to response_url
	seen    *eventIDs

	started atomic.Bool
	addr    atomic.Pointer[net.Addr]

	mu      sync.RWMutex // guards running and the closing of tasks
	running bool
	base    context.Context // Run's context without its cancellation, for notices
	tasks   chan task
	notices sync.WaitGroup
	slots   chan struct{} // bounds the notices in flight
}

// New checks cfg and builds the adapter; Run starts it.
func New(cfg Config, deps Dependencies) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Router == nil {
		return nil, errors.New("slack adapter: no router")
	}
	cfg.defaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("adapter", "slack")
	client := NewClient(cfg)
	obs := deps.Observer
	if obs == nil {
		obs = bot.NopObserver{}
	}
	a := &Adapter{
		obs:    obs,
		cfg:    cfg,
		client: client,
		poster: NewPoster(client, cfg, deps.Refs, log),
		router: deps.Router,
		log:    log,
		hooks:  hookClient(cfg.Workers),
		seen:   newEventIDs(rememberEvents),
		tasks:  make(chan task, cfg.QueueSize),
		slots:  make(chan struct{}, maxNotices),
	}
	a.handler = a.newHandler()
	return a, nil
}

// hookClient posts to response_url; it keeps a connection per worker, since
// every answer goes to the same host (hooks.slack.com).
func hookClient(workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers
	return &http.Client{Timeout: hookTimeout, Transport: t}
}

// Chat is how the bot shows messages in Slack (the deploy threads).
func (a *Adapter) Chat() bot.Chat { return a.poster }

// Addr is the HTTP server's address once Run listens (http mode), else nil.
func (a *Adapter) Addr() net.Addr {
	if p := a.addr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run runs the Poster, the worker pool and the transport (Socket Mode,
// reconnecting on its own, or the HTTP server on cfg.Listen) until ctx ends.
// It then stops taking requests, finishes the work already acknowledged
// (for at most drainGrace) and returns nil. It returns an error when the
// transport cannot run: the address cannot be listened on, or Slack refuses
// the app token.
func (a *Adapter) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("slack adapter: Run called twice")
	}
	base := context.WithoutCancel(ctx)
	workCtx, stopWork := context.WithCancel(base)
	defer stopWork()
	posterCtx, stopPoster := context.WithCancel(base)
	defer stopPoster()

	var poster sync.WaitGroup
	poster.Go(func() {
		if err := a.poster.Run(posterCtx); err != nil {
			a.log.Error("slack poster stopped", "err", err)
		}
	})
	a.mu.Lock()
	a.base, a.running = base, true
	a.mu.Unlock()
	var workers sync.WaitGroup
	for range a.cfg.Workers {
		workers.Go(func() { a.work(workCtx) })
	}

	var err error
	if a.cfg.Mode == "http" {
		err = a.serveHTTP(ctx)
	} else {
		err = a.runSocket(ctx)
	}

	// Nothing new comes in now; finish what was acknowledged.
	a.mu.Lock()
	a.running = false
	close(a.tasks)
	a.mu.Unlock()
	grace := time.AfterFunc(drainGrace, stopWork)
	workers.Wait()
	grace.Stop()
	a.notices.Wait()
	stopPoster() // after the workers: what they caused still gets shown until now
	poster.Wait()
	return err
}

// work runs tasks until the queue is closed and empty.
func (a *Adapter) work(ctx context.Context) {
	for j := range a.tasks {
		if ctx.Err() != nil {
			a.log.Error("slack: shut down before handling", "what", j.what, "user", j.user, "channel", j.to.channel)
			continue
		}
		a.runTask(ctx, j)
	}
}

func (a *Adapter) runTask(ctx context.Context, j task) {
	ctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("slack: handler panicked", "what", j.what, "user", j.user, "panic", p)
			a.deliver(ctx, j, bot.Reply{Messages: []bot.Message{{Level: bot.LevelError, Ephemeral: true, User: j.user,
				Text: "greenlight hit an internal error handling that; nothing more was done. See its log."}}})
		}
	}()
	a.deliver(ctx, j, j.do(ctx))
}

// enqueue queues j without waiting: errBusy when the queue is full,
// errStopping when the adapter is not running.
func (a *Adapter) enqueue(j task) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.running {
		return errStopping
	}
	select {
	case a.tasks <- j:
		return nil
	default:
		return errBusy
	}
}

// submit queues j or, failing that, tells its person why (on its own
// goroutine, so the transport's acknowledgement is not held up).
func (a *Adapter) submit(j task) error {
	err := a.enqueue(j)
	if err != nil {
		a.log.Warn("slack: request not queued", "what", j.what, "user", j.user, "err", err)
		a.notify(j, bot.ErrorText(err))
	}
	return err
}

// notify sends text to j's person, if there is one. Notices are bounded;
// one that cannot be sent is logged.
func (a *Adapter) notify(j task, text string) {
	if j.to.user == "" {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.running {
		a.log.Error("slack: could not tell a person their request was not handled", "user", j.user, "what", j.what)
		return
	}
	select {
	case a.slots <- struct{}{}:
	default:
		a.log.Error("slack: too busy to tell a person their request was not handled", "user", j.user, "what", j.what)
		return
	}
	a.notices.Go(func() {
		defer func() { <-a.slots }()
		ctx, cancel := context.WithTimeout(a.base, noticeTimeout)
		defer cancel()
		m := bot.Message{Level: bot.LevelWarning, Text: text, Ephemeral: true, User: j.user}
		if err := a.post(ctx, j.to, m); err != nil {
			a.log.Warn("slack busy notice not delivered", "user", j.user, "err", err)
		}
	})
}

// serveHTTP runs the HTTP server until ctx ends, then shuts it down,
// letting requests in progress finish.
func (a *Adapter) serveHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("slack http mode: %w", err)
	}
	addr := ln.Addr()
	a.addr.Store(&addr)
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.log.Info("slack http mode listening", "addr", addr.String())
	a.obs.ChatConnected(adapterName, true)
	defer a.obs.ChatConnected(adapterName, false)
	select {
	case err := <-served:
		return fmt.Errorf("slack http mode: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("slack http server did not shut down cleanly", "err", err)
		_ = srv.Close()
	}
	<-served
	return nil
}
