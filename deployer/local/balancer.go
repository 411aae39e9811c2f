package local

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
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

// DefaultIdleTimeout is how long a client TCP connection may stay quiet
// (no query sent, no answer owed) when BalancerOptions.IdleTimeout is 0.
const DefaultIdleTimeout = 10 * time.Second

// DefaultMaxTCPClients bounds the open client TCP connections when
// BalancerOptions.MaxTCPClients is 0.
const DefaultMaxTCPClients = 1024

// DefaultUDPSockets is how many connected UDP sockets the balancer keeps
// per server when BalancerOptions.UDPSockets is 0.
const DefaultUDPSockets = 2

// udpReaders is how many goroutines read client queries from the UDP
// socket.
const udpReaders = 2

// maxUDPInFlight bounds the UDP queries the balancer forwards at once; past
// it, it stops reading until one finishes.
const maxUDPInFlight = 1024

// BalancerOptions configure a Balancer.
type BalancerOptions struct {
	Logger *slog.Logger // default slog.Default()
	// QueryTimeout bounds one attempt of a UDP query, dialling a server over
	// TCP, and a server's answer on a TCP connection; default 3s.
	QueryTimeout time.Duration
	// IdleTimeout closes a client TCP connection that sent no query and is
	// owed no answer for this long, so a quiet client does not hold a drain
	// open; default 10s.
	IdleTimeout time.Duration
	// MaxTCPClients bounds the open client TCP connections; one past it is
	// closed at once. Default 1024.
	MaxTCPClients int
	// UDPSockets is the number of connected UDP sockets per server that
	// carry queries, each answer matched to its query by a rewritten ID.
	// Default 2.
	UDPSockets int
}

// Balancer is the local load balancer, a deployer.Switch: a UDP and TCP
// proxy on one address that sends each UDP query and each TCP connection to
// the next server of the accepted set, round-robin. A UDP query a server
// does not answer (refused, or no reply within the query timeout) is tried
// on another server of the same set before the client is told SERVFAIL; a
// TCP connection whose server closes with queries unanswered is re-dialled
// and those queries sent again.
type Balancer struct {
	log        *slog.Logger
	timeout    time.Duration
	idle       time.Duration
	maxClients int
	sockets    int
	udp        *net.UDPConn
	udpBatch   batchConn // udp, read and written many messages at a time
	tcp        net.Listener

	backends atomic.Pointer[backendSet]
	closed   atomic.Bool  // set by Close, with mu held
	waiters  atomic.Int32 // Drains waiting on landed
	// switching is held for writing while Accept installs a set, and for
	// reading while a UDP query picks its server and is counted on it, so
	// that once Accept returns no query picks from the old set and a Drain
	// sees every query on it.
	switching sync.RWMutex
	counters  balancerCounters

	mu      sync.Mutex
	flights map[*flight]struct{}      // TCP connections on their way through a server
	clients map[net.Conn]struct{}     // open client TCP connections, closed by Close
	stats   map[string]*atomic.Uint64 // server address → queries and connections sent
	pools   map[string]*udpPool       // server address → its UDP sockets and UDP queries on it
	landed  chan struct{}             // closed and replaced when a flight lands while a Drain waits

	// freeQueries holds finished UDP queries for reuse; queries counts
	// those made, at most maxUDPInFlight, so reading from the client stops
	// while that many are in flight.
	freeQueries chan *udpQuery
	queries     atomic.Int64
	started     time.Time     // the origin of clock
	done        chan struct{} // closed by Close
	wg          sync.WaitGroup
}

// backendSet is what Accept installs.
type backendSet struct {
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	addr string
	pool *udpPool
	sent *atomic.Uint64 // queries and connections sent to addr
}

// flight is one TCP connection through a server of set.
type flight struct {
	set     *backendSet
	backend *backend
	tried   int         // servers of set tried so far
	conns   []io.Closer // closed if the flight is cut
	cut     bool
}

// NewBalancer listens on addr, UDP and TCP on the same port ("127.0.0.1:0"
// picks a free one). Until Accept, it answers SERVFAIL.
func NewBalancer(addr string, opts BalancerOptions) (*Balancer, error) {
	u, l, err := listenPair(addr)
	if err != nil {
		return nil, err
	}
	return newBalancer(u, l, opts), nil
}

