package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/miekg/dns"
)

// startEcho runs a bare UDP "server" that answers each packet with itself,
// the QR bit set, allocating nothing, so that what a benchmark through the
// balancer measures beyond the direct run is the balancer's own cost.
func startEcho(tb testing.TB) string {
	tb.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if n < dnsHeaderLen {
				continue
			}
			buf[2] |= 0x80
			conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn.LocalAddr().String()
}

// cpuNow is the CPU time, user and system, this process has used.
func cpuNow(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBalancerUDPRelay sends queries from client sockets to a bare
// echo server, straight and through the balancer, each socket keeping
// window queries outstanding: one op is one answer received and one more
// query sent. With 4 clients of 25 it is dnsperf's default of 100 queries
// outstanding. It reports the process's CPU per op (clients, echo and,
// through the balancer, the balancer), allocations per op (the clients and
// the echo allocate nothing) and, through the balancer, the time per op as
// a multiple of the direct run just before.
func BenchmarkBalancerUDPRelay(b *testing.B) {
	echo := startEcho(b)
	lb := newBalancerWith(b, BalancerOptions{})
	if err := lb.Accept(context.Background(), []deployer.Server{{Name: "echo", Addr: echo}}); err != nil {
		b.Fatal(err)
	}
	query, err := newQuery("example.test", dns.TypeSOA).Pack()
	if err != nil {
		b.Fatal(err)
	}
	// client sends queries on one socket and reads their answers.
	type client struct {
		co  *net.UDPConn
		q   []byte
		buf []byte
		id  uint16
	}
	send := func(c *client) error {
		c.id++
		binary.BigEndian.PutUint16(c.q, c.id)
		_, err := c.co.Write(c.q)
		return err
	}
	receive := func(c *client) error {
		c.co.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.co.Read(c.buf)
		if err == nil && (n != len(c.q) || c.buf[2]&0x80 == 0) {
			err = fmt.Errorf("answer of %d bytes (%x)", n, c.buf[:min(n, dnsHeaderLen)])
		}
		return err
	}
	run := func(b *testing.B, addr string, clients, window int) float64 {
		b.ReportAllocs()
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		cs := make([]*client, clients)
		for i := range cs {
			co, err := net.DialUDP("udp", nil, ua)
			if err != nil {
				b.Fatal(err)
			}
			defer co.Close()
			cs[i] = &client{co: co, q: slices.Clone(query), buf: make([]byte, dns.MaxMsgSize)}
			for range window {
				if err := send(cs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		var left atomic.Int64
		left.Store(int64(b.N))
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		cpu := cpuNow(b)
		b.ResetTimer()
		for _, c := range cs {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					err := receive(c)
					if err == nil {
						err = send(c)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu = cpuNow(b) - cpu
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		for _, c := range cs {
			for range window {
				if err := receive(c); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	for _, load := range []struct{ clients, window int }{{1, 1}, {1, 32}, {4, 25}} {
		name := fmt.Sprintf("clients=%d/window=%d/", load.clients, load.window)
		var direct float64
		b.Run(name+"direct", func(b *testing.B) { direct = run(b, echo, load.clients, load.window) })
		b.Run(name+"balancer", func(b *testing.B) {
			via := run(b, lb.Addr(), load.clients, load.window)
			if direct > 0 {
				b.ReportMetric(via/direct, "x-direct")
			}
		})
	}
}
