package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// stopTimeout bounds how long stopping a server waits for its handlers.
const stopTimeout = 2 * time.Second

// nameserver is one running server: a UDP and a TCP dns.Server on the same
// port, sharing one handler.
type nameserver struct {
	addr string // "127.0.0.1:PORT"
	udp  *dns.Server
	tcp  *dns.Server
}

// startNameserver listens on addr (host:port; port 0 picks one) and serves h.
func startNameserver(addr string, h dns.Handler) (*nameserver, error) {
	u, l, err := listenPair(addr)
	if err != nil {
		return nil, err
	}
	ns := &nameserver{
		addr: u.LocalAddr().String(),
		udp:  &dns.Server{PacketConn: u, Handler: h, UDPSize: dns.DefaultMsgSize},
		tcp:  &dns.Server{Listener: l, Handler: h},
	}
	if err := activate(ns.udp); err != nil {
		u.Close()
		l.Close()
		return nil, fmt.Errorf("serve UDP on %s: %w", ns.addr, err)
	}
	if err := activate(ns.tcp); err != nil {
		ns.udp.Shutdown()
		l.Close()
		return nil, fmt.Errorf("serve TCP on %s: %w", ns.addr, err)
	}
	return ns, nil
}

// activate serves srv's listener in a goroutine and returns once it serves.
// The goroutine ends when srv is shut down.
func activate(srv *dns.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-served:
		if err == nil {
			err = errors.New("stopped before it started")
		}
		return err
	}
}

// stop closes both listeners and waits, bounded, for handlers to finish.
func (ns *nameserver) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	ns.udp.ShutdownContext(ctx)
	ns.tcp.ShutdownContext(ctx)
}

// port is the port part of addr, or "0".
func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil || p == "" {
		return "0"
	}
	return p
}
