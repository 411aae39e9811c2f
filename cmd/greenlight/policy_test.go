package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
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
	api := newSlackAPI(t)
	_, base := startSlack(t, api)
	respond := api.HookURL("response")
	post := func(path, body string) {
		t.Helper()
		if code := signed(t, base, path, slacktest.FormType, body, time.Now()); code != http.StatusOK {
			t.Fatalf("POST %s: status %d", path, code)
		}
	}
	post("/slack/commands", slacktest.SlashCommand("U0DEPLOY1", "C1", "ns", respond))
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`)
	post("/slack/interactions", slacktest.BlockActionsForm("U0APPROVE1", "C1", "approve", "ns#1", respond))
	api.waitFor(t, "the Retire now button", "chat.postMessage", `"action_id":"rollback"`, `"action_id":"retire"`, "Retire now")

	post("/slack/interactions", slacktest.BlockActionsForm("U0DEPLOY1", "C1", "retire", "ns#1", respond))
	api.waitFor(t, "the refusal", "response_url", "not among the approvers of ns")

	post("/slack/interactions", slacktest.BlockActionsForm("U0APPROVE1", "C1", "retire", "ns#1", respond))
	post("/slack/interactions", slacktest.BlockActionsForm("U0APPROVE1", "C1", "retire", "ns#1", respond))
	api.waitFor(t, "the retire in the thread", "chat.*", "Retire now by <@U0APPROVE1>")
	api.waitFor(t, "the double click's answer", "response_url", "already retired early by", "U0APPROVE1")
	api.waitFor(t, "the end of the deploy", "chat.*", "Deploy #1 of ns succeeded")
	api.waitFor(t, "the closed rollback message", "chat.update", "Retired now by", "U0APPROVE1")

	post("/slack/interactions", slacktest.BlockActionsForm("U0APPROVE1", "C1", "rollback", "ns#1", respond))
	api.waitFor(t, "the late rollback's answer", "response_url", "retired the old set (ns1-0, ns2-0) of deploy #1 early")
}

// rollback_window: 0s through Slack: the approval switches and retires at once.
func TestSlackZeroRollbackWindow(t *testing.T) {
	api := newSlackAPI(t)
	m, base := startSlack(t, api, "rollback_window: 15m ", "rollback_window: 0s  ")
	respond := api.HookURL("response")
	signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U0DEPLOY1", "C1", "ns", respond), time.Now())
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`)
	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the word that the window is 0", "chat.*", "The rollback window is 0, so the old set (ns1-0, ns2-0) is retired now.")
	api.waitFor(t, "the end of the deploy", "chat.*", "Deploy #1 of ns succeeded")
	if got := nsid(t, m.running.lbs[0].Addr(), "udp"); !strings.HasSuffix(got, "-1") {
		t.Fatalf("after a zero window, answers come from %q", got)
	}
	if len(api.find("chat.*", `"action_id":"rollback"`)) != 0 {
		t.Error("a Rollback button was offered with a window of 0")
	}
}

// freezeNow returns a freeze of the config, in Europe/Berlin, that began a
// few minutes ago and ends in an hour (exact-date cron expressions), and
// the end as the refusal shows it.
func freezeNow(t *testing.T) (yaml, until string) {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(berlin)
	start, end := now.Add(-5*time.Minute), now.Add(time.Hour)
	spec := func(at time.Time) string {
		return fmt.Sprintf("CRON_TZ=Europe/Berlin %d %d %d %d *", at.Minute(), at.Hour(), at.Day(), int(at.Month()))
	}
	yaml = fmt.Sprintf("    freezes:\n      - {name: year-end, start: %q, end: %q, reason: holidays}\n", spec(start), spec(end))
	end = time.Date(end.Year(), end.Month(), end.Day(), end.Hour(), end.Minute(), 0, 0, berlin)
	return yaml, deployer.FreezeTime(end, berlin)
}

