package deployer

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// ZoneFile is one zone file a deploy ships, as recorded with the deployment.
type ZoneFile struct {
	Zone   string `json:"zone"`   // "example.test."
	File   string `json:"file"`   // its file name in the zones directory
	Serial uint32 `json:"serial"` // the SOA serial the file carries
	Digest string `json:"digest"` // sha256 of the file's bytes, hex
	Size   int    `json:"size"`
}

// ZoneContent is the zone content a deploy ships: every file and one digest
// over all of them, so two deploys that ship the same bytes say so.
type ZoneContent struct {
	Digest string     `json:"digest"` // "sha256:…" over every zone's name, file name and bytes
	Files  []ZoneFile `json:"files"`
}

// Short is the digest as people read it: "sha256:1a2b3c4d5e6f".
func (z ZoneContent) Short() string {
	if len(z.Digest) > len("sha256:")+12 {
		return z.Digest[:len("sha256:")+12]
	}
	return z.Digest
}

// Serials are the SOA serials per zone.
func (z ZoneContent) Serials() map[string]uint32 {
	out := make(map[string]uint32, len(z.Files))
	for _, f := range z.Files {
		out[f.Zone] = f.Serial
	}
	return out
}

// Summary is one line for the checklist: "zones sha256:1a2b3c4d5e6f · example.test. 2026110102".
func (z ZoneContent) Summary() string {
	parts := make([]string, 0, len(z.Files))
	for _, f := range z.Files {
		parts = append(parts, fmt.Sprintf("%s %d", f.Zone, f.Serial))
	}
	return "zones " + z.Short() + " · " + strings.Join(parts, ", ")
}

// Clone returns a deep copy.
func (z *ZoneContent) Clone() *ZoneContent {
	if z == nil {
		return nil
	}
	c := *z
	c.Files = slices.Clone(z.Files)
	return &c
}

// ZoneSource reads and validates the zone files a service's deploys ship
// (a zones directory). Load refuses files that do not parse, lack a SOA or
// do not match the service's zones.
type ZoneSource interface {
	Load(ctx context.Context) (ZoneContent, error)
}

// ZoneSourceFunc adapts a function to a ZoneSource.
type ZoneSourceFunc func(ctx context.Context) (ZoneContent, error)

// Load calls f.
func (f ZoneSourceFunc) Load(ctx context.Context) (ZoneContent, error) { return f(ctx) }

// SerialGrew reports whether serial next follows prev in RFC 1982 serial
// number arithmetic, which is how secondaries decide to transfer a zone.
func SerialGrew(prev, next uint32) bool {
	d := next - prev
	return d != 0 && d < 1<<31
}

// CheckSerials refuses zone content whose files changed while their SOA
// serial did not grow: secondaries compare serials, so they would keep the
// old content. prev is the content the live set serves (nil: nothing to
// compare with).
func CheckSerials(prev *ZoneContent, next ZoneContent) error {
	if prev == nil {
		return nil
	}
	old := map[string]ZoneFile{}
	for _, f := range prev.Files {
		old[f.Zone] = f
	}
	var problems []string
	for _, f := range next.Files {
		o, ok := old[f.Zone]
		if !ok || o.Digest == f.Digest || SerialGrew(o.Serial, f.Serial) {
			continue
		}
		zone := strings.TrimSuffix(f.Zone, ".")
		if o.Serial == f.Serial {
			problems = append(problems, fmt.Sprintf("%s changed but its serial %d did not grow: secondaries would never pick it up", zone, f.Serial))
		} else {
			problems = append(problems, fmt.Sprintf("%s changed but its serial went from %d to %d, which secondaries read as older: they would never pick it up", zone, o.Serial, f.Serial))
		}
	}
	if len(problems) > 0 {
		return Errorf(CodeInvalid, "%s (raise the SOA serial, or deploy with --allow-same-serial if that is meant)", strings.Join(problems, "; "))
	}
	return nil
}

// planZones reads the service's zones source, when it has one, and checks
// that every changed zone's serial grew since the deploy that made the
// live set (unless opts allow the same serial). It returns the content and
// a line for the checklist.
func (dep *Deployer) planZones(ctx context.Context, svc *Service, live ServiceState, opts Options) (*ZoneContent, string, error) {
	if svc.Zones == nil {
		return nil, "", nil
	}
	content, err := svc.Zones.Load(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("the zone files of %s: %w", svc.Name, err)
	}
	var prev *ZoneContent
	if live.DeployID != 0 {
		d, err := dep.store.Deployment(live.DeployID)
		if err != nil {
			return nil, "", fmt.Errorf("read deploy #%d, which made the live set: %w", live.DeployID, err)
		}
		prev = d.Zones
	}
	line := content.Summary()
	if prev != nil && prev.Digest == content.Digest {
		line += " (unchanged)"
	}
	if err := CheckSerials(prev, content); err != nil {
		if !opts.AllowSameSerial {
			return nil, "", err
		}
		line += " · same serial allowed by --allow-same-serial"
	}
	return &content, line, nil
}

// RegionPrice is what a set's servers in one region cost, in US dollars.
type RegionPrice struct {
	Region  string
	Servers int
	Hourly  float64
	Monthly float64
}

// RegionPricer is a Pricer whose servers may run in several regions; a dry
// run shows each region's price.
type RegionPricer interface {
	PriceByRegion(ctx context.Context, count int) ([]RegionPrice, error)
}

// regionPrices is the dry run's per-region price, when the set spans
// several regions: " (us-east: 1 server $0.008/hour · eu-central: …)".
func regionPrices(ctx context.Context, cloud Cloud, count int) string {
	rp, ok := cloud.(RegionPricer)
	if !ok {
		return ""
	}
	prices, err := rp.PriceByRegion(ctx, count)
	if err != nil || len(prices) < 2 {
		return ""
	}
	parts := make([]string, len(prices))
	for i, p := range prices {
		parts[i] = fmt.Sprintf("%s: %d × $%.4f/hour, $%.2f/month", p.Region, p.Servers, p.Hourly/float64(max(p.Servers, 1)), p.Monthly)
	}
	return " (" + strings.Join(parts, " · ") + ")"
}

// imageZones is what a golden image's description says of the zone files
// baked into it (" · image carries zones sha256:…"), or "".
func imageZones(image Image) string {
	_, rest, ok := strings.Cut(image.Description, "zones sha256:")
	if !ok {
		return ""
	}
	digest, _, _ := strings.Cut(rest, " ")
	return " · image carries zones " + (ZoneContent{Digest: "sha256:" + digest}).Short()
}
