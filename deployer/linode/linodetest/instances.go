package linodetest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxUserData is the most user data, in bytes after base64 decoding, the
// API accepts at instance creation.
const MaxUserData = 16384

// Instance is the fake's record of one Linode instance.
type Instance struct {
	ID     int
	Label  string
	Region string
	Type   string
	Image  string
	Status string // provisioning, booting, running, offline, or what Hold says
	IPv4   string
	// PrivateIPv4 is its address on the region's private network
	// (192.168.128.0/17), given when it was created with "private_ip": true;
	// NodeBalancers reach their nodes only on such addresses.
	PrivateIPv4    string
	Tags           []string
	RootPass       string // as the client sent it, so tests can look for leaks
	AuthorizedKeys []string
	UserData       []byte // metadata.user_data, decoded
	FirewallID     int
	Booted         bool // false when created with "booted": false: it stays offline
	Created        time.Time
	// Statuses are the statuses single-instance answers (POST, GET, PUT)
	// gave for it, in order, repeats folded.
	Statuses []string
}

type instance struct {
	Instance
	bootingAt time.Time
	runningAt time.Time
	// settled: the instance has left booting for good (OnRunning started,
	// or it was created not booted); final is where it ended: "running" or
	// "offline", "" while OnRunning runs.
	settled bool
	final   string
	hookMu  sync.Mutex // held while OnRunning or OnDeleted runs
}

func (in *instance) snapshot() Instance {
	c := in.Instance
	c.Tags = slices.Clone(in.Tags)
	c.AuthorizedKeys = slices.Clone(in.AuthorizedKeys)
	c.UserData = slices.Clone(in.UserData)
	c.Statuses = slices.Clone(in.Statuses)
	return c
}

func (s *Server) routeInstances() {
	s.mux.HandleFunc("GET /{version}/linode/instances", s.listInstances)
	s.mux.HandleFunc("POST /{version}/linode/instances", s.createInstance)
	s.mux.HandleFunc("GET /{version}/linode/instances/{id}", s.getInstance)
	s.mux.HandleFunc("PUT /{version}/linode/instances/{id}", s.updateInstance)
	s.mux.HandleFunc("DELETE /{version}/linode/instances/{id}", s.deleteInstance)
}

// Instances returns every instance, oldest first.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.instances[id].snapshot())
	}
	return out
}

// Instance returns the instance with id, if it exists.
func (s *Server) Instance(id int) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.snapshot(), true
}

// AddInstance adds an instance as if someone had created it earlier, with
// an ID and address allocated like a created one's. Status "" or "running"
// makes it running at once: OnRunning is called before AddInstance returns.
// Any other status is held (see Hold) for its label.
func (s *Server) AddInstance(in Instance) Instance {
	s.mu.Lock()
	rec := s.newInstance(in)
	running := in.Status == "" || in.Status == "running"
	if running {
		rec.settled = true
		rec.Status = "booting"
	} else {
		s.holds[rec.Label] = in.Status
		rec.Status = in.Status
	}
	snap := rec.snapshot()
	s.mu.Unlock()
	if running {
		s.runHook(rec, snap)
		snap, _ = s.Instance(rec.ID)
	}
	return snap
}

// Hold pins the status of every instance labelled label, present and
// future, to status ("provisioning" forever, "offline", …). An empty status
// lets them go on as usual.
func (s *Server) Hold(label, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == "" {
		delete(s.holds, label)
	} else {
		s.holds[label] = status
	}
}

// newInstance allocates and records an instance. s.mu is held.
func (s *Server) newInstance(in Instance) *instance {
	s.nextID++
	s.created++
	in.ID = s.nextID
	if in.IPv4 == "" {
		in.IPv4 = s.opts.IPv4(s.created)
	}
	if in.Label == "" {
		in.Label = fmt.Sprintf("linode%d", in.ID)
	}
	if in.Region == "" {
		in.Region = "us-east"
	}
	if in.Type == "" {
		in.Type = "g6-nanode-1"
	}
	if in.Created.IsZero() {
		in.Created = s.clock.Now()
	}
	in.Tags = slices.Clone(in.Tags)
	if in.Tags == nil {
		in.Tags = []string{}
	}
	in.Statuses = nil
	rec := &instance{Instance: in}
	rec.bootingAt = in.Created.Add(s.opts.Provisioning)
	rec.runningAt = rec.bootingAt.Add(s.opts.Booting)
	rec.Status = "provisioning"
	s.instances[in.ID] = rec
	s.order = append(s.order, in.ID)
	return rec
}

