package local

import (
	"encoding/binary"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// udpPool is a balancer's connected UDP sockets to one server. Queries are
// spread over them; each socket rewrites a query's ID to one it has free and
// restores the client's ID on the answer.
type udpPool struct {
	b     *Balancer
	addr  string
	socks []*udpSock
	next  atomic.Uint32
	// inflight counts the UDP queries on this server: from when one is sent
	// to it until it is answered, given up or moved to another server.
	inflight atomic.Int64
}

type udpSock struct {
	b    *Balancer
	conn *net.UDPConn

	mu      sync.Mutex
	slots   [udpSlots]udpSlot // pending attempts, by the low bits of the ID the server sees
	next    int               // the slot the search for a free one starts at
	pending int               // slots in use
	closed  bool
}

// udpSlots is how many attempts one socket can have pending: as many as
// queries may be in flight, so a socket never runs out. The low bits of
// the ID the server sees are the slot; the high ones count its uses, so a
// late answer to the slot's previous attempt is not taken for the current
// one's.
const (
	udpSlotBits = 10
	udpSlots    = 1 << udpSlotBits
)

// udpSlot holds one pending attempt.
type udpSlot struct {
	a   *udpAttempt // nil when free
	gen uint16      // bumped on each use
}

// udpQuery is one client query, from the read until the client has its
// answer or SERVFAIL.
type udpQuery struct {
	client netip.AddrPort
	query  []byte      // as the client sent it
	set    *backendSet // nil when there was none to send it to
	be     *backend    // the server of set it is on
	tried  int         // servers of set tried so far
}

// udpAttempt is one query sent to one server.
type udpAttempt struct {
	q    *udpQuery
	sock *udpSock
	id   uint16
	tick uint64 // the balancer's expiry tick when it was sent
}

func (b *Balancer) newUDPPool(addr string) (*udpPool, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	p := &udpPool{b: b, addr: addr}
	for range b.sockets {
		c, err := net.DialUDP("udp", nil, ua)
		if err != nil {
			p.close()
			return nil, err
		}
		s := &udpSock{b: b, conn: c, next: len(p.socks) * 331 % udpSlots}
		p.socks = append(p.socks, s)
		b.wg.Go(s.read)
	}
	return p, nil
}

// cut gives up on the queries pending on p's sockets with SERVFAIL and
// returns how many.
func (p *udpPool) cut() int {
	n := 0
	for _, s := range p.socks {
		for _, a := range s.takeAll(allTicks) {
			p.b.finishUDP(a.q, resultServfail)
			n++
		}
	}
	return n
}

// close closes the sockets; their readers give up on what is pending.
func (p *udpPool) close() {
	for _, s := range p.socks {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.conn.Close()
	}
}

func (p *udpPool) pick() *udpSock {
	return p.socks[int(p.next.Add(1))%len(p.socks)]
}

// serveUDP reads client queries and sends each to a server; answers come
// back through the pool sockets' readers.
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
		if n < dnsHeaderLen || buf[2]&0x80 != 0 { // too short, or a response
			b.counters.udpDropped.Add(1)
			continue
		}
		q := &udpQuery{client: client, query: append([]byte(nil), buf[:n]...)}
		b.inflight <- struct{}{}
		if !b.takeoffUDP(q) {
			b.finishUDP(q, resultServfail)
			continue
		}
		b.sendUDP(q, q.be)
	}
}

// takeoffUDP picks the next server of the accepted set for q and counts q
// on it; false when there is none.
func (b *Balancer) takeoffUDP(q *udpQuery) bool {
	b.switching.RLock()
	defer b.switching.RUnlock()
	set := b.backends.Load()
	if set == nil || len(set.backends) == 0 {
		return false
	}
	q.set, q.be, q.tried = set, set.pick(), 1
	q.be.pool.inflight.Add(1)
	q.be.sent.Add(1)
	return true
}

// retargetUDP moves q to the next server of its set it has not tried; false
// when it has tried them all or the balancer is closed.
func (b *Balancer) retargetUDP(q *udpQuery) (be *backend, ok bool) {
	if b.closed.Load() || q.tried >= len(q.set.backends) {
		return nil, false
	}
	be = q.set.after(q.be)
	be.pool.inflight.Add(1)
	be.sent.Add(1)
	b.landUDP(q.be.pool)
	q.be = be
	q.tried++
	return be, true
}

// landUDP ends a query's stay on p's server.
func (b *Balancer) landUDP(p *udpPool) {
	if p.inflight.Add(-1) == 0 && b.waiters.Load() > 0 {
		b.signalLanded()
	}
}

// dnsHeaderLen is the length of a DNS message header.
const dnsHeaderLen = 12

// sendUDP sends q to be's server on one of its sockets. When it cannot, it
// tries the next server of the set.
func (b *Balancer) sendUDP(q *udpQuery, be *backend) {
	for {
		a, err := be.pool.pick().send(q)
		if err == nil {
			return
		}
		if a != nil && !a.sock.take(a) { // cut, or answered, meanwhile
			return
		}
		b.log.Debug("UDP query failed", "server", be.addr, "err", err)
		var ok bool
		if be, ok = b.retargetUDP(q); !ok {
			b.finishUDP(q, resultServfail)
			return
		}
		b.counters.udpRetried.Add(1)
	}
}

