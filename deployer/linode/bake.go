package linode

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

var _ deployer.Baker = (*Cloud)(nil)

// BakeTagPrefix marks an image builder ("bake:20261123-0400"). Builders carry
// no "deploy:" tag: a bake deletes its builder itself, and a reconciler that
// finds one left behind knows it by this tag.
const BakeTagPrefix = deployer.BakeTagPrefix

// Defaults for the bake's Options.
const (
	DefaultBakeTimeout  = 30 * time.Minute
	DefaultImageTimeout = 30 * time.Minute
)

// cleanupTimeout bounds deleting what a bake made, on a context of its own:
// the bake's may already have ended.
const cleanupTimeout = 5 * time.Minute

// maxLabel is the longest instance label Linode accepts.
const maxLabel = 64

// Bake bakes a golden image: it boots a builder instance from
// spec.BaseImage with spec.UserData as its cloud-init, waits until the
// builder has run and powered itself off (at most Options.BakeTimeout),
// makes an image of its boot disk labelled spec.Label and waits until
// Linode says it is available (at most Options.ImageTimeout). The builder
// is deleted whatever happens; so is the image when the bake fails after
// Linode began making it.
func (c *Cloud) Bake(ctx context.Context, spec deployer.BakeSpec) (deployer.Image, error) {
	var missing []string
	if spec.Service == "" {
		missing = append(missing, "a service")
	}
	if spec.BaseImage == "" {
		missing = append(missing, "a base image")
	}
	if spec.Label == "" {
		missing = append(missing, "an image label")
	}
	if len(spec.UserData) == 0 {
		missing = append(missing, "cloud-init user data that powers the builder off")
	}
	if len(missing) > 0 {
		return deployer.Image{}, deployer.Errorf(deployer.CodeInvalid, "a bake needs %s", strings.Join(missing, ", "))
	}
	buildID := spec.BuildID
	if buildID == "" {
		buildID = c.clock.Now().UTC().Format("20060102-150405")
	}
	b := &bake{
		c: c, spec: spec,
		label: builderLabel(spec.Service, buildID),
		tag:   BakeTagPrefix + buildID,
		phase: "before its builder was created",
	}
	b.log = c.log.With("service", spec.Service, "build", buildID, "builder", b.label, "image_label", spec.Label)
	b.log.Info("bake started", "base", spec.BaseImage)
	start := c.clock.Now()

	img, err := b.run(ctx)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	imageGone := false
	var cleanupErrs []error
	if err != nil && b.imageID != "" {
		if derr := c.DeleteImage(cctx, b.imageID); derr != nil {
			cleanupErrs = append(cleanupErrs, derr)
		} else {
			imageGone = true
		}
	}
	builderGone, derr := b.deleteBuilder(cctx)
	if derr != nil {
		cleanupErrs = append(cleanupErrs, derr)
	}

	if err == nil {
		if derr != nil {
			// The image is good; the builder left behind carries the bake tag
			// for the reconciler, and the log says which one it is.
			b.log.Error("bake done, but its builder could not be deleted", "id", b.builderID, "err", derr)
		}
		b.log.Info("bake done", "image", img.ID, "took", roughly(c.clock.Now().Sub(start)))
		return img, nil
	}
	return deployer.Image{}, b.failed(ctx, err, builderGone, imageGone, errors.Join(cleanupErrs...))
}

// bake is one run of Bake.
type bake struct {
	c     *Cloud
	spec  deployer.BakeSpec
	label string // the builder's
	tag   string // "bake:<build ID>"
	log   *slog.Logger

	posted    bool // a create request was sent: a builder may exist
	builderID int
	ran       bool   // the builder was seen running
	imageID   string // set once Linode is making the image
	phase     string // where the bake is, for a stopped bake's message
}

