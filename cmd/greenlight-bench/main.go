// Command greenlight-bench measures greenlight's local load balancer beside
// the servers it fronts and beside dnsdist and nginx, with dnsperf, and
// prints one table per run. Every address is on loopback.
//
//	go run ./cmd/greenlight-bench lb [-l 10s] [-rounds 3] [-c 4] [-T 2]
//	go run ./cmd/greenlight-bench fleet [-n 2,10,50,200,500] [-boot 2s]
//	go run ./cmd/greenlight-bench store [-n 10,10000] [-calls 200] [-diff-lines 1]
//	go run ./cmd/greenlight-bench cutover [-udp 2000] [-tcp 200] [-gap 500ms]
//	go run ./cmd/greenlight-bench rss -bin /tmp/greenlight [-deploys 1000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: greenlight-bench lb|fleet|store|cutover|rss [flags]")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch args[0] {
	case "lb":
		fs := flag.NewFlagSet("lb", flag.ContinueOnError)
		fs.SetOutput(stderr)
		o := lbOptions{}
		fs.DurationVar(&o.Length, "l", 10e9, "dnsperf run length (-l)")
		fs.IntVar(&o.Rounds, "rounds", 3, "rounds; each target once per round, the median is reported")
		fs.IntVar(&o.Clients, "c", 4, "dnsperf clients (-c)")
		fs.IntVar(&o.Threads, "T", 2, "dnsperf threads (-T)")
		fs.IntVar(&o.UDPSockets, "udp-sockets", 0, "the balancer's UDP sockets per server (default local.DefaultUDPSockets)")
		fs.StringVar(&o.Only, "only", "", "run only these targets, comma-separated (direct, greenlight, dnsdist, nginx)")
		fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (the balancer and the server) to `file`")
		if err = fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		err = benchLB(ctx, o, stdout, log)
	case "fleet":
		fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
		fs.SetOutput(stderr)
		sizes := fs.String("n", "2,10,50,200,500", "fleet sizes, comma-separated")
		o := fleetOptions{}
		fs.DurationVar(&o.Boot, "boot", 2e9, "how long a local server takes to boot")
		fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile to `file`")
		if err = fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if o.Sizes, err = parseSizes(*sizes); err != nil {
			fmt.Fprintln(stderr, "greenlight-bench:", err)
			return 2
		}
		err = benchFleet(ctx, o, stdout, log)
	case "store":
		fs := flag.NewFlagSet("store", flag.ContinueOnError)
		fs.SetOutput(stderr)
		sizes := fs.String("n", "10,10000", "stored deploys, comma-separated")
		calls := fs.Int("calls", 200, "calls of each command timed")
		diffLines := fs.Int("diff-lines", 1, "lines in each deploy's zone diff")
		if err = fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		var ns []int
		if ns, err = parseSizes(*sizes); err != nil {
			fmt.Fprintln(stderr, "greenlight-bench:", err)
			return 2
		}
		err = benchStore(ctx, ns, *calls, *diffLines, stdout, log)
	case "cutover":
		fs := flag.NewFlagSet("cutover", flag.ContinueOnError)
		fs.SetOutput(stderr)
		o := cutoverOptions{}
		fs.IntVar(&o.UDPRate, "udp", 2000, "UDP queries per second")
		fs.IntVar(&o.TCPRate, "tcp", 200, "TCP queries per second")
		fs.DurationVar(&o.Gap, "gap", 500*time.Millisecond, "how long the restarted baseline server is down")
		if err = fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		err = benchCutover(ctx, o, stdout, log)
	case "rss":
		fs := flag.NewFlagSet("rss", flag.ContinueOnError)
		fs.SetOutput(stderr)
		bin := fs.String("bin", "", "the greenlight binary (go build -o /tmp/greenlight ./cmd/greenlight)")
		deploys := fs.Int("deploys", 1000, "deploys to run")
		if err = fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if *bin == "" {
			fmt.Fprintln(stderr, "greenlight-bench rss: -bin is required")
			return 2
		}
		err = benchRSS(ctx, *bin, *deploys, stdout)
	default:
		fmt.Fprintf(stderr, "greenlight-bench: unknown benchmark %q (lb, fleet, store, cutover, rss)\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "greenlight-bench:", err)
		return 1
	}
	return 0
}