// A freeze of the config in the shell: a deploy is refused in plain
// words; an admin overrides it, and the thread says so.
func TestLocalFreezeRefusesAndOverride(t *testing.T) {
	freezes, until := freezeNow(t)
	config := localConfig(t, "    freezes: []                  #", freezes+"    #", "      admins: []", "      admins: [alice]")
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy status ns")
	p.waitOutput(regexp.QuoteMeta("frozen: year-end: holidays, until " + until + ", set in the config"))
	p.typeLine("/deploy ns")
	p.waitOutput(regexp.QuoteMeta("ns is frozen (year-end: holidays) until " + until + ", set in the config — an admin can deploy anyway with --override-freeze"))
	p.typeLine("/deploy ns --override-freeze --reason 'urgent fix'")
	p.waitOutput(`Started deploy #1 of ns`)
	p.waitOutput(regexp.QuoteMeta("ns is frozen (year-end: holidays) until " + until + ", set in the config; alice deploys anyway with --override-freeze."))
	p.waitOutput(`\[Approve\] type: /deploy approve ns #1`)
	p.typeLine("/deploy schedule")
	p.waitOutput(`ns: frozen \(year-end: holidays\)`)
}

// A deployer who is not an admin cannot override a freeze, nor set one.
func TestLocalFreezeOverrideNeedsAdmin(t *testing.T) {
	freezes, _ := freezeNow(t)
	config := localConfig(t, "    freezes: []                  #", freezes+"    #", "      admins: []", "      admins: [root]")
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns --override-freeze")
	p.waitOutput(`not allowed: you are not an admin of ns, so you cannot deploy it during a freeze \(--override-freeze\)`)
	p.typeLine("/deploy freeze ns --reason x")
	p.waitOutput(`not allowed: you are not an admin of ns, so you cannot freeze or unfreeze its deploys`)
	p.typeLine("/deploy status ns")
	p.waitOutput(`lock: free`)
}

// A freeze set in chat survives a restart and ends with unfreeze.
func TestLocalAdHocFreezeSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy freeze ns --for 2h --reason 'incident 42'")
	p.waitOutput(`ns is frozen by alice until .* UTC: incident 42\. New deploys are refused`)
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("greenlight did not stop")
	}
	p.done <- 0 // for the cleanup's wait

	q := start(t, data)
	q.waitOutput(`serves ns1-0, ns2-0`)
	q.typeLine("/deploy ns")
	q.waitOutput(`ns is frozen \(incident 42\) until .* UTC, set by alice — an admin can deploy anyway with --override-freeze`)
	q.typeLine("/deploy unfreeze ns")
	q.waitOutput(`ns is unfrozen by alice \(the freeze set by alice: incident 42\)`)
	q.typeLine("/deploy ns --auto-approve")
	q.waitOutput(`ns is live on ns1-1, ns2-1`)
}

// Freezes through signed Slack requests: only an admin freezes, the freeze
// is announced in the channel, a deploy is refused with its words, only an
// admin overrides it and the override shows in the deploy's thread.
func TestSlackFreeze(t *testing.T) {
	api := newSlackAPI(t)
	_, base := startSlack(t, api, "      admins: []", "      admins: [U0ADMIN1]")
	respond := api.HookURL("response")
	command := func(user, text string) {
		t.Helper()
		if code := signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand(user, "C1", text, respond), time.Now()); code != http.StatusOK {
			t.Fatalf("/deploy %s: status %d", text, code)
		}
	}
	command("U0DEPLOY1", "freeze ns --for 2h --reason incident 42")
	api.waitFor(t, "the refused freeze", "response_url", "not an admin of ns, so you cannot freeze or unfreeze its deploys")

	command("U0ADMIN1", "freeze ns --for 2h --reason incident 42")
	api.waitFor(t, "the freeze announced in the channel", "chat.postMessage", "channel=C1", "ns is frozen by", "U0ADMIN1", "incident 42")

	command("U0DEPLOY1", "ns")
	api.waitFor(t, "the refused deploy", "response_url", "ns is frozen (incident 42) until", "set by", "an admin can deploy anyway with --override-freeze")
	command("U0DEPLOY1", "ns --override-freeze")
	api.waitFor(t, "the refused override", "response_url", "not an admin of ns, so you cannot deploy it during a freeze")

	command("U0ADMIN1", "ns --override-freeze --reason hotfix")
	api.waitFor(t, "the override in the thread", "chat.postMessage", "thread_ts=", "deploys anyway with --override-freeze")
	api.waitFor(t, "the approval buttons", "chat.postMessage", `"action_id":"approve"`, `"value":"ns#1"`)

	command("U0ADMIN1", "status ns")
	api.waitFor(t, "the freeze in the status", "response_url", "frozen: incident 42, until")
	command("U0ADMIN1", "unfreeze ns")
	api.waitFor(t, "the unfreeze announced", "chat.postMessage", "ns is unfrozen by")
}

