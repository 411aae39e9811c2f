package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/greenlight/greenlight/bot"
)

// HTTPHandler serves Slack's HTTP-mode requests:
//
//	POST /slack/commands      slash commands (form)
//	POST /slack/interactions  button clicks (form field payload=, JSON)
//	POST /slack/events        Events API (url_verification, app_mention, app_home_opened)
//
// Every request must carry a valid Slack signature made within the last five
// minutes (else 401) and a body of at most cfg.MaxBody bytes (else 413);
// a refused request changes nothing. An accepted one is answered at once and
// handled on the worker pool, which Run must be running.
func (a *Adapter) HTTPHandler() http.Handler { return a.handler }

func (a *Adapter) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /slack/commands", a.timed("command", a.verified(a.serveCommand)))
	mux.Handle("POST /slack/interactions", a.timed("click", a.verified(a.serveInteraction)))
	mux.Handle("POST /slack/events", a.timed("event", a.verified(a.serveEvents)))
	return mux
}

// timed reports each request of kind, its result from the status code it
// was answered with, and how long answering took.
func (a *Adapter) timed(kind string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		result := "ok"
		switch {
		case sw.code == http.StatusServiceUnavailable:
			result = "busy"
		case sw.code >= 500:
			result = "error"
		case sw.code >= 400:
			result = "refused"
		}
		a.obs.ChatRequest(adapterName, kind, result)
		a.obs.ChatAck(adapterName, time.Since(start))
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// verified admits only requests signed by Slack with the signing secret,
// with bodies within the limit; next gets the request with its body intact.
func (a *Adapter) verified(next func(w http.ResponseWriter, r *http.Request, body []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > a.cfg.MaxBody {
			a.refuse(w, r, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		sv, err := slackapi.NewSecretsVerifier(r.Header, a.cfg.SigningSecret)
		if err != nil {
			a.refuse(w, r, http.StatusUnauthorized, "request not signed by Slack: "+err.Error())
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				a.refuse(w, r, http.StatusRequestEntityTooLarge, "request body too large")
				return
			}
			a.refuse(w, r, http.StatusBadRequest, "request body unreadable")
			return
		}
		if _, err := sv.Write(body); err != nil || sv.Ensure() != nil {
			a.refuse(w, r, http.StatusUnauthorized, "request not signed by Slack: invalid signature")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r, body)
	})
}

func (a *Adapter) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	a.log.Warn("slack request refused", "path", r.URL.Path, "status", code, "why", why, "remote", r.RemoteAddr)
	http.Error(w, http.StatusText(code), code)
}

// serveCommand acknowledges a slash command with an empty 200 (the answer
// follows through response_url), or answers "busy" in the acknowledgement.
func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request, _ []byte) {
	cmd, err := slackapi.SlashCommandParse(r)
	if err != nil || cmd.UserID == "" {
		http.Error(w, "not a slash command", http.StatusBadRequest)
		return
	}
	if err := a.enqueue(a.slashTask(cmd)); err != nil {
		a.log.Warn("slack: command not queued", "user", cmd.UserID, "err", err)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ephemeral(bot.ErrorText(err)))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serveInteraction acknowledges button clicks; the answers are ephemeral
// messages to the person who clicked.
func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request, _ []byte) {
	ic, err := slackapi.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, "not an interaction payload", http.StatusBadRequest)
		return
	}
	if ic.Type != slackapi.InteractionTypeBlockActions {
		a.log.Debug("slack interaction ignored", "type", ic.Type)
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, j := range a.clickTasks(ic) {
		if err := a.submit(j); errors.Is(err, errStopping) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// serveEvents answers url_verification with its challenge and acknowledges
// callbacks, queueing the ones greenlight acts on.
func (a *Adapter) serveEvents(w http.ResponseWriter, _ *http.Request, body []byte) {
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		if !json.Valid(body) {
			http.Error(w, "not an Events API payload", http.StatusBadRequest)
			return
		}
		// Signed by Slack but not an event slack-go knows: acknowledge it so
		// Slack does not retry, and ignore it.
		a.log.Debug("slack event ignored", "err", err)
		w.WriteHeader(http.StatusOK)
		return
	}
	switch ev.Type {
	case slackevents.URLVerification:
		uv, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent)
		if !ok {
			http.Error(w, "malformed url_verification", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, uv.Challenge)
		return
	case slackevents.CallbackEvent:
		if j, ok := a.eventTask(ev); ok {
			if err := a.submit(j); errors.Is(err, errStopping) {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
	case slackevents.AppRateLimited:
		a.log.Warn("Slack is rate-limiting greenlight's event subscriptions")
	}
	w.WriteHeader(http.StatusOK)
}
