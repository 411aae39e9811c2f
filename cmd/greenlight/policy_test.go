package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/configs"
)

// localConfig writes the embedded local.yaml with each old → new
// replacement made, and returns its path.
func localConfig(t *testing.T, replace ...string) string {
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
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rollback_window: 0s in the shell: the old set is retired right after
// the check through the load balancer.
func TestLocalZeroRollbackWindow(t *testing.T) {
	config := localConfig(t, "rollback_window: 15m ", "rollback_window: 0s  ")
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns")
	p.waitOutput(`\[Approve\] type: /deploy approve ns #1`)
	p.typeLine("approve")
	p.waitOutput(`The rollback window is 0, so the old set \(ns1-0, ns2-0\) is retired now`)
	p.waitOutput(`Deploy #1 of ns succeeded`)
	if got := nsid(t, p.addr(), "udp"); !strings.HasSuffix(got, "-1") {
		t.Fatalf("after a zero window, answers come from %q", got)
	}
	p.typeLine("/deploy rollback ns")
	p.waitOutput(`the rollback window of deploy #1 closed at .* and its old set \(ns1-0, ns2-0\) was retired`)
}

// Retire now in the shell: the rollback-window message offers it, typing
// it retires the old set at once, and a second try gets the outcome back.
func TestLocalRetireNow(t *testing.T) {
	p := start(t, t.TempDir())
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns --auto-approve")
	p.waitOutput(`\[Retire now\] type: /deploy retire ns #1`)
	p.typeLine("/deploy retire ns #1")
	p.waitOutput(`Retire now by alice: the rollback window ended at .*; retiring ns1-0, ns2-0`)
	p.waitOutput(`Deploy #1 of ns succeeded`)
	if got := nsid(t, p.addr(), "udp"); !strings.HasSuffix(got, "-1") {
		t.Fatalf("after retire, answers come from %q", got)
	}
	p.typeLine("/deploy retire ns")
	p.waitOutput(`deploy #1's old set \(ns1-0, ns2-0\) was already retired early by alice`)
	p.typeLine("/deploy rollback ns")
	p.waitOutput(`alice retired the old set \(ns1-0, ns2-0\) of deploy #1 early`)
	p.typeLine("/deploy status ns")
	p.waitOutput(`lock: free`)
}

// Retire now through signed Slack requests: a deployer's click is refused,
// an approver's retires the old set, a double click and a late click get
// the outcome back.
func TestSlackRetireNow(t *testing.T) {
	api := &fakeSlack{}
	_, base, srvURL := startSlack(t, api)
	respond := srvURL + "/response"
	post := func(path, body string) {
		t.Helper()
		if code := signed(t, base, path, "application/x-www-form-urlencoded", body, time.Now()); code != http.StatusOK {
			t.Fatalf("POST %s: status %d", path, code)
		}
	}
	post("/slack/commands", slashCommand("U0DEPLOY1", "ns", respond))
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`)
	post("/slack/interactions", click("U0APPROVE1", "approve", "ns#1", respond))
	api.waitFor(t, "the Retire now button", "chat.postMessage", `"action_id":"rollback"`, `"action_id":"retire"`, "Retire now")

	post("/slack/interactions", click("U0DEPLOY1", "retire", "ns#1", respond))
	api.waitFor(t, "the refusal", "response", "not among the approvers of ns")

	post("/slack/interactions", click("U0APPROVE1", "retire", "ns#1", respond))
	post("/slack/interactions", click("U0APPROVE1", "retire", "ns#1", respond))
	api.waitFor(t, "the retire in the thread", "chat.*", "Retire now by <@U0APPROVE1>")
	api.waitFor(t, "the double click's answer", "response", "already retired early by", "U0APPROVE1")
	api.waitFor(t, "the end of the deploy", "chat.*", "Deploy #1 of ns succeeded")
	api.waitFor(t, "the closed rollback message", "chat.update", "Retired now by", "U0APPROVE1")

	post("/slack/interactions", click("U0APPROVE1", "rollback", "ns#1", respond))
	api.waitFor(t, "the late rollback's answer", "response", "retired the old set (ns1-0, ns2-0) of deploy #1 early")
}

// rollback_window: 0s through Slack: the approval switches and retires at once.
func TestSlackZeroRollbackWindow(t *testing.T) {
	api := &fakeSlack{}
	m, base, srvURL := startSlack(t, api, "rollback_window: 15m ", "rollback_window: 0s  ")
	respond := srvURL + "/response"
	signed(t, base, "/slack/commands", "application/x-www-form-urlencoded", slashCommand("U0DEPLOY1", "ns", respond), time.Now())
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`)
	signed(t, base, "/slack/interactions", "application/x-www-form-urlencoded", click("U0APPROVE1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the word that the window is 0", "chat.*", "The rollback window is 0, so the old set (ns1-0, ns2-0) is retired now.")
	api.waitFor(t, "the end of the deploy", "chat.*", "Deploy #1 of ns succeeded")
	if got := nsid(t, m.lbs[0].Addr(), "udp"); !strings.HasSuffix(got, "-1") {
		t.Fatalf("after a zero window, answers come from %q", got)
	}
	if len(api.find("chat.*", `"action_id":"rollback"`)) != 0 {
		t.Error("a Rollback button was offered with a window of 0")
	}
}
