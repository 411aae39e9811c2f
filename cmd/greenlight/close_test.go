package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/configs"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/internal/goroutines"
)

// Stopped in the middle of a deploy, with the App Home open and the admin
// endpoints on, greenlight leaves nothing running: once Run and Close have
// returned, no goroutine it started is left. Open gets a context that never
// ends, so only Close stops what Open started.
func TestCloseWaitsForEverythingStarted(t *testing.T) {
	api := newSlackAPI(t)
	before := goroutinesInGreenlight()
	local, err := configs.Files.ReadFile("local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "greenlight.yaml")
	conf := string(local) + fmt.Sprintf("\nslack:\n  mode: http\n  listen: 127.0.0.1:0\n  channel: C1\n  api_url: %s\n", api.APIURL())
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLACK_BOT_TOKEN": slacktest.BotToken, "SLACK_SIGNING_SECRET": slacktest.SigningSecret}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Clock: deployer.SystemClock{},
		Getenv: func(k string) string { return env[k] }}
	if err := m.ParseFlags([]string{"--config", path, "--data", t.TempDir(), "--listen", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--boot-delay", "20ms", "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	if !eventually.Holds(eventually.Limit, func() bool { return m.running.slack.Addr() != nil }) {
		cancel()
		<-ran
		m.Close()
		t.Fatal("the Slack HTTP server never listened")
	}
	base := "http://" + m.running.slack.Addr().String()

	signed(t, base, "/slack/events", slacktest.JSONType, `{"type":"event_callback","team_id":"T0001","api_app_id":"A0GREENLIT","event_id":"Ev1","event_time":1700000000,
 "event":{"type":"app_home_opened","user":"U1","channel":"D1","tab":"home","event_ts":"1700000000.000100"}}`, time.Now())
	signed(t, base, "/slack/commands", slacktest.FormType, slacktest.SlashCommand("U1", "C1", "ns --auto-approve", api.HookURL("response")), time.Now())
	api.waitFor(t, "the App Home", "views.publish")
	api.waitFor(t, "the deploy's checklist", "chat.postMessage", "*Take the deploy lock*")

	cancel()
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// A goroutine that has said it is done (a WaitGroup's Done) may take
	// a moment more to exit; anything still there after that was not stopped.
	var left []string
	eventually.Holds(2*time.Second, func() bool {
		left = left[:0]
		for id, stack := range goroutinesInGreenlight() {
			if _, ok := before[id]; !ok {
				left = append(left, stack)
			}
		}
		return len(left) == 0
	})
	if len(left) > 0 {
		slices.Sort(left)
		t.Fatalf("%d goroutines still run after Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// goroutinesInGreenlight returns the stack of every goroutine but the
// caller's that has greenlight's code on it, by goroutine ID.
func goroutinesInGreenlight() map[string]string {
	out := map[string]string{}
	for id, g := range goroutines.Stacks() {
		if strings.Contains(g, "github.com/greenlight/greenlight/") || strings.Contains(g, "\nmain.") {
			out[id] = g
		}
	}
	return out
}