func (b *bake) run(ctx context.Context) (deployer.Image, error) {
	c := b.c
	// A label Linode already has would give two images of one name: refuse
	// before spending a build on it.
	im, err := c.imageByLabel(ctx, b.spec.Label)
	if err != nil {
		return deployer.Image{}, err
	}
	if im != nil {
		return deployer.Image{}, deployer.Errorf(deployer.CodeConflict,
			"Linode already has an image labelled %s (%s); delete it, or bake again with another build ID", b.spec.Label, im.ID)
	}

	if err := b.createBuilder(ctx); err != nil {
		return deployer.Image{}, err
	}
	b.phase = "while its builder " + b.label + " was building"
	if err := b.waitPoweredOff(ctx); err != nil {
		return deployer.Image{}, err
	}

	disk, err := b.bootDisk(ctx)
	if err != nil {
		return deployer.Image{}, err
	}
	b.phase = "while Linode was making the image"
	got, err := b.createImage(ctx, disk)
	if err != nil {
		return deployer.Image{}, err
	}
	got, err = b.waitAvailable(ctx, got)
	if err != nil {
		return deployer.Image{}, err
	}
	if regions := c.Regions(); len(regions) > 1 {
		b.phase = "while Linode was replicating the image"
		if got, err = b.replicate(ctx, got, regions); err != nil {
			return deployer.Image{}, err
		}
	}
	return image(got, true), nil
}

// replicate puts the image in every region the service's servers run in
// (an image lives in the region it was made in) and waits until it is
// available in each.
func (b *bake) replicate(ctx context.Context, im *linodego.Image, regions []string) (*linodego.Image, error) {
	c := b.c
	id := im.ID
	op := operation{what: "replicate the image " + b.spec.Label + " to " + strings.Join(regions, ", "),
		values: map[string]string{"image": id, "regions": strings.Join(regions, ", ")}}
	err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		im, err = c.client.ReplicateImage(ctx, id, linodego.ImageReplicateOptions{Regions: regions})
		return err
	})
	if err != nil {
		return nil, err
	}
	timeout := cmpOr(c.opts.ImageTimeout, DefaultImageTimeout)
	var pending []string
	timedOut, err := c.poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		err := c.call(ctx, op, func(ctx context.Context) error {
			cur, err := c.client.GetImage(ctx, id)
			if err == nil {
				im = cur
			}
			return err
		})
		if err != nil {
			return false, err
		}
		pending = pending[:0]
		for _, r := range regions {
			if !slices.ContainsFunc(im.Regions, func(ir linodego.ImageRegion) bool {
				return ir.Region == r && ir.Status == linodego.ImageRegionStatusAvailable
			}) {
				pending = append(pending, r)
			}
		}
		return len(pending) == 0, nil
	})
	switch {
	case err != nil:
		return nil, err
	case timedOut:
		return nil, deployer.Errorf(deployer.CodeFailed, "Linode did not replicate the image %s to %s within %s",
			b.spec.Label, strings.Join(pending, ", "), human(timeout))
	}
	b.log.Info("image replicated", "image", id, "regions", regions)
	return im, nil
}

// builderLabel is "<service>-build-<build ID>", made into a valid Linode
// label: letters, digits and single '-', '_' or '.' between them, at most
// 64 characters.
func builderLabel(service, buildID string) string {
	var sb strings.Builder
	punct := true // drops leading punctuation
	for _, r := range service + "-build-" + buildID {
		isAlnum := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		switch {
		case isAlnum:
			sb.WriteRune(r)
			punct = false
		case !punct:
			if r == '_' || r == '.' {
				sb.WriteRune(r)
			} else {
				sb.WriteByte('-')
			}
			punct = true
		}
	}
	s := sb.String()
	if len(s) > maxLabel {
		s = s[:maxLabel]
	}
	return strings.TrimRight(s, "-_.")
}

