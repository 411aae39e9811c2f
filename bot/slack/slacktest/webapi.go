package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// tokenKind is the kind of token a method needs.
type tokenKind int

const (
	bot tokenKind = iota // BotToken
	app                  // AppToken
)

// request is a Web API call as a method sees it.
type request struct {
	form url.Values // the query and the form fields
	body []byte     // as sent: JSON methods read it
	at   time.Time
}

// answer is the fields of an ok:true answer.
type answer map[string]any

// refusal is an ok:false answer.
type refusal struct {
	code      string
	detail    string // response_metadata's message: what is wrong and where
	malformed bool   // a request greenlight has no reason to send: the test fails
}

// malformed is Slack refusing a request that breaks the method's rules.
func malformed(code, detail string) *refusal {
	return &refusal{code: code, detail: detail, malformed: true}
}

// webAPI answers one Web API method as Slack does: a fault if the test set
// one, then the token checked, then serve.
func (s *Server) webAPI(method string, need tokenKind, serve func(request) (answer, *refusal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form := r.URL.Query()
		var formErr error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			posted, err := url.ParseQuery(string(body))
			formErr = err
			for k, v := range posted {
				form[k] = append(form[k], v...)
			}
		}

		s.mu.Lock()
		s.n++
		s.tries[method]++
		at := Attempt{Method: method, Try: s.tries[method], N: s.n, Channel: form.Get("channel")}
		hang, fault := s.hang, s.fault
		s.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if fault != nil {
			if f := fault(at); f != nil {
				s.failed(method)
				writeFault(w, f)
				return
			}
		}
		var (
			ans answer
			ref *refusal
		)
		switch {
		case formErr != nil:
			ref = malformed("invalid_form_data", formErr.Error())
		default:
			ref = authorize(r, form, need)
		}
		if ref == nil {
			ans, ref = serve(request{form: form, body: body, at: time.Now()})
		}
		if ref != nil {
			s.failed(method)
			if ref.malformed {
				s.t.Errorf("slacktest: Slack refuses %s: %s: %s", method, ref.code, ref.detail)
			}
			out := answer{"ok": false, "error": ref.code}
			if ref.detail != "" {
				out["response_metadata"] = answer{"messages": []string{"[ERROR] " + ref.detail}}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		ans["ok"] = true
		writeJSON(w, http.StatusOK, ans)
	}
}

// authorize checks the call's token as Slack does.
func authorize(r *http.Request, form url.Values, need tokenKind) *refusal {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = form.Get("token")
	}
	want, other := BotToken, AppToken
	if need == app {
		want, other = AppToken, BotToken
	}
	switch token {
	case want:
		return nil
	case "":
		return &refusal{code: "not_authed"}
	case other:
		return &refusal{code: "not_allowed_token_type"}
	}
	return &refusal{code: "invalid_auth"}
}

func (s *Server) failed(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[method]++
}

