package main

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// LinodeConfig is a service's linode section: where and what its
// instances are. The API token comes from LINODE_TOKEN.
type LinodeConfig struct {
	Region string `yaml:"region"`
	// Regions puts a server role in a region of its own: {ns1: us-east,
	// ns2: eu-central}. Roles it leaves out are in Region.
	Regions        map[string]string `yaml:"regions"`
	Type           string            `yaml:"type"`
	Image          string            `yaml:"image"` // the base image; deploys use the newest golden image when there is one
	AuthorizedKeys []string          `yaml:"authorized_keys"`
	Tags           []string          `yaml:"tags"`
	FirewallID     int               `yaml:"firewall_id"`
	PollInterval   Duration          `yaml:"poll_interval"`
}

// ProvisionerConfig says how a running server is made to serve.
type ProvisionerConfig struct {
	Kind     string   `yaml:"kind"`      // cloud-init (default on Linode) | command | none
	UserData string   `yaml:"user_data"` // cloud-init template; default the embedded configs/cloud-init/nsd.yaml
	Command  []string `yaml:"command"`   // command: argv, each a template ({{.Inventory}}, {{.Name}}, {{.IP}} …)
	Dir      string   `yaml:"dir"`       // command: working directory
	Timeout  Duration `yaml:"timeout"`   // command: per server
}

// SwitchConfig says how traffic moves between sets.
type SwitchConfig struct {
	Kind string `yaml:"kind"` // local (default on the local cloud) | nodebalancer | nginx | dns-records

	// Where clients query, host:port, checked after a switch. NodeBalancer:
	// default its public addresses; nginx: default each host's endpoint.
	Endpoints []string `yaml:"endpoints"`

	NodeBalancerID int `yaml:"nodebalancer_id"`
	// NodeBalancers fronts each role with a NodeBalancer of its own (one per
	// region): {ns1: 111, ns2: 222}. Roles it leaves out use NodeBalancerID.
	NodeBalancers map[string]int `yaml:"nodebalancers"`
	DrainWait     Duration       `yaml:"drain_wait"` // nodebalancer: how long drained nodes keep their traffic; default 10s

	Hosts        []NginxHostConfig `yaml:"hosts"`         // nginx: the load balancer hosts
	ConfigPath   string            `yaml:"config_path"`   // nginx: the stream config file nginx.conf includes
	Template     string            `yaml:"template"`      // nginx: default the embedded configs/nginx/stream.conf.tmpl
	Listen       string            `yaml:"listen"`        // nginx: what nginx listens on, UDP and TCP; default 53
	NginxCommand []string          `yaml:"nginx_command"` // nginx: default [nginx]; e.g. [sudo, -n, nginx]
	PIDFile      string            `yaml:"pid_file"`      // nginx: default /run/nginx.pid
	SSHUser      string            `yaml:"ssh_user"`      // nginx: default root
	SSHKeyEnv    string            `yaml:"ssh_key_env"`   // nginx: variable holding the private key; default GREENLIGHT_SSH_KEY
	KnownHosts   string            `yaml:"known_hosts"`   // nginx: OpenSSH known_hosts; default ~/.ssh/known_hosts

	DomainID    int      `yaml:"domain_id"`   // dns-records: the Linode DNS Manager domain
	Names       []string `yaml:"names"`       // dns-records: records pointed at the servers ("ns1", "ns2")
	TTL         Duration `yaml:"ttl"`         // dns-records: default 2m
	Propagation Duration `yaml:"propagation"` // dns-records: waited on top of the TTL before retiring
}

// NginxHostConfig is one nginx load balancer.
type NginxHostConfig struct {
	Name     string `yaml:"name"`
	SSH      string `yaml:"ssh"`      // host[:port]; empty = this machine, without SSH
	Endpoint string `yaml:"endpoint"` // where clients query through it, host:port
	// Serves are the roles whose servers it fronts; empty means all.
	Serves []string `yaml:"serves"`
}

// ReconcileConfig sets up the search for orphaned servers.
type ReconcileConfig struct {
	Interval      Duration `yaml:"interval"`       // default 1h; the first pass runs at start-up
	DeleteOrphans bool     `yaml:"delete_orphans"` // false: report only
}

