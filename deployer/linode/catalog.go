package linode

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

// GoldenInfix marks a baked image: "<service>-golden-<version>".
const GoldenInfix = "-golden-"

// Images lists the images a deploy of service may use, newest first: the
// account's private images, except other services' golden ones, and the
// base image (Options.Image). Private images labelled
// "<service>-golden-…" that are available are Golden.
func (c *Cloud) Images(ctx context.Context, service string) ([]deployer.Image, error) {
	if service == "" {
		return nil, deployer.Errorf(deployer.CodeInvalid, "which service's images? the service name is empty")
	}
	var f linodego.Filter
	f.AddField(linodego.Eq, "is_public", false)
	filter, err := f.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var list []linodego.Image
	err = c.call(ctx, operation{what: "list the images of " + service}, func(ctx context.Context) error {
		var err error
		list, err = c.client.ListImages(ctx, &linodego.ListOptions{Filter: string(filter)})
		return err
	})
	if err != nil {
		return nil, err
	}
	prefix := service + GoldenInfix
	var out []deployer.Image
	for i := range list {
		im := &list[i]
		mine := strings.HasPrefix(im.Label, prefix)
		if im.IsPublic || (!mine && strings.Contains(im.Label, GoldenInfix)) {
			continue
		}
		out = append(out, image(im, mine && im.Status == linodego.ImageStatusAvailable))
	}
	if base := c.opts.Image; base != "" && !slices.ContainsFunc(out, func(im deployer.Image) bool { return im.ID == base }) {
		var got *linodego.Image
		op := operation{what: "look up the base image " + base, values: map[string]string{"image": base}}
		err := c.call(ctx, op, func(ctx context.Context) error {
			var err error
			got, err = c.client.GetImage(ctx, base)
			if linodego.IsNotFound(err) {
				got, err = nil, nil
			}
			return err
		})
		switch {
		case err != nil:
			return nil, err
		case got == nil:
			c.log.Warn("the configured base image does not exist on Linode", "image", base)
		default:
			out = append(out, image(got, false))
		}
	}
	slices.SortStableFunc(out, func(a, b deployer.Image) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out, nil
}

func image(im *linodego.Image, golden bool) deployer.Image {
	out := deployer.Image{ID: im.ID, Label: im.Label, Description: im.Description, Golden: golden}
	if im.Created != nil {
		out.Created = im.Created.UTC()
	}
	if im.Status != "" && im.Status != linodego.ImageStatusAvailable {
		out.Description = strings.TrimSpace(out.Description + " (" + strings.ReplaceAll(string(im.Status), "_", " ") + ")")
	}
	return out
}

// Price is what count servers cost, in US dollars: each server at the
// price of its region (Linode prices some regions differently), servers
// of roles without a region of their own at the default region's.
func (c *Cloud) Price(ctx context.Context, count int) (hourly, monthly float64, err error) {
	prices, err := c.PriceByRegion(ctx, count)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range prices {
		hourly += p.Hourly
		monthly += p.Monthly
	}
	return round(hourly), round(monthly), nil
}

// PriceByRegion is what count servers cost in each region they run in.
func (c *Cloud) PriceByRegion(ctx context.Context, count int) ([]deployer.RegionPrice, error) {
	var t *linodego.LinodeType
	op := operation{what: "look up the price of type " + c.opts.Type, values: map[string]string{"type": c.opts.Type}}
	err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		t, err = c.client.GetType(ctx, c.opts.Type)
		if linodego.IsNotFound(err) {
			return &deployer.Error{Code: deployer.CodeNotFound, Message: fmt.Sprintf("Linode has no instance type %s", c.opts.Type), Err: err}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []deployer.RegionPrice
	for region, n := range c.serverRegions(count) {
		var h, m float32
		if t.Price != nil {
			h, m = t.Price.Hourly, t.Price.Monthly
		}
		for _, rp := range t.RegionPrices {
			if rp.ID == region {
				h, m = rp.Hourly, rp.Monthly
			}
		}
		if h == 0 && m == 0 {
			return nil, deployer.Errorf(deployer.CodeFailed, "Linode gave no price for type %s in %s", c.opts.Type, region)
		}
		out = append(out, deployer.RegionPrice{Region: region, Servers: n,
			Hourly: round(float64(n) * decimal(h)), Monthly: round(float64(n) * decimal(m))})
	}
	slices.SortFunc(out, func(a, b deployer.RegionPrice) int { return strings.Compare(a.Region, b.Region) })
	return out, nil
}

// serverRegions counts count servers per region: one for each role with
// a region of its own (in role order), the rest in the default region.
func (c *Cloud) serverRegions(count int) map[string]int {
	out := map[string]int{}
	for _, role := range slices.Sorted(maps.Keys(c.opts.Regions)) {
		if count == 0 {
			break
		}
		out[c.RegionOf(role)]++
		count--
	}
	if count > 0 {
		out[c.opts.Region] += count
	}
	return out
}

// decimal is the float64 nearest the decimal a float32 price was written
// as (0.0075, not 0.007499999832361937).
func decimal(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}

// round drops the binary noise of a product: prices have at most 4 decimals.
func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 6, 64), 64)
	return v
}
