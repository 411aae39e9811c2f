package local

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxRedials bounds how often one client connection dials a server again
// without getting an answer in between.
const maxRedials = 3

// lbResult is what became of one query through the balancer.
type lbResult int

const (
	resultAnswered lbResult = iota // a server's answer reached the client
	resultServfail                 // the balancer answered SERVFAIL
	numResults
)

// lbProto is the protocol a query came in on.
type lbProto int

const (
	protoUDP lbProto = iota
	protoTCP
	numProtos
)

// paddedCounter is a counter alone on its cache line, so that goroutines
// counting different things on different cores do not slow each other.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// balancerCounters count queries through the balancer.
type balancerCounters struct {
	_                                     [64]byte // off the cache line of what comes before
	results                               [numProtos][numResults]paddedCounter
	udpRetried, udpDropped                paddedCounter
	tcpResent, tcpRejected, tcpIdleClosed atomic.Uint64
}

func (c *balancerCounters) count(proto lbProto, r lbResult) {
	c.results[proto][r].Add(1)
}

// BalancerCounters is a snapshot of what the balancer did since it started.
type BalancerCounters struct {
	UDPAnswered uint64 // UDP queries a server answered
	UDPServfail uint64 // UDP queries answered SERVFAIL: no server, or none answered
	UDPRetried  uint64 // UDP queries sent again to another server of the set
	UDPDropped  uint64 // packets that were not queries
	TCPAnswered uint64 // TCP queries a server answered
	TCPServfail uint64 // TCP queries answered SERVFAIL
	TCPResent   uint64 // TCP queries sent again after their server closed
	TCPRejected uint64 // client connections closed at once: MaxTCPClients open
	TCPIdle     uint64 // client connections closed after IdleTimeout of quiet
}

// Counters returns what the balancer counted so far.
func (b *Balancer) Counters() BalancerCounters {
	c := &b.counters
	return BalancerCounters{
		UDPAnswered: c.results[protoUDP][resultAnswered].Load(), UDPServfail: c.results[protoUDP][resultServfail].Load(),
		UDPRetried: c.udpRetried.Load(), UDPDropped: c.udpDropped.Load(),
		TCPAnswered: c.results[protoTCP][resultAnswered].Load(), TCPServfail: c.results[protoTCP][resultServfail].Load(),
		TCPResent: c.tcpResent.Load(), TCPRejected: c.tcpRejected.Load(), TCPIdle: c.tcpIdleClosed.Load(),
	}
}

// tcpProxy carries one client connection: each query read from the client
// is written to the flight's server and kept until its answer comes back.
// When the server closes with queries unanswered, they are sent again on a
// new connection, so a server that closes after N queries loses none.
type tcpProxy struct {
	b      *Balancer
	f      *flight
	client net.Conn
	wmu    sync.Mutex // writes to client
	wg     sync.WaitGroup

	mu          sync.Mutex
	server      net.Conn      // nil before the first query and after the server closed
	outstanding [][]byte      // queries (with their length prefix) sent and not yet answered
	redials     int           // dials since the last answer
	done        bool          // the client side is finished
	emptied     chan struct{} // signalled when outstanding becomes empty
}

// proxyTCP carries client's queries to the next server until the client
// closes, stays idle past the idle timeout, or the flight is cut.
func (b *Balancer) proxyTCP(client net.Conn) {
	f, ok := b.takeoff()
	if !ok {
		b.servfailTCP(client)
		return
	}
	defer b.land(f)
	b.hold(f, client)
	p := &tcpProxy{b: b, f: f, client: client, emptied: make(chan struct{}, 1)}
	p.run()
}

func (p *tcpProxy) run() {
	defer func() {
		p.mu.Lock()
		p.done = true
		s := p.server
		p.server = nil
		p.mu.Unlock()
		p.client.Close()
		if s != nil {
			s.Close()
		}
		p.wg.Wait()
	}()
	r := bufio.NewReader(p.client)
	for {
		if err := p.client.SetReadDeadline(time.Now().Add(p.b.idle)); err != nil {
			return
		}
		msg, err := readFrame(r)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if p.owed() > 0 {
				continue // quiet, but waiting for answers
			}
			p.b.counters.tcpIdleClosed.Add(1)
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				p.awaitAnswers()
			}
			return
		}
		if !p.forward(msg) {
			return
		}
	}
}

