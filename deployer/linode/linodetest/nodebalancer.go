package linodetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// FrontendPort is the NodeBalancer port a frontend stands in for: the
// frontend forwards UDP to the NodeBalancer's "udp" config on this port and
// TCP to its "tcp" config on this port.
const FrontendPort = 53

// frontendTimeout bounds a UDP query relayed to a node, and dialling a node
// over TCP.
const frontendTimeout = 2 * time.Second

// maxFrontendUDP bounds the UDP queries one frontend relays at once.
const maxFrontendUDP = 512

// NodeBalancer is the fake's record of one NodeBalancer.
type NodeBalancer struct {
	ID                 int
	Label              string
	Region             string
	Hostname           string
	IPv4               string // its public address; default 192.0.2.<n>
	IPv6               string
	ClientConnThrottle int
	Tags               []string
	Created            time.Time
}

// NodeBalancerConfig is one port and protocol of a NodeBalancer.
type NodeBalancerConfig struct {
	ID                int
	NodeBalancerID    int
	Port              int
	Protocol          string // http, https, tcp, udp
	Algorithm         string
	Stickiness        string
	Check             string
	CheckInterval     int
	CheckTimeout      int
	CheckAttempts     int
	CheckPath         string
	CheckBody         string
	CheckPassive      bool
	ProxyProtocol     string
	CipherSuite       string
	UDPCheckPort      int
	UDPSessionTimeout int
}

// NodeBalancerNode is one backend of a config.
type NodeBalancerNode struct {
	ID             int
	NodeBalancerID int
	ConfigID       int
	Protocol       string // its config's, for tests' convenience; not in the API's JSON
	Address        string // ip:port
	Label          string
	Weight         int
	Mode           string // accept, reject, drain, backup
	Status         string // what the API says: "Unknown" until health checks run
}

// Forwarded counts what a frontend sent to one node address: UDP queries and
// TCP connections.
type Forwarded struct {
	UDP uint64
	TCP uint64
}

// nodeBalancers is the fake's NodeBalancer state. It has its own lock, never
// held together with Server.mu.
type nodeBalancers struct {
	routes    sync.Once
	mu        sync.Mutex
	byID      map[int]*nodeBalancer
	order     []int
	nextID    int
	nextCfg   int
	nextNode  int
	frontends map[int]*frontend
	closed    bool
}

type nodeBalancer struct {
	NodeBalancer
	configs   []*nbConfig // oldest first
	forwarded map[string]*Forwarded
}

type nbConfig struct {
	NodeBalancerConfig
	nodes []*NodeBalancerNode // oldest first
	next  uint64              // round-robin position
}

// AddNodeBalancer adds a NodeBalancer as if it had been created in the
// account, and makes the fake answer the NodeBalancer API (configs and
// nodes). A zero ID is allocated; the label, region and addresses get
// defaults. Tests that fake the NodeBalancer API themselves with HandleFunc
// must not call it.
func (s *Server) AddNodeBalancer(nb NodeBalancer) NodeBalancer {
	s.nbs.routes.Do(s.routeNodeBalancers)
	now := s.clock.Now()
	n := &s.nbs
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byID == nil {
		n.byID = map[int]*nodeBalancer{}
		n.frontends = map[int]*frontend{}
		n.nextID, n.nextCfg, n.nextNode = 1774400, 2706100, 2114163500
	}
	if nb.ID == 0 {
		n.nextID++
		nb.ID = n.nextID
	}
	if nb.Label == "" {
		nb.Label = fmt.Sprintf("nodebalancer%d", nb.ID)
	}
	if nb.Region == "" {
		nb.Region = "us-east"
	}
	if nb.IPv4 == "" {
		nb.IPv4 = fmt.Sprintf("192.0.2.%d", 100+len(n.order)%150)
	}
	if nb.IPv6 == "" {
		nb.IPv6 = fmt.Sprintf("2001:db8:1::%x", nb.ID&0xffff)
	}
	if nb.Hostname == "" {
		nb.Hostname = fmt.Sprintf("nb-%s.%s.nodebalancer.linode.com", dashed(nb.IPv4), nb.Region)
	}
	if nb.ClientConnThrottle == 0 {
		nb.ClientConnThrottle = 20
	}
	if nb.Created.IsZero() {
		nb.Created = now
	}
	nb.Tags = slices.Clone(nb.Tags)
	if nb.Tags == nil {
		nb.Tags = []string{}
	}
	if _, dup := n.byID[nb.ID]; !dup {
		n.order = append(n.order, nb.ID)
	}
	n.byID[nb.ID] = &nodeBalancer{NodeBalancer: nb, forwarded: map[string]*Forwarded{}}
	return nb
}

