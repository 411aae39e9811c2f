// Package slacktest is Slack for tests: slack-go's slacktest server with
// every Web API method greenlight calls answered in Slack's shapes and
// recorded (chat.postMessage, chat.update, chat.postEphemeral,
// views.publish, usergroups.users.list), response_url hooks, and Socket
// Mode (apps.connections.open and a WebSocket a test scripts). Requests the
// other way, Slack calling greenlight, are built and signed here too:
// slash commands, button clicks, mentions and Socket Mode envelopes, signed
// with SigningSecret as Slack signs them.
//
// It is as strict as Slack about what it accepts. A Web API call needs a
// token of the right kind (BotToken, or AppToken for
// apps.connections.open): without one it is answered not_authed, with
// another invalid_auth or not_allowed_token_type. A call missing a
// required field, with text over 40,000 characters, or with Block Kit JSON
// that does not parse or breaks Block Kit's limits (50 blocks, 3,000
// characters of section text, 25 buttons, 75 characters of button text, …)
// is refused with Slack's error and fails the test, since greenlight has no
// reason to send it. chat.update finds only messages posted here, in the
// same channel (message_not_found otherwise). A response_url takes a new
// message only: replacing or deleting the message clicked fails the test,
// since greenlight answers beside it. Failures a test wants (a 429
// with Retry-After, a 5xx, channel_not_found, a call that hangs) are
// injected with SetFault and SetHang.
package slacktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	slackapi "github.com/slack-go/slack"
	slackgotest "github.com/slack-go/slack/slacktest"
)

// The credentials the fake accepts; greenlight under test is configured
// with them.
const (
	BotToken      = "xoxb-1000000001-2000000002-slacktestbottoken"
	AppToken      = "xapp-1-A0GREENLIT-3000000003-slacktestapptoken"
	SigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"
)

// Call is one message Slack accepted from greenlight: a Web API call that
// shows something to people, or a post to a response_url.
type Call struct {
	Method       string // chat.postMessage, chat.update, chat.postEphemeral, views.publish, or response_url
	Channel      string
	User         string // chat.postEphemeral and views.publish: the person it is for
	TS           string // chat.postMessage, chat.postEphemeral: the ts handed out; chat.update: the message's
	ThreadTS     string
	Text         string
	Blocks       string // Block Kit JSON as sent
	View         string // views.publish: the view's JSON as sent
	ResponseType string // response_url: as sent (ephemeral, in_channel)
	Hook         string // response_url: the hook's name, its path after /hooks/
	At           time.Time
}

// BlockSet decodes the call's blocks; the fake accepted them, so they decode.
func (c Call) BlockSet() []slackapi.Block {
	var b slackapi.Blocks
	if c.Blocks != "" {
		_ = json.Unmarshal([]byte(c.Blocks), &b)
	}
	return b.BlockSet
}

// String is the call's method, then name=value for each field set, a line
// each: for searches and failure messages.
func (c Call) String() string {
	parts := []string{c.Method}
	for _, f := range []struct{ name, v string }{
		{"hook", c.Hook}, {"channel", c.Channel}, {"user", c.User}, {"ts", c.TS}, {"thread_ts", c.ThreadTS},
		{"response_type", c.ResponseType}, {"text", c.Text}, {"blocks", c.Blocks}, {"view", c.View},
	} {
		if f.v != "" {
			parts = append(parts, f.name+"="+f.v)
		}
	}
	return strings.Join(parts, "\n")
}

// Attempt is a Web API call about to be answered, as a fault function sees it.
type Attempt struct {
	Method  string
	Try     int // the how-manyth call of Method, from 1
	N       int // the how-manyth Web API call of any method, from 1
	Channel string
}

// Fault is how the fake fails a call instead of answering it.
type Fault struct {
	Status     int    // an HTTP status other than 200: 429 answers ratelimited, others an HTML error page
	RetryAfter string // the Retry-After header, in seconds
	Error      string // with Status 0: Slack's error code in an ok:false answer
}

// RateLimited is Slack's 429 asking the caller to wait d.
func RateLimited(d time.Duration) *Fault {
	return &Fault{Status: http.StatusTooManyRequests, RetryAfter: fmt.Sprint(int(d.Seconds()))}
}

