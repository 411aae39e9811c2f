package local

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
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
}

type udpSock struct {
	b    *Balancer
	conn *net.UDPConn

	mu      sync.Mutex
	pending map[uint16]*udpAttempt // by the ID the server sees
	nextID  uint16
	closed  bool
}

// udpQuery is one client query, from the read until the client has its
// answer or SERVFAIL.
type udpQuery struct {
	client netip.AddrPort
	query  []byte // as the client sent it
	f      *flight
}

// udpAttempt is one query sent to one server; closing it (a cut drain)
// gives up on the query with SERVFAIL unless its answer came first.
type udpAttempt struct {
	q     *udpQuery
	sock  *udpSock
	id    uint16
	timer *time.Timer
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
		s := &udpSock{b: b, conn: c, pending: map[uint16]*udpAttempt{}, nextID: uint16(len(p.socks) * 7919)}
		p.socks = append(p.socks, s)
		b.wg.Go(s.read)
	}
	return p, nil
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
		f, ok := b.takeoff()
		if !ok {
			b.finishUDP(q, resultServfail)
			continue
		}
		q.f = f
		b.sendUDP(q, f.backend)
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
		if be, ok = b.retarget(q.f); !ok {
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
	wire := append([]byte(nil), q.query...)
	a := &udpAttempt{q: q, sock: s}
	for {
		s.nextID++
		if _, used := s.pending[s.nextID]; !used {
			break
		}
	}
	a.id = s.nextID
	binary.BigEndian.PutUint16(wire, a.id)
	s.pending[a.id] = a
	a.timer = time.AfterFunc(s.b.timeout, func() { s.expire(a) })
	s.mu.Unlock()
	s.b.hold(q.f, a)
	if _, err := s.conn.Write(wire); err != nil {
		return a, err
	}
	return nil, nil
}

// take removes a from the pending queries; false when it was not pending
// (answered, expired or cut already).
func (s *udpSock) take(a *udpAttempt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[a.id] != a {
		return false
	}
	delete(s.pending, a.id)
	a.timer.Stop()
	return true
}

// expire tries the query on another server when its server did not answer
// in time.
func (s *udpSock) expire(a *udpAttempt) {
	if !s.take(a) {
		return
	}
	s.b.retryUDP(a.q)
}

// retryUDP sends q to the next server of its set, or answers SERVFAIL when
// every one was tried.
func (b *Balancer) retryUDP(q *udpQuery) {
	be, ok := b.retarget(q.f)
	if !ok {
		b.finishUDP(q, resultServfail)
		return
	}
	b.counters.udpRetried.Add(1)
	b.sendUDP(q, be)
}

// Close gives up on the attempt (its flight was cut): the client gets
// SERVFAIL unless the answer came first.
func (a *udpAttempt) Close() error {
	if a.sock.take(a) {
		a.sock.b.finishUDP(a.q, resultServfail)
	}
	return nil
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
		a := s.pending[binary.BigEndian.Uint16(buf)]
		if a != nil {
			delete(s.pending, a.id)
			a.timer.Stop()
		}
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
	s.mu.Lock()
	var failed []*udpAttempt
	for id, a := range s.pending {
		a.timer.Stop()
		delete(s.pending, id)
		failed = append(failed, a)
	}
	s.mu.Unlock()
	for _, a := range failed {
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
	if q.f != nil {
		b.land(q.f)
	}
	<-b.inflight
}
