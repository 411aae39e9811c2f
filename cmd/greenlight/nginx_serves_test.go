package main

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/nginx"
)

// TestNginxHostsServeRoles: hosts that name the roles they front become
// one switch per group of hosts, each role's servers going to its hosts;
// hosts that serve every role stay one nginx switch.
func TestNginxHostsServeRoles(t *testing.T) {
	tests := []struct {
		name      string
		hosts     []NginxHostConfig
		roleWise  bool
		endpoints []string
	}{
		{name: "every host serves every role", hosts: []NginxHostConfig{
			{Name: "lb1", Endpoint: "192.0.2.1:53"}, {Name: "lb2", Endpoint: "192.0.2.2:53"}},
			endpoints: []string{"192.0.2.1:53", "192.0.2.2:53"}},
		{name: "one host per role", roleWise: true, hosts: []NginxHostConfig{
			{Name: "lb1", Endpoint: "192.0.2.1:53", Serves: []string{"ns1"}}, {Name: "lb2", Endpoint: "192.0.2.2:53", Serves: []string{"ns2"}}},
			endpoints: []string{"192.0.2.1:53", "192.0.2.2:53"}},
		{name: "two hosts for ns1, one for both", roleWise: true, hosts: []NginxHostConfig{
			{Name: "lb1", Endpoint: "192.0.2.1:53", Serves: []string{"ns1"}}, {Name: "lb2", Endpoint: "192.0.2.2:53", Serves: []string{"ns1"}},
			{Name: "lb3", Endpoint: "192.0.2.3:53"}},
			endpoints: []string{"192.0.2.1:53", "192.0.2.2:53", "192.0.2.3:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Main{Log: slog.New(slog.DiscardHandler)}
			svc := &deployer.Service{Name: "ns", Roles: []string{"ns1", "ns2"}}
			sw, err := m.nginxSwitch(svc, SwitchConfig{Kind: "nginx", Hosts: tt.hosts, ConfigPath: "/etc/nginx/streams/ns.conf"})
			if err != nil {
				t.Fatal(err)
			}
			switch sw.(type) {
			case *deployer.RoleSwitch:
				if !tt.roleWise {
					t.Errorf("got a RoleSwitch, want one nginx switch")
				}
			case *nginx.Switch:
				if tt.roleWise {
					t.Errorf("got one nginx switch, want a RoleSwitch")
				}
			}
			if got := sw.Endpoints(); !slices.Equal(got, tt.endpoints) {
				t.Errorf("endpoints %v, want %v", got, tt.endpoints)
			}
		})
	}
}