// HTTPError is a failure in front of Slack: status with an HTML page.
func HTTPError(status int) *Fault { return &Fault{Status: status} }

// Error is Slack refusing a call with code (not_in_channel, channel_not_found, …).
func Error(code string) *Fault { return &Fault{Error: code} }

// Server is a fake Slack started for one test.
type Server struct {
	t   testing.TB
	srv *slackgotest.Server

	mu       sync.Mutex
	calls    []Call
	messages map[string]Call     // ts → what the message shows now (its post, or its last update)
	groups   map[string][]string // user group ID → members
	tries    map[string]int      // every call, by method
	fails    map[string]int      // calls answered with an error, by method
	n        int                 // Web API calls of any method
	ts       int                 // the last ts handed out
	opens    int                 // apps.connections.open answered
	fault    func(Attempt) *Fault
	hang     <-chan struct{}
	socket   func(s *Server, n int, c *websocket.Conn)
}

// New starts a fake Slack on a loopback port, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, messages: map[string]Call{}, groups: map[string][]string{}, tries: map[string]int{}, fails: map[string]int{}}
	s.srv = slackgotest.NewTestServer(func(c slackgotest.Customize) {
		c.Handle("/chat.postMessage", s.webAPI("chat.postMessage", bot, s.postMessage))
		c.Handle("/chat.update", s.webAPI("chat.update", bot, s.update))
		c.Handle("/chat.postEphemeral", s.webAPI("chat.postEphemeral", bot, s.postEphemeral))
		c.Handle("/views.publish", s.webAPI("views.publish", bot, s.publishView))
		c.Handle("/usergroups.users.list", s.webAPI("usergroups.users.list", bot, s.userGroupMembers))
		c.Handle("/apps.connections.open", s.webAPI("apps.connections.open", app, s.openConnection))
		c.Handle("/hooks/", s.hook)
		c.Handle("/socket", slackgotest.Websocket(s.serveSocket))
	})
	s.srv.Start()
	t.Cleanup(s.srv.Stop)
	return s
}

// APIURL is the Web API base URL, for slack.OptionAPIURL or Config.APIURL.
func (s *Server) APIURL() string { return s.srv.GetAPIURL() }

// HookURL is a response_url named name on this server.
func (s *Server) HookURL(name string) string { return s.srv.GetAPIURL() + "hooks/" + name }

// Client is a slack-go client with BotToken, pointed at the fake.
func (s *Server) Client() *slackapi.Client {
	return slackapi.New(BotToken, slackapi.OptionAPIURL(s.APIURL()))
}

// SetFault makes fn decide, before each Web API call is answered, whether
// it fails and how; nil answers every call.
func (s *Server) SetFault(fn func(Attempt) *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = fn
}

// SetHang makes every Web API call wait, unanswered, until release is
// closed or the caller gives up; nil answers again. Close release before
// the test ends, or the server cannot stop.
func (s *Server) SetHang(release <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = release
}

// SetUserGroup makes usergroups.users.list answer members for group.
func (s *Server) SetUserGroup(group string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = slices.Clone(members)
}

// ServeSocket makes fn serve each Socket Mode connection: n counts
// apps.connections.open calls, from 1. Without it a connection is closed
// at once.
func (s *Server) ServeSocket(fn func(s *Server, n int, c *websocket.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.socket = fn
}

// Calls returns the calls accepted so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the calls of one method accepted so far.
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// UpdatesOf returns the chat.update calls of the message ts.
func (s *Server) UpdatesOf(ts string) []Call {
	var out []Call
	for _, c := range s.CallsTo("chat.update") {
		if c.TS == ts {
			out = append(out, c)
		}
	}
	return out
}

// Latest is what Slack shows for the message ts: its last update, or its post.
func (s *Server) Latest(ts string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.messages[ts]
	return c, ok
}

// Counts returns how many calls of method came, and how many of them were
// answered with an error (injected, or refused).
func (s *Server) Counts(method string) (tries, fails int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[method], s.fails[method]
}

// Opens counts apps.connections.open calls answered.
func (s *Server) Opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

func (s *Server) serveSocket(c *websocket.Conn) {
	s.mu.Lock()
	n, fn := s.opens, s.socket
	s.mu.Unlock()
	if fn != nil {
		fn(s, n, c)
	}
}