// createBuilder creates the builder instance. An instance of its label
// that a lost answer left behind is taken as the builder; one that was
// there before is a conflict.
func (b *bake) createBuilder(ctx context.Context) error {
	c := b.c
	tags := []string{deployer.TagGreenlight, deployer.ServiceTag(b.spec.Service), b.tag}
	for _, t := range c.opts.Tags {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	create := linodego.InstanceCreateOptions{
		Region:         c.opts.Region,
		Type:           c.opts.Type,
		Label:          b.label,
		Image:          b.spec.BaseImage,
		AuthorizedKeys: slices.Clone(c.opts.AuthorizedKeys),
		Tags:           tags,
		FirewallID:     c.opts.FirewallID,
		Metadata:       &linodego.InstanceMetadataOptions{UserData: base64.StdEncoding.EncodeToString(b.spec.UserData)},
		RootPass:       rootPassword(),
	}
	op := operation{what: "create the image builder " + b.label, values: map[string]string{
		"label": b.label, "region": c.opts.Region, "type": c.opts.Type, "image": b.spec.BaseImage,
		"tags": strings.Join(tags, ", "), "firewall_id": strconv.Itoa(c.opts.FirewallID),
	}}
	var got *linodego.Instance
	err := c.call(ctx, op, func(ctx context.Context) error {
		in, err := c.findByLabel(ctx, b.label)
		if err != nil {
			return err
		}
		if in != nil {
			if !b.posted || !slices.Contains(in.Tags, b.tag) {
				return deployer.Errorf(deployer.CodeConflict,
					"Linode already has an instance labelled %s (id %d); delete it, or bake again with another build ID",
					b.label, in.ID)
			}
			got = in
			return nil
		}
		b.posted = true
		got, err = c.client.CreateInstance(ctx, create)
		return err
	})
	if err != nil {
		return err
	}
	b.builderID = got.ID
	b.log.Info("image builder created", "id", got.ID, "base", b.spec.BaseImage, "type", c.opts.Type, "tags", tags)
	return nil
}

// waitPoweredOff polls the builder until it has run and powered itself off.
func (b *bake) waitPoweredOff(ctx context.Context) error {
	c := b.c
	s := deployer.Server{ID: strconv.Itoa(b.builderID), Name: b.label}
	op := operation{what: "check on the image builder " + b.label, values: map[string]string{"label": b.label}}
	last := ""
	timeout := cmpOr(c.opts.BakeTimeout, DefaultBakeTimeout)
	timedOut, err := c.poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		in, err := c.instance(ctx, s, op)
		if err != nil {
			return false, err
		}
		if in == nil {
			return false, deployer.Errorf(deployer.CodeFailed, "the builder %s disappeared from Linode while it was building", b.label)
		}
		if string(in.Status) != last {
			last = string(in.Status)
			b.log.Info("image builder status", "id", in.ID, "status", last)
		}
		switch in.Status {
		case linodego.InstanceRunning, linodego.InstanceShuttingDown:
			b.ran = true
		case linodego.InstanceOffline:
			if b.ran {
				return true, nil
			}
			return false, deployer.Errorf(deployer.CodeFailed,
				"the builder %s went offline before greenlight saw it running: it may have failed to boot %s",
				b.label, b.spec.BaseImage)
		case linodego.InstanceDeleting:
			return false, deployer.Errorf(deployer.CodeFailed, "the builder %s is being deleted by someone else", b.label)
		}
		return false, nil
	})
	switch {
	case err != nil:
		return err
	case timedOut && b.ran:
		return deployer.Errorf(deployer.CodeFailed, "the builder %s did not power off within %s: cloud-init may have failed",
			b.label, human(timeout))
	case timedOut:
		return deployer.Errorf(deployer.CodeFailed, "the builder %s did not start within %s (Linode still says %s)",
			b.label, human(timeout), words(last))
	}
	b.log.Info("image builder powered off", "id", b.builderID)
	return nil
}

// bootDisk is the builder's ext4 disk (its other disk is swap); the largest
// if there are several.
func (b *bake) bootDisk(ctx context.Context) (linodego.InstanceDisk, error) {
	var disks []linodego.InstanceDisk
	op := operation{what: "list the disks of the image builder " + b.label}
	err := b.c.call(ctx, op, func(ctx context.Context) error {
		var err error
		disks, err = b.c.client.ListInstanceDisks(ctx, b.builderID, nil)
		return err
	})
	if err != nil {
		return linodego.InstanceDisk{}, err
	}
	var boot *linodego.InstanceDisk
	for i := range disks {
		d := &disks[i]
		if d.Filesystem == linodego.FilesystemExt4 && (boot == nil || d.Size > boot.Size) {
			boot = d
		}
	}
	if boot == nil {
		return linodego.InstanceDisk{}, deployer.Errorf(deployer.CodeFailed,
			"the builder %s has no ext4 disk to make an image of (Linode lists %d disks)", b.label, len(disks))
	}
	return *boot, nil
}

