package local

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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
	b     *Balancer
	conn  *net.UDPConn
	batch batchConn // conn, read and written many messages at a time

	mu      sync.Mutex
	slots   [udpSlots]udpSlot // pending queries, by the low bits of the ID the server sees
	next    int               // the slot the search for a free one starts at
	pending int               // slots in use
	closed  bool
}

// udpSlots is how many queries one socket can have pending: as many as
// may be in flight, so a socket never runs out. The low bits of the ID the
// server sees are the slot; the high ones count its uses, so a late answer
// to the slot's previous query is not taken for the current one's.
const (
	udpSlotBits = 10
	udpSlots    = 1 << udpSlotBits
)

// udpSlot holds one query pending on a socket.
type udpSlot struct {
	q    *udpQuery     // nil when free
	gen  uint16        // bumped on each use
	sent time.Duration // when q was sent, on the balancer's clock
}

// id is the ID the server sees for the slot's current use.
func (sl *udpSlot) id(i int) uint16 { return sl.gen<<udpSlotBits | uint16(i) }

// udpQuery is one client query, from the read until the client has its
// answer or SERVFAIL. The balancer keeps at most maxUDPInFlight of them and
// reuses each once it is finished.
type udpQuery struct {
	client net.Addr
	query  []byte      // as the client sent it, ID and all
	set    *backendSet // nil when there was none to send it to
	be     *backend    // the server of set it is on
	tried  int         // servers of set tried so far
}

// maxKeptQuery is the longest query whose buffer a finished udpQuery keeps
// for the next one.
const maxKeptQuery = 4096

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
		s := &udpSock{b: b, conn: c, batch: newBatchConn(c), next: len(p.socks) * 331 % udpSlots}
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
		for _, q := range s.takeAll(always) {
			p.b.finishUDP(q, resultServfail)
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

// udpBatch is how many datagrams the balancer reads, or writes, with one
// system call.
const udpBatch = 32

// batchConn reads and writes a UDP socket's datagrams many at a time
// (recvmmsg and sendmmsg on Linux, one at a time elsewhere).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn is c's batchConn, for its address family.
func newBatchConn(c *net.UDPConn) batchConn {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// newMessages is n messages with a buffer each for a datagram.
func newMessages(n int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, dns.MaxMsgSize)}
	}
	return ms
}

// writeBatch writes ms with as few system calls as it can. When one fails,
// failed is called with its index and the error, and the writing goes on
// with the next.
func writeBatch(c batchConn, ms []ipv4.Message, failed func(int, error)) {
	for done := 0; done < len(ms); {
		n, err := c.WriteBatch(ms[done:], 0)
		done += n
		if err == nil && n == 0 {
			err = errShortBatch
		}
		if err != nil && done < len(ms) {
			if failed != nil {
				failed(done, err)
			}
			done++
		}
	}
}

// errShortBatch is a batch write's error when it wrote nothing and said
// nothing.
var errShortBatch = errors.New("wrote no datagram of the batch")

// udpOut is a query read in a batch, made pending on a socket and waiting
// to be written to it.
type udpOut struct {
	q    *udpQuery
	s    *udpSock
	id   uint16
	wire []byte
}

// serveUDP reads client queries, a batch at a time, and sends each to a
// server, those for one socket in one batch; answers come back through the
// pool sockets' readers.
func (b *Balancer) serveUDP() {
	defer b.wg.Done()
	ms := newMessages(udpBatch)
	outs := make([]udpOut, 0, udpBatch)
	wms := make([]ipv4.Message, udpBatch)
	for i := range wms {
		wms[i].Buffers = make([][]byte, 1)
	}
	group := make([]udpOut, 0, udpBatch)
	failed := func(i int, err error) {
		o := group[i]
		b.sendFailed(o.q, o.s, int(o.id), err, o.wire)
	}
	for {
		n, err := b.udpBatch.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Debug("read UDP", "err", err)
			continue
		}
		outs = outs[:0]
		for i := range ms[:n] {
			m := &ms[i]
			buf := m.Buffers[0][:m.N]
			if m.N < dnsHeaderLen || buf[2]&0x80 != 0 || m.Addr == nil { // too short, or a response
				b.counters.udpDropped.Add(1)
				continue
			}
			q := b.newUDPQuery()
			q.client, q.query = m.Addr, append(q.query[:0], buf...)
			if !b.takeoffUDP(q) {
				b.finishUDP(q, resultServfail)
				continue
			}
			s := q.be.pool.pick()
			id, err := s.prepare(q, buf)
			if err != nil {
				b.sendFailed(q, s, -1, err, buf)
				continue
			}
			outs = append(outs, udpOut{q: q, s: s, id: id, wire: buf})
		}
		// Write each socket's queries in one batch, in the order read.
		for len(outs) > 0 {
			s := outs[0].s
			group = group[:0]
			rest := outs[:0]
			for _, o := range outs {
				if o.s == s {
					group = append(group, o)
				} else {
					rest = append(rest, o)
				}
			}
			outs = rest
			for i, o := range group {
				wms[i].Buffers[0] = o.wire
			}
			writeBatch(s.batch, wms[:len(group)], failed)
		}
	}
}

