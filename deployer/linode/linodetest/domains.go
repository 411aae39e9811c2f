package linodetest

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Domain is the fake's record of one zone in Linode's DNS Manager.
type Domain struct {
	ID       int
	Domain   string // "example.com"
	Type     string // master (default) or slave
	SOAEmail string
	TTLSec   int // the zone's default TTL; 0 means Linode's default
	Status   string
	Tags     []string
	Created  time.Time
}

// DomainRecord is one record of a Domain.
type DomainRecord struct {
	ID       int
	Type     string // A, AAAA, CNAME, …
	Name     string // relative to the zone: "ns1"; "" at the apex
	Target   string
	Priority int
	Weight   int
	Port     int
	TTLSec   int // 0: the zone's default
	Created  time.Time
	Updated  time.Time
}

// ValidTTLs are the TTLs Linode stores; any other is rounded up to the next
// one (and anything above the last to the last), as the real API does.
var ValidTTLs = []int{0, 30, 120, 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200}

// RoundTTL rounds ttl up to a TTL Linode stores.
func RoundTTL(ttl int) int {
	for _, v := range ValidTTLs {
		if ttl <= v {
			return v
		}
	}
	return ValidTTLs[len(ValidTTLs)-1]
}

type domainStore struct {
	routes  sync.Once
	mu      sync.Mutex
	byID    map[int]*domain
	order   []int
	nextID  int
	nextRec int
}

type domain struct {
	Domain
	records []*DomainRecord // oldest first
}

// AddDomain adds a zone as if it had been created in the account, and makes
// the fake answer the domain API (the domain and its records). A zero ID is
// allocated. Tests that fake the domain API themselves with HandleFunc must
// not call it.
func (s *Server) AddDomain(d Domain) Domain {
	s.domains.routes.Do(s.routeDomains)
	now := s.clock.Now()
	st := &s.domains
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[int]*domain{}
		st.nextID, st.nextRec = 3153500, 36666800
	}
	if d.ID == 0 {
		st.nextID++
		d.ID = st.nextID
	}
	if d.Domain == "" {
		d.Domain = fmt.Sprintf("zone%d.example", d.ID)
	}
	if d.Type == "" {
		d.Type = "master"
	}
	if d.SOAEmail == "" {
		d.SOAEmail = "hostmaster@" + d.Domain
	}
	if d.Status == "" {
		d.Status = "active"
	}
	if d.Created.IsZero() {
		d.Created = now
	}
	d.Tags = slices.Clone(d.Tags)
	if d.Tags == nil {
		d.Tags = []string{}
	}
	if _, dup := st.byID[d.ID]; !dup {
		st.order = append(st.order, d.ID)
	}
	st.byID[d.ID] = &domain{Domain: d}
	return d
}

// AddDomainRecord adds a record to a domain as if someone had created it,
// unchecked. It panics when the domain does not exist.
func (s *Server) AddDomainRecord(domainID int, rec DomainRecord) DomainRecord {
	now := s.clock.Now()
	st := &s.domains
	st.mu.Lock()
	defer st.mu.Unlock()
	d := st.byID[domainID]
	if d == nil {
		panic(fmt.Sprintf("linodetest: no domain %d; add it with AddDomain first", domainID))
	}
	st.nextRec++
	rec.ID = st.nextRec
	if rec.Created.IsZero() {
		rec.Created = now
	}
	if rec.Updated.IsZero() {
		rec.Updated = rec.Created
	}
	d.records = append(d.records, &rec)
	return rec
}

// DomainRecords returns the domain's records, oldest first.
func (s *Server) DomainRecords(domainID int) []DomainRecord {
	st := &s.domains
	st.mu.Lock()
	defer st.mu.Unlock()
	d := st.byID[domainID]
	if d == nil {
		return nil
	}
	out := make([]DomainRecord, 0, len(d.records))
	for _, r := range d.records {
		out = append(out, *r)
	}
	return out
}

