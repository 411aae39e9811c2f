package linodetest

import (
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

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
	configs []*nbConfig // oldest first
}

type nbConfig struct {
	NodeBalancerConfig
	nodes []*NodeBalancerNode // oldest first
}

// AddNodeBalancer adds a NodeBalancer as if it had been created in the
// account, and makes the fake answer the NodeBalancer API (configs and
// nodes). A zero ID is allocated; the label, region and addresses get
// defaults. Tests that fake the NodeBalancer API themselves with HandleFunc
// must not call it.
func (s *Server) AddNodeBalancer(nb NodeBalancer) NodeBalancer {
	s.nbs.routes.Do(s.routeNodeBalancers)
	nb, f := s.addNodeBalancer(nb)
	if f != nil {
		f.sync() // added again: it has no configs now
	}
	return nb
}

// addNodeBalancer records nb and returns it with its frontend, if it was
// added before and has one.
func (s *Server) addNodeBalancer(nb NodeBalancer) (NodeBalancer, *frontend) {
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
	n.byID[nb.ID] = &nodeBalancer{NodeBalancer: nb}
	return nb, n.frontends[nb.ID]
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
	s.change(w, func() (int, any) {
		nb := s.nbFor(w, r)
		if nb == nil {
			return 0, nil
		}
		c := &nbConfig{NodeBalancerConfig: NodeBalancerConfig{NodeBalancerID: nb.ID}}
		if errs := nb.apply(c, req, true); len(errs) > 0 {
			WriteErrors(w, http.StatusBadRequest, errs...)
			return 0, nil
		}
		s.nbs.nextCfg++
		c.ID = s.nbs.nextCfg
		nb.configs = append(nb.configs, c)
		return nb.ID, c.json()
	})
}

func (s *Server) updateNBConfig(w http.ResponseWriter, r *http.Request) {
	var req configRequest
	if !decode(w, r, &req) {
		return
	}
	s.change(w, func() (int, any) {
		nb, c := s.configFor(w, r)
		if c == nil {
			return 0, nil
		}
		next := &nbConfig{NodeBalancerConfig: c.NodeBalancerConfig, nodes: c.nodes}
		if errs := nb.apply(next, req, false); len(errs) > 0 {
			WriteErrors(w, http.StatusBadRequest, errs...)
			return 0, nil
		}
		c.NodeBalancerConfig = next.NodeBalancerConfig
		for _, n := range c.nodes {
			n.Protocol = c.Protocol
		}
		return nb.ID, c.json()
	})
}

func (s *Server) deleteNBConfig(w http.ResponseWriter, r *http.Request) {
	s.change(w, func() (int, any) {
		nb, c := s.configFor(w, r)
		if c == nil {
			return 0, nil
		}
		nb.configs = slices.DeleteFunc(nb.configs, func(x *nbConfig) bool { return x == c })
		return nb.ID, map[string]any{}
	})
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
	s.change(w, func() (int, any) {
		nb, c := s.configFor(w, r)
		if c == nil {
			return 0, nil
		}
		n := &NodeBalancerNode{NodeBalancerID: nb.ID, ConfigID: c.ID, Protocol: c.Protocol,
			Weight: 100, Mode: "accept", Status: "Unknown"}
		if errs := applyNode(nb, c, n, req, owner, true); len(errs) > 0 {
			WriteErrors(w, http.StatusBadRequest, errs...)
			return 0, nil
		}
		s.nbs.nextNode++
		n.ID = s.nbs.nextNode
		c.nodes = append(c.nodes, n)
		return nb.ID, nodeJSON(n)
	})
}

func (s *Server) updateNBNode(w http.ResponseWriter, r *http.Request) {
	var req nodeRequest
	if !decode(w, r, &req) {
		return
	}
	owner := s.ownerOf(req.Address)
	s.change(w, func() (int, any) {
		nb, _ := s.configFor(w, r)
		if nb == nil {
			return 0, nil
		}
		c, n := s.nodeFor(w, r)
		if n == nil {
			return 0, nil
		}
		next := *n
		if errs := applyNode(nb, c, &next, req, owner, false); len(errs) > 0 {
			WriteErrors(w, http.StatusBadRequest, errs...)
			return 0, nil
		}
		*n = next
		return nb.ID, nodeJSON(n)
	})
}

func (s *Server) deleteNBNode(w http.ResponseWriter, r *http.Request) {
	s.change(w, func() (int, any) {
		c, n := s.nodeFor(w, r)
		if n == nil {
			return 0, nil
		}
		c.nodes = slices.DeleteFunc(c.nodes, func(x *NodeBalancerNode) bool { return x == n })
		return n.NodeBalancerID, map[string]any{}
	})
}

// change runs an API call that changes a NodeBalancer's configs or nodes.
// edit runs under nbs.mu and either answers an error itself and returns a
// nil reply, or makes the change and returns the NodeBalancer's ID and the
// reply. The NodeBalancer's frontend follows the change before the reply is
// written, so traffic has moved when the call returns.
func (s *Server) change(w http.ResponseWriter, edit func() (id int, reply any)) {
	s.nbs.mu.Lock()
	id, reply := edit()
	f := s.nbs.frontends[id]
	s.nbs.mu.Unlock()
	if reply == nil {
		return
	}
	if f != nil {
		f.sync()
	}
	WriteJSON(w, http.StatusOK, reply)
}