// newUDPQuery is a finished query to reuse, or a new one while there are
// fewer than maxUDPInFlight; past that it waits for one to finish.
func (b *Balancer) newUDPQuery() *udpQuery {
	select {
	case q := <-b.freeQueries:
		return q
	default:
	}
	if b.queries.Load() < maxUDPInFlight && b.queries.Add(1) <= maxUDPInFlight {
		return &udpQuery{}
	}
	return <-b.freeQueries
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
// tries the next server of the set. wire is a copy of q.query that is the
// caller's to write over, nil if it has none.
func (b *Balancer) sendUDP(q *udpQuery, be *backend, wire []byte) {
	if wire == nil {
		wire = slices.Clone(q.query)
	}
	s := be.pool.pick()
	if id, err := s.send(q, wire); err != nil {
		b.sendFailed(q, s, id, err, wire)
	}
}

// sendFailed sends q to the next server of its set after sending it on s
// failed with err: id is the ID q is pending under on s, -1 when it was not
// made pending. Nothing is done when q is no longer pending on s (answered,
// expired or cut meanwhile). Each server is tried once, so this ends.
func (b *Balancer) sendFailed(q *udpQuery, s *udpSock, id int, err error, wire []byte) {
	if id >= 0 && !s.take(q, uint16(id)) {
		return
	}
	b.log.Debug("UDP query failed", "server", q.be.addr, "err", err)
	if be, ok := b.moveOn(q); ok {
		b.sendUDP(q, be, wire)
	}
}

// moveOn moves q to the next server of its set; when every one was tried
// it answers SERVFAIL and returns false.
func (b *Balancer) moveOn(q *udpQuery) (*backend, bool) {
	be, ok := b.retargetUDP(q)
	if !ok {
		b.finishUDP(q, resultServfail)
		return nil, false
	}
	b.counters.udpRetried.Add(1)
	return be, true
}

// send makes q pending on s under an ID free on s and writes wire, q's
// copy, with that ID. On a write error it returns the ID, q still pending
// under it, with the error; id is -1 when q was not made pending.
func (s *udpSock) send(q *udpQuery, wire []byte) (id int, err error) {
	i, err := s.prepare(q, wire)
	if err != nil {
		return -1, err
	}
	// From here q may be taken by another goroutine (the socket refused,
	// expired or cut): q.query is not written to, wire is the caller's.
	if _, err := s.conn.Write(wire); err != nil {
		return int(i), err
	}
	return 0, nil
}

// prepare makes q pending on s under an ID free on s and puts that ID in
// wire, q's copy, for the caller to write to s.
func (s *udpSock) prepare(q *udpQuery, wire []byte) (uint16, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, net.ErrClosed
	}
	i, ok := s.register(q)
	s.mu.Unlock()
	if !ok {
		return 0, errNoSlot
	}
	binary.BigEndian.PutUint16(wire, i)
	return i, nil
}

// errNoSlot is a socket's error when it has no free slot for a query.
var errNoSlot = errors.New("no free query ID on the socket")

// register puts q in a free slot and returns the ID that slot gives it;
// false when every slot is in use. s.mu is held.
func (s *udpSock) register(q *udpQuery) (uint16, bool) {
	for range udpSlots {
		i := s.next
		s.next = (s.next + 1) % udpSlots
		sl := &s.slots[i]
		if sl.q == nil {
			sl.gen++
			sl.q = q
			sl.sent = s.b.sinceStart()
			s.pending++
			return sl.id(i), true
		}
	}
	return 0, false
}

// takeLocked removes and returns the query pending under id, or nil. s.mu
// is held.
func (s *udpSock) takeLocked(id uint16) *udpQuery {
	i := int(id % udpSlots)
	sl := &s.slots[i]
	q := sl.q
	if q == nil || sl.id(i) != id {
		return nil
	}
	sl.q = nil
	s.pending--
	return q
}