// advance brings every instance's status up to the clock's time, running
// OnRunning for those that have finished booting before anyone sees them
// running.
func (s *Server) advance() {
	type due struct {
		in   *instance
		snap Instance
	}
	var run []due
	s.mu.Lock()
	now := s.clock.Now()
	s.advanceImages(now)
	for _, id := range s.order {
		in := s.instances[id]
		if st, ok := s.holds[in.Label]; ok {
			in.Status = st
			continue
		}
		switch {
		case in.settled && in.final != "":
			if s.powersOff(in, now) {
				in.final = "offline"
			}
			in.Status = in.final
		case in.settled:
			in.Status = "booting" // OnRunning has not returned yet
		case now.Before(in.bootingAt):
			in.Status = "provisioning"
		case !in.Booted:
			in.settled, in.final, in.Status = true, "offline", "offline"
		case now.Before(in.runningAt):
			in.Status = "booting"
		default:
			in.settled, in.Status = true, "booting"
			run = append(run, due{in, in.snapshot()})
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range run {
		wg.Go(func() { s.runHook(d.in, d.snap) })
	}
	wg.Wait()
}

// runHook calls OnRunning for in and records where it ended.
func (s *Server) runHook(in *instance, snap Instance) {
	in.hookMu.Lock()
	var err error
	if s.opts.OnRunning != nil {
		snap.Status = "running"
		err = s.opts.OnRunning(snap)
	}
	in.hookMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	in.final = "running"
	if err != nil {
		in.final = "offline"
	}
	if _, held := s.holds[in.Label]; !held {
		in.Status = in.final
	}
}

// served notes the status a single-instance answer gives. s.mu is held.
func (in *instance) served() {
	if n := len(in.Statuses); n == 0 || in.Statuses[n-1] != in.Status {
		in.Statuses = append(in.Statuses, in.Status)
	}
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := make([]instanceJSON, 0, len(s.order))
	for _, id := range s.order {
		items = append(items, s.instanceJSON(s.instances[id]))
	}
	s.mu.Unlock()
	s.WritePage(w, r, items)
}

// lookup finds the instance named by the path, or answers 404. s.mu is held.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *instance {
	id, err := strconv.Atoi(r.PathValue("id"))
	if in, ok := s.instances[id]; err == nil && ok {
		return in
	}
	WriteErrors(w, http.StatusNotFound, Reason{Reason: "Not found"})
	return nil
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.lookup(w, r); in != nil {
		in.served()
		WriteJSON(w, http.StatusOK, s.instanceJSON(in))
	}
}

type createRequest struct {
	Region         string   `json:"region"`
	Type           string   `json:"type"`
	Label          string   `json:"label"`
	Image          string   `json:"image"`
	RootPass       string   `json:"root_pass"`
	AuthorizedKeys []string `json:"authorized_keys"`
	Tags           []string `json:"tags"`
	Metadata       *struct {
		UserData string `json:"user_data"`
	} `json:"metadata"`
	FirewallID int   `json:"firewall_id"`
	Booted     *bool `json:"booted"`
	PrivateIP  bool  `json:"private_ip"`
}

func (s *Server) createInstance(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []Reason
	switch {
	case req.Region == "":
		errs = append(errs, Reason{Field: "region", Reason: "region is required"})
	case !s.regions[req.Region]:
		errs = append(errs, Reason{Field: "region", Reason: "region is not valid"})
	}
	switch {
	case req.Type == "":
		errs = append(errs, Reason{Field: "type", Reason: "type is required"})
	case s.findType(req.Type) == nil:
		errs = append(errs, Reason{Field: "type", Reason: "A valid plan type by that ID was not found"})
	}
	if req.Label != "" {
		errs = append(errs, s.checkLabel(req.Label, 0)...)
	}
	if req.Image != "" {
		if im := s.findImage(req.Image); im == nil {
			errs = append(errs, Reason{Field: "image", Reason: "No image exists with id " + req.Image})
		} else if im.Status != "available" {
			errs = append(errs, Reason{Field: "image", Reason: "Image " + req.Image + " is not available"})
		} else if len(im.Regions) > 0 && req.Region != "" && !slices.Contains(im.Regions, req.Region) {
			errs = append(errs, Reason{Field: "image", Reason: "Image " + req.Image + " is not available in region " + req.Region})
		}
		switch {
		case req.RootPass == "":
			errs = append(errs, Reason{Field: "root_pass", Reason: "root_pass is required when deploying from an image"})
		case !strongPassword(req.RootPass):
			errs = append(errs, Reason{Field: "root_pass", Reason: "Password does not meet strength requirement"})
		}
	}
	for _, k := range req.AuthorizedKeys {
		if !strings.HasPrefix(k, "ssh-") && !strings.HasPrefix(k, "ecdsa-") && !strings.HasPrefix(k, "sk-") {
			errs = append(errs, Reason{Field: "authorized_keys", Reason: "Invalid SSH key"})
			break
		}
	}
	errs = append(errs, checkTags(req.Tags)...)
	var userData []byte
	if req.Metadata != nil && req.Metadata.UserData != "" {
		var err error
		if userData, err = base64.StdEncoding.DecodeString(req.Metadata.UserData); err != nil {
			errs = append(errs, Reason{Field: "metadata.user_data", Reason: "user_data must be a valid base64-encoded string"})
		} else if len(userData) > MaxUserData {
			errs = append(errs, Reason{Field: "metadata.user_data", Reason: fmt.Sprintf("decoded user_data must not exceed %d bytes", MaxUserData)})
		}
	}
	if len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	in := s.newInstance(Instance{
		Label: req.Label, Region: req.Region, Type: req.Type, Image: req.Image,
		Tags: req.Tags, RootPass: req.RootPass, AuthorizedKeys: slices.Clone(req.AuthorizedKeys),
		UserData: userData, FirewallID: req.FirewallID, Booted: req.Booted == nil || *req.Booted,
		PrivateIPv4: privateIPv4(req.PrivateIP, s.created+1),
	})
	if st, ok := s.holds[in.Label]; ok {
		in.Status = st
	}
	in.served()
	WriteJSON(w, http.StatusOK, s.instanceJSON(in))
}

func (s *Server) updateInstance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Label *string   `json:"label"`
		Tags  *[]string `json:"tags"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.lookup(w, r)
	if in == nil {
		return
	}
	var errs []Reason
	if req.Label != nil {
		errs = append(errs, s.checkLabel(*req.Label, in.ID)...)
	}
	if req.Tags != nil {
		errs = append(errs, checkTags(*req.Tags)...)
	}
	if len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	if req.Label != nil {
		in.Label = *req.Label
	}
	if req.Tags != nil {
		in.Tags = slices.Clone(*req.Tags)
		if in.Tags == nil {
			in.Tags = []string{}
		}
	}
	in.served()
	WriteJSON(w, http.StatusOK, s.instanceJSON(in))
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	in := s.lookup(w, r)
	if in == nil {
		s.mu.Unlock()
		return
	}
	delete(s.instances, in.ID)
	s.order = slices.DeleteFunc(s.order, func(id int) bool { return id == in.ID })
	snap := in.snapshot()
	s.mu.Unlock()
	if s.opts.OnDeleted != nil {
		in.hookMu.Lock()
		s.opts.OnDeleted(snap)
		in.hookMu.Unlock()
	}
	WriteJSON(w, http.StatusOK, map[string]any{})
}

var labelPattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)

// checkLabel applies the API's rules to an instance label; self is the
// instance being renamed (0 for a new one). s.mu is held.
func (s *Server) checkLabel(label string, self int) []Reason {
	switch {
	case len(label) < 3 || len(label) > 64:
		return []Reason{{Field: "label", Reason: "Length must be 3-64 characters"}}
	case !labelPattern.MatchString(label) || strings.Contains(label, "--") ||
		strings.Contains(label, "__") || strings.Contains(label, ".."):
		return []Reason{{Field: "label", Reason: "Label must begin and end with a letter or number, and may only contain letters, numbers, dashes, underscores and periods, with no two in a row"}}
	}
	for _, id := range s.order {
		if in := s.instances[id]; id != self && in.Label == label {
			return []Reason{{Field: "label", Reason: "Label must be unique among your linodes"}}
		}
	}
	return nil
}

func checkTags(tags []string) []Reason {
	for _, t := range tags {
		if len(t) < 3 || len(t) > 50 {
			return []Reason{{Field: "tags", Reason: "Length must be 3-50 characters"}}
		}
	}
	return nil
}

// strongPassword approximates the API's strength rule: long enough and at
// least three kinds of character.
func strongPassword(p string) bool {
	if len(p) < 11 || len(p) > 128 {
		return false
	}
	var lower, upper, digit, other bool
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			other = true
		}
	}
	kinds := 0
	for _, k := range []bool{lower, upper, digit, other} {
		if k {
			kinds++
		}
	}
	return kinds >= 3
}

// instanceJSON is an instance as the API writes it.
type instanceJSON struct {
	ID                  int         `json:"id"`
	Label               string      `json:"label"`
	Group               string      `json:"group"`
	Status              string      `json:"status"`
	Created             string      `json:"created"`
	Updated             string      `json:"updated"`
	Type                string      `json:"type"`
	IPv4                []string    `json:"ipv4"`
	IPv6                string      `json:"ipv6"`
	Image               *string     `json:"image"`
	Region              string      `json:"region"`
	SiteType            string      `json:"site_type"`
	Specs               specsJSON   `json:"specs"`
	Alerts              alertsJSON  `json:"alerts"`
	Backups             backupsJSON `json:"backups"`
	Hypervisor          string      `json:"hypervisor"`
	WatchdogEnabled     bool        `json:"watchdog_enabled"`
	Tags                []string    `json:"tags"`
	HostUUID            string      `json:"host_uuid"`
	HasUserData         bool        `json:"has_user_data"`
	PlacementGroup      *struct{}   `json:"placement_group"`
	DiskEncryption      string      `json:"disk_encryption"`
	LKEClusterID        *int        `json:"lke_cluster_id"`
	Capabilities        []string    `json:"capabilities"`
	InterfaceGeneration string      `json:"interface_generation"`
	MaintenancePolicy   string      `json:"maintenance_policy"`
	Locks               []string    `json:"locks"`
}

type specsJSON struct {
	Disk               int `json:"disk"`
	Memory             int `json:"memory"`
	VCPUs              int `json:"vcpus"`
	GPUs               int `json:"gpus"`
	Transfer           int `json:"transfer"`
	AcceleratedDevices int `json:"accelerated_devices"`
}

type alertsJSON struct {
	CPU           int `json:"cpu"`
	NetworkIn     int `json:"network_in"`
	NetworkOut    int `json:"network_out"`
	TransferQuota int `json:"transfer_quota"`
	IO            int `json:"io"`
}

type backupsJSON struct {
	Enabled   bool `json:"enabled"`
	Available bool `json:"available"`
	Schedule  struct {
		Day    *string `json:"day"`
		Window *string `json:"window"`
	} `json:"schedule"`
	LastSuccessful *string `json:"last_successful"`
}

// PrivateNetwork is where Linode gives instances their private IPv4
// addresses; a NodeBalancer's nodes must be in it.
var PrivateNetwork = netip.MustParsePrefix("192.168.128.0/17")

// privateIPv4 is the private address of the n-th instance created, or ""
// when it asked for none.
func privateIPv4(want bool, n int) string {
	if !want {
		return ""
	}
	v := n%(1<<15-2) + 1 // never .0 of the /17, never its broadcast
	return fmt.Sprintf("192.168.%d.%d", 128+v>>8, v&255)
}

// addresses are in's IPv4 addresses as the API lists them: public first.
func (s *Server) addresses(in *instance) []string {
	if in.PrivateIPv4 == "" {
		return []string{in.IPv4}
	}
	return []string{in.IPv4, in.PrivateIPv4}
}

// privateOwner finds the instance whose private address is ip. s.mu is held.
func (s *Server) privateOwner(ip string) *instance {
	for _, id := range s.order {
		if in := s.instances[id]; in.PrivateIPv4 != "" && in.PrivateIPv4 == ip {
			return in
		}
	}
	return nil
}

// instanceJSON renders in. s.mu is held.
func (s *Server) instanceJSON(in *instance) instanceJSON {
	var image *string
	if in.Image != "" {
		image = &in.Image
	}
	var specs specsJSON
	if t := s.findType(in.Type); t != nil {
		specs = specsJSON{Disk: t.Disk, Memory: t.Memory, VCPUs: t.VCPUs, Transfer: t.Transfer}
	}
	created := apiTime(in.Created)
	return instanceJSON{
		ID: in.ID, Label: in.Label, Status: in.Status, Created: created, Updated: created,
		Type: in.Type, IPv4: s.addresses(in), IPv6: fmt.Sprintf("2001:db8::%x/128", in.ID&0xffff),
		Image: image, Region: in.Region, SiteType: "core", Specs: specs,
		Alerts:     alertsJSON{CPU: 90, NetworkIn: 10, NetworkOut: 10, TransferQuota: 80, IO: 10000},
		Hypervisor: "kvm", WatchdogEnabled: true, Tags: slices.Clone(in.Tags),
		HostUUID: fmt.Sprintf("%040x", in.ID), HasUserData: len(in.UserData) > 0,
		DiskEncryption: "enabled", Capabilities: []string{"Block Storage Encryption", "Maintenance Policy"},
		InterfaceGeneration: "legacy_config", MaintenancePolicy: "linode/migrate", Locks: []string{},
	}
}
