package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/storage"
)

type fleetOptions struct {
	Sizes      []int
	Boot       time.Duration
	CPUProfile string
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a fleet size", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchFleet deploys a service of N local servers, for each N, and reports
// the deploy's wall time (from Deploy to the end of the check through the
// load balancer) as a multiple of what cannot be avoided: one boot and the
// two checks.
func benchFleet(ctx context.Context, o fleetOptions, out io.Writer, log *slog.Logger) error {
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "fleet: boot delay %v, auto-approved deploy to the end of check-live, checks of 3 passes 200ms apart; %d cores\n", o.Boot, numCPU())
	fmt.Fprintf(out, "%5s %10s %10s %10s %10s %8s\n", "N", "wall", "boot", "checks", "other", "ratio")
	for _, n := range o.Sizes {
		r, err := fleetOnce(ctx, n, o.Boot, log)
		if err != nil {
			return fmt.Errorf("fleet of %d: %w", n, err)
		}
		base := o.Boot + r.checks
		fmt.Fprintf(out, "%5d %10s %10s %10s %10s %8.2f\n", n, r.wall.Round(time.Millisecond), o.Boot,
			r.checks.Round(time.Millisecond), (r.wall - base).Round(time.Millisecond), float64(r.wall)/float64(base))
	}
	return nil
}

type fleetResult struct {
	wall, checks time.Duration
}

func fleetOnce(ctx context.Context, n int, boot time.Duration, log *slog.Logger) (fleetResult, error) {
	dir, err := os.MkdirTemp("", "greenlight-fleet-")
	if err != nil {
		return fleetResult{}, err
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(filepath.Join(dir, "greenlight.db"), storage.Options{})
	if err != nil {
		return fleetResult{}, err
	}
	defer db.Close()
	cloud, err := local.New(local.Options{Dir: dir, BootDelay: boot, Logger: log})
	if err != nil {
		return fleetResult{}, err
	}
	defer cloud.Close()
	lb, err := local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: log})
	if err != nil {
		return fleetResult{}, err
	}
	defer lb.Close()
	roles := make([]string, n)
	for i := range roles {
		roles[i] = "ns" + strconv.Itoa(i+1)
	}
	svc := &deployer.Service{
		Name: "ns", Roles: roles,
		Check:          deployer.CheckSpec{Zones: []string{"example.test"}, Passes: 3, MaxRounds: 5, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second},
		RollbackWindow: time.Hour,
		Cloud:          cloud, Provisioner: cloud, Switch: lb,
		Checker: dnscheck.New(dnscheck.Options{Logger: log}),
	}
	done := make(chan deployer.Deployment, 1)
	rep := deployer.ReporterFunc(func(_ context.Context, ev deployer.Event) {
		if ev.Kind == deployer.EventStep && ev.Step == deployer.StepCheckLive {
			if st := ev.Deployment.Step(deployer.StepCheckLive); st != nil && st.Status == deployer.StatusDone {
				done <- ev.Deployment
			}
		}
		if ev.Kind == deployer.EventFinished {
			select {
			case done <- ev.Deployment:
			default:
			}
		}
	})
	d, err := deployer.New(deployer.Config{Store: db, Reporter: rep, Logger: log, Services: []*deployer.Service{svc}})
	if err != nil {
		return fleetResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		return fleetResult{}, err
	}
	defer d.Wait()
	defer cancel()
	if _, err := d.Seed(ctx, "ns", ""); err != nil {
		return fleetResult{}, fmt.Errorf("seed: %w", err)
	}
	start := time.Now()
	if _, err := d.Deploy(ctx, deployer.Request{Service: "ns", User: "bench", Options: deployer.Options{AutoApprove: true}}); err != nil {
		return fleetResult{}, err
	}
	var got deployer.Deployment
	select {
	case got = <-done:
	case <-ctx.Done():
		return fleetResult{}, ctx.Err()
	}
	wall := time.Since(start)
	live := got.Step(deployer.StepCheckLive)
	if live == nil || live.Status != deployer.StatusDone {
		return fleetResult{}, fmt.Errorf("the deploy ended %s: %s", got.Phase, got.Error)
	}
	checks := got.Step(deployer.StepCheckNext).Duration() + live.Duration()
	var steps []string
	for _, st := range got.Steps {
		if d := st.Duration(); d > 0 {
			steps = append(steps, fmt.Sprintf("%s %v", st.Name, d.Round(time.Millisecond)))
		}
	}
	fmt.Fprintf(os.Stderr, "N=%d steps: %s\n", n, strings.Join(steps, ", "))
	return fleetResult{wall: wall, checks: checks}, nil
}
