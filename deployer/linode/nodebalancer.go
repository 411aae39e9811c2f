package linode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

var _ deployer.Switch = (*NodeBalancerSwitch)(nil)

// Defaults of NodeBalancerOptions.
const (
	DefaultDrainWait  = 10 * time.Second
	DefaultNodeWeight = 100
)

// Health checks of the port-53 configs the NodeBalancer switch creates: a
// TCP connection to each node every 10s, a node down after 3 failures in a
// row. UDP configs check over TCP on the DNS port (udp_check_port), which a
// DNS server answers too.
const (
	nbCheckInterval = 10
	nbCheckTimeout  = 5
	nbCheckAttempts = 3
)

// NodeBalancerOptions configure a NodeBalancerSwitch.
type NodeBalancerOptions struct {
	// Client talks to the API; like the Cloud, the switch turns off
	// linodego's own retries and debug logging on it.
	Client         *linodego.Client
	NodeBalancerID int
	// Port is where the NodeBalancer takes DNS, over UDP and over TCP, and
	// where its UDP health checks connect on the nodes; default 53.
	Port int
	// Endpoints are the NodeBalancer's public addresses, host:port, where
	// the deploy checks traffic after a switch. Required: see
	// NodeBalancerEndpoints to read them from the API.
	Endpoints []string
	// DrainWait is how long Drain lets connections and UDP sessions already
	// on drained nodes carry on before it removes the nodes: the
	// NodeBalancer does not say what is in flight. Default 10s; negative
	// means no wait.
	DrainWait time.Duration
	Weight    int // of the nodes it adds, 1–255; default 100

	CallOptions
}

// NodeBalancerSwitch moves DNS traffic between sets with a Linode
// NodeBalancer that has a UDP and a TCP config on port 53. It is a
// deployer.Switch; its methods are safe for concurrent use and run one at a
// time.
//
// Accept makes sure both configs exist, adds each server as a node in
// "accept" mode to both (or sets the node it has already to "accept"), and
// then sets every other accepting or backup node to "drain": a drained node
// takes no new connections or UDP sessions while those it has carry on.
// New nodes are accepting before old ones are drained, so there is never a
// moment without a node to answer. Drain waits DrainWait and removes the
// servers' nodes, but never one that is in "accept" mode.
//
// A node's address is the instance's private IPv4 address when the server
// is a Linode instance that has one (a NodeBalancer reaches its nodes on
// the private network), and otherwise the host of Server.Addr; its port is
// Server.Addr's. Its label is the server's name.
//
// API calls are retried like the Cloud's (429, 5xx, dropped connections,
// within RetryBudget), and a refusal is said in plain words.
type NodeBalancerSwitch struct {
	opts  NodeBalancerOptions
	api   *Cloud // runs calls with the Cloud's retry policy
	addrs *addressBook
	log   *slog.Logger
	mu    sync.Mutex // one Accept or Drain at a time
}

// NewNodeBalancerSwitch returns a switch for opts. It makes no API call.
func NewNodeBalancerSwitch(opts NodeBalancerOptions) (*NodeBalancerSwitch, error) {
	var missing []string
	if opts.Client == nil {
		missing = append(missing, "a linodego client")
	}
	if opts.NodeBalancerID <= 0 {
		missing = append(missing, "the NodeBalancer's ID (nodebalancer_id)")
	}
	if len(opts.Endpoints) == 0 {
		missing = append(missing, "the NodeBalancer's public addresses to check through (endpoints)")
	}
	if len(missing) > 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "the NodeBalancer switch needs %s", strings.Join(missing, ", "))
	}
	for _, ep := range opts.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, deployer.Errorf(deployer.CodeInvalid, "NodeBalancer endpoint %q is not host:port", ep)
		}
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "NodeBalancer port %d is not a port", opts.Port)
	}
	if opts.DrainWait == 0 {
		opts.DrainWait = DefaultDrainWait
	}
	if opts.Weight == 0 {
		opts.Weight = DefaultNodeWeight
	}
	if opts.Weight < 1 || opts.Weight > 255 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "NodeBalancer node weight %d is not within 1–255", opts.Weight)
	}
	opts.Endpoints = slices.Clone(opts.Endpoints)
	api := newCaller(opts.Client, opts.CallOptions)
	api.log = api.log.With("switch", "nodebalancer", "nodebalancer_id", opts.NodeBalancerID)
	opts.Clock = api.clock
	return &NodeBalancerSwitch{opts: opts, api: api, addrs: newAddressBook(), log: api.log}, nil
}