// send registers an attempt of q on s and writes it. On a write error it
// returns the attempt, still pending, with the error.
func (s *udpSock) send(q *udpQuery) (*udpAttempt, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, net.ErrClosed
	}
	a := &udpAttempt{q: q, sock: s, tick: s.b.ticks.Load()}
	if !s.register(a) {
		s.mu.Unlock()
		return nil, errNoSlot
	}
	s.mu.Unlock()
	wire := append([]byte(nil), q.query...)
	binary.BigEndian.PutUint16(wire, a.id)
	if _, err := s.conn.Write(wire); err != nil {
		return a, err
	}
	return nil, nil
}

// errNoSlot is a socket's error when it has no free slot for an attempt.
var errNoSlot = errors.New("no free query ID on the socket")

// register puts a in a free slot and gives it that slot's next ID; false
// when every slot is in use. s.mu is held.
func (s *udpSock) register(a *udpAttempt) bool {
	for range udpSlots {
		i := s.next
		s.next = (s.next + 1) % udpSlots
		sl := &s.slots[i]
		if sl.a == nil {
			sl.gen++
			sl.a = a
			a.id = sl.gen<<udpSlotBits | uint16(i)
			s.pending++
			return true
		}
	}
	return false
}

// takeLocked removes and returns the attempt pending with the ID id, or
// nil. s.mu is held.
func (s *udpSock) takeLocked(id uint16) *udpAttempt {
	sl := &s.slots[id%udpSlots]
	a := sl.a
	if a == nil || a.id != id {
		return nil
	}
	sl.a = nil
	s.pending--
	return a
}

// take removes a from the pending queries; false when it was not pending
// (answered, expired or cut already).
func (s *udpSock) take(a *udpAttempt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.slots[a.id%udpSlots]
	if sl.a != a {
		return false
	}
	sl.a = nil
	s.pending--
	return true
}

// allTicks is every tick, to take every attempt.
const allTicks = ^uint64(0)

// takeAll takes the attempts sent at tick before or earlier off s.
func (s *udpSock) takeAll(before uint64) []*udpAttempt {
	var out []*udpAttempt
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < udpSlots && s.pending > 0; i++ {
		if a := s.slots[i].a; a != nil && a.tick <= before {
			out = append(out, s.takeLocked(a.id))
		}
	}
	return out
}

// expire takes the attempts sent at tick before or earlier off s and tries
// each query on another server: their server did not answer in time.
func (s *udpSock) expire(before uint64) {
	for _, a := range s.takeAll(before) {
		s.b.retryUDP(a.q)
	}
}

// retryUDP sends q to the next server of its set, or answers SERVFAIL when
// every one was tried.
func (b *Balancer) retryUDP(q *udpQuery) {
	be, ok := b.retargetUDP(q)
	if !ok {
		b.finishUDP(q, resultServfail)
		return
	}
	b.counters.udpRetried.Add(1)
	b.sendUDP(q, be)
}

// read relays the server's answers to their clients. A refusal from the
// server (ICMP port unreachable) fails every query pending on the socket,
// which then tries another server.
func (s *udpSock) read() {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.failAll()
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				s.failAll()
			}
			continue
		}
		if n < dnsHeaderLen {
			continue
		}
		s.mu.Lock()
		a := s.takeLocked(binary.BigEndian.Uint16(buf))
		s.mu.Unlock()
		if a == nil { // late, or not ours
			continue
		}
		copy(buf[:2], a.q.query[:2])
		s.b.udp.WriteToUDPAddrPort(buf[:n], a.q.client)
		s.b.finishUDP(a.q, resultAnswered)
	}
}

// failAll takes every pending attempt off s and retries each query.
func (s *udpSock) failAll() {
	for _, a := range s.takeAll(allTicks) {
		s.b.retryUDP(a.q)
	}
}

// finishUDP ends q: SERVFAIL to the client unless it was answered, then
// the flight lands.
func (b *Balancer) finishUDP(q *udpQuery, result lbResult) {
	if result == resultServfail {
		if reply := servfail(q.query); reply != nil {
			b.udp.WriteToUDPAddrPort(reply, q.client)
		}
	}
	b.counters.count(protoUDP, result)
	if q.be != nil {
		b.landUDP(q.be.pool)
	}
	<-b.inflight
}

// expiryTicks is how many times per query timeout the balancer looks for
// UDP attempts that went unanswered: an attempt is given up between one and
// 1+1/expiryTicks query timeouts after it was sent.
const expiryTicks = 8

// expireUDP ticks expiryTicks times per query timeout and gives up on the
// attempts sent more than a query timeout ago. One goroutine for all the
// balancer's sockets does what a timer per query would, without setting
// and stopping one for each.
func (b *Balancer) expireUDP() {
	defer b.wg.Done()
	period, ticks := b.timeout/expiryTicks, uint64(expiryTicks)
	if period < time.Millisecond {
		period = time.Millisecond
		ticks = uint64((b.timeout + period - 1) / period)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		// An attempt sent at tick n went out before tick n+1 began: by tick
		// n+1+ticks it has waited more than ticks periods.
		now := b.ticks.Add(1)
		if now <= ticks {
			continue
		}
		b.mu.Lock()
		pools := slices.Collect(maps.Values(b.pools))
		b.mu.Unlock()
		for _, p := range pools {
			for _, s := range p.socks {
				s.expire(now - ticks - 1)
			}
		}
	}
}
