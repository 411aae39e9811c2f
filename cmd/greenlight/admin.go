package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// AdminOff is the --admin value (and admin.listen) that serves no admin
// endpoints.
const AdminOff = "off"

// readiness is what /readyz reports: each named condition and, while it
// does not hold, why.
type readiness struct {
	mu      sync.Mutex
	pending map[string]string // condition → why it does not hold yet; absent when it holds
}

func newReadiness() *readiness { return &readiness{pending: map[string]string{}} }

// wait adds a condition that does not hold yet.
func (r *readiness) wait(name, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[name] = why
}

// done marks a condition as holding.
func (r *readiness) done(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, name)
}

// set marks a condition as holding, or not with why.
func (r *readiness) set(name string, ok bool, why string) {
	if ok {
		r.done(name)
	} else {
		r.wait(name, why)
	}
}

// notReady lists the conditions that do not hold, "name: why", sorted.
func (r *readiness) notReady() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.pending))
	for _, name := range slices.Sorted(maps.Keys(r.pending)) {
		out = append(out, name+": "+r.pending[name])
	}
	return out
}

// adminServer serves /metrics, /healthz and /readyz.
type adminServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func (m *Main) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.running.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", m.readyzHandler)
	return mux
}

// readyzHandler answers 200 when the store is open, the chat connected and
// every service's switch pointed at its set; otherwise 503 with what is not.
func (m *Main) readyzHandler(w http.ResponseWriter, r *http.Request) {
	if problems := m.running.ready.notReady(); len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "not_ready": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// startAdmin listens on addr and serves the admin endpoints until
// stopAdmin.
func (m *Main) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener on %s: %w", addr, err)
	}
	a := &adminServer{
		srv: &http.Server{Handler: m.adminHandler(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("admin listener stopped", "err", err)
		}
	}()
	m.running.admin = a
	m.Log.Info("admin endpoints", "metrics", "http://"+ln.Addr().String()+"/metrics",
		"healthz", "/healthz", "readyz", "/readyz")
	return nil
}

// AdminAddr is where the admin endpoints answer, or "" when they are off.
func (m *Main) AdminAddr() string {
	if m.running.admin == nil {
		return ""
	}
	return m.running.admin.ln.Addr().String()
}

func (m *Main) stopAdmin() {
	if m.running.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.running.admin.srv.Shutdown(ctx)
	<-m.running.admin.done
	m.running.admin = nil
}

// chatObserver counts chat traffic in the metrics and keeps the chat
// condition of /readyz.
type chatObserver struct{ m *Main }

func (o chatObserver) ChatRequest(adapter, kind, result string) {
	o.m.running.metrics.ChatRequest(adapter, kind, result)
}

func (o chatObserver) ChatAck(adapter string, d time.Duration) {
	o.m.running.metrics.ChatAck(adapter, d)
}

func (o chatObserver) ChatConnected(adapter string, up bool) {
	o.m.running.metrics.ChatConnected(adapter, up)
	o.m.running.ready.set("chat", up, adapter+" is not connected")
}