func dashed(ip string) string {
	out := []byte(ip)
	for i, c := range out {
		if c == '.' || c == ':' {
			out[i] = '-'
		}
	}
	return string(out)
}

// NodeBalancerConfigs returns the NodeBalancer's configs, oldest first.
func (s *Server) NodeBalancerConfigs(id int) []NodeBalancerConfig {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb := s.nbs.byID[id]
	if nb == nil {
		return nil
	}
	out := make([]NodeBalancerConfig, 0, len(nb.configs))
	for _, c := range nb.configs {
		out = append(out, c.NodeBalancerConfig)
	}
	return out
}

// NodeBalancerNodes returns the nodes of every config of the NodeBalancer,
// config by config, oldest first.
func (s *Server) NodeBalancerNodes(id int) []NodeBalancerNode {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb := s.nbs.byID[id]
	if nb == nil {
		return nil
	}
	var out []NodeBalancerNode
	for _, c := range nb.configs {
		for _, node := range c.nodes {
			out = append(out, *node)
		}
	}
	return out
}

// NodeBalancerForwarded returns, per node address, what the NodeBalancer's
// frontend has sent there so far.
func (s *Server) NodeBalancerForwarded(id int) map[string]Forwarded {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	out := map[string]Forwarded{}
	if nb := s.nbs.byID[id]; nb != nil {
		for addr, f := range nb.forwarded {
			out[addr] = *f
		}
	}
	return out
}

// NodeBalancerFrontend makes the NodeBalancer really forward DNS: it starts
// a UDP and TCP proxy on 127.0.0.1 (a free port, the same for both) that
// stands in for the NodeBalancer's port FrontendPort and returns its
// address. Each UDP query and each TCP connection goes to the next node in
// "accept" mode of the matching config, round robin, picked when it
// arrives, so a node set to "drain" (or "reject", or "backup") gets no new
// queries while TCP connections already on it carry on. Like a load
// balancer's soft reload, a connection also carries on when its node is
// deleted. With no node to send to, a query is answered SERVFAIL, so a test
// counts it as failed at once instead of waiting for a timeout.
//
// A second call returns the same address. The frontend stops when the
// Server is closed. It panics when the NodeBalancer does not exist or no
// port is free: both are mistakes in the test.
func (s *Server) NodeBalancerFrontend(id int) string {
	n := &s.nbs
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byID[id] == nil {
		panic(fmt.Sprintf("linodetest: no NodeBalancer %d; add it with AddNodeBalancer first", id))
	}
	if n.closed {
		panic("linodetest: NodeBalancerFrontend on a closed Server")
	}
	if f := n.frontends[id]; f != nil {
		return f.addr
	}
	f, err := startFrontend(s, id)
	if err != nil {
		panic("linodetest: start the NodeBalancer frontend: " + err.Error())
	}
	n.frontends[id] = f
	return f.addr
}

