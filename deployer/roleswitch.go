package deployer

import (
	"context"
	"fmt"
	"slices"
)

// RoleRoute is one switch of a RoleSwitch and the roles whose servers it
// moves; no roles means every role.
type RoleRoute struct {
	Roles  []string
	Switch Switch
}

// RoleSwitch moves each role's servers through the switches that front
// that role: globally distributed servers, each region behind its own load
// balancer (a NodeBalancer is regional). Accept and Drain go through every
// route in order, each with its roles' servers; the first error stops
// them, and the pipeline switches everything back as after any failed
// switch. Endpoints are every route's.
type RoleSwitch struct {
	routes    []RoleRoute
	endpoints []string // when set, instead of the routes'
}

var _ Switch = (*RoleSwitch)(nil)

// NewRoleSwitch checks that every role in roles has a route.
func NewRoleSwitch(roles []string, routes []RoleRoute) (*RoleSwitch, error) {
	for _, role := range roles {
		if !slices.ContainsFunc(routes, func(r RoleRoute) bool { return len(r.Roles) == 0 || slices.Contains(r.Roles, role) }) {
			return nil, fmt.Errorf("no load balancer fronts %s", role)
		}
	}
	return &RoleSwitch{routes: slices.Clone(routes)}, nil
}

func (s *RoleSwitch) each(servers []Server, fn func(Switch, []Server) error) error {
	for _, r := range s.routes {
		var mine []Server
		for _, sv := range servers {
			if len(r.Roles) == 0 || slices.Contains(r.Roles, sv.Role) {
				mine = append(mine, sv)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := fn(r.Switch, mine); err != nil {
			return err
		}
	}
	return nil
}

// Accept sends each route's roles' servers new traffic.
func (s *RoleSwitch) Accept(ctx context.Context, servers []Server) error {
	return s.each(servers, func(sw Switch, mine []Server) error { return sw.Accept(ctx, mine) })
}

// Drain drains each route's roles' servers.
func (s *RoleSwitch) Drain(ctx context.Context, servers []Server) error {
	return s.each(servers, func(sw Switch, mine []Server) error { return sw.Drain(ctx, mine) })
}

// Endpoints are every route's endpoints, without repeats.
func (s *RoleSwitch) Endpoints() []string {
	if len(s.endpoints) > 0 {
		return slices.Clone(s.endpoints)
	}
	var out []string
	for _, r := range s.routes {
		for _, ep := range r.Switch.Endpoints() {
			if !slices.Contains(out, ep) {
				out = append(out, ep)
			}
		}
	}
	return out
}

// WithEndpoints makes endpoints, not the routes', the addresses checked
// after a switch.
func (s *RoleSwitch) WithEndpoints(endpoints []string) *RoleSwitch {
	c := *s
	c.endpoints = slices.Clone(endpoints)
	return &c
}