func (s *Server) routeDomains() {
	s.mux.HandleFunc("GET /{version}/domains/{id}", s.getDomain)
	s.mux.HandleFunc("GET /{version}/domains/{id}/records", s.listRecords)
	s.mux.HandleFunc("POST /{version}/domains/{id}/records", s.createRecord)
	s.mux.HandleFunc("GET /{version}/domains/{id}/records/{rid}", s.getRecord)
	s.mux.HandleFunc("PUT /{version}/domains/{id}/records/{rid}", s.updateRecord)
	s.mux.HandleFunc("DELETE /{version}/domains/{id}/records/{rid}", s.deleteRecord)
}

type domainJSON struct {
	ID          int      `json:"id"`
	Type        string   `json:"type"`
	Domain      string   `json:"domain"`
	Tags        []string `json:"tags"`
	Group       string   `json:"group"`
	Status      string   `json:"status"`
	Errors      string   `json:"errors"`
	Description string   `json:"description"`
	SOAEmail    string   `json:"soa_email"`
	RetrySec    int      `json:"retry_sec"`
	MasterIPs   []string `json:"master_ips"`
	AXFRIPs     []string `json:"axfr_ips"`
	ExpireSec   int      `json:"expire_sec"`
	RefreshSec  int      `json:"refresh_sec"`
	TTLSec      int      `json:"ttl_sec"`
	Created     string   `json:"created"`
	Updated     string   `json:"updated"`
}

func (d *domain) json() domainJSON {
	created := apiTime(d.Created)
	return domainJSON{ID: d.ID, Type: d.Type, Domain: d.Domain.Domain, Tags: slices.Clone(d.Tags), Status: d.Status,
		SOAEmail: d.SOAEmail, MasterIPs: []string{}, AXFRIPs: []string{}, TTLSec: d.TTLSec,
		Created: created, Updated: created}
}

type recordJSON struct {
	ID       int     `json:"id"`
	Type     string  `json:"type"`
	Name     string  `json:"name"`
	Target   string  `json:"target"`
	Priority int     `json:"priority"`
	Weight   int     `json:"weight"`
	Port     int     `json:"port"`
	Service  *string `json:"service"`
	Protocol *string `json:"protocol"`
	TTLSec   int     `json:"ttl_sec"`
	Tag      *string `json:"tag"`
	Created  string  `json:"created"`
	Updated  string  `json:"updated"`
}

func (r *DomainRecord) json() recordJSON {
	return recordJSON{ID: r.ID, Type: r.Type, Name: r.Name, Target: r.Target, Priority: r.Priority,
		Weight: r.Weight, Port: r.Port, TTLSec: r.TTLSec, Created: apiTime(r.Created), Updated: apiTime(r.Updated)}
}

// domainFor finds the domain named by the path, or answers 404.
// domains.mu is held.
func (s *Server) domainFor(w http.ResponseWriter, r *http.Request) *domain {
	id, err := strconv.Atoi(r.PathValue("id"))
	if d := s.domains.byID[id]; err == nil && d != nil {
		return d
	}
	notFound(w)
	return nil
}

// recordFor finds the record named by the path, or answers 404.
// domains.mu is held.
func (s *Server) recordFor(w http.ResponseWriter, r *http.Request) (*domain, *DomainRecord) {
	d := s.domainFor(w, r)
	if d == nil {
		return nil, nil
	}
	rec := byPathID(w, r, "rid", d.records, func(rec *DomainRecord) int { return rec.ID })
	if rec == nil {
		return nil, nil
	}
	return d, rec
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request) {
	s.domains.mu.Lock()
	defer s.domains.mu.Unlock()
	if d := s.domainFor(w, r); d != nil {
		WriteJSON(w, http.StatusOK, d.json())
	}
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) {
	s.domains.mu.Lock()
	d := s.domainFor(w, r)
	if d == nil {
		s.domains.mu.Unlock()
		return
	}
	items := make([]recordJSON, 0, len(d.records))
	for _, rec := range d.records {
		items = append(items, rec.json())
	}
	s.domains.mu.Unlock()
	s.WritePage(w, r, items)
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) {
	s.domains.mu.Lock()
	defer s.domains.mu.Unlock()
	if _, rec := s.recordFor(w, r); rec != nil {
		WriteJSON(w, http.StatusOK, rec.json())
	}
}

