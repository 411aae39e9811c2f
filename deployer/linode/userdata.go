package linode

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"text/template"

	"github.com/greenlight/greenlight/deployer"
)

// UserDataVars are what a cloud-init template may use.
type UserDataVars struct {
	Name, Role, Service, Image string
	DeployID                   uint64
	Zones                      []string
}

// UserDataTemplate parses a cloud-init template (configs/cloud-init/nsd.yaml)
// and returns the Options.UserData function that renders it for each server.
// A template that does not parse, or does not render for a sample server,
// is an error at start-up rather than at the next deploy.
func UserDataTemplate(name, src string, zones []string) (func(context.Context, deployer.ServerSpec) ([]byte, error), error) {
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("cloud-init template %s: %w", name, err)
	}
	render := func(_ context.Context, spec deployer.ServerSpec) ([]byte, error) {
		var b bytes.Buffer
		vars := UserDataVars{Name: spec.Name, Role: spec.Role, Service: spec.Service, Image: spec.Image, DeployID: spec.DeployID, Zones: slices.Clone(zones)}
		if err := t.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("render cloud-init for %s: %w", spec.Name, err)
		}
		if !bytes.HasPrefix(b.Bytes(), []byte("#cloud-config")) {
			return nil, fmt.Errorf("cloud-init for %s does not start with #cloud-config", spec.Name)
		}
		return b.Bytes(), nil
	}
	if _, err := render(context.Background(), deployer.ServerSpec{Name: "ns1-1", Role: "ns1", Service: "ns", Image: "linode/debian12", DeployID: 1}); err != nil {
		return nil, err
	}
	return render, nil
}
