package linode

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/linode/linodego"
)

// Retries run on the skipClock: the waits the Cloud asks for are recorded,
// not slept, so the test sees that Retry-After was honoured without timing.
func TestRetries(t *testing.T) {
	post := func(status, times int, retryAfter time.Duration) linodetest.Fault {
		return linodetest.Fault{Method: "POST", Path: "/linode/instances", Status: status, Times: times, RetryAfter: retryAfter}
	}
	tests := []struct {
		name    string
		faults  []linodetest.Fault
		waits   []time.Duration
		posts   int
		wantErr string
	}{
		{name: "429 with Retry-After, then success", faults: []linodetest.Fault{post(429, 1, 7*time.Second)},
			waits: []time.Duration{7 * time.Second}, posts: 2},
		{name: "429 without Retry-After backs off", faults: []linodetest.Fault{post(429, 1, 0)},
			waits: []time.Duration{time.Second}, posts: 2},
		{name: "500 twice, then success", faults: []linodetest.Fault{post(500, 2, 0)},
			waits: []time.Duration{time.Second, 2 * time.Second}, posts: 3},
		{name: "502 and 503, then success", faults: []linodetest.Fault{post(502, 1, 0), post(503, 1, 0)},
			waits: []time.Duration{time.Second, 2 * time.Second}, posts: 3},
		{name: "500 beyond the budget", faults: []linodetest.Fault{post(500, 100, 0)},
			waits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, posts: 4,
			wantErr: "Linode kept failing (500: An unexpected error occurred; please try again later) while trying to create ns1-7: gave up after 4 attempts in 7s"},
		{name: "Retry-After longer than the budget", faults: []linodetest.Fault{post(429, 100, time.Minute)},
			posts:   1,
			wantErr: "Linode kept asking greenlight to slow down (429) while trying to create ns1-7: gave up after 1 attempt in 0s"},
		{name: "the lookup before the create is retried too",
			faults: []linodetest.Fault{{Method: "GET", Path: "/linode/instances", Status: 500}},
			waits:  []time.Duration{time.Second}, posts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{})
			for _, f := range tt.faults {
				e.api.Inject(f)
			}
			s, err := e.cloud.Create(context.Background(), spec("ns1", 7))
			if tt.wantErr != "" {
				if err == nil || deployer.ErrorMessage(err) != tt.wantErr || deployer.ErrorCode(err) != deployer.CodeFailed {
					t.Fatalf("Create = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || s.ID == "" {
				t.Fatalf("Create = %+v, %v", s, err)
			}
			if got := e.clock.Waits(); !slices.Equal(got, tt.waits) {
				t.Errorf("waited %v, want %v", got, tt.waits)
			}
			if got := e.api.Count("POST", "/linode/instances"); got != tt.posts {
				t.Errorf("%d create requests, want %d", got, tt.posts)
			}
			if n := len(e.api.Instances()); (tt.wantErr == "") != (n == 1) {
				t.Errorf("%d instances exist", n)
			}
		})
	}
}

func TestRetriesWhileWaiting(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	s, err := e.cloud.Create(context.Background(), spec("ns1", 7))
	if err != nil {
		t.Fatal(err)
	}
	e.api.Inject(linodetest.Fault{Method: "GET", Path: "/linode/instances/*", Status: 502, Times: 2})
	e.api.Inject(linodetest.Fault{Method: "GET", Path: "/linode/instances/*", Status: 429, RetryAfter: 3 * time.Second})
	got, err := e.cloud.WaitRunning(context.Background(), s)
	if err != nil || got.Status != "running" {
		t.Fatalf("WaitRunning = %+v, %v", got, err)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(e.clock.Waits(), want) {
		t.Errorf("waited %v, want %v", e.clock.Waits(), want)
	}
}

// A 4xx other than 429 is not retried, and says in plain words what Linode
// refused.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		region string
		typ    string
		token  string
		fault  *linodetest.Fault
		want   string
		code   deployer.Code
	}{
		{name: "unknown type", typ: "g6-nanode-9",
			want: "Linode refused type g6-nanode-9: a valid plan type by that ID was not found", code: deployer.CodeInvalid},
		{name: "unknown region", region: "mars-1",
			want: "Linode refused region mars-1: region is not valid", code: deployer.CodeInvalid},
		{name: "unknown region and type", region: "mars-1", typ: "g6-nanode-9",
			want: "Linode refused region mars-1: region is not valid; type g6-nanode-9: a valid plan type by that ID was not found", code: deployer.CodeInvalid},
		{name: "refusal without a field",
			fault: &linodetest.Fault{Status: 400, Errors: []linodetest.Reason{{Reason: "You have reached the limit of Linodes on your account"}}},
			want:  "Linode refused to create ns1-7: you have reached the limit of Linodes on your account", code: deployer.CodeInvalid},
		{name: "weak root password",
			fault: &linodetest.Fault{Status: 400, Errors: []linodetest.Reason{{Field: "root_pass", Reason: "Password does not meet strength requirement"}}},
			want:  "Linode refused root_pass: password does not meet strength requirement", code: deployer.CodeInvalid},
		{name: "bad token", token: "not-the-token",
			want: "Linode refused to create ns1-7: invalid Token (is LINODE_TOKEN right?)", code: deployer.CodeForbidden},
		{name: "token without the scope",
			fault: &linodetest.Fault{Status: 403, Errors: []linodetest.Reason{{Reason: "Unauthorized"}}},
			want:  "Linode refused to create ns1-7: unauthorized (the token may lack the scope this needs, e.g. linodes:read_write)", code: deployer.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, linodetest.Options{Token: testToken}, func(o *Options) {
				if tt.region != "" {
					o.Region = tt.region
				}
				if tt.typ != "" {
					o.Type = tt.typ
				}
				if tt.token != "" {
					o.Client.SetToken(tt.token)
				}
			})
			if tt.fault != nil {
				f := *tt.fault
				f.Method, f.Path = "POST", "/linode/instances"
				e.api.Inject(f)
			}
			_, err := e.cloud.Create(context.Background(), spec("ns1", 7))
			if err == nil || deployer.ErrorMessage(err) != tt.want {
				t.Fatalf("Create = %v\nwant %q", err, tt.want)
			}
			if got := deployer.ErrorCode(err); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			// The cause is linodego's error, for the log: kept, but not in the message.
			le, ok := errors.AsType[*linodego.Error](err)
			if !ok {
				t.Fatalf("%v does not wrap linodego's error", err)
			}
			if !strings.Contains(err.Error(), le.Error()) || strings.Contains(tt.want, le.Error()) {
				t.Errorf("Error() = %q, want the message, then linodego's %q", err, le)
			}
			if len(e.clock.Waits()) != 0 {
				t.Errorf("a refusal was retried after %v", e.clock.Waits())
			}
			if len(e.api.Instances()) != 0 {
				t.Errorf("an instance was created")
			}
		})
	}
}