// take removes q, pending under id, from s; false when it is no longer
// pending there (answered, expired or cut already).
func (s *udpSock) take(q *udpQuery, id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots[id%udpSlots].q == q && s.takeLocked(id) != nil
}

// always is a time on the balancer's clock after every query was sent.
const always = time.Duration(math.MaxInt64)

// takeAll takes the queries sent at before or earlier off s.
func (s *udpSock) takeAll(before time.Duration) []*udpQuery {
	var out []*udpQuery
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < udpSlots && s.pending > 0; i++ {
		if sl := &s.slots[i]; sl.q != nil && sl.sent <= before {
			out = append(out, s.takeLocked(sl.id(i)))
		}
	}
	return out
}

// expire takes the queries sent at before or earlier off s and tries each
// on another server: their server did not answer in time, or (before is
// always) refused them or is gone.
func (s *udpSock) expire(before time.Duration) {
	for _, q := range s.takeAll(before) {
		s.b.retryUDP(q)
	}
}

// retryUDP sends q to the next server of its set, or answers SERVFAIL when
// every one was tried.
func (b *Balancer) retryUDP(q *udpQuery) {
	if be, ok := b.moveOn(q); ok {
		b.sendUDP(q, be, nil)
	}
}

// read relays the server's answers to their clients. A refusal from the
// server (ICMP port unreachable) fails every query pending on the socket,
// which then tries another server.
func (s *udpSock) read() {
	ms := newMessages(udpBatch)
	wms := make([]ipv4.Message, udpBatch)
	for i := range wms {
		wms[i].Buffers = make([][]byte, 1)
	}
	qs := make([]*udpQuery, 0, udpBatch)
	for {
		n, err := s.batch.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.expire(always)
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				s.expire(always)
			}
			continue
		}
		qs = qs[:0]
		s.mu.Lock()
		for i := range ms[:n] {
			m := &ms[i]
			if m.N < dnsHeaderLen {
				continue
			}
			buf := m.Buffers[0][:m.N]
			q := s.takeLocked(binary.BigEndian.Uint16(buf))
			if q == nil { // late, or not ours
				continue
			}
			copy(buf[:2], q.query[:2])
			wms[len(qs)].Buffers[0], wms[len(qs)].Addr = buf, q.client
			qs = append(qs, q)
		}
		s.mu.Unlock()
		// Counted before the clients can have their answers.
		s.b.counters.results[protoUDP][resultAnswered].Add(uint64(len(qs)))
		writeBatch(s.b.udpBatch, wms[:len(qs)], nil)
		for i, q := range qs {
			wms[i].Addr = nil
			s.b.releaseUDP(q)
		}
	}
}

// finishUDP ends q: SERVFAIL to the client unless it was answered, then
// q leaves its server and is kept for another query. The caller does not
// touch q after.
func (b *Balancer) finishUDP(q *udpQuery, result lbResult) {
	// Counted before the client can have its reply, so a client that reads
	// the counters once answered finds its query there.
	b.counters.count(protoUDP, result)
	if result == resultServfail {
		if reply := servfail(q.query); reply != nil {
			b.udp.WriteTo(reply, q.client)
		}
	}
	b.releaseUDP(q)
}

// releaseUDP lands q, whose client has its reply, and keeps it for another
// query. The caller does not touch q after.
func (b *Balancer) releaseUDP(q *udpQuery) {
	if q.be != nil {
		b.landUDP(q.be.pool)
	}
	query := q.query[:0]
	if cap(query) > maxKeptQuery {
		query = nil
	}
	*q = udpQuery{query: query}
	b.freeQueries <- q
}

// expirySweeps is how many times per query timeout the balancer looks for
// UDP queries that went unanswered: one is given up between one and about
// 1+1/expirySweeps query timeouts after it was sent.
const expirySweeps = 8

// expireUDP gives up, expirySweeps times per query timeout, on the queries
// sent more than a query timeout ago, and tries each on another server. One
// goroutine for all the balancer's sockets does what a timer per query
// would, without setting and stopping one for each.
func (b *Balancer) expireUDP() {
	defer b.wg.Done()
	t := time.NewTicker(max(b.timeout/expirySweeps, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		before := b.sinceStart() - b.timeout
		b.mu.Lock()
		pools := slices.Collect(maps.Values(b.pools))
		b.mu.Unlock()
		for _, p := range pools {
			for _, s := range p.socks {
				s.expire(before)
			}
		}
	}
}

// sinceStart is the time since the balancer started, from the monotonic clock.
func (b *Balancer) sinceStart() time.Duration { return time.Since(b.started) }
