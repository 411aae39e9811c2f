package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchRSS starts the greenlight binary in local mode with its admin
// endpoints, reads its resident memory when idle, runs deploys one after
// another (each auto-approved, to the end of its rollback window), then
// reads its memory and the size of its data files.
func benchRSS(ctx context.Context, bin string, deploys int, out io.Writer) error {
	dir, err := os.MkdirTemp("", "greenlight-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "greenlight.yaml")
	if err := os.WriteFile(conf, []byte(`log: {level: error}
local: {boot_delay: 1ms}
services:
  ns:
    servers: [ns1, ns2]
    listen: 127.0.0.1:0
    rollback_window: 10ms
    check: {zones: [example.test], passes: 1, interval: 10ms, timeout: 1s, max_rounds: 3}
`), 0o600); err != nil {
		return err
	}
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "--config", conf, "--data", filepath.Join(dir, "data"), "--admin", admin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	base := "http://" + admin
	if err := waitReady(ctx, base); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	idle, err := scrape(base, "process_resident_memory_bytes")
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 1; i <= deploys; i++ {
		if _, err := io.WriteString(stdin, "/deploy ns --auto-approve\n"); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Minute)
		for {
			n, err := scrape(base, `greenlight_deploys_total{outcome="succeeded",service="ns"}`)
			if err == nil && int(n) >= i {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("deploy %d did not succeed within a minute", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	took := time.Since(start)
	after, err := scrape(base, "process_resident_memory_bytes")
	if err != nil {
		return err
	}
	db, _ := os.Stat(filepath.Join(dir, "data", "greenlight.db"))
	inv, _ := os.Stat(filepath.Join(dir, "data", "local-cloud.json"))
	fmt.Fprintf(out, "idle RSS %.1f MiB; after %d deploys (%v, %v each): RSS %.1f MiB, greenlight.db %.1f MiB, local-cloud.json %.1f KiB\n",
		idle/(1<<20), deploys, took.Round(time.Second), (took / time.Duration(deploys)).Round(time.Millisecond),
		after/(1<<20), float64(db.Size())/(1<<20), float64(inv.Size())/1024)
	return nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("greenlight was not ready within 30s")
}

// scrape reads one series' value from /metrics.
func scrape(base, series string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", series)
}
