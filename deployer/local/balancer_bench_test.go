package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
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

// BenchmarkBalancerUDPRelay sends queries from one client socket to a bare
// echo server, straight and through the balancer, keeping window queries
// outstanding: one op is one answer received and one more query sent. It
// reports the process's CPU per op (client, echo and, through the
// balancer, the balancer), allocations per op (the client and the echo
// allocate nothing) and, through the balancer, the time per op as a
// multiple of the direct run just before.
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
	run := func(b *testing.B, addr string, window int) float64 {
		b.ReportAllocs()
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		co, err := net.DialUDP("udp", nil, ua)
		if err != nil {
			b.Fatal(err)
		}
		defer co.Close()
		q := append([]byte(nil), query...)
		buf := make([]byte, dns.MaxMsgSize)
		var id uint16
		send := func() {
			id++
			binary.BigEndian.PutUint16(q, id)
			if _, err := co.Write(q); err != nil {
				b.Fatal(err)
			}
		}
		receive := func() {
			co.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := co.Read(buf)
			if err != nil || n != len(q) || buf[2]&0x80 == 0 {
				b.Fatalf("answer of %d bytes (%x), %v", n, buf[:min(n, dnsHeaderLen)], err)
			}
		}
		for range window {
			send()
		}
		ops := 0
		cpu := cpuNow(b)
		for b.Loop() {
			receive()
			send()
			ops++
		}
		cpu = cpuNow(b) - cpu
		for range window {
			receive()
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(ops), "cpu-ns/op")
		return float64(b.Elapsed().Nanoseconds()) / float64(ops)
	}
	for _, window := range []int{1, 32} {
		var direct float64
		b.Run(fmt.Sprintf("window=%d/direct", window), func(b *testing.B) { direct = run(b, echo, window) })
		b.Run(fmt.Sprintf("window=%d/balancer", window), func(b *testing.B) {
			via := run(b, lb.Addr(), window)
			if direct > 0 {
				b.ReportMetric(via/direct, "x-direct")
			}
		})
	}
}
