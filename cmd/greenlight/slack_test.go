package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// slackAPI is the fake Slack greenlight runs against, with the searches
// these tests make of what greenlight sent it.
type slackAPI struct{ *slacktest.Server }

func newSlackAPI(t *testing.T) slackAPI { return slackAPI{slacktest.New(t)} }

// find returns the calls of method ("chat.*" for any chat method) that
// contain every fragment, in any field (Block Kit JSON as sent).
func (a slackAPI) find(method string, fragments ...string) []slacktest.Call {
	var out []slacktest.Call
	for _, c := range a.Calls() {
		if c.Method != method && !(strings.HasSuffix(method, "*") && strings.HasPrefix(c.Method, strings.TrimSuffix(method, "*"))) {
			continue
		}
		ok := true
		for _, fr := range fragments {
			ok = ok && strings.Contains(c.String(), fr)
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

func (a slackAPI) waitFor(t *testing.T, what, method string, fragments ...string) {
	t.Helper()
	if eventually.Holds(waitLimit, func() bool { return len(a.find(method, fragments...)) > 0 }) {
		return
	}
	var seen []string
	for _, c := range a.Calls() {
		seen = append(seen, c.String())
	}
	t.Fatalf("Slack never received %s (%s with %q); calls:\n%s", what, method, fragments, strings.Join(seen, "\n---\n"))
}

// signed posts body to base+path signed as Slack signs it at at, and
// returns the status.
func signed(t *testing.T, base, path, contentType, body string, at time.Time) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(slacktest.SignedAt(t, at, base+path, contentType, body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The Slack runbook on the local cloud: slash command → thread → Approve
// click → the new set answers through the load balancer → Rollback click →
// the old set answers again; forged, duplicate, late and unauthorised
// requests change nothing.
func TestSlackDeployApproveRollback(t *testing.T) {
	api := newSlackAPI(t)
	m, base := startSlack(t, api)
	lb := m.running.lbs[0].Addr()
	respond := api.HookURL("response")

	// Forged and stale requests are refused and change nothing.
	if code := signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U1", "C1", "ns", respond), time.Now().Add(-10*time.Minute)); code != http.StatusUnauthorized {
		t.Fatalf("stale request: status %d, want 401", code)
	}

	if code := signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U0DEPLOY1", "C1", "ns --reason weekly", respond), time.Now()); code != http.StatusOK {
		t.Fatalf("slash command: status %d", code)
	}
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`, `"action_id":"abort"`, `Approvers: \u003c@U0APPROVE1\u003e`)
	api.waitFor(t, "the checklist in the thread", "chat.postMessage", "thread_ts=")
	// The approval blocks carry the zone diff's summary and its first lines.
	api.waitFor(t, "the zone diff for the approver", "chat.postMessage", `"action_id":"approve"`,
		"example.test.: serial 2026110101 → 2026110102 · 1 added · 1 changed", "+ api.example.test.")
	if got := nsid(t, lb, "udp"); !strings.HasSuffix(got, "-0") {
		t.Fatalf("before approval traffic reached %s", got)
	}

	// The requester is not an approver: refused, nothing changes.
	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0DEPLOY1", "C1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the refusal", "response_url", "not among the approvers of ns")
	if got := nsid(t, lb, "udp"); !strings.HasSuffix(got, "-0") {
		t.Fatalf("an unauthorised click moved traffic to %s", got)
	}

	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the rollback button", "chat.postMessage", `"action_id":"rollback"`)
	for _, proto := range []string{"udp", "tcp"} {
		if got := nsid(t, lb, proto); !strings.HasSuffix(got, "-1") {
			t.Fatalf("after approval %s answers came from %s", proto, got)
		}
	}
	if got := digNSID(t, lb); !strings.HasSuffix(got, "-1") {
		t.Fatalf("dig after approval: %s", got)
	}

	// A duplicate click is answered, not acted on.
	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the duplicate's answer", "response_url", "already approved by", "U0APPROVE1")

	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "rollback", "ns#1", respond), time.Now())
	api.waitFor(t, "the rollback in the thread", "chat.postMessage", "Rolled back by")
	if got := digNSID(t, lb); !strings.HasSuffix(got, "-0") {
		t.Fatalf("dig after rollback: %s", got)
	}

	// A late rollback click, once the rollback has ended, is refused with the reason.
	eventually.True(t, "deploy #1 to end rolled back", func() bool {
		d, err := m.running.deployer.Deployment(context.Background(), 1)
		return err == nil && d.Phase == deployer.PhaseRolledBack
	})
	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "rollback", "ns#1", respond), time.Now())
	api.waitFor(t, "the late click's answer", "response_url", "already rolled back")

	// The metrics saw the traffic, and /readyz counts Slack as connected.
	rec := httptest.NewRecorder()
	m.running.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for series, atLeast := range map[string]float64{
		`greenlight_chat_requests_total{adapter="slack",kind="command",result="refused"}`: 1,
		`greenlight_chat_requests_total{adapter="slack",kind="command",result="ok"}`:      1,
		`greenlight_chat_requests_total{adapter="slack",kind="click",result="ok"}`:        5,
		`greenlight_chat_ack_seconds_count{adapter="slack"}`:                              7,
		`greenlight_chat_connected{adapter="slack"}`:                                      1,
		`greenlight_deploys_total{outcome="rolled_back",service="ns"}`:                    1,
	} {
		if v, ok := sample(t, body, series); !ok || v < atLeast {
			t.Errorf("%s = %v (found %v), want at least %v", series, v, ok, atLeast)
		}
	}
	if nr := m.running.ready.notReady(); len(nr) > 0 {
		t.Errorf("not ready: %q", nr)
	}
}

// startSlack runs greenlight in Slack HTTP mode on the local cloud, against
// api as Slack, and returns it with its HTTP base URL. replace are old →
// new pairs changed in local.yaml.
func startSlack(t *testing.T, api slackAPI, replace ...string) (*Main, string) {
	t.Helper()
	local, err := configs.Files.ReadFile("local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(local)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(conf, replace[i]) {
			t.Fatalf("local.yaml has no %q", replace[i])
		}
		conf = strings.Replace(conf, replace[i], replace[i+1], 1)
	}
	cfg := strings.Replace(conf, "      approvers: []", "      approvers: [U0APPROVE1]", 1) +
		fmt.Sprintf("\nslack:\n  mode: http\n  listen: 127.0.0.1:0\n  channel: C1\n  api_url: %s\n", api.APIURL())
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLACK_BOT_TOKEN": slacktest.BotToken, "SLACK_SIGNING_SECRET": slacktest.SigningSecret}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Clock: deployer.SystemClock{},
		Getenv: func(k string) string { return env[k] }}
	if err := m.ParseFlags([]string{"--config", path, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--boot-delay", "20ms", "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		cancel()
		m.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	eventually.True(t, "the Slack HTTP server to listen", func() bool { return m.running.slack.Addr() != nil })
	return m, "http://" + m.running.slack.Addr().String()
}

// Slack answering 429 and 500 during a deploy: the deploy completes, and
// once Slack answers again the thread shows the final state.
func TestSlackTroubleDoesNotStallDeploys(t *testing.T) {
	api := newSlackAPI(t)
	api.SetFault(func(a slacktest.Attempt) *slacktest.Fault {
		switch {
		case a.N <= 3:
			return slacktest.HTTPError(http.StatusInternalServerError)
		case a.N <= 5:
			return slacktest.RateLimited(time.Second)
		}
		return nil
	})
	m, base := startSlack(t, api)
	if code := signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U0APPROVE1", "C1", "ns --auto-approve", api.HookURL("response")), time.Now()); code != http.StatusOK {
		t.Fatalf("slash command: status %d", code)
	}
	eventually.Within(t, waitLimit, "the deploy to reach its rollback window while Slack failed", func() bool {
		st, err := m.running.deployer.Status(context.Background(), "ns")
		return err == nil && st.Active != nil && st.Active.Phase == deployer.PhaseRollbackWindow
	})
	// The checklist's last state, with every step up to the live check done,
	// reaches Slack once it answers again (posted or updated in place).
	api.waitFor(t, "the final checklist", "chat.*", ":white_check_mark: *Check through the load balancer*", "answered by ns1-1, ns2-1")
	if n := len(api.find("chat.postMessage", "*Take the deploy lock*")); n != 1 {
		t.Errorf("the checklist was posted %d times, want once (then updated in place)", n)
	}
	api.waitFor(t, "the rollback button", "chat.postMessage", `"action_id":"rollback"`)
}

// A missing Slack secret stops start-up, naming the variable.
func TestSlackSecretsFromEnvironment(t *testing.T) {
	local, err := configs.Files.ReadFile("local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode string
		env  map[string]string
		want string
	}{
		{"socket", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"},
		{"socket", map[string]string{"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN"},
		{"http", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "greenlight.yaml")
		cfg := string(local) + "\nslack:\n  mode: " + tc.mode + "\n  listen: 127.0.0.1:0\n  channel: C1\n"
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Clock: deployer.SystemClock{},
			Getenv: func(k string) string { return tc.env[k] }}
		if err := m.ParseFlags([]string{"--config", path, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--log-level", "error"}); err != nil {
			t.Fatal(err)
		}
		err := m.Open(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s mode with %v: err = %v, want it to name %s", tc.mode, tc.env, err, tc.want)
		}
		for _, v := range tc.env {
			if err != nil && strings.Contains(err.Error(), v) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
	}
}
