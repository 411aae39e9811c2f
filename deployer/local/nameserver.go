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
	addr   string // "127.0.0.1:PORT"
	udp    *dns.Server
	tcp    *dns.Server
	served []<-chan error // one per server: its serving goroutine has returned
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
	udpServed, err := activate(ns.udp)
	if err != nil {
		u.Close()
		l.Close()
		return nil, fmt.Errorf("serve UDP on %s: %w", ns.addr, err)
	}
	tcpServed, err := activate(ns.tcp)
	if err != nil {
		ns.udp.Shutdown()
		<-udpServed
		l.Close()
		return nil, fmt.Errorf("serve TCP on %s: %w", ns.addr, err)
	}
	ns.served = []<-chan error{udpServed, tcpServed}
	return ns, nil
}

// activate serves srv's listener in a goroutine and returns once it
// serves. The goroutine ends when srv is shut down, and then sends on
// served.
func activate(srv *dns.Server) (served <-chan error, err error) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return done, nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before it started")
		}
		return nil, err
	}
}

// stop closes both listeners and waits, bounded, for handlers and the
// serving goroutines to finish.
func (ns *nameserver) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	ns.udp.ShutdownContext(ctx)
	ns.tcp.ShutdownContext(ctx)
	for _, served := range ns.served {
		select {
		case <-served:
		case <-ctx.Done(): // a handler still runs; its server's goroutine ends after it
		}
	}
}

// port is the port part of addr, or "0".
func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil || p == "" {
		return "0"
	}
	return p
}
