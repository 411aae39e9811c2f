package refresh

import (
	"context"
	"errors"
	"slices"

	"github.com/greenlight/greenlight/deployer"
)

// SelectPrune returns the golden images to delete, newest first: every
// golden image but the newest keep (by Created; keep is at least 1), except
// those inUse names by ID or label. Images that are not golden are never
// selected.
func SelectPrune(images []deployer.Image, keep int, inUse []string) []deployer.Image {
	keep = max(keep, 1)
	var golden []deployer.Image
	for _, im := range images {
		if im.Golden {
			golden = append(golden, im)
		}
	}
	// Stable, so images created at the same time keep the lister's
	// newest-first order.
	slices.SortStableFunc(golden, func(a, b deployer.Image) int { return b.Created.Compare(a.Created) })
	if len(golden) <= keep {
		return nil
	}
	var out []deployer.Image
	for _, im := range golden[keep:] {
		if slices.Contains(inUse, im.ID) || (im.Label != "" && slices.Contains(inUse, im.Label)) {
			continue
		}
		out = append(out, im)
	}
	return out
}

// prune deletes the service's old golden images. It deletes nothing when it
// cannot tell which images are in use. The error says what was not deleted
// and why; the images returned were deleted.
func (r *Refresher) prune(ctx context.Context, job Job) ([]deployer.Image, error) {
	images, err := r.images.Images(ctx, job.Service)
	if err != nil {
		return nil, deployer.Wrapf(err, "did not prune old images: cannot list the images of %s", job.Service)
	}
	inUse, err := r.deploys.InUse(ctx, job.Service)
	if err != nil {
		return nil, deployer.Wrapf(err, "did not prune old images: cannot tell which images %s uses", job.Service)
	}
	var deleted []deployer.Image
	var errs []error
	for _, im := range SelectPrune(images, job.keep(), inUse) {
		if err := r.baker.DeleteImage(ctx, im.ID); err != nil {
			errs = append(errs, deployer.Wrapf(err, "could not delete old image %s (%s)", im.ID, im.Label))
			continue
		}
		r.log.Info("old image deleted", "service", job.Service, "image", im.ID, "label", im.Label)
		deleted = append(deleted, im)
	}
	return deleted, errors.Join(errs...)
}
