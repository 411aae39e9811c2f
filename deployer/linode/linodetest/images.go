package linodetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Disk is one of an instance's disks. Every instance has two, as one
// deployed from a distribution image does: a boot disk ("Debian 12 Disk",
// ext4) and a 512 MB swap disk.
type Disk struct {
	ID         int
	Label      string
	Filesystem string // ext4, swap
	Size       int    // MB
	Status     string // "not ready" while the instance provisions, then "ready"
}

// swapSize is the size of every instance's swap disk, in MB.
const swapSize = 512

func (s *Server) routeImageCreation() {
	s.mux.HandleFunc("GET /{version}/linode/instances/{id}/disks", s.listDisks)
	s.mux.HandleFunc("POST /{version}/images", s.createImage)
	s.mux.HandleFunc("DELETE /{version}/images/{id...}", s.deleteImage)
	// linodego escapes the image ID's slash: private%2F86101 is one segment.
	s.mux.HandleFunc("POST /{version}/images/{id}/regions", s.replicateImage)
}

// replicateImage sets the regions a private image is in: those listed,
// which must be real regions, at least one.
func (s *Server) replicateImage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Regions []string `json:"regions"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	i := slices.IndexFunc(s.images, func(im Image) bool { return im.ID == id && !im.Public })
	if i < 0 {
		WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
		return
	}
	if len(req.Regions) == 0 {
		WriteErrors(w, http.StatusBadRequest, Reason{Field: "regions", Reason: "At least one region is required"})
		return
	}
	for _, reg := range req.Regions {
		if !s.regions[reg] {
			WriteErrors(w, http.StatusBadRequest, Reason{Field: "regions", Reason: "region " + reg + " is not valid"})
			return
		}
	}
	s.images[i].Regions = slices.Clone(req.Regions)
	WriteJSON(w, http.StatusOK, renderImage(s.images[i]))
}

// Disks returns the disks of instance id, boot disk first.
func (s *Server) Disks(id int) ([]Disk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return nil, false
	}
	return s.disks(in), true
}

// disks are in's disks. Their IDs follow from the instance's, so no disk
// table is kept. s.mu is held.
func (s *Server) disks(in *instance) []Disk {
	size := 25600
	if t := s.findType(in.Type); t != nil {
		size = t.Disk
	}
	label := "Boot Disk"
	if im := s.findImage(in.Image); im != nil {
		label = im.Label + " Disk"
	}
	status := "ready"
	if in.Status == "provisioning" {
		status = "not ready"
	}
	return []Disk{
		{ID: 2 * in.ID, Label: label, Filesystem: "ext4", Size: size - swapSize, Status: status},
		{ID: 2*in.ID + 1, Label: fmt.Sprintf("%d MB Swap Image", swapSize), Filesystem: "swap", Size: swapSize, Status: status},
	}
}

// powersOff says whether in, running, has now powered itself off: it was
// created with user data and has run for Options.PowerOffAfter. s.mu is held.
func (s *Server) powersOff(in *instance, now time.Time) bool {
	after := s.opts.PowerOffAfter
	return after > 0 && in.final == "running" && len(in.UserData) > 0 && !now.Before(in.runningAt.Add(after))
}

// advanceImages makes images whose creation is over available. s.mu is held.
func (s *Server) advanceImages(now time.Time) {
	for i := range s.images {
		im := &s.images[i]
		if im.Status == "creating" && !im.availableAt.IsZero() && !now.Before(im.availableAt) {
			im.Status = "available"
		}
	}
}

type diskJSON struct {
	ID             int    `json:"id"`
	Status         string `json:"status"`
	Label          string `json:"label"`
	Created        string `json:"created"`
	Updated        string `json:"updated"`
	Filesystem     string `json:"filesystem"`
	Size           int    `json:"size"`
	DiskEncryption string `json:"disk_encryption"`
}

func (s *Server) listDisks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	in := s.lookup(w, r)
	if in == nil {
		s.mu.Unlock()
		return
	}
	created := apiTime(in.Created)
	var items []diskJSON
	for _, d := range s.disks(in) {
		items = append(items, diskJSON{ID: d.ID, Status: d.Status, Label: d.Label, Created: created, Updated: created,
			Filesystem: d.Filesystem, Size: d.Size, DiskEncryption: "enabled"})
	}
	s.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DiskID      int       `json:"disk_id"`
		Label       string    `json:"label"`
		Description string    `json:"description"`
		CloudInit   bool      `json:"cloud_init"`
		Tags        *[]string `json:"tags"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.DiskID == 0 {
		WriteErrors(w, http.StatusBadRequest, Reason{Field: "disk_id", Reason: "disk_id is required"})
		return
	}
	var disk *Disk
	region := ""
	for _, id := range s.order {
		for _, d := range s.disks(s.instances[id]) {
			if d.ID == req.DiskID {
				disk, region = &d, s.instances[id].Region
			}
		}
	}
	if disk == nil {
		WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
		return
	}
	var tags []string
	if req.Tags != nil {
		if errs := checkTags(*req.Tags); len(errs) > 0 {
			WriteErrors(w, http.StatusBadRequest, errs...)
			return
		}
		tags = slices.Clone(*req.Tags)
	}
	if disk.Filesystem == "swap" {
		WriteErrors(w, http.StatusBadRequest, Reason{Field: "disk_id", Reason: "You cannot create an image from a swap disk"})
		return
	}
	label := req.Label
	if label == "" {
		label = disk.Label
	}
	now := s.clock.Now()
	s.nextImage++
	im := Image{
		ID: fmt.Sprintf("private/%d", s.nextImage), Label: label, Description: req.Description,
		Created: now, Status: "creating", Size: disk.Size, Tags: tags, DiskID: disk.ID, Regions: []string{region},
		availableAt: now.Add(s.opts.ImageCreating),
	}
	s.images = append(s.images, im)
	out := renderImage(im)
	out.Regions = []imageRegionJSON{} // a new image is not in any region yet
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	im := s.findImage(id)
	switch {
	case im == nil:
		WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
		return
	case im.Public || !strings.HasPrefix(id, "private/"):
		WriteErrors(w, http.StatusForbidden, Reason{Reason: "Unauthorized"})
		return
	}
	s.images = slices.DeleteFunc(s.images, func(x Image) bool { return x.ID == id })
	WriteJSON(w, http.StatusOK, map[string]any{})
}
