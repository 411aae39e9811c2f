package linodetest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Image is an image the fake API lists.
type Image struct {
	ID          string // "private/86100" for the account's own; "linode/debian12" for public ones
	Label       string
	Description string
	Created     time.Time
	Public      bool
	Status      string // available (default), creating, pending_upload
	Size        int    // MB
	Tags        []string
	// DiskID is the disk a POST /images made the image from; 0 otherwise.
	DiskID int
	// Regions are where a private image is: the region of the disk it was
	// made from, and those it was replicated to. Instances are created from
	// it only there. Empty means every region (public images, and private
	// ones a test adds without regions).
	Regions []string

	availableAt time.Time // when a creating image becomes available
}

// Type is a Linode plan the fake API offers.
type Type struct {
	ID           string
	Label        string
	Class        string
	Disk         int // MB
	Memory       int // MB
	VCPUs        int
	Transfer     int // GB
	Hourly       float64
	Monthly      float64
	RegionPrices map[string]Price // regions priced differently from the base price
}

// Price is an hourly and monthly price in US dollars.
type Price struct {
	Hourly  float64
	Monthly float64
}

// DefaultRegions are the region IDs the fake accepts unless told otherwise.
func DefaultRegions() []string {
	return []string{"ap-northeast", "ap-south", "ap-southeast", "ap-west", "br-gru", "ca-central",
		"eu-central", "eu-west", "fr-par", "id-cgk", "nl-ams", "se-sto", "us-central", "us-east",
		"us-iad", "us-ord", "us-sea", "us-southeast", "us-west"}
}

// DefaultTypes are the shared-CPU plans the fake offers unless told
// otherwise, priced like the real ones (two regions cost more).
func DefaultTypes() []Type {
	return []Type{
		{ID: "g6-nanode-1", Label: "Nanode 1GB", Class: "nanode", Disk: 25600, Memory: 1024, VCPUs: 1, Transfer: 1000,
			Hourly: 0.0075, Monthly: 5, RegionPrices: map[string]Price{"id-cgk": {0.009, 6}, "br-gru": {0.0105, 7}}},
		{ID: "g6-standard-1", Label: "Linode 2GB", Class: "standard", Disk: 51200, Memory: 2048, VCPUs: 1, Transfer: 2000,
			Hourly: 0.018, Monthly: 12, RegionPrices: map[string]Price{"id-cgk": {0.0216, 14.4}, "br-gru": {0.0252, 16.8}}},
		{ID: "g6-standard-2", Label: "Linode 4GB", Class: "standard", Disk: 81920, Memory: 4096, VCPUs: 2, Transfer: 4000,
			Hourly: 0.036, Monthly: 24, RegionPrices: map[string]Price{"id-cgk": {0.043, 28.8}, "br-gru": {0.05, 33.6}}},
	}
}

// publicImages are the distribution images every account sees.
func publicImages() []Image {
	at := time.Date(2025, 6, 10, 14, 0, 0, 0, time.UTC)
	return []Image{
		{ID: "linode/debian12", Label: "Debian 12", Created: at, Public: true, Status: "available", Size: 1300},
		{ID: "linode/debian13", Label: "Debian 13", Created: at, Public: true, Status: "available", Size: 1400},
		{ID: "linode/ubuntu24.04", Label: "Ubuntu 24.04 LTS", Created: at, Public: true, Status: "available", Size: 2500},
	}
}

func (s *Server) routeImages() {
	s.mux.HandleFunc("GET /{version}/images", s.listImages)
	s.mux.HandleFunc("GET /{version}/images/{id...}", s.getImage)
}

func (s *Server) routeTypes() {
	s.mux.HandleFunc("GET /{version}/linode/types", s.listTypes)
	s.mux.HandleFunc("GET /{version}/linode/types/{id}", s.getType)
}

// AddImage adds an image. A private image without an ID gets the next
// "private/N"; one without a creation time is created now.
func (s *Server) AddImage(im Image) Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im.ID == "" {
		s.nextImage++
		im.ID = fmt.Sprintf("private/%d", s.nextImage)
	}
	if im.Created.IsZero() {
		im.Created = s.clock.Now()
	}
	if im.Status == "" {
		im.Status = "available"
	}
	if im.Size == 0 {
		im.Size = 2600
	}
	im.Tags = slices.Clone(im.Tags)
	s.images = slices.DeleteFunc(s.images, func(x Image) bool { return x.ID == im.ID })
	s.images = append(s.images, im)
	return im
}

// Images returns every image the fake lists.
func (s *Server) Images() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.images)
}

// findImage returns the image with id. s.mu is held.
func (s *Server) findImage(id string) *Image {
	for i := range s.images {
		if s.images[i].ID == id {
			return &s.images[i]
		}
	}
	return nil
}

