package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What Slack sends greenlight: requests signed with the signing secret
// (HTTP mode), and envelopes over a Socket Mode connection. The payloads
// are shaped field for field as Slack sends them.

// Content types of Slack's requests: slash commands and interactions are
// forms, the Events API is JSON.
const (
	FormType = "application/x-www-form-urlencoded"
	JSONType = "application/json"
)

// BotUserID is the bot user an event is delivered for: the mention
// greenlight strips from a command.
const BotUserID = "U0BOT"

// Sign returns Slack's v0 signature of body sent at ts with secret:
// "v0=" and the hex HMAC-SHA256 of "v0:ts:body".
func Sign(secret string, ts int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:%s", ts, body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// Signed is a POST of body to url as Slack sends it now, signed with
// SigningSecret.
func Signed(t testing.TB, url, contentType, body string) *http.Request {
	t.Helper()
	return SignedAt(t, time.Now(), url, contentType, body)
}

// SignedAt is Signed as if sent at at (a stale request, for one).
func SignedAt(t testing.TB, at time.Time, url, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(SigningSecret, at.Unix(), body))
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	return req
}

// slashFields are a /deploy command's fields as Slack posts them.
func slashFields(user, channel, text, responseURL string) map[string]string {
	return map[string]string{
		"token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0001", "team_domain": "example",
		"channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": strings.ToLower(user),
		"command": "/deploy", "text": text, "api_app_id": "A0GREENLIT", "is_enterprise_install": "false",
		"response_url": responseURL, "trigger_id": "13345224609.738474920.8088930838d88f008e0",
	}
}

// SlashCommand is the form body of /deploy text typed by user in channel.
func SlashCommand(user, channel, text, responseURL string) string {
	v := url.Values{}
	for k, f := range slashFields(user, channel, text, responseURL) {
		v.Set(k, f)
	}
	return v.Encode()
}

// SlashCommandJSON is the same command as Socket Mode carries it.
func SlashCommandJSON(user, channel, text, responseURL string) string {
	return mustJSON(slashFields(user, channel, text, responseURL))
}

// BlockActions is the block_actions payload of user clicking the button
// action with value, in a message of a deploy thread in channel.
func BlockActions(user, channel, action, value, responseURL string) string {
	button := map[string]any{"type": "button", "action_id": action, "value": value,
		"text": map[string]any{"type": "plain_text", "text": action, "emoji": true}}
	return mustJSON(map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": "T0001"},
		"api_app_id": "A0GREENLIT",
		"token":      "gIkuvaNzQIHg97ATvDxqgjtO",
		"container": map[string]any{"type": "message", "message_ts": "1700000000.000200", "channel_id": channel,
			"is_ephemeral": false, "thread_ts": "1700000000.000100"},
		"trigger_id":            "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
		"team":                  map[string]any{"id": "T0001", "domain": "example"},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": channel, "name": "ops"},
		"message": map[string]any{
			"type": "message", "subtype": "bot_message", "text": "a message with buttons",
			"ts": "1700000000.000200", "thread_ts": "1700000000.000100", "bot_id": "B0GREENLIT",
			"blocks": []any{
				map[string]any{"type": "section", "block_id": "text", "text": map[string]any{"type": "mrkdwn", "text": "a message with buttons", "verbatim": false}},
				map[string]any{"type": "actions", "block_id": "greenlight-actions", "elements": []any{button}},
			},
		},
		"state":        map[string]any{"values": map[string]any{}},
		"response_url": responseURL,
		"actions": []any{map[string]any{
			"action_id": action, "block_id": "greenlight-actions", "text": button["text"],
			"value": value, "type": "button", "action_ts": "1700000123.840180",
		}},
	})
}

// BlockActionsForm is BlockActions as HTTP mode posts it: a form whose
// payload field is the JSON.
func BlockActionsForm(user, channel, action, value, responseURL string) string {
	return url.Values{"payload": {BlockActions(user, channel, action, value, responseURL)}}.Encode()
}

// AppMention is an event_callback carrying an app_mention of BotUserID by
// user in channel, the message ts.
func AppMention(eventID, user, channel, text, ts string) string {
	return fmt.Sprintf(`{"token":"gIkuvaNzQIHg97ATvDxqgjtO","team_id":"T0001","api_app_id":"A0GREENLIT",
 "event":{"type":"app_mention","user":%q,"text":%q,"ts":%q,"channel":%q,"event_ts":%q},
 "type":"event_callback","event_id":%q,"event_time":1700000000,"event_context":"4-eyJldCI6ImFwcF9tZW50aW9uIn0",
 "authorizations":[{"enterprise_id":null,"team_id":"T0001","user_id":%q,"is_bot":true,"is_enterprise_install":false}],
 "is_ext_shared_channel":false}`, user, text, ts, channel, ts, eventID, BotUserID)
}

// Hello is the first message on a Socket Mode connection.
const Hello = `{"type":"hello","num_connections":1,"debug_info":{"host":"applink-test","build_number":1,"approximate_connection_time":18060},"connection_info":{"app_id":"A0GREENLIT"}}`

// Envelope wraps payload as Socket Mode does; typ is slash_commands,
// interactive or events_api. Slash commands accept a response payload in
// their acknowledgement.
func Envelope(id, typ, payload string) string {
	return fmt.Sprintf(`{"envelope_id":%q,"payload":%s,"type":%q,"accepts_response_payload":%t,"retry_attempt":0,"retry_reason":""}`,
		id, payload, typ, typ == "slash_commands")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