// owed is how many queries still wait for an answer.
func (p *tcpProxy) owed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.outstanding)
}

// awaitAnswers waits, at most the query timeout, for the answers to the
// queries a client sent before closing its side.
func (p *tcpProxy) awaitAnswers() {
	deadline := time.NewTimer(p.b.timeout)
	defer deadline.Stop()
	for p.owed() > 0 {
		select {
		case <-p.emptied:
		case <-deadline.C:
			return
		}
	}
}

// forward sends msg to the server, dialling it first when there is no
// connection; false when no server can be reached.
func (p *tcpProxy) forward(msg []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outstanding = append(p.outstanding, msg)
	if p.server != nil {
		if _, err := p.server.Write(msg); err == nil {
			return true
		}
		p.server.Close()
		p.server = nil
	}
	return p.connectLocked()
}

// connectLocked dials the flight's server (or, when it refuses, the next
// one of its set) and sends every outstanding query on the new connection.
// When it cannot, the outstanding queries are answered SERVFAIL and it
// returns false.
func (p *tcpProxy) connectLocked() bool {
	for p.redials < maxRedials && !p.done {
		p.redials++
		be := p.f.backend
		conn, err := net.DialTimeout("tcp", be.addr, p.b.timeout)
		if err != nil {
			p.b.log.Debug("dial server", "server", be.addr, "err", err)
			if _, ok := p.b.retarget(p.f); !ok && p.redials >= len(p.f.set.backends) {
				break
			}
			continue
		}
		p.b.hold(p.f, conn)
		ok := true
		for _, m := range p.outstanding {
			if _, err := conn.Write(m); err != nil {
				ok = false
				break
			}
		}
		if !ok {
			conn.Close()
			continue
		}
		p.server = conn
		p.wg.Add(1)
		go p.readServer(conn)
		return true
	}
	failed := p.outstanding
	p.outstanding = nil
	p.wmu.Lock()
	for _, m := range failed {
		if reply := servfail(m[2:]); reply != nil {
			p.client.Write(frame(reply))
		}
		p.b.counters.count(protoTCP, resultServfail)
	}
	p.wmu.Unlock()
	return false
}

// readServer relays conn's answers to the client. When conn ends with
// queries outstanding, it reconnects and sends them again.
func (p *tcpProxy) readServer(conn net.Conn) {
	defer p.wg.Done()
	r := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(p.b.idle + p.b.timeout))
		msg, err := readFrame(r)
		if err != nil {
			p.serverEnded(conn, err)
			return
		}
		id := binary.BigEndian.Uint16(msg[2:])
		p.mu.Lock()
		found := false
		for i, q := range p.outstanding {
			if binary.BigEndian.Uint16(q[2:]) == id {
				p.outstanding = append(p.outstanding[:i], p.outstanding[i+1:]...)
				found = true
				break
			}
		}
		p.redials = 0
		empty := len(p.outstanding) == 0
		p.mu.Unlock()
		if !found {
			continue
		}
		p.wmu.Lock()
		_, werr := p.client.Write(msg)
		p.wmu.Unlock()
		p.b.counters.count(protoTCP, resultAnswered)
		if empty {
			select {
			case p.emptied <- struct{}{}:
			default:
			}
		}
		if werr != nil {
			p.client.Close()
		}
	}
}

// serverEnded handles the end of a server connection: nothing more when
// nothing is owed or the client is gone; otherwise the owed queries go on a
// new connection.
func (p *tcpProxy) serverEnded(conn net.Conn, err error) {
	conn.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server != conn {
		return
	}
	p.server = nil
	if p.done || len(p.outstanding) == 0 {
		return
	}
	p.b.log.Debug("server closed with queries unanswered; sending them again", "server", p.f.backend.addr,
		"queries", len(p.outstanding), "err", err)
	p.b.counters.tcpResent.Add(uint64(len(p.outstanding)))
	if !p.connectLocked() {
		p.client.Close()
	}
}

// readFrame reads one length-prefixed DNS message and returns it with its
// prefix.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < dnsHeaderLen {
		return nil, errors.New("DNS message shorter than its header")
	}
	msg := make([]byte, 2+n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[2:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// frame prefixes msg with its length.
func frame(msg []byte) []byte {
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	return out
}