// recordRequest is a record create or update body; nil fields were not sent.
type recordRequest struct {
	Type     *string `json:"type"`
	Name     *string `json:"name"`
	Target   *string `json:"target"`
	Priority *int    `json:"priority"`
	Weight   *int    `json:"weight"`
	Port     *int    `json:"port"`
	TTLSec   *int    `json:"ttl_sec"`
}

var recordTypes = []string{"A", "AAAA", "NS", "MX", "CNAME", "TXT", "SRV", "PTR", "CAA"}

// applyRecord merges req into rec and checks it.
func applyRecord(rec *DomainRecord, req recordRequest, creating bool) []Reason {
	set(&rec.Type, req.Type)
	set(&rec.Name, req.Name)
	set(&rec.Target, req.Target)
	set(&rec.Priority, req.Priority)
	set(&rec.Weight, req.Weight)
	set(&rec.Port, req.Port)
	set(&rec.TTLSec, req.TTLSec)
	rec.TTLSec = RoundTTL(rec.TTLSec)
	var errs []Reason
	switch {
	case creating && req.Type == nil:
		errs = append(errs, Reason{Field: "type", Reason: "type is required"})
	case !slices.Contains(recordTypes, rec.Type):
		errs = append(errs, Reason{Field: "type", Reason: "Must be one of " + strings.Join(recordTypes, ", ")})
	}
	if len(rec.Name) > 100 {
		errs = append(errs, Reason{Field: "name", Reason: "Length must be 0-100 characters"})
	}
	addr, err := netip.ParseAddr(rec.Target)
	switch {
	case rec.Type == "A" && (err != nil || !addr.Is4()):
		errs = append(errs, Reason{Field: "target", Reason: "Must be a valid IPv4 address"})
	case rec.Type == "AAAA" && (err != nil || !addr.Is6() || addr.Is4In6()):
		errs = append(errs, Reason{Field: "target", Reason: "Must be a valid IPv6 address"})
	case rec.Target == "":
		errs = append(errs, Reason{Field: "target", Reason: "target is required"})
	}
	return errs
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request) {
	var req recordRequest
	if !decode(w, r, &req) {
		return
	}
	now := s.clock.Now()
	s.domains.mu.Lock()
	defer s.domains.mu.Unlock()
	d := s.domainFor(w, r)
	if d == nil {
		return
	}
	rec := &DomainRecord{Created: now, Updated: now}
	if errs := applyRecord(rec, req, true); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	s.domains.nextRec++
	rec.ID = s.domains.nextRec
	d.records = append(d.records, rec)
	WriteJSON(w, http.StatusOK, rec.json())
}

func (s *Server) updateRecord(w http.ResponseWriter, r *http.Request) {
	var req recordRequest
	if !decode(w, r, &req) {
		return
	}
	now := s.clock.Now()
	s.domains.mu.Lock()
	defer s.domains.mu.Unlock()
	_, rec := s.recordFor(w, r)
	if rec == nil {
		return
	}
	next := *rec
	if errs := applyRecord(&next, req, false); len(errs) > 0 {
		WriteErrors(w, http.StatusBadRequest, errs...)
		return
	}
	next.Updated = now
	*rec = next
	WriteJSON(w, http.StatusOK, rec.json())
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	s.domains.mu.Lock()
	defer s.domains.mu.Unlock()
	d, rec := s.recordFor(w, r)
	if rec == nil {
		return
	}
	d.records = slices.DeleteFunc(d.records, func(x *DomainRecord) bool { return x == rec })
	WriteJSON(w, http.StatusOK, map[string]any{})
}