// NewBalancerPair listens on addr as NewBalancer does, and returns two
// balancers on that one port: one takes the UDP, the other the TCP, each
// sent to a set of its own (as a NodeBalancer's configs for UDP and TCP on
// one port are).
func NewBalancerPair(addr string, opts BalancerOptions) (udp, tcp *Balancer, err error) {
	u, l, err := listenPair(addr)
	if err != nil {
		return nil, nil, err
	}
	return newBalancer(u, nil, opts), newBalancer(nil, l, opts), nil
}

// newBalancer serves u and l, either of which may be nil.
func newBalancer(u *net.UDPConn, l net.Listener, opts BalancerOptions) *Balancer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxTCPClients <= 0 {
		opts.MaxTCPClients = DefaultMaxTCPClients
	}
	if opts.UDPSockets <= 0 {
		opts.UDPSockets = DefaultUDPSockets
	}
	b := &Balancer{
		log:         opts.Logger.With("balancer", boundAddr(u, l)),
		timeout:     opts.QueryTimeout,
		idle:        opts.IdleTimeout,
		maxClients:  opts.MaxTCPClients,
		sockets:     opts.UDPSockets,
		udp:         u,
		tcp:         l,
		flights:     map[*flight]struct{}{},
		clients:     map[net.Conn]struct{}{},
		stats:       map[string]*atomic.Uint64{},
		pools:       map[string]*udpPool{},
		landed:      make(chan struct{}),
		freeQueries: make(chan *udpQuery, maxUDPInFlight),
		done:        make(chan struct{}),
		started:     time.Now(),
	}
	if u != nil {
		b.udpBatch = newBatchConn(u)
		b.wg.Add(1 + udpReaders)
		for range udpReaders {
			go b.serveUDP()
		}
		go b.expireUDP()
	}
	if l != nil {
		b.wg.Add(1)
		go b.serveTCP()
	}
	return b
}

// Addr is the address the balancer answers on, host:port.
func (b *Balancer) Addr() string { return boundAddr(b.udp, b.tcp) }

// Endpoints are the addresses clients use.
func (b *Balancer) Endpoints() []string { return []string{b.Addr()} }

// Stats returns how many UDP queries and TCP connections went to each server
// address.
func (b *Balancer) Stats() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.stats))
	for addr, n := range b.stats {
		if sent := n.Load(); sent > 0 {
			out[addr] = sent
		}
	}
	return out
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
		if _, err := net.ResolveUDPAddr("udp", s.Addr); err != nil {
			return &deployer.Error{Code: deployer.CodeInvalid, Message: "bad address for " + s.Name, Err: err}
		}
		set.backends = append(set.backends, &backend{addr: s.Addr})
		names = append(names, s.Name+"="+s.Addr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return errors.New("the load balancer is closed")
	}
	for _, be := range set.backends {
		p := b.pools[be.addr]
		if p == nil {
			var err error
			if p, err = b.newUDPPool(be.addr); err != nil {
				return &deployer.Error{Code: deployer.CodeFailed, Message: "open UDP sockets to " + be.addr, Err: err}
			}
			b.pools[be.addr] = p
		}
		be.pool = p
		if b.stats[be.addr] == nil {
			b.stats[be.addr] = new(atomic.Uint64)
		}
		be.sent = b.stats[be.addr]
	}
	b.switching.Lock()
	b.backends.Store(set)
	b.switching.Unlock()
	b.log.Info("load balancer sends traffic to", "servers", names)
	return nil
}

