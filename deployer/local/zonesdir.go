package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/zones"
)

// zonesDirName is where, inside Options.Dir, each server's copy of the
// zone files it was created with is kept.
const zonesDirName = "zones"

// zoneFileRecord names one zone file of a server's copy.
type zoneFileRecord struct {
	Zone string `json:"zone"`
	File string `json:"file"`
}

// ShipZones makes service's servers serve the files of a zones directory
// instead of the built-in zone templates: each server created from now on
// gets a copy of the files as they are when it is created (the deploy's
// recorded digest must still match), kept while the server lives, so a
// restart serves the same content.
func (c *Cloud) ShipZones(service string, opts zones.Options) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shipped == nil {
		c.shipped = map[string]zones.Options{}
	}
	c.shipped[service] = opts
}

// ZoneSource is the deployer.ZoneSource of a service given to ShipZones.
func (c *Cloud) ZoneSource(service string) deployer.ZoneSource {
	return deployer.ZoneSourceFunc(func(ctx context.Context) (deployer.ZoneContent, error) {
		c.mu.Lock()
		opts, ok := c.shipped[service]
		c.mu.Unlock()
		if !ok {
			return deployer.ZoneContent{}, deployer.Errorf(deployer.CodeInvalid, "%s has no zones directory", service)
		}
		set, err := zones.Load(ctx, opts)
		if err != nil {
			return deployer.ZoneContent{}, err
		}
		return set.Content, nil
	})
}

// copyZones reads the service's zones directory and copies it for the
// server with id; nil when the service ships no zones. A digest that is not
// the one the deploy recorded refuses the copy. c.mu is held.
func (c *Cloud) copyZones(ctx context.Context, spec deployer.ServerSpec, id string) ([]zoneFileRecord, error) {
	opts, ok := c.shipped[spec.Service]
	if !ok {
		return nil, nil
	}
	set, err := zones.Load(ctx, opts)
	if err != nil {
		return nil, err
	}
	if spec.Zones != nil && spec.Zones.Digest != set.Content.Digest {
		return nil, deployer.Errorf(deployer.CodeConflict,
			"the zone files changed after deploy #%d was planned (%s, now %s): deploy again to ship the new ones",
			spec.DeployID, spec.Zones.Short(), set.Content.Short())
	}
	dir := filepath.Join(c.dir, zonesDirName, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var out []zoneFileRecord
	for _, f := range set.Files {
		if err := os.WriteFile(filepath.Join(dir, f.File), f.Content, 0o600); err != nil {
			return nil, err
		}
		out = append(out, zoneFileRecord{Zone: f.Zone, File: f.File})
	}
	return out, nil
}

// shippedContent parses the copy of the zone files rec was created with.
func (c *Cloud) shippedContent(rec *serverRecord) (*content, error) {
	ct := &content{}
	for _, f := range rec.ZoneFiles {
		if f.File != filepath.Base(f.File) {
			return nil, fmt.Errorf("%s: bad zone file name %q in the inventory", rec.Name, f.File)
		}
		data, err := os.ReadFile(filepath.Join(c.dir, zonesDirName, rec.ID, f.File))
		if err != nil {
			return nil, fmt.Errorf("%s's zone files: %w", rec.Name, err)
		}
		z, err := parseZone(f.Zone, bytes.NewReader(data), f.File)
		if err != nil {
			return nil, err
		}
		ct.zones = append(ct.zones, z)
	}
	return ct, nil
}

// removeZones deletes the copy of a deleted server's zone files.
func (c *Cloud) removeZones(id string) {
	if err := os.RemoveAll(filepath.Join(c.dir, zonesDirName, id)); err != nil {
		c.log.Warn("could not remove a deleted server's zone files", "id", id, "err", err)
	}
}
