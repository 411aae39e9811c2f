package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// InventoryFile is the name of the inventory inside Options.Dir.
const InventoryFile = "local-cloud.json"

// inventoryVersion is the schema version written to the file.
const inventoryVersion = 1

// Server statuses, in the cloud's words.
const (
	statusProvisioning = "provisioning"
	statusRunning      = "running"
	statusFailed       = "failed"
)

// inventory is everything the local cloud remembers across restarts.
type inventory struct {
	Version int                      `json:"version"`
	LastID  uint64                   `json:"last_id"`
	Images  map[string][]imageRecord `json:"images"` // by service, oldest first
	Servers []serverRecord           `json:"servers"`
}

// serverRecord is a server as the inventory keeps it.
type serverRecord struct {
	deployer.Server
	Service     string    `json:"service,omitempty"`
	DeployID    uint64    `json:"deploy_id,omitempty"`
	Provisioned bool      `json:"provisioned,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	// ZoneFiles are the zone files the server was created with (a service
	// with a zones directory), copied under Dir/zones/<ID>.
	ZoneFiles []zoneFileRecord `json:"zone_files,omitempty"`
}

// server is a copy safe to hand out.
func (r *serverRecord) server() deployer.Server {
	s := r.Server
	s.Tags = slices.Clone(r.Tags)
	return s
}

// loadInventory reads the inventory at path; a missing file is an empty one.
func loadInventory(path string) (inventory, error) {
	inv := inventory{Version: inventoryVersion, Images: map[string][]imageRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return inv, nil
	}
	if err != nil {
		return inv, fmt.Errorf("read local cloud inventory: %w", err)
	}
	if err := json.Unmarshal(b, &inv); err != nil {
		return inv, fmt.Errorf("read local cloud inventory %s: %w", path, err)
	}
	if inv.Version != inventoryVersion {
		return inv, fmt.Errorf("local cloud inventory %s has version %d; this greenlight reads version %d", path, inv.Version, inventoryVersion)
	}
	if inv.Images == nil {
		inv.Images = map[string][]imageRecord{}
	}
	return inv, nil
}

// encode is the inventory as the file holds it.
func (inv *inventory) encode() ([]byte, error) {
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("save local cloud inventory: %w", err)
	}
	return append(b, '\n'), nil
}

// writeInventory writes b to path atomically: a temporary file in the same
// directory, synced, then renamed over the old one. The file is mode 0600.
func writeInventory(path string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save local cloud inventory: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("save local cloud inventory: %w", err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
