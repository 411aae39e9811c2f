package linode

import (
	"context"
	"net/http"
	"strings"
)

// Transport is an http.RoundTripper for the linodego client that tells
// Observe about every request: its operation ("GET /linode/instances/{id}"),
// the status code (0 when no answer came) and whether it is a retry of a
// call that failed before (a 429, a 5xx or a dropped connection).
type Transport struct {
	Base    http.RoundTripper // default http.DefaultTransport
	Observe func(operation string, code int, retry bool)
}

// RoundTrip sends req through Base and reports it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if t.Observe != nil {
		code := 0
		if err == nil {
			code = resp.StatusCode
		}
		t.Observe(Operation(req.Method, req.URL.Path), code, isRetry(req.Context()))
	}
	return resp, err
}

// Operation names a request by its method and path template: the API
// version is dropped and identifiers become {id}, so the names stay few.
func Operation(method, path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "v4") {
		parts = parts[1:]
	}
	for i, p := range parts {
		switch {
		case i == 0:
		case isNumber(p), parts[i-1] == "types":
			parts[i] = "{id}"
		case parts[i-1] == "images" && (p == "private" || p == "linode"):
			parts[i] = "{id}"
			if i+1 < len(parts) {
				parts[i+1] = "{id}"
			}
		}
	}
	op := method + " /" + strings.Join(parts, "/")
	if len(op) > 80 {
		op = op[:80]
	}
	return op
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

type retryKey struct{}

// withRetry marks ctx as carrying a retried attempt of a call.
func withRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, retryKey{}, true)
}

func isRetry(ctx context.Context) bool {
	v, _ := ctx.Value(retryKey{}).(bool)
	return v
}
