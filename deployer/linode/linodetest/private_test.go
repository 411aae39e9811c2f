package linodetest_test

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
)

// TestInstancesGetPrivateAddressesWhenAsked: "private_ip": true adds an
// address in 192.168.128.0/17 after the public one, as the API lists them.
func TestInstancesGetPrivateAddressesWhenAsked(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()
	create := `{"region":"us-east","type":"g6-nanode-1","label":"%s","private_ip":%v}`
	status, _, with := call(t, s, "POST", "/v4/linode/instances", "", fmt.Sprintf(create, "with-private", true))
	if status != 200 {
		t.Fatalf("create: %d %v", status, with)
	}
	ips := with["ipv4"].([]any)
	if len(ips) != 2 {
		t.Fatalf("ipv4 = %v, want a public and a private address", ips)
	}
	if ip, err := netip.ParseAddr(ips[1].(string)); err != nil || !linodetest.PrivateNetwork.Contains(ip) {
		t.Errorf("second address %v is not in %s", ips[1], linodetest.PrivateNetwork)
	}
	_, _, without := call(t, s, "POST", "/v4/linode/instances", "", fmt.Sprintf(create, "without-private", false))
	if ips := without["ipv4"].([]any); len(ips) != 1 {
		t.Errorf("ipv4 = %v without private_ip, want the public address alone", ips)
	}
}

// TestNodeAddressesMustBePrivateInTheRegion: a node's address must be the
// private address of a Linode in the NodeBalancer's region; public
// addresses, unknown private ones and other regions' are refused.
func TestNodeAddressesMustBePrivateInTheRegion(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()
	nb := s.AddNodeBalancer(linodetest.NodeBalancer{Label: "ns-lb", Region: "us-east"})
	here := s.AddInstance(linodetest.Instance{Label: "here", Region: "us-east", IPv4: "192.0.2.5", PrivateIPv4: "192.168.128.5"})
	s.AddInstance(linodetest.Instance{Label: "there", Region: "eu-central", IPv4: "192.0.2.6", PrivateIPv4: "192.168.128.6"})
	status, _, cfg := call(t, s, "POST", fmt.Sprintf("/v4/nodebalancers/%d/configs", nb.ID), "", `{"port":53,"protocol":"udp"}`)
	if status != 200 {
		t.Fatalf("create config: %d %v", status, cfg)
	}
	nodes := fmt.Sprintf("/v4/nodebalancers/%d/configs/%d/nodes", nb.ID, idOf(cfg))
	tests := []struct {
		name, address string
		ok            bool
	}{
		{"the public address of an instance here", here.IPv4 + ":53", false},
		{"a private address nobody has", "192.168.128.99:53", false},
		{"a private address of another region", "192.168.128.6:53", false},
		{"a private address outside Linode's range", "10.0.0.5:53", false},
		{"the private address of an instance here", "192.168.128.5:53", true},
	}
	var accepted int
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, s, "POST", nodes, "", fmt.Sprintf(`{"address":%q,"label":"node-%d","mode":"accept"}`, tt.address, i))
			if tt.ok {
				if status != 200 {
					t.Fatalf("%s refused: %d %v", tt.address, status, body)
				}
				accepted = idOf(body)
				return
			}
			want := fmt.Sprintf(`{"errors":[{"reason":%q,"field":"address"}]}`, linodetest.NodeAddressReason)
			if status != 400 || !equalJSON(body, want) {
				t.Errorf("%s: %d %v, want 400 %s", tt.address, status, body, want)
			}
		})
	}
	// Moving the node to a public address is refused too; a change of mode
	// alone is not checked again.
	node := fmt.Sprintf("%s/%d", nodes, accepted)
	if status, _, body := call(t, s, "PUT", node, "", `{"address":"192.0.2.5:53"}`); status != 400 {
		t.Errorf("update to a public address: %d %v", status, body)
	}
	if status, _, body := call(t, s, "PUT", node, "", `{"mode":"drain"}`); status != 200 {
		t.Errorf("drain: %d %v", status, body)
	}
}

// TestUserDataLimit: more than 16 KiB of decoded user data is refused with
// the API's words; exactly the limit is accepted.
func TestUserDataLimit(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{Token: token})
	defer s.Close()
	for _, tt := range []struct {
		size int
		ok   bool
	}{{linodetest.MaxUserData, true}, {linodetest.MaxUserData + 1, false}} {
		data := base64.StdEncoding.EncodeToString([]byte("#cloud-config\n" + strings.Repeat("#", tt.size-len("#cloud-config\n"))))
		body := fmt.Sprintf(`{"region":"us-east","type":"g6-nanode-1","label":"ud-%d","metadata":{"user_data":%q}}`, tt.size, data)
		status, _, got := call(t, s, "POST", "/v4/linode/instances", "", body)
		want := `{"errors":[{"reason":"decoded user_data must not exceed 16384 bytes","field":"metadata.user_data"}]}`
		if tt.ok != (status == 200) || (!tt.ok && !equalJSON(got, want)) {
			t.Errorf("%d bytes: %d %v", tt.size, status, got)
		}
	}
}
