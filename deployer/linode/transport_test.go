package linode

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestOperation(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", "/v4/linode/instances", "GET /linode/instances"},
		{"GET", "/v4/linode/instances/12345", "GET /linode/instances/{id}"},
		{"POST", "/v4/nodebalancers/7/configs/8/nodes", "POST /nodebalancers/{id}/configs/{id}/nodes"},
		{"DELETE", "/v4/images/private/991", "DELETE /images/{id}/{id}"},
		{"GET", "/v4/linode/types/g6-nanode-1", "GET /linode/types/{id}"},
		{"PUT", "/v4/domains/3/records/4", "PUT /domains/{id}/records/{id}"},
		{"GET", "/v4/images/linode/debian12", "GET /images/{id}/{id}"},
	}
	for _, tt := range tests {
		if got := Operation(tt.method, tt.path); got != tt.want {
			t.Errorf("Operation(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

// The transport reports each request with its status code, and a request
// made by a retried call as a retry.
func TestTransportObserves(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v4/linode/instances/5" {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	type seen struct {
		op    string
		code  int
		retry bool
	}
	var mu sync.Mutex
	var got []seen
	c := &http.Client{Transport: &Transport{Observe: func(op string, code int, retry bool) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{op, code, retry})
	}}}
	for i, ctx := range []context.Context{context.Background(), withRetry(context.Background())} {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v4/linode/instances/5", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := (seen{"GET /linode/instances/{id}", 429, i == 1}); got[i] != want {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want)
		}
	}
}
