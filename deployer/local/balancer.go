package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/miekg/dns"
)

var _ deployer.Switch = (*Balancer)(nil)

// DefaultQueryTimeout is how long the balancer waits for a server's reply
// when BalancerOptions.QueryTimeout is 0.
const DefaultQueryTimeout = 3 * time.Second

// maxUDPInFlight bounds the UDP queries the balancer forwards at once; past
// it, it stops reading until one finishes.
const maxUDPInFlight = 1024

// BalancerOptions configure a Balancer.
type BalancerOptions struct {
	Logger       *slog.Logger  // default slog.Default()
	QueryTimeout time.Duration // per UDP query, and for dialling a server over TCP; default 3s
}

// Balancer is the local load balancer, a deployer.Switch: a UDP and TCP
// proxy on one address that sends each UDP query and each TCP connection to
// the next server of the accepted set, round-robin.
type Balancer struct {
	log     *slog.Logger
	timeout time.Duration
	udp     *net.UDPConn
	tcp     net.Listener

	backends atomic.Pointer[backendSet]

	mu      sync.Mutex
	flights map[*flight]struct{}  // queries and connections on their way through a server
	clients map[net.Conn]struct{} // open client TCP connections, closed by Close
	stats   map[string]uint64     // server address → queries and connections sent
	waiters int                   // Drains waiting on landed
	landed  chan struct{}         // closed and replaced when a flight lands while someone waits
	closed  bool

	inflight chan struct{} // semaphore of UDP queries
	wg       sync.WaitGroup
}

// backendSet is what Accept installs.
type backendSet struct {
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	addr string
	udp  *net.UDPAddr
}

// flight is one UDP query or one TCP connection through a server.
type flight struct {
	backend *backend
	conns   []io.Closer // closed if the flight is cut
	cut     bool
}

// NewBalancer listens on addr, UDP and TCP on the same port ("127.0.0.1:0"
// picks a free one). Until Accept, it answers SERVFAIL.
func NewBalancer(addr string, opts BalancerOptions) (*Balancer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	u, l, err := listenPair(addr)
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		log:      opts.Logger.With("balancer", u.LocalAddr().String()),
		timeout:  opts.QueryTimeout,
		udp:      u,
		tcp:      l,
		flights:  map[*flight]struct{}{},
		clients:  map[net.Conn]struct{}{},
		stats:    map[string]uint64{},
		landed:   make(chan struct{}),
		inflight: make(chan struct{}, maxUDPInFlight),
	}
	b.wg.Add(2)
	go b.serveUDP()
	go b.serveTCP()
	return b, nil
}

// Addr is the address the balancer answers on, host:port.
func (b *Balancer) Addr() string { return b.udp.LocalAddr().String() }

// Endpoints are the addresses clients use.
func (b *Balancer) Endpoints() []string { return []string{b.Addr()} }

// Stats returns how many UDP queries and TCP connections went to each server
// address.
func (b *Balancer) Stats() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.stats)
}

// Accept sends new queries and new TCP connections to servers, and only to
// them. Traffic already on other servers carries on; Drain waits for it.
func (b *Balancer) Accept(ctx context.Context, servers []deployer.Server) error {
	if len(servers) == 0 {
		return deployer.Errorf(deployer.CodeInvalid, "the load balancer needs at least one server to send traffic to")
	}
	set := &backendSet{}
	names := make([]string, 0, len(servers))
	for _, s := range servers {
		if s.Addr == "" {
			return deployer.Errorf(deployer.CodeInvalid, "%s has no address to send traffic to; is it running?", s.Name)
		}
		ua, err := net.ResolveUDPAddr("udp", s.Addr)
		if err != nil {
			return &deployer.Error{Code: deployer.CodeInvalid, Message: "bad address for " + s.Name, Err: err}
		}
		set.backends = append(set.backends, &backend{addr: s.Addr, udp: ua})
		names = append(names, s.Name+"="+s.Addr)
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("the load balancer is closed")
	}
	b.backends.Store(set)
	b.log.Info("load balancer sends traffic to", "servers", names)
	return nil
}

// Drain waits until every UDP query and TCP connection that is on servers
// when it is called has finished. When ctx ends first it cuts them, logs how
// many, and returns nil: the switch has happened either way.
func (b *Balancer) Drain(ctx context.Context, servers []deployer.Server) error {
	addrs := map[string]bool{}
	for _, s := range servers {
		addrs[s.Addr] = true
	}
	b.mu.Lock()
	pending := map[*flight]struct{}{}
	for f := range b.flights {
		if addrs[f.backend.addr] {
			pending[f] = struct{}{}
		}
	}
	b.waiters++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
	}()
	b.log.Info("draining", "servers", len(servers), "in_flight", len(pending))
	for {
		b.mu.Lock()
		maps.DeleteFunc(pending, func(f *flight, _ struct{}) bool {
			_, flying := b.flights[f]
			return !flying
		})
		landed := b.landed
		b.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-landed:
		case <-ctx.Done():
			n := b.cut(pending)
			b.log.Warn("drain deadline passed; cut traffic still on the old servers", "cut", n, "err", ctx.Err())
			return nil
		}
	}
}