// createImage asks Linode to make the image of disk. An image of the bake's
// label that a lost answer left behind is taken as the image: the label was
// free when the bake began.
func (b *bake) createImage(ctx context.Context, disk linodego.InstanceDisk) (*linodego.Image, error) {
	c := b.c
	tags := []string{deployer.TagGreenlight, deployer.ServiceTag(b.spec.Service)}
	create := linodego.ImageCreateOptions{
		DiskID:      disk.ID,
		Label:       b.spec.Label,
		Description: b.spec.Description,
		CloudInit:   true, // servers deployed from it get their user data through Metadata
		Tags:        &tags,
	}
	op := operation{what: fmt.Sprintf("make the image %s from the builder %s", b.spec.Label, b.label),
		values: map[string]string{"label": b.spec.Label, "disk_id": strconv.Itoa(disk.ID), "tags": strings.Join(tags, ", ")}}
	var got *linodego.Image
	attempt := 0
	err := c.call(ctx, op, func(ctx context.Context) error {
		attempt++
		if attempt > 1 {
			im, err := c.imageByLabel(ctx, b.spec.Label)
			if err != nil || im != nil {
				got = im
				return err
			}
		}
		var err error
		got, err = c.client.CreateImage(ctx, create)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.imageID = got.ID
	b.log.Info("image creation started", "image", got.ID, "disk", disk.ID, "status", got.Status)
	return got, nil
}

// waitAvailable polls the image until Linode says it is available.
func (b *bake) waitAvailable(ctx context.Context, im *linodego.Image) (*linodego.Image, error) {
	c := b.c
	id := im.ID
	last := string(im.Status)
	op := operation{what: "check on the image " + b.spec.Label, values: map[string]string{"image": id}}
	timeout := cmpOr(c.opts.ImageTimeout, DefaultImageTimeout)
	got := im
	timedOut, err := c.poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		var cur *linodego.Image
		err := c.call(ctx, op, func(ctx context.Context) error {
			var err error
			cur, err = c.client.GetImage(ctx, id)
			if linodego.IsNotFound(err) {
				cur, err = nil, nil
			}
			return err
		})
		if err != nil {
			return false, err
		}
		if cur == nil {
			return false, deployer.Errorf(deployer.CodeFailed,
				"the image %s (%s) disappeared from Linode before it was ready", b.spec.Label, id)
		}
		got = cur
		if string(cur.Status) != last {
			last = string(cur.Status)
			b.log.Info("image status", "image", id, "status", last)
		}
		switch cur.Status {
		case linodego.ImageStatusAvailable:
			return true, nil
		case linodego.ImageStatusCreating, linodego.ImageStatusPendingUpload:
		default:
			b.log.Warn("image in a status greenlight does not know; still waiting", "image", id, "status", cur.Status)
		}
		return false, nil
	})
	switch {
	case err != nil:
		return nil, err
	case timedOut:
		return nil, deployer.Errorf(deployer.CodeFailed, "Linode did not finish making the image %s within %s (it still says %s)",
			b.spec.Label, human(timeout), words(last))
	}
	b.log.Info("image available", "image", id)
	return got, nil
}

// deleteBuilder deletes the builder, if the bake made one. It reports
// whether there was one to delete.
func (b *bake) deleteBuilder(ctx context.Context) (bool, error) {
	c := b.c
	if b.builderID == 0 {
		if !b.posted {
			return false, nil
		}
		// The create may have worked though its answer was lost.
		var in *linodego.Instance
		op := operation{what: "look for the image builder " + b.label, values: map[string]string{"label": b.label}}
		err := c.call(ctx, op, func(ctx context.Context) error {
			var err error
			in, err = c.findByLabel(ctx, b.label)
			return err
		})
		if err != nil {
			return false, err
		}
		if in == nil || !slices.Contains(in.Tags, b.tag) {
			return false, nil
		}
		b.builderID = in.ID
	}
	err := c.Delete(ctx, deployer.Server{ID: strconv.Itoa(b.builderID), Name: b.label})
	return err == nil, err
}

