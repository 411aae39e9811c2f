package dnscheck

import (
	"context"

	"github.com/greenlight/greenlight/deployer"
)

// Comparer returns c's zone comparison, with opts, in the deployer's terms:
// each ZoneComparison becomes the deployer.ZoneDiff a deployment keeps.
func (c *Checker) Comparer(opts CompareOptions) deployer.ZoneComparer {
	return deployer.ZoneComparerFunc(func(ctx context.Context, live deployer.CheckTarget, next []deployer.CheckTarget, zones []string) ([]deployer.ZoneDiff, error) {
		diffs, err := c.CompareZones(ctx, live, next, zones, opts)
		out := make([]deployer.ZoneDiff, len(diffs))
		for i, d := range diffs {
			out[i] = deployer.ZoneDiff{
				Zone: d.Zone, OldSerial: d.OldSerial, NewSerial: d.NewSerial,
				Summary: d.Summary(), Lines: d.Lines(),
				Added: len(d.Added), Removed: len(d.Removed), Changed: len(d.Changed),
				LiveRRsets: d.LiveRRsets, UpdatedPct: d.UpdatedPct(), DeletedPct: d.DeletedPct(),
				Method: d.Method,
			}
		}
		return out, err
	})
}