// The token, the root passwords and the user data never reach an error or
// a log line, whether the create works, is retried or is refused.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	const userData = "#cloud-config\nsecret_zone_key: c2VjcmV0LXRzaWcta2V5\n"
	e := newEnv(t, linodetest.Options{Token: testToken}, func(o *Options) {
		o.UserData = func(context.Context, deployer.ServerSpec) ([]byte, error) { return []byte(userData), nil }
	})
	ctx := context.Background()
	var errs []string
	try := func(sp deployer.ServerSpec) {
		s, err := e.cloud.Create(ctx, sp)
		if err != nil {
			errs = append(errs, err.Error())
			return
		}
		if _, err := e.cloud.WaitRunning(ctx, s); err != nil {
			errs = append(errs, err.Error())
		}
	}
	try(spec("ns1", 7)) // works
	e.api.Inject(linodetest.Fault{Method: "POST", Path: "/linode/instances", Status: 500, Times: 4})
	try(spec("ns2", 7)) // retried until the budget is spent
	e.api.Inject(linodetest.Fault{Method: "POST", Path: "/linode/instances", Status: 400,
		Errors: []linodetest.Reason{{Field: "root_pass", Reason: "Password does not meet strength requirement"}}})
	try(spec("ns3", 7)) // refused, naming the password's field
	if len(errs) != 2 {
		t.Fatalf("errors %q, want two", errs)
	}

	var passwords []string
	for _, b := range creates(t, e.api) {
		if len(b.RootPass) < 32 {
			t.Fatalf("create of %s sent root password %q", b.Label, b.RootPass)
		}
		passwords = append(passwords, b.RootPass)
	}
	if len(passwords) < 6 {
		t.Fatalf("only %d creates sent", len(passwords))
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "instance created") || !strings.Contains(logs, "retrying") {
		t.Fatalf("the logs miss the create or the retries:\n%s", logs)
	}
	secrets := append([]string{testToken, "c2VjcmV0LXRzaWcta2V5", base64.StdEncoding.EncodeToString([]byte(userData))}, passwords...)
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the secret %q", secret)
		}
		for _, msg := range errs {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains the secret %q", msg, secret)
			}
		}
	}
}

// A Linode that cannot be reached is retried like a 5xx, then named.
func TestUnreachableAPI(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	e.api.Close()
	_, err := e.cloud.ListByTag(context.Background(), "deploy:7")
	if err == nil || !strings.HasPrefix(deployer.ErrorMessage(err), "greenlight could not reach Linode (") ||
		!strings.HasSuffix(deployer.ErrorMessage(err), "connection refused) while trying to list the servers tagged deploy:7: gave up after 4 attempts in 7s") {
		t.Fatalf("ListByTag = %v", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("%q contains the token", err)
	}
}

func TestStoppedDeploy(t *testing.T) {
	e := newEnv(t, linodetest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.cloud.Create(ctx, spec("ns1", 7))
	if err == nil || deployer.ErrorMessage(err) != "gave up trying to create ns1-7: the deploy was stopped" || !errors.Is(err, context.Canceled) {
		t.Fatalf("Create = %v", err)
	}
}