func writeFault(w http.ResponseWriter, f *Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch {
	case f.Status == http.StatusTooManyRequests:
		writeJSON(w, f.Status, answer{"ok": false, "error": "ratelimited"})
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><body>%d %s: Slack is having trouble</body></html>", f.Status, http.StatusText(f.Status))
	default:
		writeJSON(w, http.StatusOK, answer{"ok": false, "error": f.Error})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxText is the longest text Slack takes in a message.
const maxText = 40000

// message checks what chat.postMessage, chat.update and chat.postEphemeral
// share: a channel, something to show, text and blocks within limits.
func message(r request) (Call, *refusal) {
	c := Call{Channel: r.form.Get("channel"), Text: r.form.Get("text"), Blocks: r.form.Get("blocks"),
		ThreadTS: r.form.Get("thread_ts"), At: r.at}
	switch {
	case c.Channel == "":
		return c, malformed("channel_not_found", "channel is missing")
	case c.Text == "" && c.Blocks == "" && r.form.Get("attachments") == "":
		return c, malformed("no_text", "text, blocks and attachments are all missing")
	case utf8.RuneCountInString(c.Text) > maxText:
		return c, malformed("msg_too_long", fmt.Sprintf("text is %d characters, more than %d", utf8.RuneCountInString(c.Text), maxText))
	}
	if c.Blocks != "" {
		if why := checkBlocks(c.Blocks, maxMessageBlocks); why != "" {
			return c, malformed("invalid_blocks", why)
		}
	}
	return c, nil
}

// newTS hands out the next message ts; s.mu is held.
func (s *Server) newTS() string {
	s.ts++
	return fmt.Sprintf("1763906400.%06d", s.ts)
}

func (s *Server) postMessage(r request) (answer, *refusal) {
	c, ref := message(r)
	if ref != nil {
		return nil, ref
	}
	c.Method = "chat.postMessage"
	s.mu.Lock()
	c.TS = s.newTS()
	s.calls = append(s.calls, c)
	s.messages[c.TS] = c
	s.mu.Unlock()
	return answer{"channel": c.Channel, "ts": c.TS, "message": shown(c)}, nil
}

func (s *Server) update(r request) (answer, *refusal) {
	c, ref := message(r)
	if ref != nil {
		return nil, ref
	}
	c.Method, c.TS, c.ThreadTS = "chat.update", r.form.Get("ts"), ""
	if c.TS == "" {
		return nil, malformed("message_not_found", "ts is missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.messages[c.TS]; !ok || m.Channel != c.Channel {
		return nil, &refusal{code: "message_not_found"}
	}
	c.ThreadTS = s.messages[c.TS].ThreadTS
	s.calls = append(s.calls, c)
	s.messages[c.TS] = c
	return answer{"channel": c.Channel, "ts": c.TS, "text": c.Text, "message": shown(c)}, nil
}

func (s *Server) postEphemeral(r request) (answer, *refusal) {
	c, ref := message(r)
	if ref != nil {
		return nil, ref
	}
	c.Method, c.User = "chat.postEphemeral", r.form.Get("user")
	if c.User == "" {
		return nil, malformed("user_not_in_channel", "user is missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.TS = s.newTS()
	s.calls = append(s.calls, c)
	return answer{"message_ts": c.TS}, nil
}

// shown is the message object Slack returns with a post or an update.
func shown(c Call) answer {
	m := answer{"type": "message", "subtype": "bot_message", "bot_id": "B0GREENLIT", "text": c.Text, "ts": c.TS}
	if c.ThreadTS != "" {
		m["thread_ts"] = c.ThreadTS
	}
	if c.Blocks != "" {
		m["blocks"] = json.RawMessage(c.Blocks)
	}
	return m
}

func (s *Server) publishView(r request) (answer, *refusal) {
	var req struct {
		UserID string          `json:"user_id"`
		View   json.RawMessage `json:"view"`
	}
	if err := json.Unmarshal(r.body, &req); err != nil {
		return nil, malformed("invalid_json", err.Error())
	}
	var view struct {
		Type   string          `json:"type"`
		Blocks json.RawMessage `json:"blocks"`
	}
	switch {
	case req.UserID == "":
		return nil, malformed("invalid_arguments", "user_id is missing")
	case len(req.View) == 0 || json.Unmarshal(req.View, &view) != nil:
		return nil, malformed("invalid_arguments", "view is missing or not an object [json-pointer:/view]")
	case view.Type != "home":
		return nil, malformed("invalid_arguments", fmt.Sprintf("view type %q cannot be published, only home [json-pointer:/view/type]", view.Type))
	case len(view.Blocks) == 0:
		return nil, malformed("invalid_arguments", "missing required field: blocks [json-pointer:/view/blocks]")
	}
	if why := checkBlocks(string(view.Blocks), maxViewBlocks); why != "" {
		return nil, malformed("invalid_arguments", strings.Replace(why, "json-pointer:/blocks", "json-pointer:/view/blocks", 1))
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: "views.publish", User: req.UserID, View: string(req.View), At: r.at})
	n := len(s.calls)
	s.mu.Unlock()
	return answer{"view": answer{"id": fmt.Sprintf("V%08d", n), "type": "home", "blocks": view.Blocks}}, nil
}

func (s *Server) userGroupMembers(r request) (answer, *refusal) {
	group := r.form.Get("usergroup")
	if group == "" {
		return nil, malformed("invalid_arguments", "usergroup is missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	members, ok := s.groups[group]
	if !ok {
		return nil, &refusal{code: "no_such_subteam"}
	}
	return answer{"users": members}, nil
}

func (s *Server) openConnection(request) (answer, *refusal) {
	s.mu.Lock()
	s.opens++
	s.mu.Unlock()
	return answer{"url": "ws://" + s.srv.ServerAddr + "/socket"}, nil
}

// hook takes a message posted to a response_url.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, code, why string) {
		s.t.Errorf("slacktest: Slack refuses a response_url message: %s: %s", code, why)
		http.Error(w, code, status)
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "invalid_method", r.Method+" is not POST")
		return
	}
	var m struct {
		Text            string          `json:"text"`
		ResponseType    string          `json:"response_type"`
		ThreadTS        string          `json:"thread_ts"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		refuse(http.StatusBadRequest, "invalid_payload", "Content-Type "+r.Header.Get("Content-Type")+", not JSON")
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		refuse(http.StatusBadRequest, "invalid_payload", err.Error())
		return
	}
	blocks := string(m.Blocks)
	if blocks == "null" {
		blocks = ""
	}
	switch {
	case m.ReplaceOriginal || m.DeleteOriginal:
		// Slack would do it; greenlight answers beside the message clicked, never over it.
		refuse(http.StatusBadRequest, "replace_original", "greenlight must not replace or delete the message clicked")
		return
	case m.Text == "" && blocks == "":
		refuse(http.StatusBadRequest, "no_text", "text and blocks are both missing")
		return
	case utf8.RuneCountInString(m.Text) > maxText:
		refuse(http.StatusBadRequest, "msg_too_long", "text is over 40,000 characters")
		return
	}
	if blocks != "" {
		if why := checkBlocks(blocks, maxMessageBlocks); why != "" {
			refuse(http.StatusBadRequest, "invalid_blocks", why)
			return
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: "response_url", Hook: strings.TrimPrefix(r.URL.Path, "/hooks/"),
		Text: m.Text, Blocks: blocks, ThreadTS: m.ThreadTS, ResponseType: m.ResponseType, At: time.Now()})
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}