// Endpoints are the NodeBalancer's public addresses.
func (s *NodeBalancerSwitch) Endpoints() []string { return slices.Clone(s.opts.Endpoints) }

// node is one server as a node of the NodeBalancer.
type node struct {
	server  deployer.Server
	address string // ip:port
	label   string
}

// Accept sends new queries to servers, and only to them.
func (s *NodeBalancerSwitch) Accept(ctx context.Context, servers []deployer.Server) error {
	if len(servers) == 0 {
		return deployer.Errorf(deployer.CodeInvalid, "the NodeBalancer needs at least one server to send traffic to")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want, err := s.nodes(ctx, servers)
	if err != nil {
		return err
	}
	configs, err := s.configs(ctx, true)
	if err != nil {
		return err
	}
	// First every server accepts on both configs, then the others drain:
	// a failure half way leaves more nodes answering, never none.
	current := make([][]linodego.NodeBalancerNode, len(configs))
	for i, cfg := range configs {
		if current[i], err = s.listNodes(ctx, cfg); err != nil {
			return err
		}
		for _, n := range want {
			if err := s.acceptNode(ctx, cfg, n, current[i]); err != nil {
				return err
			}
		}
	}
	drained := 0
	for i, cfg := range configs {
		for _, got := range current[i] {
			if slices.ContainsFunc(want, func(n node) bool { return n.address == got.Address }) {
				continue
			}
			if got.Mode != linodego.ModeAccept && got.Mode != linodego.ModeBackup {
				continue // drain or reject: takes no new traffic already
			}
			if err := s.setMode(ctx, cfg, got, linodego.ModeDrain); err != nil {
				return err
			}
			drained++
		}
	}
	s.log.Info("NodeBalancer sends new traffic to", "servers", nodeNames(want), "port", s.opts.Port,
		"nodes_drained", drained)
	return nil
}

// Drain waits DrainWait, bounded by ctx, for traffic already on the servers'
// nodes, then removes those nodes from both configs. A node that is still
// in "accept" mode is left alone. When ctx ends first, the nodes stay, in
// drain mode, and the error says so.
func (s *NodeBalancerSwitch) Drain(ctx context.Context, servers []deployer.Server) error {
	if len(servers) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gone, err := s.nodes(ctx, servers)
	if err != nil {
		return err
	}
	if wait := s.opts.DrainWait; wait > 0 {
		s.log.Info("waiting for traffic on drained nodes to finish", "servers", nodeNames(gone), "wait", wait)
		select {
		case <-s.opts.Clock.After(wait):
		case <-ctx.Done():
			return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf(
				"stopped waiting for traffic on %s to finish (%s): %s; they take no new traffic and stay on NodeBalancer %d in drain mode",
				nodeNames(gone), wait, ctxWords(ctx.Err()), s.opts.NodeBalancerID), Err: ctx.Err()}
		}
	}
	configs, err := s.configs(ctx, false)
	if err != nil {
		return err
	}
	removed := 0
	for _, cfg := range configs {
		current, err := s.listNodes(ctx, cfg)
		if err != nil {
			return err
		}
		for _, got := range current {
			i := slices.IndexFunc(gone, func(n node) bool { return n.address == got.Address || n.label == got.Label })
			if i < 0 {
				continue
			}
			if got.Mode == linodego.ModeAccept {
				s.log.Warn("not removing a node that still takes new traffic", "server", gone[i].server.Name,
					"address", got.Address, "protocol", cfg.Protocol)
				continue
			}
			if err := s.removeNode(ctx, cfg, got, gone[i]); err != nil {
				return err
			}
			removed++
		}
	}
	s.log.Info("NodeBalancer nodes removed", "servers", nodeNames(gone), "nodes", removed)
	return nil
}

