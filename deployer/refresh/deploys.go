package refresh

import (
	"context"
	"slices"

	"github.com/greenlight/greenlight/deployer"
)

// Requester is who auto_deploy's deploys are requested by.
const Requester = "greenlight (scheduled refresh)"

// DeployRequest asks for a deploy of a freshly baked image.
type DeployRequest struct {
	Service   string
	Image     string
	Requester string
	Reason    string
	Channel   string // where the deploy's messages go; "" = the default channel
}

// Deploys is what a refresh needs of the deployer: which images a service
// uses, so pruning spares them, and starting a deploy of a new image.
type Deploys interface {
	// InUse lists the images (IDs or labels) the live set, the rollback set
	// and any deploy in flight of service are built from.
	InUse(ctx context.Context, service string) ([]string, error)
	// Deploy starts a deploy and returns its ID, or says why none started.
	Deploy(ctx context.Context, req DeployRequest) (uint64, error)
}

// FromDeployer adapts a Deployer to Deploys.
func FromDeployer(d *deployer.Deployer) Deploys { return deployerDeploys{d} }

type deployerDeploys struct{ d *deployer.Deployer }

func (a deployerDeploys) InUse(ctx context.Context, service string) ([]string, error) {
	st, err := a.d.Status(ctx, service)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(ids ...string) {
		for _, id := range ids {
			if id != "" && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	addServers := func(servers []deployer.Server) {
		for _, s := range servers {
			add(s.Image)
		}
	}
	add(st.Live.Image)
	addServers(st.Live.Servers)
	if d := st.Active; d != nil {
		// Old is the rollback set once traffic moved; Next and the requested
		// image are what the deploy builds, before plan names ImageNew.
		add(d.ImageOld, d.ImageNew, d.Options.Image)
		addServers(d.Old)
		addServers(d.Next)
	}
	return out, nil
}

func (a deployerDeploys) Deploy(ctx context.Context, req DeployRequest) (uint64, error) {
	r := deployer.Request{
		Service: req.Service,
		User:    req.Requester,
		Reason:  req.Reason,
		Options: deployer.Options{Image: req.Image},
	}
	if req.Channel != "" {
		r.Refs = map[string]string{deployer.RefChannel: req.Channel}
	}
	d, err := a.d.Deploy(ctx, r)
	if err != nil {
		return 0, err
	}
	return d.ID, nil
}