// closeFrontends stops every frontend. Server.Close calls it.
func (s *Server) closeFrontends() {
	n := &s.nbs
	n.mu.Lock()
	n.closed = true
	fs := make([]*frontend, 0, len(n.frontends))
	for _, f := range n.frontends {
		fs = append(fs, f)
	}
	n.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

// pick chooses the node address for one UDP query or TCP connection and
// counts it; ok is false when the config has no node in accept mode.
func (s *Server) pick(id int, protocol string) (addr string, ok bool) {
	n := &s.nbs
	n.mu.Lock()
	defer n.mu.Unlock()
	nb := n.byID[id]
	if nb == nil {
		return "", false
	}
	for _, c := range nb.configs {
		if c.Port != FrontendPort || c.Protocol != protocol {
			continue
		}
		var accept []*NodeBalancerNode
		for _, node := range c.nodes {
			if node.Mode == "accept" {
				accept = append(accept, node)
			}
		}
		if len(accept) == 0 {
			return "", false
		}
		node := accept[c.next%uint64(len(accept))]
		c.next++
		f := nb.forwarded[node.Address]
		if f == nil {
			f = &Forwarded{}
			nb.forwarded[node.Address] = f
		}
		if protocol == "udp" {
			f.UDP++
		} else {
			f.TCP++
		}
		return node.Address, true
	}
	return "", false
}

// reach is where the frontend sends traffic for a node address: the
// private network is the instance's own (loopback) address in the fake.
func (s *Server) reach(node string) string {
	host, port, err := net.SplitHostPort(node)
	if err != nil {
		return node
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.privateOwner(host); in != nil {
		return net.JoinHostPort(in.IPv4, port)
	}
	return node
}

// frontend is a NodeBalancer's forwarding data plane.
type frontend struct {
	s    *Server
	id   int
	addr string
	udp  *net.UDPConn
	tcp  net.Listener
	sem  chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[io.Closer]struct{} // closed by close: client and node connections, relay sockets
	closed bool
}

func startFrontend(s *Server, id int) (*frontend, error) {
	var lastErr error
	for range 8 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			u.Close()
			lastErr = err
			continue
		}
		f := &frontend{s: s, id: id, addr: u.LocalAddr().String(), udp: u, tcp: l,
			sem: make(chan struct{}, maxFrontendUDP), conns: map[io.Closer]struct{}{}}
		f.wg.Add(2)
		go f.serveUDP()
		go f.serveTCP()
		return f, nil
	}
	return nil, fmt.Errorf("no port free for both UDP and TCP: %w", lastErr)
}

func (f *frontend) close() {
	f.mu.Lock()
	f.closed = true
	conns := make([]io.Closer, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	f.udp.Close()
	f.tcp.Close()
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
}

// track makes close close c; it closes c at once and returns false when the
// frontend is closed already.
func (f *frontend) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *frontend) untrack(c io.Closer) {
	c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *frontend) serveUDP() {
	defer f.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, client, err := f.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		query := slices.Clone(buf[:n])
		f.sem <- struct{}{}
		f.wg.Go(func() {
			defer func() { <-f.sem }()
			if reply := f.exchangeUDP(query); reply != nil {
				f.udp.WriteToUDPAddrPort(reply, client)
			}
		})
	}
}

// exchangeUDP relays query to the next accepting node and returns its
// reply, or SERVFAIL; nil for a packet that is not a DNS query.
func (f *frontend) exchangeUDP(query []byte) []byte {
	addr, ok := f.s.pick(f.id, "udp")
	if !ok {
		return servfail(query)
	}
	reply, err := f.relayUDP(f.s.reach(addr), query)
	if err != nil {
		return servfail(query)
	}
	return reply
}

func (f *frontend) relayUDP(addr string, query []byte) ([]byte, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	if !f.track(conn) {
		return nil, net.ErrClosed
	}
	defer f.untrack(conn)
	if err := conn.SetDeadline(time.Now().Add(frontendTimeout)); err != nil {
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
		if n >= 2 && len(query) >= 2 && buf[0] == query[0] && buf[1] == query[1] {
			return slices.Clone(buf[:n]), nil
		}
	}
}

func (f *frontend) serveTCP() {
	defer f.wg.Done()
	for {
		c, err := f.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !f.track(c) {
			continue
		}
		f.wg.Go(func() {
			defer f.untrack(c)
			f.proxyTCP(c)
		})
	}
}

// proxyTCP joins client to the next accepting node until either side closes.
func (f *frontend) proxyTCP(client net.Conn) {
	addr, ok := f.s.pick(f.id, "tcp")
	if !ok {
		servfailTCP(client)
		return
	}
	node, err := net.DialTimeout("tcp", f.s.reach(addr), frontendTimeout)
	if err != nil {
		servfailTCP(client)
		return
	}
	if !f.track(node) {
		return
	}
	defer f.untrack(node)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(node, client)
		node.Close()
		client.Close()
	}()
	io.Copy(client, node)
	node.Close()
	client.Close()
	<-done
}

