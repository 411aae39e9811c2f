package slack_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/internal/eventually"
)

// BenchmarkSlashCommands200 sends 200 signed slash commands at once to the
// HTTP-mode adapter on a loopback port and reports how long Slack would
// wait for each acknowledgement (p50, p99; Slack's limit is 3 s, the goal
// 50 ms). Every command must reach the router and be answered: none lost.
//
//	go test ./bot/slack/ -run XXX -bench Slash -benchtime 1x
func BenchmarkSlashCommands200(b *testing.B) {
	const n = 200
	d := &fakeDeployer{}
	h := start(b, d, setup{}) // 8 workers, a queue of 256
	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()

	var acks []time.Duration
	round := 0
	for b.Loop() {
		round++
		reqs := make([]*http.Request, n)
		for i := range reqs {
			reqs[i] = slacktest.Signed(b, h.base+"/slack/commands", slacktest.FormType, slacktest.SlashCommand(fmt.Sprintf("U%03d", i), "C_OPS",
				fmt.Sprintf("ns --reason bench-%d-%d", round, i), h.slack.HookURL(fmt.Sprintf("bench-%d-%d", round, i))))
		}
		took := make([]time.Duration, n)
		failed := make([]string, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i, req := range reqs {
			wg.Go(func() {
				<-gate
				t0 := time.Now()
				resp, err := client.Do(req)
				took[i] = time.Since(t0)
				if err != nil {
					failed[i] = err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(body) != 0 {
					failed[i] = fmt.Sprintf("%d %q", resp.StatusCode, body)
				}
			})
		}
		close(gate)
		wg.Wait()
		for i, f := range failed {
			if f != "" {
				b.Fatalf("command %d not acknowledged: %s", i, f)
			}
		}
		acks = append(acks, took...)

		// None lost: every command reached the router, and every answer Slack.
		prefix := fmt.Sprintf("bench-%d-", round)
		eventually.True(b, "every command's answer", func() bool {
			got := 0
			for _, c := range h.slack.Calls() {
				if strings.HasPrefix(c.Hook, prefix) {
					got++
				}
			}
			return got == n
		})
		seen := map[string]bool{}
		for _, c := range d.Calls() {
			if _, reason, ok := strings.Cut(c, ": "); ok && strings.HasPrefix(reason, prefix) {
				seen[reason] = true
			}
		}
		if len(seen) != n {
			b.Fatalf("round %d: %d of %d commands reached the router", round, len(seen), n)
		}
	}
	slices.Sort(acks)
	ms := func(q float64) float64 {
		return float64(acks[int(q*float64(len(acks)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ack-ms")
	b.ReportMetric(ms(0.99), "p99-ack-ms")
	b.ReportMetric(float64(acks[len(acks)-1])/float64(time.Millisecond), "max-ack-ms")
	b.ReportMetric(0, "lost")
}
