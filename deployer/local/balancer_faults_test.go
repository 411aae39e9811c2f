package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

func newBalancerWith(t testing.TB, opts BalancerOptions) *Balancer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	b, err := NewBalancer("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// refusingAddr is a loopback UDP address nobody listens on: the kernel
// answers queries to it with port unreachable.
func refusingAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// A UDP query whose server refuses it or never answers is answered by
// another server of the same set, not SERVFAIL.
func TestBalancerUDPRetriesAnotherServer(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	good := startServers(t, c, server{"ns1-1", "local/ns-v1", true})[0]
	tests := []struct {
		name string
		bad  func(t *testing.T) deployer.Server
	}{
		{"refused", func(t *testing.T) deployer.Server { return deployer.Server{Name: "gone", Addr: refusingAddr(t)} }},
		{"silent", func(t *testing.T) deployer.Server { return newHeldServer(t).server() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancerWith(t, BalancerOptions{QueryTimeout: 200 * time.Millisecond})
			if err := b.Accept(context.Background(), []deployer.Server{tt.bad(t), good}); err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA)
				if err != nil {
					t.Fatalf("query %d: %v", i, err)
				}
				if r.Rcode != dns.RcodeSuccess || nsid(r) != good.Name {
					t.Fatalf("query %d: %s from %q, want NOERROR from %s", i, dns.RcodeToString[r.Rcode], nsid(r), good.Name)
				}
			}
			if got := b.Counters(); got.UDPRetried == 0 || got.UDPServfail != 0 {
				t.Errorf("counters %+v: want retries and no SERVFAIL", got)
			}
		})
	}
}

// Every server of the set failing still ends in SERVFAIL, once.
func TestBalancerUDPAllServersFail(t *testing.T) {
	b := newBalancerWith(t, BalancerOptions{QueryTimeout: 200 * time.Millisecond})
	set := []deployer.Server{{Name: "a", Addr: refusingAddr(t)}, {Name: "b", Addr: refusingAddr(t)}}
	if err := b.Accept(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA)
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("got %v, %v; want SERVFAIL", r, err)
	}
	if got := b.Counters(); got.UDPServfail != 1 {
		t.Errorf("counters %+v, want one SERVFAIL", got)
	}
}

