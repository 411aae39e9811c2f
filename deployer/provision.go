package deployer

import (
	"context"
	"log/slog"
	"time"
)

// NoProvisioning is the Provisioner of golden images that boot ready to
// serve: there is nothing to do, and check-next proves it.
type NoProvisioning struct{}

// Provision does nothing.
func (NoProvisioning) Provision(context.Context, Server) error { return nil }

// Default poll intervals of AwaitDNS.
const (
	DefaultAwaitInterval = 2 * time.Second
	DefaultAwaitTimeout  = 2 * time.Second
)

// AwaitDNS is the Provisioner of servers that provision themselves as they
// boot (cloud-init user data sent with the instance): it waits, bounded by
// ctx (the provision step's timeout), until the server answers the SOA of
// every zone. Whether it answers well is check-next's business; this only
// tells a server still installing packages from one that is done.
type AwaitDNS struct {
	Checker  Checker
	Zones    []string
	Clock    Clock
	Interval time.Duration // between attempts; default 2s, growing to 5×
	Timeout  time.Duration // of one query; default 2s
	Logger   *slog.Logger
}

// Provision returns once s answers for every zone, or ctx ends; the error
// then says what the server last answered.
func (a AwaitDNS) Provision(ctx context.Context, s Server) error {
	if s.Addr == "" {
		return Errorf(CodeInvalid, "%s has no address to wait on; is it running?", s.Name)
	}
	clock := a.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultAwaitInterval
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultAwaitTimeout
	}
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	start := clock.Now()
	target := CheckTarget{Name: s.Name, Addr: s.Addr}
	for attempt := 1; ; attempt++ {
		_, err := a.Checker.Serials(ctx, target, a.Zones, timeout)
		if err == nil {
			log.Info("server answers: cloud-init is done", "server", s.Name, "addr", s.Addr,
				"attempts", attempt, "waited", clock.Now().Sub(start).Round(time.Second))
			return nil
		}
		if ctx.Err() != nil {
			return notAnswered(s, clock.Now().Sub(start), err)
		}
		log.Debug("server does not answer yet", "server", s.Name, "attempt", attempt, "err", err)
		wait := min(interval*time.Duration(attempt), 5*interval)
		select {
		case <-clock.After(wait):
		case <-ctx.Done():
			return notAnswered(s, clock.Now().Sub(start), err)
		}
	}
}

// notAnswered says s did not answer in time, then what it last answered.
func notAnswered(s Server, waited time.Duration, last error) error {
	return Wrapf(last, "%s did not answer DNS within %s of booting (cloud-init may still be running, or failed)", s.Name, waited.Round(time.Second))
}
