package linodetest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/local"
)

// FrontendPort is the NodeBalancer port a frontend stands in for: the
// frontend forwards UDP to the NodeBalancer's "udp" config on this port and
// TCP to its "tcp" config on this port.
const FrontendPort = 53

// frontendTimeout bounds one attempt of a UDP query to a node, dialling a
// node, and a node's answer over TCP.
const frontendTimeout = 2 * time.Second

// Forwarded counts what a frontend sent to one node address: UDP queries and
// TCP connections, each try of one on another node counted there too.
type Forwarded struct {
	UDP uint64
	TCP uint64
}

// NodeBalancerFrontend makes the NodeBalancer really forward DNS and returns
// the address, on 127.0.0.1, that stands in for its port FrontendPort, UDP
// and TCP on one free port. Each protocol is a local.Balancer whose servers
// follow the nodes of the NodeBalancer's config of that protocol on that
// port, as the API records them, and as Linode's node modes say:
//
//   - accept: takes new UDP queries and TCP connections, round robin;
//   - backup: takes them only when no node of the config accepts;
//   - drain: takes no new ones, while those already on it carry on;
//   - reject: takes none, and those already on it are cut.
//
// A node that is deleted, or whose config is deleted or moved to another
// port, is drained, as a load balancer's soft reload would. A node's weight
// is recorded but not weighed: the balancer takes turns. With no node to
// send to, a query is answered SERVFAIL, so a test counts it as failed at
// once instead of waiting for a timeout. A node reaches its instance on the
// instance's own (loopback) address, which stands for the private network;
// a node whose instance is gone takes nothing new.
//
// A second call returns the same address. The frontend stops when the
// Server is closed. It panics when the NodeBalancer does not exist or no
// port is free: both are mistakes in the test.
func (s *Server) NodeBalancerFrontend(id int) string {
	n := &s.nbs
	n.mu.Lock()
	if n.byID[id] == nil {
		n.mu.Unlock()
		panic(fmt.Sprintf("linodetest: no NodeBalancer %d; add it with AddNodeBalancer first", id))
	}
	if n.closed {
		n.mu.Unlock()
		panic("linodetest: NodeBalancerFrontend on a closed Server")
	}
	f := n.frontends[id]
	if f == nil {
		var err error
		if f, err = startFrontend(s, id); err != nil {
			n.mu.Unlock()
			panic("linodetest: start the NodeBalancer frontend: " + err.Error())
		}
		n.frontends[id] = f
	}
	n.mu.Unlock()
	f.sync()
	return f.udp.lb.Addr()
}

// NodeBalancerForwarded returns, per node address, what the NodeBalancer's
// frontend has sent there so far.
func (s *Server) NodeBalancerForwarded(id int) map[string]Forwarded {
	s.nbs.mu.Lock()
	f := s.nbs.frontends[id]
	s.nbs.mu.Unlock()
	if f == nil {
		return map[string]Forwarded{}
	}
	return f.forwarded()
}

