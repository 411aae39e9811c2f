package bot

import (
	"context"
	"slices"
	"strings"

	"github.com/greenlight/greenlight/deployer"
)

// Permission is what a command needs.
type Permission string

// Permissions, from least to most.
const (
	PermView    Permission = "view"    // status, history, diff, schedule, help
	PermDeploy  Permission = "deploy"  // deploy, lock, unlock own lock, refresh
	PermApprove Permission = "approve" // approve, abort, rollback
	PermAdmin   Permission = "admin"   // unlock --force
)

// Policy says who may do what to one service. An empty list lets everyone;
// admins may do everything.
type Policy struct {
	Deployers []string
	Approvers []string
	Admins    []string
	Channels  []string // where commands are accepted; empty = anywhere
}

// GroupResolver expands a user-group ID (Slack "S…") into its members.
type GroupResolver interface {
	Members(ctx context.Context, group string) ([]string, error)
}

// Authorizer checks permissions against per-service policies. With no
// policy for a service, everyone may do everything.
type Authorizer struct {
	Policies map[string]Policy
	Groups   GroupResolver // nil: entries are user IDs only
}

// Open reports whether no policy restricts anything.
func (a *Authorizer) Open() bool { return a == nil || len(a.Policies) == 0 }

// Allow returns nil when user may use perm on service from channel, or an
// error saying which permission is missing.
func (a *Authorizer) Allow(ctx context.Context, user, channel, service string, perm Permission) error {
	return a.allow(ctx, user, channel, service, perm, "force its lock or resolve its deploys")
}

// AllowAdmin checks admin permission for what ("freeze its deploys"), and
// says what in its refusal.
func (a *Authorizer) AllowAdmin(ctx context.Context, user, channel, service, what string) error {
	return a.allow(ctx, user, channel, service, PermAdmin, what)
}

func (a *Authorizer) allow(ctx context.Context, user, channel, service string, perm Permission, adminWhat string) error {
	if a == nil || perm == PermView {
		return nil
	}
	pol, ok := a.Policies[service]
	if !ok {
		return nil
	}
	if len(pol.Channels) > 0 && channel != "" && !slices.Contains(pol.Channels, channel) {
		return deployer.Errorf(deployer.CodeForbidden, "%s commands are not allowed in this channel; use %s", service, strings.Join(pol.Channels, ", "))
	}
	if a.member(ctx, user, pol.Admins) {
		return nil
	}
	var list []string
	role := ""
	switch perm {
	case PermDeploy:
		list, role = pol.Deployers, "deployers"
	case PermApprove:
		list, role = pol.Approvers, "approvers"
	case PermAdmin:
		return deployer.Errorf(deployer.CodeForbidden, "you are not an admin of %s, so you cannot %s", service, adminWhat)
	}
	if len(list) == 0 || a.member(ctx, user, list) {
		return nil
	}
	return deployer.Errorf(deployer.CodeForbidden, "you are not among the %s of %s", role, service)
}

// member reports whether user is listed directly or through a group.
func (a *Authorizer) member(ctx context.Context, user string, list []string) bool {
	if slices.Contains(list, user) {
		return true
	}
	if a.Groups == nil {
		return false
	}
	for _, entry := range list {
		if !isGroup(entry) {
			continue
		}
		members, err := a.Groups.Members(ctx, entry)
		if err == nil && slices.Contains(members, user) {
			return true
		}
	}
	return false
}

// isGroup tells a Slack user-group ID (S…) from a user ID (U… or W…).
func isGroup(id string) bool { return strings.HasPrefix(id, "S") }