// failed says why the bake failed and what it left, for the chat; the
// causes stay in Err, for whoever handles the failure to log.
func (b *bake) failed(ctx context.Context, err error, builderGone, imageGone bool, cleanupErr error) error {
	msg := deployer.ErrorMessage(err)
	code := deployer.ErrorCode(err)
	if code == "" {
		code = deployer.CodeFailed
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		how := "was stopped"
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			how = "ran out of time"
		}
		msg = fmt.Sprintf("the bake of %s %s %s", b.spec.Label, how, b.phase)
		code = deployer.CodeFailed
		err = errors.Join(ctxErr, err)
	}
	var gone []string
	if imageGone {
		gone = append(gone, "the image "+b.imageID)
	}
	if builderGone {
		if strings.HasPrefix(msg, "the builder "+b.label) && !imageGone {
			gone = append(gone, "it")
		} else {
			gone = append(gone, "the builder "+b.label)
		}
	}
	switch len(gone) {
	case 1:
		msg += "; " + gone[0] + " was deleted"
	case 2:
		msg += "; " + gone[0] + " and " + gone[1] + " were deleted"
	}
	if cleanupErr != nil {
		var left []string
		if b.imageID != "" && !imageGone {
			left = append(left, "the image "+b.imageID)
		}
		if !builderGone && b.builderID != 0 {
			left = append(left, fmt.Sprintf("the builder %s (Linode %d)", b.label, b.builderID))
		} else if !builderGone && b.posted {
			left = append(left, "the builder "+b.label+", if Linode made it,")
		}
		them := "it"
		if len(left) > 1 {
			them = "them"
		}
		msg += fmt.Sprintf("; deleting %s failed too, so delete %s by hand (%s)", strings.Join(left, " and "), them, deployer.ErrorMessage(cleanupErr))
		err = errors.Join(err, cleanupErr)
	}
	return &deployer.Error{Code: code, Message: msg, Err: err}
}

// imageByLabel returns the account's image labelled label, or nil.
func (c *Cloud) imageByLabel(ctx context.Context, label string) (*linodego.Image, error) {
	f := linodego.Filter{Operator: "+and"}
	f.AddField(linodego.Eq, "is_public", false)
	f.AddField(linodego.Eq, "label", label)
	filter, err := f.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var got *linodego.Image
	op := operation{what: "look for the image " + label, values: map[string]string{"label": label}}
	err = c.call(ctx, op, func(ctx context.Context) error {
		list, err := c.client.ListImages(ctx, &linodego.ListOptions{Filter: string(filter)})
		got = nil
		for i := range list {
			if list[i].Label == label && !list[i].IsPublic {
				got = &list[i]
			}
		}
		return err
	})
	return got, err
}

// DeleteImage deletes one of the account's own images. One that is gone
// already counts as deleted.
func (c *Cloud) DeleteImage(ctx context.Context, id string) error {
	if id == "" {
		return deployer.Errorf(deployer.CodeInvalid, "which image? the image ID is empty")
	}
	if !strings.HasPrefix(id, "private/") {
		return deployer.Errorf(deployer.CodeInvalid,
			"%s is not one of the account's own images (private/…); greenlight deletes only those", id)
	}
	op := operation{what: "delete the image " + id, values: map[string]string{"image": id}}
	gone := false
	err := c.call(ctx, op, func(ctx context.Context) error {
		err := c.client.DeleteImage(ctx, id)
		if linodego.IsNotFound(err) {
			gone = true
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case gone:
		c.log.Info("image already gone", "image", id)
	default:
		c.log.Info("image deleted", "image", id)
	}
	return nil
}

// poll calls check until it is done or fails, waiting between calls on the
// Cloud's Clock, longer as time goes by, for at most timeout after the
// first call. timedOut reports that timeout passed first.
func (c *Cloud) poll(ctx context.Context, timeout time.Duration, check func(context.Context) (bool, error)) (timedOut bool, err error) {
	start := c.clock.Now()
	wait := c.opts.PollInterval
	for {
		done, err := check(ctx)
		switch {
		case err != nil:
			return false, err
		case done:
			return false, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		}
		left := timeout - c.clock.Now().Sub(start)
		if left <= 0 {
			return true, nil
		}
		select {
		case <-c.clock.After(min(wait, left)):
		case <-ctx.Done():
			return false, ctx.Err()
		}
		wait = min(wait*3/2, 6*c.opts.PollInterval)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// human writes d as people do: "30m", "1h30m", "45s".
func human(d time.Duration) string {
	s := roughly(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// words is a status as a person says it: "shutting down".
func words(status string) string {
	if status == "" {
		return "nothing"
	}
	return strings.ReplaceAll(status, "_", " ")
}
