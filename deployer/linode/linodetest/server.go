// Package linodetest is a stateful fake of the Linode API v4 for tests: an
// httptest server that linodego talks to through SetBaseURL (or NewClient).
//
// Its JSON has the shape of the real API's answers, as recorded by linodego's
// own integration tests: paginated lists ({"data", "page", "pages",
// "results"}), error bodies ({"errors": [{"reason", "field"}]}), instances
// that go provisioning → booting → running. It keeps instances, images and
// types; tests inject faults (404, 429 with Retry-After, 500 …), read back
// every request, and attach behaviour to instances as they start and stop
// (for example a real DNS server on the instance's loopback address).
//
// Status changes are worked out when a request arrives, from the instance's
// age on Options.Clock: no goroutine ticks in the background, so a test on a
// deployer.ManualClock decides exactly what the next answer says.
package linodetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

// DefaultPageSize is the page size of list answers when Options.PageSize is 0
// and the request names none (the real API's default).
const DefaultPageSize = 100

// Options configure a fake Linode API.
type Options struct {
	// Clock ages instances; default the real clock.
	Clock deployer.Clock
	// Provisioning and Booting are how long a new instance says
	// "provisioning", then "booting", before it is "running". Zero means it
	// runs as soon as anyone asks after its creation.
	Provisioning time.Duration
	Booting      time.Duration
	// PageSize is the default page size of list answers (default
	// DefaultPageSize); a request's page_size parameter overrides it.
	PageSize int
	// IPv4 gives the public address of the n-th instance created (n counts
	// from 1). Default 192.0.2.n; Loopback gives 127.0.0.(n+1).
	IPv4 func(n int) string
	// Token, when set, is the only bearer token accepted. Requests without
	// any token are always answered 401.
	Token string
	// Regions the API accepts; default a set of real region IDs.
	Regions []string
	// Types the API offers; default DefaultTypes().
	Types []Type
	// OnRunning is called once for each instance as it becomes running,
	// before any answer shows it running (until it returns, the instance
	// says "booting"). An error makes the instance "offline" instead.
	OnRunning func(Instance) error
	// OnDeleted is called after an instance is deleted, before the DELETE is
	// answered, and after OnRunning for it (if any) has returned.
	OnDeleted func(Instance)
	// PowerOffAfter, when positive, makes an instance created with metadata
	// user data power itself off ("offline") that long after it became
	// running, as an image builder whose cloud-init ends in a poweroff does.
	PowerOffAfter time.Duration
	// ImageCreating is how long an image made with POST /images says
	// "creating" before it is "available". Zero means it is available as
	// soon as anyone asks after its creation.
	ImageCreating time.Duration
}

// Loopback is an Options.IPv4 allocator that gives every instance its own
// loopback address: 127.0.0.2, 127.0.0.3, … (127.0.0.1 is left to the test).
func Loopback(n int) string {
	v := n + 1
	return fmt.Sprintf("127.0.%d.%d", v>>8&255, v&255)
}

// Reason is one entry of an error answer's "errors" list.
type Reason struct {
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
}

// Fault makes the next matching requests fail.
type Fault struct {
	Method string // "" matches every method
	// Path is a path.Match pattern for the request path without the API
	// version: "/linode/instances", "/linode/instances/*".
	Path       string
	Times      int           // how many matching requests it answers; 0 means 1
	Status     int           // 404, 429, 500, …
	RetryAfter time.Duration // sent as Retry-After in whole seconds, when > 0
	Errors     []Reason      // the answer's errors; default a reason fitting Status
	// AfterHandling lets the request take effect and then answers with the
	// fault instead of the real answer: a response lost on its way back.
	AfterHandling bool
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string // as sent, with the API version: /v4/linode/instances
	Query  string
	Filter string // the X-Filter header
	Body   string
	Status int // what the fake answered
}

// Server is a running fake Linode API. Its methods are safe for concurrent use.
type Server struct {
	URL string // base URL for linodego's SetBaseURL

	srv   *httptest.Server
	mux   *http.ServeMux
	opts  Options
	clock deployer.Clock

	mu        sync.Mutex
	instances map[int]*instance
	order     []int // instance IDs, oldest first
	nextID    int
	created   int // instances ever created, for the IPv4 allocator
	holds     map[string]string
	images    []Image
	nextImage int
	types     []Type
	regions   map[string]bool
	faults    []*Fault
	requests  []Request

	nbs     nodeBalancers // nodebalancer.go; its own lock
	domains domainStore   // domains.go; its own lock
}

// NewServer starts a fake Linode API on loopback. Close it when done.
func NewServer(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = deployer.SystemClock{}
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.IPv4 == nil {
		opts.IPv4 = func(n int) string { return fmt.Sprintf("192.0.2.%d", n%256) }
	}
	if opts.Regions == nil {
		opts.Regions = DefaultRegions()
	}
	if opts.Types == nil {
		opts.Types = DefaultTypes()
	}
	s := &Server{
		mux:       http.NewServeMux(),
		opts:      opts,
		clock:     opts.Clock,
		instances: map[int]*instance{},
		nextID:    82372940,
		holds:     map[string]string{},
		images:    publicImages(),
		nextImage: 86100,
		types:     append([]Type(nil), opts.Types...),
		regions:   map[string]bool{},
	}
	for _, r := range opts.Regions {
		s.regions[r] = true
	}
	s.routeInstances()
	s.routeImages()
	s.routeImageCreation()
	s.routeTypes()
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.Close()
	s.closeFrontends()
}

// NewClient returns a linodego client pointed at the fake with token.
func (s *Server) NewClient(token string) *linodego.Client {
	c := linodego.NewClient(s.srv.Client())
	c.SetBaseURL(s.URL)
	c.SetToken(token)
	return &c
}