// nodes works out the node of each server.
func (s *NodeBalancerSwitch) nodes(ctx context.Context, servers []deployer.Server) ([]node, error) {
	out := make([]node, 0, len(servers))
	for _, sv := range servers {
		host, port, err := splitAddr(sv, s.opts.Port)
		if err != nil {
			return nil, err
		}
		addrs, err := s.addrs.lookup(ctx, s.api, sv)
		if err != nil {
			return nil, err
		}
		if addrs.private4 != "" {
			host = addrs.private4
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() {
			return nil, deployer.Errorf(deployer.CodeInvalid,
				"%s has no IPv4 address a NodeBalancer can send traffic to (it has %q)", name(sv), host)
		}
		out = append(out, node{server: sv, address: net.JoinHostPort(host, port), label: nodeLabel(sv)})
	}
	return out, nil
}

// configs returns the NodeBalancer's UDP and TCP configs on Port, creating
// those missing when create is set (otherwise only those that exist).
func (s *NodeBalancerSwitch) configs(ctx context.Context, create bool) ([]linodego.NodeBalancerConfig, error) {
	id := s.opts.NodeBalancerID
	var list []linodego.NodeBalancerConfig
	op := operation{what: fmt.Sprintf("list the configs of NodeBalancer %d", id)}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		var err error
		list, err = s.opts.Client.ListNodeBalancerConfigs(ctx, id, nil)
		return err
	})
	if deployer.ErrorCode(err) == deployer.CodeNotFound {
		return nil, &deployer.Error{Code: deployer.CodeNotFound, Message: fmt.Sprintf(
			"Linode has no NodeBalancer %d in this account (is nodebalancer_id right?)", id), Err: err}
	}
	if err != nil {
		return nil, err
	}
	// Both protocols are looked at before either config is created, so a
	// conflict on the TCP side leaves the NodeBalancer as it was.
	protos := []linodego.ConfigProtocol{linodego.ProtocolUDP, linodego.ProtocolTCP}
	found := make([]*linodego.NodeBalancerConfig, len(protos))
	for i, proto := range protos {
		if found[i], err = s.configFor(list, proto); err != nil {
			return nil, err
		}
	}
	var out []linodego.NodeBalancerConfig
	for i, proto := range protos {
		switch cfg := found[i]; {
		case cfg != nil:
			out = append(out, *cfg)
		case create:
			made, err := s.createConfig(ctx, proto)
			if err != nil {
				return nil, err
			}
			out = append(out, *made)
		}
	}
	return out, nil
}

// configFor finds the config of proto on Port. A TCP-side config on Port
// that is HTTP or HTTPS is a conflict greenlight will not resolve itself.
func (s *NodeBalancerSwitch) configFor(list []linodego.NodeBalancerConfig, proto linodego.ConfigProtocol) (*linodego.NodeBalancerConfig, error) {
	for i := range list {
		c := &list[i]
		if c.Port != s.opts.Port {
			continue
		}
		if c.Protocol == proto {
			return c, nil
		}
		if proto == linodego.ProtocolTCP && c.Protocol != linodego.ProtocolUDP {
			return nil, deployer.Errorf(deployer.CodeConflict,
				"NodeBalancer %d's port %d is configured for %s (config %d); DNS needs tcp there: change or delete that config",
				s.opts.NodeBalancerID, s.opts.Port, strings.ToUpper(string(c.Protocol)), c.ID)
		}
	}
	return nil, nil
}

