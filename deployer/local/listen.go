package local

import (
	"fmt"
	"net"
	"strconv"
)

// pairAttempts bounds how often listenPair tries a fresh port when UDP finds
// the port TCP was given already taken.
const pairAttempts = 16

// boundAddr is the address listen bound: UDP's, or TCP's when there is no
// UDP.
func boundAddr(u *net.UDPConn, l net.Listener) string {
	if u == nil {
		return l.Addr().String()
	}
	return u.LocalAddr().String()
}

// listenPair binds TCP on addr and then UDP on the same port, as a DNS server
// must. TCP goes first because the kernel gives a listener a port that no
// TCP socket uses, while the far more numerous outgoing TCP connections can
// hold the port a UDP bind was given. When addr asks for any port
// ("127.0.0.1:0") and UDP finds the port taken, it tries again with a new one.
func listenPair(addr string) (*net.UDPConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" || port == "" {
		attempts = pairAttempts
	}
	var lastErr error
	for range attempts {
		u, l, err := listenPairOnce(host, port)
		if err == nil {
			return u, l, nil
		}
		if l == nil { // TCP itself failed: another try will not help
			return nil, nil, err
		}
		lastErr = err
	}
	return nil, nil, fmt.Errorf("listen on %s: no port free for both UDP and TCP after %d tries: %w", addr, attempts, lastErr)
}

// listenPairOnce returns a nil listener when TCP could not bind, and a
// closed (non-nil) one when only UDP failed.
func listenPairOnce(host, port string) (*net.UDPConn, net.Listener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, nil, fmt.Errorf("listen TCP: %w", err)
	}
	bound := l.Addr().(*net.TCPAddr).Port
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(bound)))
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("listen UDP on %s: %w", net.JoinHostPort(host, port), err)
	}
	u, err := net.ListenUDP("udp", ua)
	if err != nil {
		l.Close()
		return nil, l, fmt.Errorf("listen UDP on TCP's port %d: %w", bound, err)
	}
	return u, l, nil
}