// Drain waits until every UDP query and TCP connection that is on servers
// when it is called has finished. When ctx ends first it cuts them, logs how
// many, and returns nil: the switch has happened either way.
//
// UDP queries are counted per server rather than one by one: on servers
// that are still accepted (not how a switch drains), Drain waits for a
// moment when none is in flight on them.
func (b *Balancer) Drain(ctx context.Context, servers []deployer.Server) error {
	addrs := map[string]bool{}
	for _, s := range servers {
		addrs[s.Addr] = true
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	b.mu.Lock()
	pending := map[*flight]struct{}{}
	for f := range b.flights {
		if addrs[f.backend.addr] {
			pending[f] = struct{}{}
		}
	}
	var pools []*udpPool
	for addr := range addrs {
		if p := b.pools[addr]; p != nil {
			pools = append(pools, p)
		}
	}
	b.mu.Unlock()
	udpInFlight := func() (n int64) {
		for _, p := range pools {
			n += p.inflight.Load()
		}
		return n
	}
	b.log.Info("draining", "servers", len(servers), "in_flight", int64(len(pending))+udpInFlight())
	for {
		b.mu.Lock()
		maps.DeleteFunc(pending, func(f *flight, _ struct{}) bool {
			_, flying := b.flights[f]
			return !flying
		})
		landed := b.landed
		b.mu.Unlock()
		if len(pending) == 0 && udpInFlight() == 0 {
			b.closePools(addrs)
			return nil
		}
		select {
		case <-landed:
		case <-ctx.Done():
			n := b.cut(pending)
			for _, p := range pools {
				n += p.cut()
			}
			b.closePools(addrs)
			b.log.Warn("drain deadline passed; cut traffic still on the old servers", "cut", n, "err", ctx.Err())
			return nil
		}
	}
}

// closePools closes the UDP sockets to addrs that the accepted set does not
// use. A query of an older set that is tried on one of them later finds it
// closed and goes on to the next server of its set.
func (b *Balancer) closePools(addrs map[string]bool) {
	b.mu.Lock()
	keep := map[string]bool{}
	if set := b.backends.Load(); set != nil {
		for _, be := range set.backends {
			keep[be.addr] = true
		}
	}
	var closing []*udpPool
	for addr := range addrs {
		if p := b.pools[addr]; p != nil && !keep[addr] {
			closing = append(closing, p)
			delete(b.pools, addr)
		}
	}
	b.mu.Unlock()
	for _, p := range closing {
		p.close()
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
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	close(b.done)
	var conns []io.Closer
	for f := range b.flights {
		f.cut = true
		conns = append(conns, f.conns...)
	}
	for c := range b.clients {
		conns = append(conns, c)
	}
	pools := slices.Collect(maps.Values(b.pools))
	clear(b.pools)
	b.mu.Unlock()
	if b.udp != nil {
		b.udp.Close()
	}
	if b.tcp != nil {
		b.tcp.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	for _, p := range pools {
		p.close()
	}
	b.wg.Wait()
	return nil
}

// takeoff picks the next server of the accepted set for a TCP connection
// and records a flight to it; ok is false when there is none. Picking and
// recording happen under one lock, so a Drain after Accept sees every
// flight to the old set.
func (b *Balancer) takeoff() (f *flight, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.backends.Load()
	if b.closed.Load() || set == nil || len(set.backends) == 0 {
		return nil, false
	}
	be := set.pick()
	f = &flight{set: set, backend: be, tried: 1}
	b.flights[f] = struct{}{}
	be.sent.Add(1)
	return f, true
}

// pick is the next server of set, round-robin.
func (set *backendSet) pick() *backend {
	return set.backends[(set.next.Add(1)-1)%uint64(len(set.backends))]
}

// after is the server of set after be.
func (set *backendSet) after(be *backend) *backend {
	i := slices.Index(set.backends, be)
	return set.backends[(i+1)%len(set.backends)]
}

// retarget moves f to the next server of its set it has not tried; ok is
// false when it has tried them all or was cut.
func (b *Balancer) retarget(f *flight) (be *backend, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f.cut || b.closed.Load() || f.tried >= len(f.set.backends) {
		return nil, false
	}
	be = f.set.after(f.backend)
	f.backend = be
	f.tried++
	be.sent.Add(1)
	return be, true
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
	if b.waiters.Load() > 0 {
		b.wakeDrainsLocked()
	}
}

// signalLanded wakes the Drains waiting.
func (b *Balancer) signalLanded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wakeDrainsLocked()
}

// wakeDrainsLocked wakes the Drains waiting for something to land. b.mu is
// held.
func (b *Balancer) wakeDrainsLocked() {
	close(b.landed)
	b.landed = make(chan struct{})
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

// track records an accepted client connection; false when the balancer is
// closed or already has MaxTCPClients.
func (b *Balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false
	}
	if len(b.clients) >= b.maxClients {
		b.counters.tcpRejected.Add(1)
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