// createConfig creates the config of proto on Port. A retry after an
// answer that was lost looks first, so it does not make a second one.
func (s *NodeBalancerSwitch) createConfig(ctx context.Context, proto linodego.ConfigProtocol) (*linodego.NodeBalancerConfig, error) {
	id := s.opts.NodeBalancerID
	create := linodego.NodeBalancerConfigCreateOptions{
		Port:          s.opts.Port,
		Protocol:      proto,
		Algorithm:     linodego.AlgorithmRoundRobin,
		Check:         linodego.CheckConnection,
		CheckInterval: nbCheckInterval,
		CheckTimeout:  nbCheckTimeout,
		CheckAttempts: nbCheckAttempts,
	}
	values := map[string]string{"port": strconv.Itoa(s.opts.Port), "protocol": string(proto),
		"algorithm": string(create.Algorithm), "check": string(create.Check),
		"check_interval": strconv.Itoa(nbCheckInterval), "check_timeout": strconv.Itoa(nbCheckTimeout),
		"check_attempts": strconv.Itoa(nbCheckAttempts)}
	if proto == linodego.ProtocolUDP {
		// UDP: checks connect over TCP to udp_check_port; no passive checks.
		port := s.opts.Port
		create.UDPCheckPort = &port
		values["udp_check_port"] = strconv.Itoa(port)
	} else {
		passive := true
		create.CheckPassive = &passive
	}
	op := operation{what: fmt.Sprintf("create the %s port %d config of NodeBalancer %d", strings.ToUpper(string(proto)), s.opts.Port, id),
		values: values}
	var got *linodego.NodeBalancerConfig
	attempt := 0
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		attempt++
		if attempt > 1 {
			list, err := s.opts.Client.ListNodeBalancerConfigs(ctx, id, nil)
			if err != nil {
				return err
			}
			if c, err := s.configFor(list, proto); err != nil || c != nil {
				got = c
				return err
			}
		}
		var err error
		got, err = s.opts.Client.CreateNodeBalancerConfig(ctx, id, create)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("NodeBalancer config created", "config", got.ID, "port", got.Port, "protocol", got.Protocol)
	return got, nil
}

func (s *NodeBalancerSwitch) listNodes(ctx context.Context, cfg linodego.NodeBalancerConfig) ([]linodego.NodeBalancerNode, error) {
	var list []linodego.NodeBalancerNode
	op := operation{what: fmt.Sprintf("list the %s nodes of NodeBalancer %d", strings.ToUpper(string(cfg.Protocol)), s.opts.NodeBalancerID)}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		var err error
		list, err = s.opts.Client.ListNodeBalancerNodes(ctx, s.opts.NodeBalancerID, cfg.ID, nil)
		return err
	})
	return list, err
}

// acceptNode makes n a node of cfg in accept mode: it creates it, or sets
// the node that has its address to accept. A retry lists the nodes again,
// so a create whose answer was lost is not made twice.
func (s *NodeBalancerSwitch) acceptNode(ctx context.Context, cfg linodego.NodeBalancerConfig, n node, current []linodego.NodeBalancerNode) error {
	proto := strings.ToUpper(string(cfg.Protocol))
	op := operation{what: fmt.Sprintf("add %s (%s) to NodeBalancer %d over %s", n.server.Name, n.address, s.opts.NodeBalancerID, proto),
		values: map[string]string{"address": n.address, "label": n.label, "mode": string(linodego.ModeAccept),
			"weight": strconv.Itoa(s.opts.Weight)}}
	attempt := 0
	action := ""
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		attempt++
		if attempt > 1 {
			list, err := s.opts.Client.ListNodeBalancerNodes(ctx, s.opts.NodeBalancerID, cfg.ID, nil)
			if err != nil {
				return err
			}
			current = list
		}
		i := slices.IndexFunc(current, func(got linodego.NodeBalancerNode) bool { return got.Address == n.address })
		if i >= 0 {
			if current[i].Mode == linodego.ModeAccept {
				action = "already accepting"
				return nil
			}
			_, err := s.opts.Client.UpdateNodeBalancerNode(ctx, s.opts.NodeBalancerID, cfg.ID, current[i].ID,
				linodego.NodeBalancerNodeUpdateOptions{Mode: linodego.ModeAccept})
			action = "set to accept from " + string(current[i].Mode)
			return err
		}
		_, err := s.opts.Client.CreateNodeBalancerNode(ctx, s.opts.NodeBalancerID, cfg.ID, linodego.NodeBalancerNodeCreateOptions{
			Address: n.address, Label: n.label, Weight: s.opts.Weight, Mode: linodego.ModeAccept,
		})
		action = "added"
		return err
	})
	if err == nil {
		s.log.Info("NodeBalancer node accepts", "server", n.server.Name, "address", n.address, "protocol", cfg.Protocol, "change", action)
	}
	return err
}