// validateProviders checks a service's cloud, provisioner and switch.
func (s *ServiceConfig) validateProviders(key string) error {
	switch s.Cloud {
	case "", "local":
		if s.Linode != nil {
			return &keyError{key + ".linode", "set cloud: linode to use the linode section"}
		}
		switch s.Switch.Kind {
		case "", "local":
			if s.Listen == "" {
				return &keyError{key + ".listen", "the load balancer address is missing (like 127.0.0.1:5300)"}
			}
		case "nginx":
		default:
			return &keyError{key + ".switch.kind", fmt.Sprintf("%q does not work with the local cloud (local, nginx)", s.Switch.Kind)}
		}
		switch s.Provisioner.Kind {
		case "", "local":
		default:
			return &keyError{key + ".provisioner.kind", "the local cloud provisions its servers itself; leave provisioner out"}
		}
	case "linode":
		l := s.Linode
		if l == nil || (l.Region == "" && !coversAll(s.Servers, l.Regions)) || l.Type == "" || l.Image == "" {
			return &keyError{key + ".linode", "a Linode service needs region, type and image (like us-east, g6-nanode-1, linode/debian12)"}
		}
		for role, region := range l.Regions {
			if !slices.Contains(s.Servers, role) || region == "" {
				return &keyError{key + ".linode.regions", fmt.Sprintf("%s: %q is not a server of the service (%s) with a region", role, region, strings.Join(s.Servers, ", "))}
			}
		}
		if l.FirewallID < 0 {
			return &keyError{key + ".linode.firewall_id", "a firewall ID is a positive number (0 = none)"}
		}
		if s.Listen != "" {
			return &keyError{key + ".listen", "listen is the local load balancer's address; a Linode service's clients come through its switch"}
		}
		switch s.Provisioner.Kind {
		case "", "cloud-init", "none":
		case "command":
			if len(s.Provisioner.Command) == 0 {
				return &keyError{key + ".provisioner.command", "the command provisioner needs a command (like [ansible-playbook, -i, \"{{.Inventory}}\", site.yml])"}
			}
		default:
			return &keyError{key + ".provisioner.kind", fmt.Sprintf("%q is not a provisioner (cloud-init, command, none)", s.Provisioner.Kind)}
		}
		switch s.Switch.Kind {
		case "nodebalancer":
			for role, id := range s.Switch.NodeBalancers {
				if !slices.Contains(s.Servers, role) || id <= 0 {
					return &keyError{key + ".switch.nodebalancers", fmt.Sprintf("%s: %d is not a server of the service (%s) with a NodeBalancer ID", role, id, strings.Join(s.Servers, ", "))}
				}
			}
			if s.Switch.NodeBalancerID <= 0 && !coversAll(s.Servers, s.Switch.NodeBalancers) {
				return &keyError{key + ".switch.nodebalancer_id", "name the NodeBalancer's ID (linode-cli nodebalancers list), or one per server in nodebalancers"}
			}
		case "nginx":
		case "dns-records":
			if s.Switch.DomainID <= 0 || len(s.Switch.Names) == 0 {
				return &keyError{key + ".switch", "the dns-records switch needs domain_id and names"}
			}
		case "":
			return &keyError{key + ".switch.kind", "a Linode service needs a switch (nodebalancer, nginx, dns-records)"}
		default:
			return &keyError{key + ".switch.kind", fmt.Sprintf("%q is not a switch (nodebalancer, nginx, dns-records)", s.Switch.Kind)}
		}
	default:
		return &keyError{key + ".cloud", fmt.Sprintf("%q is not a cloud this greenlight knows (local, linode)", s.Cloud)}
	}
	if s.Switch.Kind == "nginx" {
		if len(s.Switch.Hosts) == 0 {
			return &keyError{key + ".switch.hosts", "the nginx switch needs at least one load balancer host"}
		}
		if !strings.HasPrefix(s.Switch.ConfigPath, "/") {
			return &keyError{key + ".switch.config_path", "the nginx switch needs the absolute path of the stream config file nginx.conf includes"}
		}
		for i, h := range s.Switch.Hosts {
			if h.Name == "" {
				return &keyError{fmt.Sprintf("%s.switch.hosts[%d].name", key, i), "each nginx host needs a name"}
			}
			if _, _, err := net.SplitHostPort(h.Endpoint); err != nil {
				return &keyError{fmt.Sprintf("%s.switch.hosts[%d].endpoint", key, i), fmt.Sprintf("%q is not host:port (where clients query through %s)", h.Endpoint, h.Name)}
			}
			for _, role := range h.Serves {
				if !slices.Contains(s.Servers, role) {
					return &keyError{fmt.Sprintf("%s.switch.hosts[%d].serves", key, i), fmt.Sprintf("%q is not a server of the service (%s)", role, strings.Join(s.Servers, ", "))}
				}
			}
		}
		for _, role := range s.Servers {
			if !slices.ContainsFunc(s.Switch.Hosts, func(h NginxHostConfig) bool { return len(h.Serves) == 0 || slices.Contains(h.Serves, role) }) {
				return &keyError{key + ".switch.hosts", fmt.Sprintf("no host serves %s", role)}
			}
		}
	}
	for i, ep := range s.Switch.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return &keyError{fmt.Sprintf("%s.switch.endpoints[%d]", key, i), fmt.Sprintf("%q is not host:port", ep)}
		}
	}
	if s.Check.Port < 0 || s.Check.Port > 65535 {
		return &keyError{key + ".check.port", fmt.Sprintf("%d is not a port", s.Check.Port)}
	}
	return nil
}

// coversAll reports whether m has a non-zero entry for every role.
func coversAll[V comparable](roles []string, m map[string]V) bool {
	var zero V
	for _, r := range roles {
		if v, ok := m[r]; !ok || v == zero {
			return false
		}
	}
	return len(roles) > 0
}

// region is the default region of the service's Linode servers: linode.region,
// or the first server's own.
func (l *LinodeConfig) region(servers []string) string {
	if l.Region != "" || len(servers) == 0 {
		return l.Region
	}
	return l.Regions[servers[0]]
}

// regionOf is the region role's servers are in.
func (l *LinodeConfig) regionOf(role string, servers []string) string {
	if r := l.Regions[role]; r != "" {
		return r
	}
	return l.region(servers)
}

// nodeBalancerOf is the NodeBalancer that fronts role.
func (s SwitchConfig) nodeBalancerOf(role string) int {
	if id := s.NodeBalancers[role]; id > 0 {
		return id
	}
	return s.NodeBalancerID
}