// findType returns the type with id. s.mu is held.
func (s *Server) findType(id string) *Type {
	for i := range s.types {
		if s.types[i].ID == id {
			return &s.types[i]
		}
	}
	return nil
}

type imageRegionJSON struct {
	Region string `json:"region"`
	Status string `json:"status"`
}

type imageJSON struct {
	ID           string            `json:"id"`
	Label        string            `json:"label"`
	Description  string            `json:"description"`
	Created      string            `json:"created"`
	Updated      string            `json:"updated"`
	Size         int               `json:"size"`
	CreatedBy    string            `json:"created_by"`
	Type         string            `json:"type"`
	Tags         []string          `json:"tags"`
	IsPublic     bool              `json:"is_public"`
	IsShared     bool              `json:"is_shared"`
	Deprecated   bool              `json:"deprecated"`
	Vendor       *string           `json:"vendor"`
	Expiry       *string           `json:"expiry"`
	EOL          *string           `json:"eol"`
	Status       string            `json:"status"`
	Capabilities []string          `json:"capabilities"`
	Regions      []imageRegionJSON `json:"regions"`
	TotalSize    int               `json:"total_size"`
}

func renderImage(im Image) imageJSON {
	out := imageJSON{
		ID: im.ID, Label: im.Label, Description: im.Description,
		Created: apiTime(im.Created), Updated: apiTime(im.Created), Size: im.Size,
		CreatedBy: "greenlight-test", Type: "manual", Tags: slices.Clone(im.Tags), IsPublic: im.Public,
		Status: im.Status, Capabilities: []string{"cloud-init", "distributed-sites"},
		Regions: []imageRegionJSON{{Region: "us-east", Status: im.Status}}, TotalSize: im.Size,
	}
	if len(im.Regions) > 0 {
		out.Regions = nil
		for _, r := range im.Regions {
			out.Regions = append(out.Regions, imageRegionJSON{Region: r, Status: im.Status})
		}
		out.TotalSize = im.Size * len(im.Regions)
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if im.Public {
		vendor, _, _ := strings.Cut(im.Label, " ")
		out.Vendor, out.CreatedBy, out.Regions = &vendor, "linode", []imageRegionJSON{}
	}
	return out
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := make([]imageJSON, 0, len(s.images))
	for _, im := range s.images {
		items = append(items, renderImage(im))
	}
	s.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	im := s.findImage(r.PathValue("id"))
	var out imageJSON
	if im != nil {
		out = renderImage(*im)
	}
	s.mu.Unlock()
	if im == nil {
		WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

type priceJSON struct {
	Hourly  float64 `json:"hourly"`
	Monthly float64 `json:"monthly"`
}

type regionPriceJSON struct {
	ID      string  `json:"id"`
	Hourly  float64 `json:"hourly"`
	Monthly float64 `json:"monthly"`
}

type typeJSON struct {
	ID                 string            `json:"id"`
	Label              string            `json:"label"`
	Class              string            `json:"class"`
	Disk               int               `json:"disk"`
	Memory             int               `json:"memory"`
	VCPUs              int               `json:"vcpus"`
	GPUs               int               `json:"gpus"`
	NetworkOut         int               `json:"network_out"`
	Transfer           int               `json:"transfer"`
	Price              priceJSON         `json:"price"`
	RegionPrices       []regionPriceJSON `json:"region_prices"`
	Addons             map[string]any    `json:"addons"`
	Successor          *string           `json:"successor"`
	AcceleratedDevices int               `json:"accelerated_devices"`
}

func renderType(t Type) typeJSON {
	out := typeJSON{
		ID: t.ID, Label: t.Label, Class: t.Class, Disk: t.Disk, Memory: t.Memory, VCPUs: t.VCPUs,
		NetworkOut: t.Transfer, Transfer: t.Transfer, Price: priceJSON{t.Hourly, t.Monthly},
		RegionPrices: []regionPriceJSON{},
		Addons: map[string]any{"backups": map[string]any{
			"price":         priceJSON{Hourly: 0.003, Monthly: 2},
			"region_prices": []regionPriceJSON{},
		}},
	}
	for _, id := range slices.Sorted(maps.Keys(t.RegionPrices)) {
		p := t.RegionPrices[id]
		out.RegionPrices = append(out.RegionPrices, regionPriceJSON{ID: id, Hourly: p.Hourly, Monthly: p.Monthly})
	}
	return out
}

func (s *Server) listTypes(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := make([]typeJSON, 0, len(s.types))
	for _, t := range s.types {
		items = append(items, renderType(t))
	}
	s.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getType(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t := s.findType(r.PathValue("id"))
	var out typeJSON
	if t != nil {
		out = renderType(*t)
	}
	s.mu.Unlock()
	if t == nil {
		WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
		return
	}
	WriteJSON(w, http.StatusOK, out)
}