func (s *NodeBalancerSwitch) setMode(ctx context.Context, cfg linodego.NodeBalancerConfig, got linodego.NodeBalancerNode, mode linodego.NodeMode) error {
	op := operation{what: fmt.Sprintf("set node %s (%s) of NodeBalancer %d to %s", got.Label, got.Address, s.opts.NodeBalancerID, mode),
		values: map[string]string{"address": got.Address, "label": got.Label, "mode": string(mode)}}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		_, err := s.opts.Client.UpdateNodeBalancerNode(ctx, s.opts.NodeBalancerID, cfg.ID, got.ID,
			linodego.NodeBalancerNodeUpdateOptions{Mode: mode})
		if linodego.IsNotFound(err) {
			return nil // removed meanwhile: it takes no traffic either way
		}
		return err
	})
	if err == nil {
		s.log.Info("NodeBalancer node set to "+string(mode), "node", got.Label, "address", got.Address,
			"protocol", cfg.Protocol, "was", got.Mode)
	}
	return err
}

func (s *NodeBalancerSwitch) removeNode(ctx context.Context, cfg linodego.NodeBalancerConfig, got linodego.NodeBalancerNode, n node) error {
	op := operation{what: fmt.Sprintf("remove %s (%s) from NodeBalancer %d", n.server.Name, got.Address, s.opts.NodeBalancerID)}
	err := s.api.call(ctx, op, func(ctx context.Context) error {
		err := s.opts.Client.DeleteNodeBalancerNode(ctx, s.opts.NodeBalancerID, cfg.ID, got.ID)
		if linodego.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err == nil {
		s.log.Info("NodeBalancer node removed", "server", n.server.Name, "address", got.Address, "protocol", cfg.Protocol)
	}
	return err
}

// NodeBalancerEndpoints reads a NodeBalancer's public addresses from the API,
// as host:port for port (default 53): what NodeBalancerOptions.Endpoints
// wants. Calls are retried like the Cloud's, on the real clock.
func NodeBalancerEndpoints(ctx context.Context, client *linodego.Client, id, port int) ([]string, error) {
	info, err := LookUpNodeBalancer(ctx, client, id, port)
	return info.Endpoints, err
}

// NodeBalancerInfo is what start-up needs to know of a NodeBalancer.
type NodeBalancerInfo struct {
	Region    string
	Endpoints []string // its public addresses with port
}

// LookUpNodeBalancer reads NodeBalancer id: its region (its nodes must be
// Linodes of that region) and its public addresses, with port (default 53).
func LookUpNodeBalancer(ctx context.Context, client *linodego.Client, id, port int) (NodeBalancerInfo, error) {
	if port == 0 {
		port = DefaultPort
	}
	api := newCaller(client, CallOptions{})
	var nb *linodego.NodeBalancer
	err := api.call(ctx, operation{what: fmt.Sprintf("look up NodeBalancer %d", id)}, func(ctx context.Context) error {
		var err error
		nb, err = client.GetNodeBalancer(ctx, id)
		return err
	})
	if deployer.ErrorCode(err) == deployer.CodeNotFound {
		return NodeBalancerInfo{}, &deployer.Error{Code: deployer.CodeNotFound, Message: fmt.Sprintf(
			"Linode has no NodeBalancer %d in this account (is nodebalancer_id right?)", id), Err: err}
	}
	if err != nil {
		return NodeBalancerInfo{}, err
	}
	var out []string
	for _, ip := range []*string{nb.IPv4, nb.IPv6} {
		if ip != nil && *ip != "" {
			out = append(out, net.JoinHostPort(*ip, strconv.Itoa(port)))
		}
	}
	if len(out) == 0 {
		return NodeBalancerInfo{}, deployer.Errorf(deployer.CodeFailed, "NodeBalancer %d has no public address", id)
	}
	return NodeBalancerInfo{Region: nb.Region, Endpoints: out}, nil
}

// Shared by the NodeBalancer and DNS-record switches.

// newCaller is a Cloud used only for its call method: the Cloud's retry
// policy for the switches' API calls.
func newCaller(client *linodego.Client, opts CallOptions) *Cloud {
	opts = opts.withDefaults()
	if client != nil {
		client.SetRetryCount(0)
		client.SetDebug(false)
	}
	return &Cloud{
		client: client,
		opts:   Options{Client: client, CallOptions: opts},
		clock:  opts.Clock,
		log:    opts.Logger.With("cloud", "linode"),
	}
}

// instanceAddrs are a Linode instance's addresses.
type instanceAddrs struct {
	public4  string
	private4 string
	ipv6     string // the SLAAC address, without its /128
}

// addressBook looks up the addresses of servers that are Linode instances,
// once each: an instance keeps its addresses for life.
type addressBook struct {
	mu    sync.Mutex
	known map[int]instanceAddrs
}

func newAddressBook() *addressBook { return &addressBook{known: map[int]instanceAddrs{}} }

// lookup returns the addresses of sv's instance; none when sv has no Linode
// ID (it is not an instance) or its instance is gone.
func (b *addressBook) lookup(ctx context.Context, api *Cloud, sv deployer.Server) (instanceAddrs, error) {
	id, err := strconv.Atoi(sv.ID)
	if err != nil || id <= 0 {
		return instanceAddrs{}, nil
	}
	b.mu.Lock()
	got, ok := b.known[id]
	b.mu.Unlock()
	if ok {
		return got, nil
	}
	var in *linodego.Instance
	op := operation{what: "look up the addresses of " + name(sv)}
	err = api.call(ctx, op, func(ctx context.Context) error {
		var err error
		in, err = api.client.GetInstance(ctx, id)
		if linodego.IsNotFound(err) {
			in, err = nil, nil
		}
		return err
	})
	if err != nil || in == nil {
		return instanceAddrs{}, err
	}
	for _, ip := range in.IPv4 {
		if ip == nil || ip.To4() == nil {
			continue
		}
		switch {
		case ip.IsPrivate() && got.private4 == "":
			got.private4 = ip.String()
		case !ip.IsPrivate() && got.public4 == "":
			got.public4 = ip.String()
		}
	}
	if v6, _, _ := strings.Cut(in.IPv6, "/"); v6 != "" {
		if ip, err := netip.ParseAddr(v6); err == nil && ip.Is6() && !ip.Is4In6() {
			got.ipv6 = ip.String()
		}
	}
	b.mu.Lock()
	b.known[id] = got
	b.mu.Unlock()
	return got, nil
}

// splitAddr is the host and port of sv's address; the port is def when the
// address has none.
func splitAddr(sv deployer.Server, def int) (host, port string, err error) {
	if sv.Addr == "" {
		return "", "", deployer.Errorf(deployer.CodeInvalid, "%s has no address to send traffic to; is it running?", name(sv))
	}
	host, port, err = net.SplitHostPort(sv.Addr)
	if err != nil {
		var addrErr *net.AddrError
		if errors.As(err, &addrErr) && strings.Contains(addrErr.Err, "missing port") {
			return strings.Trim(sv.Addr, "[]"), strconv.Itoa(def), nil
		}
		return "", "", &deployer.Error{Code: deployer.CodeInvalid, Message: fmt.Sprintf("%s has a bad address %q", name(sv), sv.Addr), Err: err}
	}
	return host, port, nil
}

// nodeLabel is a NodeBalancer node label for sv: its name, cut to what
// Linode allows (3–32 letters, digits, '-', '_', '.').
func nodeLabel(sv deployer.Server) string {
	label := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, name(sv))
	if len(label) < 3 {
		label = "greenlight-" + label
	}
	if len(label) > 32 {
		label = label[:32]
	}
	return label
}

func nodeNames(nodes []node) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.server.Name
	}
	return strings.Join(names, ", ")
}
