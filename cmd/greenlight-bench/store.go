package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/storage"
)

// benchStore times "/deploy status ns" and "/deploy history ns -n 20"
// through the router, with sizes[i] ended deploys stored, calls times each.
func benchStore(ctx context.Context, sizes []int, calls int, out io.Writer, log *slog.Logger) error {
	fmt.Fprintf(out, "%8s %16s %16s %11s\n", "deploys", "status (mean)", "history -n 20", "bbolt")
	for _, n := range sizes {
		status, history, size, err := storeOnce(ctx, n, calls, log)
		if err != nil {
			return fmt.Errorf("%d deploys: %w", n, err)
		}
		fmt.Fprintf(out, "%8d %16s %16s %9.1fM\n", n, status, history, float64(size)/(1<<20))
	}
	return nil
}

// nopSwitch is a switch for a deployer that never switches.
type nopSwitch struct{}

func (nopSwitch) Accept(context.Context, []deployer.Server) error { return nil }
func (nopSwitch) Drain(context.Context, []deployer.Server) error  { return nil }
func (nopSwitch) Endpoints() []string                             { return []string{"127.0.0.1:53"} }

func storeOnce(ctx context.Context, n, calls int, log *slog.Logger) (status, history time.Duration, size int64, err error) {
	dir, err := os.MkdirTemp("", "greenlight-store-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "greenlight.db")
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	// n deploys as the pipeline leaves them: every step done, two servers
	// each side, a check summary and a zone diff.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	servers := func(gen int) []deployer.Server {
		return []deployer.Server{
			{ID: fmt.Sprint("local-", 2*gen), Name: fmt.Sprintf("ns1-%d", gen), Role: "ns1", Addr: "127.0.0.1:40001", Image: "local/ns-v2"},
			{ID: fmt.Sprint("local-", 2*gen+1), Name: fmt.Sprintf("ns2-%d", gen), Role: "ns2", Addr: "127.0.0.1:40002", Image: "local/ns-v2"},
		}
	}
	for i := 1; i <= n; i++ {
		d := &deployer.Deployment{Service: "ns", Requester: "bench", Reason: "weekly image", ImageOld: "local/ns-v1", ImageNew: "local/ns-v2",
			Old: servers(i - 1), Next: servers(i), Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning, Created: t0.Add(time.Duration(i) * time.Hour),
			Checks: []string{"2 servers · 1 zone · 1 expected record · UDP+TCP · 3/3 passes · serial 2026110102"},
			Diffs:  []deployer.ZoneDiff{{Zone: "example.test.", OldSerial: 1, NewSerial: 2, Summary: "example.test.: serial 1 → 2 · 1 added", Lines: []string{"+ api.example.test. 300 IN A 192.0.2.20"}, Added: 1}}}
		if err := db.BeginDeployment(d, nil); err != nil {
			return 0, 0, 0, err
		}
		live := &deployer.ServiceState{Service: "ns", Image: "local/ns-v2", Servers: d.Next, DeployID: d.ID, Updated: d.Created}
		if _, err := db.FinishDeployment(d.ID, func(x *deployer.Deployment) error {
			for j := range x.Steps {
				x.Steps[j].Status, x.Steps[j].Started, x.Steps[j].Finished = deployer.StatusDone, x.Created, x.Created.Add(time.Second)
			}
			x.Phase, x.Finished = deployer.PhaseSucceeded, x.Created.Add(20*time.Minute)
			return nil
		}, live); err != nil {
			return 0, 0, 0, err
		}
	}
	cloud, err := local.New(local.Options{Dir: dir, BootDelay: -1, Logger: log})
	if err != nil {
		return 0, 0, 0, err
	}
	defer cloud.Close()
	svc := &deployer.Service{Name: "ns", Roles: []string{"ns1", "ns2"}, Check: deployer.CheckSpec{Zones: []string{"example.test"}},
		Cloud: cloud, Provisioner: cloud, Switch: nopSwitch{}, Checker: dnscheck.New(dnscheck.Options{Logger: log})}
	dep, err := deployer.New(deployer.Config{Store: db, Logger: log, Services: []*deployer.Service{svc}})
	if err != nil {
		return 0, 0, 0, err
	}
	r := &bot.Router{Deployer: dep, Auth: &bot.Authorizer{Policies: map[string]bot.Policy{}}}
	timeIt := func(text string) (time.Duration, error) {
		start := time.Now()
		for range calls {
			reply := r.Handle(ctx, bot.Request{User: "bench", Channel: "C1", Text: text})
			if len(reply.Messages) == 0 {
				return 0, fmt.Errorf("%s: no answer", text)
			}
		}
		return time.Since(start) / time.Duration(calls), nil
	}
	if status, err = timeIt("/deploy status ns"); err != nil {
		return 0, 0, 0, err
	}
	if history, err = timeIt("/deploy history ns -n 20"); err != nil {
		return 0, 0, 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	return status, history, fi.Size(), nil
}
