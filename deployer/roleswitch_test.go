package deployer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

// recordingSwitch notes what it was asked to do; fail makes Accept fail.
type recordingSwitch struct {
	name     string
	endpoint string
	calls    *[]string
	fail     bool
}

func (r *recordingSwitch) note(verb string, servers []deployer.Server) {
	var names []string
	for _, s := range servers {
		names = append(names, s.Name)
	}
	*r.calls = append(*r.calls, fmt.Sprintf("%s %s %s", r.name, verb, strings.Join(names, ",")))
}

func (r *recordingSwitch) Accept(_ context.Context, servers []deployer.Server) error {
	r.note("accept", servers)
	if r.fail {
		return errors.New(r.name + " refused")
	}
	return nil
}

func (r *recordingSwitch) Drain(_ context.Context, servers []deployer.Server) error {
	r.note("drain", servers)
	return nil
}

func (r *recordingSwitch) Endpoints() []string { return []string{r.endpoint} }

func TestRoleSwitch(t *testing.T) {
	set := []deployer.Server{{Name: "ns1-7", Role: "ns1"}, {Name: "ns2-7", Role: "ns2"}}
	tests := []struct {
		name       string
		failSecond bool
		wantCalls  []string
		wantErr    string
	}{
		{name: "each role through its own switch",
			wantCalls: []string{"nb-us accept ns1-7", "nb-eu accept ns2-7", "nb-us drain ns1-7", "nb-eu drain ns2-7"}},
		{name: "a failing switch stops the accept", failSecond: true,
			wantCalls: []string{"nb-us accept ns1-7", "nb-eu accept ns2-7"}, wantErr: "nb-eu refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			us := &recordingSwitch{name: "nb-us", endpoint: "192.0.2.1:53", calls: &calls}
			eu := &recordingSwitch{name: "nb-eu", endpoint: "192.0.2.2:53", calls: &calls, fail: tt.failSecond}
			sw, err := deployer.NewRoleSwitch([]string{"ns1", "ns2"}, []deployer.RoleRoute{{Roles: []string{"ns1"}, Switch: us}, {Roles: []string{"ns2"}, Switch: eu}})
			if err != nil {
				t.Fatal(err)
			}
			err = sw.Accept(t.Context(), set)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := sw.Drain(t.Context(), set); err != nil {
					t.Fatal(err)
				}
			} else if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls = %q, want %q", calls, tt.wantCalls)
			}
			if got := sw.Endpoints(); !slices.Equal(got, []string{"192.0.2.1:53", "192.0.2.2:53"}) {
				t.Errorf("endpoints = %v", got)
			}
		})
	}
	var calls []string
	if _, err := deployer.NewRoleSwitch([]string{"ns1", "ns3"}, []deployer.RoleRoute{{Roles: []string{"ns1"}, Switch: &recordingSwitch{calls: &calls}}}); err == nil || !strings.Contains(err.Error(), "ns3") {
		t.Errorf("a role without a switch: %v", err)
	}
}