// closedWindow returns a deploy window that is closed now (one day, three
// days away, in UTC) and how its opening is shown.
func closedWindow(t *testing.T) (yaml, opens string) {
	t.Helper()
	day := time.Now().UTC().AddDate(0, 0, 3)
	name := strings.ToLower(day.Weekday().String()[:3])
	yaml = fmt.Sprintf("    deploy_windows: [{days: [%s], from: \"09:00\", to: \"16:00\", tz: UTC}]\n", name)
	at := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, time.UTC)
	return yaml, deployer.SwitchTime(at, "UTC")
}

// Outside its deploy window in the shell: the approval message says when
// the switch would happen, approving says "will switch at", and the old
// set keeps serving.
func TestLocalDeployWindowWaits(t *testing.T) {
	windows, opens := closedWindow(t)
	config := localConfig(t, "    deploy_windows: []           #", windows+"    #")
	p := start(t, t.TempDir(), "--config", config)
	p.waitOutput(`serves ns1-0, ns2-0`)
	p.typeLine("/deploy ns")
	p.waitOutput(regexp.QuoteMeta("Outside ns's deploy windows: once approved, it switches at " + opens + ", when the next one opens."))
	p.typeLine("approve")
	p.waitOutput(regexp.QuoteMeta("Approved deploy #1 of ns; ns is outside its deploy windows and will switch at " + opens + "."))
	p.waitOutput(regexp.QuoteMeta("ns is outside its deploy windows, so the switch waits: it will switch at " + opens + "."))
	p.typeLine("/deploy status ns")
	p.waitOutput(regexp.QuoteMeta("approved, waiting for its deploy window: switches at " + opens))
	if got := nsid(t, p.addr(), "udp"); !strings.HasSuffix(got, "-0") {
		t.Fatalf("outside the window, answers come from %q", got)
	}
}

// The same through signed Slack requests: the approval message and the
// answer to the Approve click say when the switch happens.
func TestSlackDeployWindowWaits(t *testing.T) {
	windows, opens := closedWindow(t)
	api := newSlackAPI(t)
	m, base := startSlack(t, api, "    deploy_windows: []           #", windows+"    #")
	respond := api.HookURL("response")
	signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U0DEPLOY1", "C1", "ns", respond), time.Now())
	api.waitFor(t, "the approval message with the window", "chat.postMessage", `"action_id":"approve"`, "once approved, it switches at "+opens)
	signed(t, base, "/slack/interactions", slacktest.FormType, slacktest.BlockActionsForm("U0APPROVE1", "C1", "approve", "ns#1", respond), time.Now())
	api.waitFor(t, "the answer to the approver", "response_url", "will switch at "+opens)
	api.waitFor(t, "the wait in the thread", "chat.postMessage", "so the switch waits: it will switch at "+opens)
	if got := nsid(t, m.running.lbs[0].Addr(), "udp"); !strings.HasSuffix(got, "-0") {
		t.Fatalf("outside the window, answers come from %q", got)
	}
}