// Clients that use the same query ID at once each get their own answer:
// the balancer rewrites IDs towards the server and restores them.
func TestBalancerUDPSameIDFromManyClients(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	s := startServers(t, c, server{"ns1-1", "local/ns-v1", true})
	b := newBalancerWith(t, BalancerOptions{UDPSockets: 2})
	if err := b.Accept(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			name := fmt.Sprintf("host%d.example.test.", i)
			q := newQuery(name, dns.TypeA)
			q.Id = 4242
			cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			r, _, err := cl.Exchange(q, b.Addr())
			switch {
			case err != nil:
				errs <- err
			case r.Id != 4242 || len(r.Question) != 1 || r.Question[0].Name != name:
				errs <- fmt.Errorf("asked %s with ID 4242, got ID %d for %v", name, r.Id, r.Question)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A client that holds a TCP connection open without asking anything is
// closed after the idle timeout, so it does not hold a switch's drain open.
func TestBalancerTCPIdleClientDoesNotHoldDrain(t *testing.T) {
	a, bset := twoSets(t)
	b := newBalancerWith(t, BalancerOptions{IdleTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	if err := b.Accept(ctx, a); err != nil {
		t.Fatal(err)
	}
	co := dialTCP(t, b.Addr())
	if _, err := askOn(co); err != nil {
		t.Fatal(err)
	}
	if err := b.Accept(ctx, bset); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Drain(dctx, a); err != nil {
		t.Fatal(err)
	}
	if dctx.Err() != nil {
		t.Fatal("Drain waited until its deadline for an idle client")
	}
	if got := b.Counters().TCPIdle; got != 1 {
		t.Errorf("idle connections closed = %d, want 1", got)
	}
}

// Past MaxTCPClients a new connection is closed at once; when one closes,
// another is served again.
func TestBalancerTCPClientCap(t *testing.T) {
	a, _ := twoSets(t)
	b := newBalancerWith(t, BalancerOptions{MaxTCPClients: 2})
	if err := b.Accept(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	first, second := dialTCP(t, b.Addr()), dialTCP(t, b.Addr())
	for _, co := range []*dns.Conn{first, second} {
		if _, err := askOn(co); err != nil {
			t.Fatal(err)
		}
	}
	third := dialTCP(t, b.Addr())
	if got, err := askOn(third); err == nil {
		t.Fatalf("a third connection was answered (by %s) with a cap of 2", got)
	}
	if got := b.Counters().TCPRejected; got != 1 {
		t.Errorf("rejected = %d, want 1", got)
	}
	first.Close()
	eventually.True(t, "the closed connection to be forgotten", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.clients) < 2
	})
	if _, err := askOn(dialTCP(t, b.Addr())); err != nil {
		t.Fatalf("after one closed: %v", err)
	}
}

// A pipelining client loses no query when its server closes the
// connection after a fixed number of queries (the local servers close after
// 128): the balancer sends the unanswered ones again on a new connection.
func TestBalancerTCPServerClosesAfterAnswering(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	s := startServers(t, c, server{"ns1-1", "local/ns-v1", true})
	b := newBalancerWith(t, BalancerOptions{})
	if err := b.Accept(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	const n = 400
	co := dialTCP(t, b.Addr())
	co.SetDeadline(time.Now().Add(20 * time.Second))
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			q := newQuery("example.test", dns.TypeSOA)
			q.Id = uint16(i + 1)
			if err := co.WriteMsg(q); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var got []int
	for range n {
		r, err := co.ReadMsg()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("answer %d: %s", r.Id, dns.RcodeToString[r.Rcode])
		}
		got = append(got, int(r.Id))
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	for i, id := range got {
		if id != i+1 {
			t.Fatalf("answers %v…, want each of 1..%d once", got[max(0, i-2):i+1], n)
		}
	}
	eventually.True(t, "every answer counted", func() bool { return b.Counters().TCPAnswered == n })
}

// FuzzReadFrame: whatever a TCP client sends, readFrame does not panic, and
// a frame it returns is its length prefix and exactly that many bytes, at
// least a DNS header.
func FuzzReadFrame(f *testing.F) {
	q, _ := newQuery("example.test", dns.TypeSOA).Pack()
	f.Add(frame(q))
	f.Add([]byte{0, 12, 1, 2})
	f.Add([]byte{0, 3, 1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			msg, err := readFrame(r)
			if err != nil {
				return
			}
			n := int(binary.BigEndian.Uint16(msg))
			if len(msg) != 2+n || n < dnsHeaderLen {
				t.Fatalf("frame of %d bytes with prefix %d", len(msg), n)
			}
		}
	})
}

// A query whose server stays silent is tried on the next server only once
// the query timeout has passed, and soon after.
func TestBalancerUDPRetryWaitsForTheTimeout(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	good := startServers(t, c, server{"ns1-1", "local/ns-v1", true})[0]
	const timeout = 300 * time.Millisecond
	b := newBalancerWith(t, BalancerOptions{QueryTimeout: timeout})
	if err := b.Accept(context.Background(), []deployer.Server{newHeldServer(t).server(), good}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA) // the first query goes to the held server
	took := time.Since(start)
	if err != nil || r.Rcode != dns.RcodeSuccess || nsid(r) != good.Name {
		t.Fatalf("got %v, %v; want NOERROR from %s", r, err, good.Name)
	}
	if took < timeout || took > 5*timeout {
		t.Errorf("answered after %v, want just past the query timeout of %v", took, timeout)
	}
	if got := b.Counters(); got.UDPRetried != 1 || got.UDPAnswered != 1 {
		t.Errorf("counters %+v, want one retry and one answer", got)
	}
}

// A slot's ID changes with each use, so an answer to its previous query,
// come late, is not taken for the answer to the current one.
func TestUDPSockSlotIDs(t *testing.T) {
	s := &udpSock{b: &Balancer{started: time.Now()}}
	first, second := &udpQuery{}, &udpQuery{}
	id1, ok := s.register(first)
	if !ok || s.takeLocked(id1) != first {
		t.Fatalf("register = %d, %v; then take did not return the query", id1, ok)
	}
	s.next = int(id1 % udpSlots) // the same slot again
	id2, ok := s.register(second)
	if !ok || id2 == id1 || id2%udpSlots != id1%udpSlots {
		t.Fatalf("the slot's second use has ID %d (ok %v), the first %d", id2, ok, id1)
	}
	if q := s.takeLocked(id1); q != nil {
		t.Fatal("the first use's ID took the second query")
	}
	if s.take(first, id2) {
		t.Fatal("take of another query under the second ID succeeded")
	}
	if !s.take(second, id2) || s.pending != 0 {
		t.Fatalf("take of the second query failed, or %d still pending", s.pending)
	}
	for i := range udpSlots {
		if _, ok := s.register(&udpQuery{}); !ok {
			t.Fatalf("register %d of %d failed", i+1, udpSlots)
		}
	}
	if _, ok := s.register(&udpQuery{}); ok {
		t.Fatal("register succeeded with every slot in use")
	}
}

// A query whose send to its server fails — the socket closed before the
// query was made pending, or the write itself failing — is sent to the
// next server of the set and answered from there.
func TestBalancerUDPSendFails(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	servers := startServers(t, c, server{"ns1-1", "local/ns-v1", true}, server{"ns1-2", "local/ns-v1", true})
	broken, good := servers[0], servers[1]
	tests := []struct {
		name  string
		spoil func(s *udpSock)
	}{
		{"socket closed", func(s *udpSock) { s.mu.Lock(); s.closed = true; s.mu.Unlock() }},
		{"write fails", func(s *udpSock) { s.conn.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancerWith(t, BalancerOptions{})
			if err := b.Accept(context.Background(), []deployer.Server{broken, good}); err != nil {
				t.Fatal(err)
			}
			b.mu.Lock()
			for _, s := range b.pools[broken.Addr].socks {
				tt.spoil(s)
			}
			b.mu.Unlock()
			for i := range 6 {
				r, err := ask("udp", b.Addr(), "example.test", dns.TypeSOA)
				if err != nil {
					t.Fatalf("query %d: %v", i, err)
				}
				if r.Rcode != dns.RcodeSuccess || nsid(r) != good.Name {
					t.Fatalf("query %d: %s from %q, want NOERROR from %s", i, dns.RcodeToString[r.Rcode], nsid(r), good.Name)
				}
			}
			if got := b.Counters(); got.UDPRetried == 0 || got.UDPServfail != 0 || got.UDPAnswered != 6 {
				t.Errorf("counters %+v: want retries, 6 answers and no SERVFAIL", got)
			}
		})
	}
}

// failingBatch is a batchConn whose WriteBatch refuses the messages whose
// first byte is in refuse, as sendmmsg stops at the first it cannot send.
type failingBatch struct {
	refuse  map[byte]bool
	written []byte
}

func (f *failingBatch) ReadBatch([]ipv4.Message, int) (int, error) { return 0, net.ErrClosed }

func (f *failingBatch) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	for i, m := range ms {
		if f.refuse[m.Buffers[0][0]] {
			return i, syscall.ECONNREFUSED
		}
		f.written = append(f.written, m.Buffers[0][0])
	}
	return len(ms), nil
}

// writeBatch writes every message it can and reports each one it could not,
// by its index, whatever its place in the batch.
func TestWriteBatch(t *testing.T) {
	tests := []struct {
		name   string
		refuse []byte
		failed []int
	}{
		{"all written", nil, nil},
		{"the first refused", []byte{0}, []int{0}},
		{"one in the middle", []byte{2}, []int{2}},
		{"the last", []byte{4}, []int{4}},
		{"several", []byte{0, 1, 3}, []int{0, 1, 3}},
		{"all refused", []byte{0, 1, 2, 3, 4}, []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := make([]ipv4.Message, 5)
			for i := range ms {
				ms[i].Buffers = [][]byte{{byte(i)}}
			}
			c := &failingBatch{refuse: map[byte]bool{}}
			var want []byte
			for i := range byte(len(ms)) {
				if slices.Contains(tt.refuse, i) {
					c.refuse[i] = true
				} else {
					want = append(want, i)
				}
			}
			var failed []int
			writeBatch(c, ms, func(i int, err error) {
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("message %d failed with %v", i, err)
				}
				failed = append(failed, i)
			})
			if !slices.Equal(failed, tt.failed) || !bytes.Equal(c.written, want) {
				t.Errorf("failed %v, written %v; want failed %v, written %v", failed, c.written, tt.failed, want)
			}
		})
	}
}