// HandleFunc adds a route, so tests can fake more of the API. pattern is a
// net/http pattern without the API version: "GET /nodebalancers/{id}".
// Added routes get the fake's authentication, fault injection and request
// log, like its own.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) {
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		method, p = "", pattern
	}
	full := "/{version}" + p
	if method != "" {
		full = method + " " + full
	}
	s.mux.HandleFunc(full, h)
}

// Inject queues a fault. Faults are consulted in the order they were added.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count says how many requests matched method ("" for any) and a path.Match
// pattern of the path without the API version.
func (s *Server) Count(method, pattern string) int {
	n := 0
	for _, r := range s.Requests() {
		if matchRequest(method, pattern, r.Method, unversioned(r.Path)) {
			n++
		}
	}
	return n
}

// unversioned strips "/v4" or "/v4beta" from an API path.
func unversioned(p string) string {
	if rest, ok := strings.CutPrefix(p, "/"); ok {
		if _, after, ok := strings.Cut(rest, "/"); ok {
			return "/" + after
		}
	}
	return p
}

func matchRequest(method, pattern, gotMethod, gotPath string) bool {
	if method != "" && !strings.EqualFold(method, gotMethod) {
		return false
	}
	ok, err := path.Match(pattern, gotPath)
	return err == nil && ok
}

// serve authenticates, logs, applies faults and advances instances before
// handing the request to its route.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Filter: r.Header.Get("X-Filter"), Body: string(body)}
	status := s.answer(w, r)
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) int {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || (s.opts.Token != "" && token != s.opts.Token) {
		WriteErrors(w, http.StatusUnauthorized, Reason{Reason: "Invalid Token"})
		return http.StatusUnauthorized
	}
	f := s.takeFault(r.Method, unversioned(r.URL.Path))
	if f != nil && !f.AfterHandling {
		return writeFault(w, f)
	}
	s.advance()
	if f != nil {
		s.mux.ServeHTTP(httptest.NewRecorder(), r)
		return writeFault(w, f)
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		WriteErrors(sw, http.StatusNotFound, Reason{Reason: "Not found"})
		return sw.status
	}
	s.mux.ServeHTTP(sw, r)
	return sw.status
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) takeFault(method, p string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !matchRequest(f.Method, f.Path, method, p) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

func writeFault(w http.ResponseWriter, f *Fault) int {
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
	}
	reasons := f.Errors
	if len(reasons) == 0 {
		reasons = []Reason{{Reason: defaultReason(f.Status)}}
	}
	WriteErrors(w, f.Status, reasons...)
	return f.Status
}

func defaultReason(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Not found"
	case http.StatusTooManyRequests:
		return "Too many requests"
	case http.StatusUnauthorized:
		return "Invalid Token"
	case http.StatusForbidden:
		return "Unauthorized"
	case http.StatusServiceUnavailable:
		return "Service unavailable; please try again later"
	}
	if status >= 500 {
		return "An unexpected error occurred; please try again later"
	}
	return http.StatusText(status)
}

// WriteJSON answers v as JSON with the real API's headers.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string][]Reason{"errors": {{Reason: "fake linode: " + err.Error()}}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Ratelimit-Limit", "1840")
	h.Set("X-Oauth-Scopes", "*")
	w.WriteHeader(status)
	w.Write(b)
}

// WriteErrors answers an error body: {"errors": [{"reason": …, "field": …}]}.
func WriteErrors(w http.ResponseWriter, status int, reasons ...Reason) {
	WriteJSON(w, status, map[string][]Reason{"errors": reasons})
}

// WritePage answers one page of items (a slice of JSON objects), filtered
// and ordered by the request's X-Filter and paged by its page and page_size
// parameters, like the real API's list endpoints.
func (s *Server) WritePage(w http.ResponseWriter, r *http.Request, items any) {
	b, err := json.Marshal(items)
	if err != nil {
		WriteErrors(w, http.StatusInternalServerError, Reason{Reason: "fake linode: " + err.Error()})
		return
	}
	var objs []map[string]any
	if err := json.Unmarshal(b, &objs); err != nil {
		WriteErrors(w, http.StatusInternalServerError, Reason{Reason: "fake linode: " + err.Error()})
		return
	}
	objs, err = applyFilter(objs, r.Header.Get("X-Filter"))
	if err != nil {
		WriteErrors(w, http.StatusBadRequest, Reason{Reason: err.Error()})
		return
	}
	page, size := 1, s.opts.PageSize
	if v := r.URL.Query().Get("page"); v != "" {
		if _, err := fmt.Sscan(v, &page); err != nil || page < 1 {
			WriteErrors(w, http.StatusBadRequest, Reason{Reason: "Must be an integer greater than 0", Field: "page"})
			return
		}
	}
	if v := r.URL.Query().Get("page_size"); v != "" {
		if _, err := fmt.Sscan(v, &size); err != nil || size < 1 {
			WriteErrors(w, http.StatusBadRequest, Reason{Reason: "Must be an integer greater than 0", Field: "page_size"})
			return
		}
	}
	pages := max(1, (len(objs)+size-1)/size)
	lo := min(len(objs), (page-1)*size)
	hi := min(len(objs), lo+size)
	data := objs[lo:hi]
	if data == nil {
		data = []map[string]any{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "page": page, "pages": pages, "results": len(objs)})
}

// apiTime is how the API writes times: UTC, to the second, without a zone.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

// decode reads a request's JSON body into v, or answers 400 as the API does.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		WriteErrors(w, http.StatusBadRequest, Reason{Reason: "Invalid JSON"})
		return false
	}
	return true
}