// closeFrontends stops every frontend. Server.Close calls it.
func (s *Server) closeFrontends() {
	n := &s.nbs
	n.mu.Lock()
	n.closed = true
	fs := slices.Collect(maps.Values(n.frontends))
	n.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

// frontend is a NodeBalancer's data plane for its port FrontendPort: a UDP
// and a TCP local.Balancer on one port.
type frontend struct {
	s        *Server
	id       int
	udp, tcp *frontendSide
	// nobody is a balancer that never accepts a set, so it answers every
	// query SERVFAIL: the sides send there when no node takes traffic.
	nobody *local.Balancer
	ctx    context.Context // ends the drains still waiting when the frontend closes
	cancel context.CancelFunc
	drains sync.WaitGroup

	mu     sync.Mutex // one sync at a time, so the last one applies the API's latest state
	closed bool
}

// frontendSide is the balancer of one protocol and what it was told.
type frontendSide struct {
	protocol string
	lb       *local.Balancer
	accepted []deployer.Server // where lb sends new traffic
	nodes    map[string]string // an address lb sends to → the node address it stands for
}

func startFrontend(s *Server, id int) (*frontend, error) {
	opts := local.BalancerOptions{Logger: slog.New(slog.DiscardHandler), QueryTimeout: frontendTimeout}
	nobody, err := local.NewBalancer("127.0.0.1:0", opts)
	if err != nil {
		return nil, err
	}
	udp, tcp, err := local.NewBalancerPair("127.0.0.1:0", opts)
	if err != nil {
		nobody.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &frontend{s: s, id: id, nobody: nobody, ctx: ctx, cancel: cancel,
		udp: &frontendSide{protocol: "udp", lb: udp, nodes: map[string]string{}},
		tcp: &frontendSide{protocol: "tcp", lb: tcp, nodes: map[string]string{}}}, nil
}

// sync brings both balancers in line with the API's nodes. Every API call
// that changes the NodeBalancer's configs or nodes calls it before it
// answers, so traffic has moved when the call returns.
func (f *frontend) sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for _, side := range []*frontendSide{f.udp, f.tcp} {
		f.apply(side, f.s.route(f.s.portNodes(f.id, side.protocol)))
	}
}

// apply points side's balancer at t: new traffic to t.accept (or to nobody
// when it is empty), traffic on servers that left drains in the background,
// and traffic on t.reject is cut. f.mu is held.
func (f *frontend) apply(side *frontendSide, t traffic) {
	maps.Copy(side.nodes, t.nodeOf)
	accept := t.accept
	if len(accept) == 0 {
		accept = []deployer.Server{{Name: "no node", Addr: f.nobody.Addr()}}
	}
	if want := addrs(accept); !slices.Equal(want, addrs(side.accepted)) {
		if err := side.lb.Accept(f.ctx, accept); err != nil {
			return // the balancer is closed: so is the frontend
		}
		var left []deployer.Server
		for _, sv := range side.accepted {
			if !slices.Contains(want, sv.Addr) {
				left = append(left, sv)
			}
		}
		side.accepted = accept
		if len(left) > 0 {
			f.drains.Go(func() { side.lb.Drain(f.ctx, left) })
		}
	}
	if len(t.reject) > 0 {
		now, cancel := context.WithCancel(f.ctx)
		cancel() // an ended context: Drain cuts what is on them at once
		side.lb.Drain(now, t.reject)
	}
}

func addrs(servers []deployer.Server) []string {
	out := make([]string, 0, len(servers))
	for _, sv := range servers {
		out = append(out, sv.Addr)
	}
	return out
}

// forwarded counts, per node address, what the balancers sent there.
func (f *frontend) forwarded() map[string]Forwarded {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Forwarded{}
	for _, side := range []*frontendSide{f.udp, f.tcp} {
		for addr, n := range side.lb.Stats() {
			node, ok := side.nodes[addr]
			if !ok {
				continue // nobody
			}
			fw := out[node]
			if side.protocol == "udp" {
				fw.UDP += n
			} else {
				fw.TCP += n
			}
			out[node] = fw
		}
	}
	return out
}

func (f *frontend) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.udp.lb.Close()
	f.tcp.lb.Close()
	f.nobody.Close()
	f.drains.Wait()
}

// portNodes returns the nodes of the NodeBalancer's config for protocol on
// FrontendPort, oldest first.
func (s *Server) portNodes(id int, protocol string) []NodeBalancerNode {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb := s.nbs.byID[id]
	if nb == nil {
		return nil
	}
	for _, c := range nb.configs {
		if c.Port == FrontendPort && c.Protocol == protocol {
			out := make([]NodeBalancerNode, 0, len(c.nodes))
			for _, n := range c.nodes {
				out = append(out, *n)
			}
			return out
		}
	}
	return nil
}

// traffic is where a config's nodes let a balancer send.
type traffic struct {
	accept []deployer.Server // take new traffic
	reject []deployer.Server // have theirs cut
	nodeOf map[string]string // server address → node address
}

// route is where nodes let traffic go, by their modes. A node's server is
// its instance's own address at the node's port; a node whose address no
// instance has any more has none. It takes s.mu.
func (s *Server) route(nodes []NodeBalancerNode) traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := traffic{nodeOf: map[string]string{}}
	var backup []deployer.Server
	for _, n := range nodes {
		host, port, err := net.SplitHostPort(n.Address)
		if err != nil {
			continue
		}
		in := s.privateOwner(host)
		if in == nil {
			continue
		}
		sv := deployer.Server{Name: n.Label, Addr: net.JoinHostPort(in.IPv4, port)}
		t.nodeOf[sv.Addr] = n.Address
		switch n.Mode {
		case "accept":
			t.accept = append(t.accept, sv)
		case "backup":
			backup = append(backup, sv)
		case "reject":
			t.reject = append(t.reject, sv)
		}
	}
	if len(t.accept) == 0 {
		t.accept = backup
	}
	return t
}
