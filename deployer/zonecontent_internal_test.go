package deployer

import "testing"

func TestImageZones(t *testing.T) {
	tests := []struct{ description, want string }{
		{"baked from linode/debian12 by greenlight build 20261123-0400; zones sha256:0123456789abcdef0123 · example.test. 7",
			" · image carries zones sha256:0123456789ab"},
		{"baked from linode/debian12 by greenlight build 20261123-0400", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := imageZones(Image{Description: tt.description}); got != tt.want {
			t.Errorf("imageZones(%q) = %q, want %q", tt.description, got, tt.want)
		}
	}
}