// servfail is a SERVFAIL reply to query, or nil when query is not a query.
func servfail(query []byte) []byte {
	q := new(dns.Msg)
	if err := q.Unpack(query); err != nil || q.Response || len(q.Question) == 0 {
		return nil
	}
	out, err := new(dns.Msg).SetRcode(q, dns.RcodeServerFailure).Pack()
	if err != nil {
		return nil
	}
	return out
}

// servfailTCP answers SERVFAIL to the queries on c until the client closes
// it or stays quiet for frontendTimeout.
func servfailTCP(c net.Conn) {
	dc := &dns.Conn{Conn: c}
	for {
		if err := c.SetReadDeadline(time.Now().Add(frontendTimeout)); err != nil {
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

// The API.

func (s *Server) routeNodeBalancers() {
	s.mux.HandleFunc("GET /{version}/nodebalancers", s.listNodeBalancers)
	s.mux.HandleFunc("GET /{version}/nodebalancers/{id}", s.getNodeBalancer)
	s.mux.HandleFunc("GET /{version}/nodebalancers/{id}/configs", s.listNBConfigs)
	s.mux.HandleFunc("POST /{version}/nodebalancers/{id}/configs", s.createNBConfig)
	s.mux.HandleFunc("GET /{version}/nodebalancers/{id}/configs/{cid}", s.getNBConfig)
	s.mux.HandleFunc("PUT /{version}/nodebalancers/{id}/configs/{cid}", s.updateNBConfig)
	s.mux.HandleFunc("DELETE /{version}/nodebalancers/{id}/configs/{cid}", s.deleteNBConfig)
	s.mux.HandleFunc("GET /{version}/nodebalancers/{id}/configs/{cid}/nodes", s.listNBNodes)
	s.mux.HandleFunc("POST /{version}/nodebalancers/{id}/configs/{cid}/nodes", s.createNBNode)
	s.mux.HandleFunc("GET /{version}/nodebalancers/{id}/configs/{cid}/nodes/{nid}", s.getNBNode)
	s.mux.HandleFunc("PUT /{version}/nodebalancers/{id}/configs/{cid}/nodes/{nid}", s.updateNBNode)
	s.mux.HandleFunc("DELETE /{version}/nodebalancers/{id}/configs/{cid}/nodes/{nid}", s.deleteNBNode)
}

type nullTransfer struct {
	In    *float64 `json:"in"`
	Out   *float64 `json:"out"`
	Total *float64 `json:"total"`
}

type nodeBalancerJSON struct {
	ID                    int          `json:"id"`
	Label                 string       `json:"label"`
	Region                string       `json:"region"`
	Type                  string       `json:"type"`
	Hostname              string       `json:"hostname"`
	IPv4                  string       `json:"ipv4"`
	IPv6                  string       `json:"ipv6"`
	Created               string       `json:"created"`
	Updated               string       `json:"updated"`
	ClientConnThrottle    int          `json:"client_conn_throttle"`
	ClientUDPSessThrottle int          `json:"client_udp_sess_throttle"`
	LKECluster            *struct{}    `json:"lke_cluster"`
	Tags                  []string     `json:"tags"`
	Transfer              nullTransfer `json:"transfer"`
}

func (nb *nodeBalancer) json() nodeBalancerJSON {
	created := apiTime(nb.Created)
	return nodeBalancerJSON{ID: nb.ID, Label: nb.Label, Region: nb.Region, Type: "common", Hostname: nb.Hostname,
		IPv4: nb.IPv4, IPv6: nb.IPv6, Created: created, Updated: created, ClientConnThrottle: nb.ClientConnThrottle,
		Tags: slices.Clone(nb.Tags)}
}

type nodesStatusJSON struct {
	Up   int `json:"up"`
	Down int `json:"down"`
}

type nbConfigJSON struct {
	ID                int             `json:"id"`
	Port              int             `json:"port"`
	Protocol          string          `json:"protocol"`
	Algorithm         string          `json:"algorithm"`
	Stickiness        string          `json:"stickiness"`
	Check             string          `json:"check"`
	CheckInterval     int             `json:"check_interval"`
	CheckTimeout      int             `json:"check_timeout"`
	CheckAttempts     int             `json:"check_attempts"`
	CheckPath         string          `json:"check_path"`
	CheckBody         string          `json:"check_body"`
	CheckPassive      bool            `json:"check_passive"`
	ProxyProtocol     string          `json:"proxy_protocol"`
	CipherSuite       string          `json:"cipher_suite"`
	NodeBalancerID    int             `json:"nodebalancer_id"`
	SSLCommonName     string          `json:"ssl_commonname"`
	SSLFingerprint    string          `json:"ssl_fingerprint"`
	SSLCert           *string         `json:"ssl_cert"`
	SSLKey            *string         `json:"ssl_key"`
	NodesStatus       nodesStatusJSON `json:"nodes_status"`
	UDPCheckPort      int             `json:"udp_check_port"`
	UDPSessionTimeout int             `json:"udp_session_timeout"`
}

func (c *nbConfig) json() nbConfigJSON {
	return nbConfigJSON{ID: c.ID, Port: c.Port, Protocol: c.Protocol, Algorithm: c.Algorithm,
		Stickiness: c.Stickiness, Check: c.Check, CheckInterval: c.CheckInterval, CheckTimeout: c.CheckTimeout,
		CheckAttempts: c.CheckAttempts, CheckPath: c.CheckPath, CheckBody: c.CheckBody, CheckPassive: c.CheckPassive,
		ProxyProtocol: c.ProxyProtocol, CipherSuite: c.CipherSuite, NodeBalancerID: c.NodeBalancerID,
		NodesStatus: nodesStatusJSON{Down: len(c.nodes)}, UDPCheckPort: c.UDPCheckPort,
		UDPSessionTimeout: c.UDPSessionTimeout}
}

type nbNodeJSON struct {
	ID             int    `json:"id"`
	Address        string `json:"address"`
	Label          string `json:"label"`
	Status         string `json:"status"`
	Weight         int    `json:"weight"`
	Mode           string `json:"mode"`
	ConfigID       int    `json:"config_id"`
	NodeBalancerID int    `json:"nodebalancer_id"`
	VPCConfigID    *int   `json:"vpc_config_id"`
}

func nodeJSON(n *NodeBalancerNode) nbNodeJSON {
	return nbNodeJSON{ID: n.ID, Address: n.Address, Label: n.Label, Status: n.Status, Weight: n.Weight,
		Mode: n.Mode, ConfigID: n.ConfigID, NodeBalancerID: n.NodeBalancerID}
}

func notFound(w http.ResponseWriter) {
	WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
}

// nbFor finds the NodeBalancer named by the path, or answers 404. nbs.mu is held.
func (s *Server) nbFor(w http.ResponseWriter, r *http.Request) *nodeBalancer {
	id, err := strconv.Atoi(r.PathValue("id"))
	if nb := s.nbs.byID[id]; err == nil && nb != nil {
		return nb
	}
	notFound(w)
	return nil
}

// byPathID finds the item whose ID the path parameter key names, or
// answers 404.
func byPathID[T any](w http.ResponseWriter, r *http.Request, key string, items []*T, id func(*T) int) *T {
	if want, err := strconv.Atoi(r.PathValue(key)); err == nil {
		for _, it := range items {
			if id(it) == want {
				return it
			}
		}
	}
	notFound(w)
	return nil
}

// configFor finds the config named by the path, or answers 404. nbs.mu is held.
func (s *Server) configFor(w http.ResponseWriter, r *http.Request) (*nodeBalancer, *nbConfig) {
	nb := s.nbFor(w, r)
	if nb == nil {
		return nil, nil
	}
	c := byPathID(w, r, "cid", nb.configs, func(c *nbConfig) int { return c.ID })
	if c == nil {
		return nil, nil
	}
	return nb, c
}

// nodeFor finds the node named by the path, or answers 404. nbs.mu is held.
func (s *Server) nodeFor(w http.ResponseWriter, r *http.Request) (*nbConfig, *NodeBalancerNode) {
	_, c := s.configFor(w, r)
	if c == nil {
		return nil, nil
	}
	n := byPathID(w, r, "nid", c.nodes, func(n *NodeBalancerNode) int { return n.ID })
	if n == nil {
		return nil, nil
	}
	return c, n
}

func (s *Server) listNodeBalancers(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	items := make([]nodeBalancerJSON, 0, len(s.nbs.order))
	for _, id := range s.nbs.order {
		items = append(items, s.nbs.byID[id].json())
	}
	s.nbs.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getNodeBalancer(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	if nb := s.nbFor(w, r); nb != nil {
		WriteJSON(w, http.StatusOK, nb.json())
	}
}

func (s *Server) listNBConfigs(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	nb := s.nbFor(w, r)
	if nb == nil {
		s.nbs.mu.Unlock()
		return
	}
	items := make([]nbConfigJSON, 0, len(nb.configs))
	for _, c := range nb.configs {
		items = append(items, c.json())
	}
	s.nbs.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getNBConfig(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	if _, c := s.configFor(w, r); c != nil {
		WriteJSON(w, http.StatusOK, c.json())
	}
}

// configRequest is a config create or update body; nil fields were not sent.
type configRequest struct {
	Port          *int    `json:"port"`
	Protocol      *string `json:"protocol"`
	ProxyProtocol *string `json:"proxy_protocol"`
	Algorithm     *string `json:"algorithm"`
	Stickiness    *string `json:"stickiness"`
	Check         *string `json:"check"`
	CheckInterval *int    `json:"check_interval"`
	CheckTimeout  *int    `json:"check_timeout"`
	CheckAttempts *int    `json:"check_attempts"`
	CheckPath     *string `json:"check_path"`
	CheckBody     *string `json:"check_body"`
	CheckPassive  *bool   `json:"check_passive"`
	UDPCheckPort  *int    `json:"udp_check_port"`
	CipherSuite   *string `json:"cipher_suite"`
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// apply merges req into c and checks the result against the API's rules.
// nbs.mu is held.
func (nb *nodeBalancer) apply(c *nbConfig, req configRequest, creating bool) []Reason {
	if creating {
		proto := "http"
		set(&proto, req.Protocol)
		c.Protocol = proto
		c.Algorithm, c.Stickiness, c.Check = "roundrobin", "none", "none"
		c.CheckInterval, c.CheckTimeout, c.CheckAttempts = 60, 30, 3
		c.CheckPassive, c.ProxyProtocol, c.CipherSuite = true, "none", "recommended"
		c.UDPCheckPort, c.UDPSessionTimeout = 80, 16
		if proto == "udp" {
			c.Stickiness, c.CheckPassive, c.CipherSuite = "session", false, "none"
		}
	}
	set(&c.Port, req.Port)
	set(&c.Protocol, req.Protocol)
	set(&c.ProxyProtocol, req.ProxyProtocol)
	set(&c.Algorithm, req.Algorithm)
	set(&c.Stickiness, req.Stickiness)
	set(&c.Check, req.Check)
	set(&c.CheckInterval, req.CheckInterval)
	set(&c.CheckTimeout, req.CheckTimeout)
	set(&c.CheckAttempts, req.CheckAttempts)
	set(&c.CheckPath, req.CheckPath)
	set(&c.CheckBody, req.CheckBody)
	set(&c.CheckPassive, req.CheckPassive)
	set(&c.UDPCheckPort, req.UDPCheckPort)
	set(&c.CipherSuite, req.CipherSuite)

	var errs []Reason
	if req.Port == nil && creating {
		errs = append(errs, Reason{Field: "port", Reason: "port is required"})
	} else if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, Reason{Field: "port", Reason: "Must be between 1 and 65535"})
	}
	if !slices.Contains([]string{"http", "https", "tcp", "udp"}, c.Protocol) {
		errs = append(errs, Reason{Field: "protocol", Reason: "Must be one of http, https, tcp, udp"})
	}
	algorithms := []string{"roundrobin", "leastconn", "source"}
	if c.Protocol == "udp" {
		algorithms = []string{"roundrobin", "source", "ring_hash"}
	}
	if !slices.Contains(algorithms, c.Algorithm) {
		errs = append(errs, Reason{Field: "algorithm", Reason: fmt.Sprintf("Algorithm %s is not supported for protocol %s", c.Algorithm, c.Protocol)})
	}
	if !slices.Contains([]string{"none", "connection", "http", "http_body"}, c.Check) {
		errs = append(errs, Reason{Field: "check", Reason: "Must be one of none, connection, http, http_body"})
	}
	if c.CheckInterval < 2 || c.CheckInterval > 3600 {
		errs = append(errs, Reason{Field: "check_interval", Reason: "Must be between 2 and 3600"})
	}
	if c.CheckTimeout < 1 || c.CheckTimeout > 30 {
		errs = append(errs, Reason{Field: "check_timeout", Reason: "Must be between 1 and 30"})
	}
	if c.CheckAttempts < 1 || c.CheckAttempts > 30 {
		errs = append(errs, Reason{Field: "check_attempts", Reason: "Must be between 1 and 30"})
	}
	if c.Protocol == "udp" && c.CheckPassive {
		errs = append(errs, Reason{Field: "check_passive", Reason: "Passive checks are not supported for UDP"})
	}
	if c.UDPCheckPort < 1 || c.UDPCheckPort > 65535 {
		errs = append(errs, Reason{Field: "udp_check_port", Reason: "Must be between 1 and 65535"})
	}
	for _, o := range nb.configs {
		if o.ID != c.ID && o.Port == c.Port && (o.Protocol == "udp") == (c.Protocol == "udp") {
			errs = append(errs, Reason{Field: "port", Reason: fmt.Sprintf("Port %d is already in use by another config", c.Port)})
			break
		}
	}
	return errs
}

func (s *Server) createNBConfig(w http.ResponseWriter, r *http.Request) {
	var req configRequest
	if !decode(w, r, &req) {
		return
	}
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb := s.nbFor(w, r)
	if nb == nil {
		return
	}
	c := &nbConfig{NodeBalancerConfig: NodeBalancerConfig{NodeBalancerID: nb.ID}}
	if errs := nb.apply(c, req, true); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	s.nbs.nextCfg++
	c.ID = s.nbs.nextCfg
	nb.configs = append(nb.configs, c)
	WriteJSON(w, http.StatusOK, c.json())
}

func (s *Server) updateNBConfig(w http.ResponseWriter, r *http.Request) {
	var req configRequest
	if !decode(w, r, &req) {
		return
	}
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb, c := s.configFor(w, r)
	if c == nil {
		return
	}
	next := &nbConfig{NodeBalancerConfig: c.NodeBalancerConfig, nodes: c.nodes}
	if errs := nb.apply(next, req, false); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	c.NodeBalancerConfig = next.NodeBalancerConfig
	for _, n := range c.nodes {
		n.Protocol = c.Protocol
	}
	WriteJSON(w, http.StatusOK, c.json())
}

func (s *Server) deleteNBConfig(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb, c := s.configFor(w, r)
	if c == nil {
		return
	}
	nb.configs = slices.DeleteFunc(nb.configs, func(x *nbConfig) bool { return x == c })
	WriteJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) listNBNodes(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	_, c := s.configFor(w, r)
	if c == nil {
		s.nbs.mu.Unlock()
		return
	}
	items := make([]nbNodeJSON, 0, len(c.nodes))
	for _, n := range c.nodes {
		items = append(items, nodeJSON(n))
	}
	s.nbs.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getNBNode(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	if _, n := s.nodeFor(w, r); n != nil {
		WriteJSON(w, http.StatusOK, nodeJSON(n))
	}
}

// nodeRequest is a node create or update body; nil fields were not sent.
type nodeRequest struct {
	Address *string `json:"address"`
	Label   *string `json:"label"`
	Weight  *int    `json:"weight"`
	Mode    *string `json:"mode"`
}

var nodeLabelPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{3,32}$`)

// NodeAddressReason is the API's refusal of a node address that is not a
// private IPv4 address of a Linode in the NodeBalancer's region.
const NodeAddressReason = "Must be a private IPv4 address (192.168.128.0/17) of a Linode in the NodeBalancer's region"

// nodeOwner is what the fake knows of the instance a node address names.
type nodeOwner struct {
	private bool   // the host is in PrivateNetwork and an instance has it
	region  string // that instance's region
}

// ownerOf looks up the instance whose private address addr's host is. It
// takes s.mu: callers must not hold nbs.mu.
func (s *Server) ownerOf(addr *string) nodeOwner {
	if addr == nil {
		return nodeOwner{}
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil || !PrivateNetwork.Contains(ap.Addr()) {
		return nodeOwner{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.privateOwner(ap.Addr().String()); in != nil {
		return nodeOwner{private: true, region: in.Region}
	}
	return nodeOwner{}
}

// applyNode merges req into n and checks it; owner is what ownerOf found
// for req.Address. nbs.mu is held.
func applyNode(nb *nodeBalancer, c *nbConfig, n *NodeBalancerNode, req nodeRequest, owner nodeOwner, creating bool) []Reason {
	set(&n.Address, req.Address)
	set(&n.Label, req.Label)
	set(&n.Weight, req.Weight)
	set(&n.Mode, req.Mode)
	var errs []Reason
	if ap, err := netip.ParseAddrPort(n.Address); err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
		errs = append(errs, Reason{Field: "address", Reason: "Must be a valid IPv4 address and port, like 192.168.1.1:80"})
	} else if req.Address != nil && (!owner.private || owner.region != nb.Region) {
		errs = append(errs, Reason{Field: "address", Reason: NodeAddressReason})
	}
	if creating && req.Label == nil {
		errs = append(errs, Reason{Field: "label", Reason: "label is required"})
	} else if !nodeLabelPattern.MatchString(n.Label) {
		errs = append(errs, Reason{Field: "label", Reason: "Length must be 3-32 characters of letters, numbers, dashes, underscores and periods"})
	}
	if n.Weight < 1 || n.Weight > 255 {
		errs = append(errs, Reason{Field: "weight", Reason: "Must be between 1 and 255"})
	}
	if !slices.Contains([]string{"accept", "reject", "drain", "backup"}, n.Mode) {
		errs = append(errs, Reason{Field: "mode", Reason: "Must be one of accept, reject, drain, backup"})
	}
	for _, o := range c.nodes {
		if o.ID != n.ID && o.Address == n.Address {
			errs = append(errs, Reason{Field: "address", Reason: "This address is already in use by another node of this config"})
			break
		}
	}
	return errs
}

func (s *Server) createNBNode(w http.ResponseWriter, r *http.Request) {
	var req nodeRequest
	if !decode(w, r, &req) {
		return
	}
	owner := s.ownerOf(req.Address)
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb, c := s.configFor(w, r)
	if c == nil {
		return
	}
	n := &NodeBalancerNode{NodeBalancerID: nb.ID, ConfigID: c.ID, Protocol: c.Protocol,
		Weight: 100, Mode: "accept", Status: "Unknown"}
	if errs := applyNode(nb, c, n, req, owner, true); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	s.nbs.nextNode++
	n.ID = s.nbs.nextNode
	c.nodes = append(c.nodes, n)
	WriteJSON(w, http.StatusOK, nodeJSON(n))
}

func (s *Server) updateNBNode(w http.ResponseWriter, r *http.Request) {
	var req nodeRequest
	if !decode(w, r, &req) {
		return
	}
	owner := s.ownerOf(req.Address)
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	nb, _ := s.configFor(w, r)
	if nb == nil {
		return
	}
	c, n := s.nodeFor(w, r)
	if n == nil {
		return
	}
	next := *n
	if errs := applyNode(nb, c, &next, req, owner, false); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	*n = next
	WriteJSON(w, http.StatusOK, nodeJSON(n))
}

func (s *Server) deleteNBNode(w http.ResponseWriter, r *http.Request) {
	s.nbs.mu.Lock()
	defer s.nbs.mu.Unlock()
	c, n := s.nodeFor(w, r)
	if n == nil {
		return
	}
	c.nodes = slices.DeleteFunc(c.nodes, func(x *NodeBalancerNode) bool { return x == n })
	WriteJSON(w, http.StatusOK, map[string]any{})
}