// cut closes the flights' connections and returns how many flights it cut.
func (b *Balancer) cut(flights map[*flight]struct{}) int {
	var conns []io.Closer
	n := 0
	b.mu.Lock()
	for f := range flights {
		if _, flying := b.flights[f]; !flying || f.cut {
			continue
		}
		f.cut = true
		conns = append(conns, f.conns...)
		n++
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return n
}

// Close stops listening, cuts every query and connection, and waits for
// their goroutines.
func (b *Balancer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var conns []io.Closer
	for f := range b.flights {
		f.cut = true
		conns = append(conns, f.conns...)
	}
	for c := range b.clients {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	b.udp.Close()
	b.tcp.Close()
	for _, c := range conns {
		c.Close()
	}
	b.wg.Wait()
	return nil
}

// takeoff picks the next server of the accepted set and records a flight to
// it; ok is false when there is none. Picking and recording happen under one
// lock, so a Drain after Accept sees every flight to the old set.
func (b *Balancer) takeoff() (f *flight, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.backends.Load()
	if b.closed || set == nil || len(set.backends) == 0 {
		return nil, false
	}
	be := set.backends[(set.next.Add(1)-1)%uint64(len(set.backends))]
	f = &flight{backend: be}
	b.flights[f] = struct{}{}
	b.stats[be.addr]++
	return f, true
}

// hold makes c part of f, closed if f is cut; if f was cut already, c is
// closed at once.
func (b *Balancer) hold(f *flight, c io.Closer) {
	b.mu.Lock()
	cut := f.cut
	if !cut {
		f.conns = append(f.conns, c)
	}
	b.mu.Unlock()
	if cut {
		c.Close()
	}
}

// land ends f.
func (b *Balancer) land(f *flight) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.flights, f)
	if b.waiters > 0 {
		close(b.landed)
		b.landed = make(chan struct{})
	}
}

// serveUDP reads client queries and forwards each in its own goroutine.
func (b *Balancer) serveUDP() {
	defer b.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, client, err := b.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Debug("read UDP", "err", err)
			continue
		}
		query := bytes.Clone(buf[:n])
		b.inflight <- struct{}{}
		b.wg.Go(func() {
			defer func() { <-b.inflight }()
			if reply := b.exchangeUDP(query); reply != nil {
				b.udp.WriteToUDPAddrPort(reply, client)
			}
		})
	}
}

// exchangeUDP returns the reply to query: a server's, or SERVFAIL when there
// is no server or it did not answer; nil to drop a packet that is not a query.
func (b *Balancer) exchangeUDP(query []byte) []byte {
	f, ok := b.takeoff()
	if !ok {
		return servfail(query)
	}
	defer b.land(f)
	reply, err := b.relayUDP(f, query)
	if err != nil {
		b.log.Debug("UDP query failed", "server", f.backend.addr, "err", err)
		return servfail(query)
	}
	return reply
}

// relayUDP sends query to f's server from a fresh socket and reads its reply.
func (b *Balancer) relayUDP(f *flight, query []byte) ([]byte, error) {
	conn, err := net.DialUDP("udp", nil, f.backend.udp)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	b.hold(f, conn)
	if err := conn.SetDeadline(time.Now().Add(b.timeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && len(query) >= 2 && buf[0] == query[0] && buf[1] == query[1] { // same ID
			return bytes.Clone(buf[:n]), nil
		}
	}
}

// servfail is a SERVFAIL reply to query, or nil when query is not a DNS
// query.
func servfail(query []byte) []byte {
	q := new(dns.Msg)
	if err := q.Unpack(query); err != nil || q.Response || len(q.Question) == 0 {
		return nil
	}
	m := new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(maxUDPSize, false)
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// serveTCP accepts client connections, each proxied in its own goroutine.
func (b *Balancer) serveTCP() {
	defer b.wg.Done()
	for {
		c, err := b.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Debug("accept TCP", "err", err)
			continue
		}
		if !b.track(c) {
			c.Close()
			continue
		}
		b.wg.Go(func() {
			defer b.untrack(c)
			b.proxyTCP(c)
		})
	}
}

func (b *Balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.clients[c] = struct{}{}
	return true
}

func (b *Balancer) untrack(c net.Conn) {
	c.Close()
	b.mu.Lock()
	delete(b.clients, c)
	b.mu.Unlock()
}

// proxyTCP joins client to the next server until either side closes.
func (b *Balancer) proxyTCP(client net.Conn) {
	f, ok := b.takeoff()
	if !ok {
		b.servfailTCP(client)
		return
	}
	defer b.land(f)
	b.hold(f, client)
	server, err := net.DialTimeout("tcp", f.backend.addr, b.timeout)
	if err != nil {
		b.log.Debug("dial server", "server", f.backend.addr, "err", err)
		b.servfailTCP(client)
		return
	}
	b.hold(f, server)
	splice(client, server)
}

// splice copies both ways and closes both connections when either side
// closes.
func splice(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, a)
		a.Close()
		b.Close()
	}()
	io.Copy(a, b)
	a.Close()
	b.Close()
	<-done
}

// servfailTCP answers SERVFAIL to every query on c until the client closes
// it or stays quiet for the query timeout.
func (b *Balancer) servfailTCP(c net.Conn) {
	dc := &dns.Conn{Conn: c}
	for {
		if err := c.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
			return
		}
		q, err := dc.ReadMsg()
		if err != nil || q.Response || len(q.Question) == 0 {
			return
		}
		if err := dc.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)); err != nil {
			return
		}
	}
}
