package local

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// baseSerial is the SOA serial of version 0; version N serves baseSerial+N.
const baseSerial = 2026110100

// serialFor is the SOA serial an image of version v serves.
func serialFor(v int) uint32 { return uint32(baseSerial + v) }

// imageKind says how servers built from an image behave.
type imageKind string

const (
	kindGolden imageKind = "golden" // serves the zones of its version
	kindBroken imageKind = "broken" // answers SERVFAIL to everything
	kindStale  imageKind = "stale"  // serves the zones with version 0's serial, lower than v1's
)

// imageRecord is an image as the inventory keeps it.
type imageRecord struct {
	deployer.Image
	Service string    `json:"service"`
	Version int       `json:"version"` // the zone version it serves
	Kind    imageKind `json:"kind"`
}

func imageID(service, suffix string) string { return "local/" + service + "-" + suffix }

// seedImages returns the images every service starts with, oldest first:
// the two test images, then golden v1 and v2. Their creation times follow
// the same order, a minute apart, so "newest" means the same by time as by
// list order.
func seedImages(service string, now time.Time) []imageRecord {
	return []imageRecord{
		{
			Image: deployer.Image{
				ID: imageID(service, "stale"), Label: service + "-stale", Created: now.Add(-4 * time.Minute),
				Description: fmt.Sprintf("test image: serves the zones with serial %d, older than v1's", serialFor(0)),
			},
			Service: service, Version: 0, Kind: kindStale,
		},
		{
			Image: deployer.Image{
				ID: imageID(service, "broken"), Label: service + "-broken", Created: now.Add(-3 * time.Minute),
				Description: "test image: answers SERVFAIL to every query",
			},
			Service: service, Version: 0, Kind: kindBroken,
		},
		goldenImage(service, 1, now.Add(-2*time.Minute)),
		goldenImage(service, 2, now.Add(-time.Minute)),
	}
}

func goldenImage(service string, v int, now time.Time) imageRecord {
	return imageRecord{
		Image: deployer.Image{
			ID:          imageID(service, "v"+strconv.Itoa(v)),
			Label:       service + "-golden-v" + strconv.Itoa(v),
			Description: fmt.Sprintf("golden image v%d: zone serial %d", v, serialFor(v)),
			Created:     now,
			Golden:      true,
		},
		Service: service, Version: v, Kind: kindGolden,
	}
}

// nextGolden is the version the next baked image gets.
func nextGolden(images []imageRecord) int {
	v := 0
	for _, im := range images {
		if im.Kind == kindGolden {
			v = max(v, im.Version)
		}
	}
	return v + 1
}

// newestFirst returns the images as Images lists them.
func newestFirst(images []imageRecord) []deployer.Image {
	out := make([]deployer.Image, 0, len(images))
	for _, im := range slices.Backward(images) {
		out = append(out, im.Image)
	}
	return out
}

// unknownImage is the chat's answer to an image that does not exist:
// `image "local/ns-v9" does not exist; images: local/ns-v2, local/ns-v1; test images: ...`.
func unknownImage(id string, images []imageRecord) error {
	var golden, test []string
	for _, im := range slices.Backward(images) {
		if im.Golden {
			golden = append(golden, im.ID)
		} else {
			test = append(test, im.ID)
		}
	}
	msg := fmt.Sprintf("image %q does not exist", id)
	if len(golden) > 0 {
		msg += "; images: " + strings.Join(golden, ", ")
	}
	if len(test) > 0 {
		msg += "; test images: " + strings.Join(test, ", ")
	}
	return deployer.Errorf(deployer.CodeInvalid, "%s", msg)
}
