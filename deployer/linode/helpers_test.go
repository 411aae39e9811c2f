package linode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// testToken is the bearer token the fake API accepts; no error or log line
// may contain it.
const testToken = "fake-token-5b9d1c0e7a2f"

// skipClock is a deployer.Clock whose time jumps ahead by whatever is waited
// for, at once: retries and backoff run without sleeping, and the test reads
// back every wait the Cloud asked for.
type skipClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newSkipClock() *skipClock {
	return &skipClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skipClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *skipClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.waits)
}

// env is a Cloud talking to its own fake Linode API over loopback.
type env struct {
	api   *linodetest.Server
	cloud *Cloud
	clock *skipClock
	logs  *logbuf.Buffer
}

// newEnv starts a fake API with apiOpts and a Cloud on it, on a skipClock
// unless opts says otherwise. opts may adjust the Cloud's options.
func newEnv(t *testing.T, apiOpts linodetest.Options, opts ...func(*Options)) *env {
	t.Helper()
	api := linodetest.NewServer(apiOpts)
	t.Cleanup(api.Close)
	e := &env{api: api, clock: newSkipClock(), logs: &logbuf.Buffer{}}
	o := Options{
		Client:         api.NewClient(testToken),
		Region:         "us-east",
		Type:           "g6-nanode-1",
		Image:          "linode/debian12",
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGreenlightTestKey ops@example.test"},
		Tags:           []string{"dns"},
		FirewallID:     31337,
		PollInterval:   5 * time.Millisecond,
		CallOptions:    e.callOptions(e.clock),
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.cloud = c
	return e
}

// callOptions are the tests' API call options: waits on clock, the log in
// e.logs, a 10s retry budget and a first backoff of 1s.
func (e *env) callOptions(clock deployer.Clock) CallOptions {
	return CallOptions{Clock: clock, RetryBudget: 10 * time.Second, RetryWait: time.Second,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// realClock makes the Cloud wait on the real clock (for tests whose fake
// instances age in real time).
func realClock(o *Options) { o.Clock = deployer.SystemClock{} }

// spec asks for the server of role in deploy id, as the pipeline does.
func spec(role string, id uint64) deployer.ServerSpec {
	return deployer.ServerSpec{
		Service:  "ns",
		Role:     role,
		Name:     fmt.Sprintf("%s-%d", role, id),
		Label:    role + "-next",
		Image:    "linode/debian12",
		Tags:     []string{deployer.TagGreenlight, deployer.ServiceTag("ns"), deployer.DeployTag(id)},
		DeployID: id,
	}
}

// createBody is the part of a create request the tests look at.
type createBody struct {
	Label          string   `json:"label"`
	Region         string   `json:"region"`
	Type           string   `json:"type"`
	Image          string   `json:"image"`
	RootPass       string   `json:"root_pass"`
	AuthorizedKeys []string `json:"authorized_keys"`
	Tags           []string `json:"tags"`
	FirewallID     int      `json:"firewall_id"`
	Metadata       struct {
		UserData string `json:"user_data"`
	} `json:"metadata"`
}

// creates decodes every POST /linode/instances the fake received.
func creates(t *testing.T, api *linodetest.Server) []createBody {
	t.Helper()
	var out []createBody
	for _, r := range api.Requests() {
		if r.Method != "POST" || !bytes.HasSuffix([]byte(r.Path), []byte("/linode/instances")) {
			continue
		}
		var b createBody
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			t.Fatalf("create body %q: %v", r.Body, err)
		}
		out = append(out, b)
	}
	return out
}

func serverIDs(servers []deployer.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.ID)
	}
	return out
}

func serverNames(servers []deployer.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.Name)
	}
	return out
}
