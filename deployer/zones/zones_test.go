package zones

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

const goodZone = `$ORIGIN example.test.
$TTL 300
@    IN SOA ns1.example.test. hostmaster.example.test. ( 2026110102 3600 600 1209600 300 )
     IN NS  ns1.example.test.
ns1  IN A   192.0.2.1
www  IN A   192.0.2.10
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		zones   []string
		names   map[string]string
		wantErr string // a substring; "" means success
	}{
		{name: "one good zone", files: map[string]string{"example.test.zone": goodZone}, zones: []string{"example.test"}},
		{name: "zone given with its dot", files: map[string]string{"example.test.zone": goodZone}, zones: []string{"example.test."}},
		{name: "a file named per zone", files: map[string]string{"db.example": goodZone}, zones: []string{"example.test"},
			names: map[string]string{"example.test": "db.example"}},
		{name: "other files are ignored", files: map[string]string{"example.test.zone": goodZone, "README": "notes"}, zones: []string{"example.test"}},
		{name: "syntax error names file and line",
			files:   map[string]string{"example.test.zone": strings.Replace(goodZone, "192.0.2.10", "192.0.2.300", 1)},
			zones:   []string{"example.test"},
			wantErr: "example.test.zone line 6: bad A"},
		{name: "missing SOA",
			files:   map[string]string{"example.test.zone": "$ORIGIN example.test.\n$TTL 300\n@ IN NS ns1.example.test.\n"},
			zones:   []string{"example.test"},
			wantErr: "example.test.zone: no SOA record for example.test."},
		{name: "empty file", files: map[string]string{"example.test.zone": "; nothing\n"}, zones: []string{"example.test"},
			wantErr: "the file has no records"},
		{name: "two SOAs",
			files:   map[string]string{"example.test.zone": goodZone + "@ IN SOA ns1.example.test. h.example.test. 1 2 3 4 5\n"},
			zones:   []string{"example.test"},
			wantErr: "more than one SOA"},
		{name: "SOA of another zone",
			files:   map[string]string{"example.test.zone": strings.Replace(goodZone, "$ORIGIN example.test.", "$ORIGIN other.test.", 1)},
			zones:   []string{"example.test"},
			wantErr: "the SOA is for other.test., not the zone example.test."},
		{name: "record outside the zone",
			files:   map[string]string{"example.test.zone": goodZone + "elsewhere.test. IN A 192.0.2.9\n"},
			zones:   []string{"example.test"},
			wantErr: "elsewhere.test. is outside the zone example.test."},
		{name: "unlisted zone file",
			files:   map[string]string{"example.test.zone": goodZone, "forgotten.test.zone": goodZone},
			zones:   []string{"example.test"},
			wantErr: "forgotten.test.zone is in the zones directory but forgotten.test is not one of the service's zones"},
		{name: "listed zone without a file", files: map[string]string{"example.test.zone": goodZone},
			zones:   []string{"example.test", "second.test"},
			wantErr: "zone second.test has no file second.test.zone"},
		{name: "include refused",
			files:   map[string]string{"example.test.zone": goodZone + "$INCLUDE /etc/passwd\n"},
			zones:   []string{"example.test"},
			wantErr: "example.test.zone line 7"},
		{name: "two zones one file", files: map[string]string{"example.test.zone": goodZone}, zones: []string{"example.test", "b.test"},
			names:   map[string]string{"b.test": "example.test.zone"},
			wantErr: "both name the file example.test.zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tt.files)
			set, err := Load(t.Context(), Options{Dir: dir, Zones: tt.zones, Files: tt.names})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Files) != 1 || set.Files[0].Serial != 2026110102 || set.Files[0].Zone != "example.test." {
				t.Fatalf("files = %+v", set.Content.Files)
			}
			if string(set.Files[0].Content) != goodZone {
				t.Fatal("content is not the file's bytes")
			}
			if !strings.HasPrefix(set.Content.Digest, "sha256:") || set.Content.Files[0].Size != len(goodZone) {
				t.Fatalf("content = %+v", set.Content)
			}
		})
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	_, err := Load(t.Context(), Options{Dir: filepath.Join(t.TempDir(), "nope"), Zones: []string{"example.test"}})
	if err == nil || !strings.Contains(err.Error(), "read the zones directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadStopsWhenContextEnds(t *testing.T) {
	dir := writeDir(t, map[string]string{"example.test.zone": goodZone})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Load(ctx, Options{Dir: dir, Zones: []string{"example.test"}}); err == nil {
		t.Fatal("Load succeeded after its context ended")
	}
}

func TestDigestFollowsContent(t *testing.T) {
	a := writeDir(t, map[string]string{"example.test.zone": goodZone})
	b := writeDir(t, map[string]string{"example.test.zone": goodZone})
	c := writeDir(t, map[string]string{"example.test.zone": goodZone + "api IN A 192.0.2.20\n"})
	load := func(dir string) deployer.ZoneContent {
		set, err := Load(t.Context(), Options{Dir: dir, Zones: []string{"example.test"}})
		if err != nil {
			t.Fatal(err)
		}
		return set.Content
	}
	if load(a).Digest != load(b).Digest {
		t.Fatal("the same bytes gave different digests")
	}
	if load(a).Digest == load(c).Digest {
		t.Fatal("different bytes gave the same digest")
	}
}

func TestCheckSerials(t *testing.T) {
	prev := &deployer.ZoneContent{Files: []deployer.ZoneFile{{Zone: "example.test.", Serial: 2026110102, Digest: "aaa"}}}
	tests := []struct {
		name    string
		next    deployer.ZoneFile
		wantErr string
	}{
		{"unchanged content, same serial", deployer.ZoneFile{Zone: "example.test.", Serial: 2026110102, Digest: "aaa"}, ""},
		{"changed content, serial grew", deployer.ZoneFile{Zone: "example.test.", Serial: 2026110103, Digest: "bbb"}, ""},
		{"changed content, same serial", deployer.ZoneFile{Zone: "example.test.", Serial: 2026110102, Digest: "bbb"},
			"example.test changed but its serial 2026110102 did not grow: secondaries would never pick it up"},
		{"changed content, serial went down", deployer.ZoneFile{Zone: "example.test.", Serial: 2026110101, Digest: "bbb"},
			"went from 2026110102 to 2026110101"},
		{"a new zone", deployer.ZoneFile{Zone: "new.test.", Serial: 1, Digest: "ccc"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := deployer.CheckSerials(prev, deployer.ZoneContent{Files: []deployer.ZoneFile{tt.next}})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--allow-same-serial") {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := deployer.CheckSerials(nil, deployer.ZoneContent{Files: []deployer.ZoneFile{{Zone: "a."}}}); err != nil {
		t.Fatalf("no previous content: %v", err)
	}
}

func TestSerialGrewWraps(t *testing.T) {
	tests := []struct {
		prev, next uint32
		want       bool
	}{
		{1, 2, true}, {2, 1, false}, {5, 5, false},
		{0xffffffff, 1, true},  // wrapped forwards
		{1, 0x80000001, false}, // exactly half way is undefined: not grown
	}
	for _, tt := range tests {
		if got := deployer.SerialGrew(tt.prev, tt.next); got != tt.want {
			t.Errorf("SerialGrew(%d, %d) = %v, want %v", tt.prev, tt.next, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(goodZone)
	f.Add("$ORIGIN example.test.\n@ IN SOA a. b. 1 2 3 4 5\n")
	f.Add("@ IN SOA a. b. ( 1 2 3\n")
	f.Add("$INCLUDE x\n")
	f.Fuzz(func(t *testing.T, data string) {
		serial, err := Parse("example.test", "example.test.zone", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "example.test.zone") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A file that passes parses again to the same serial.
		again, err := Parse("example.test.", "example.test.zone", []byte(data))
		if err != nil || again != serial {
			t.Fatalf("second parse: %d, %v; first %d", again, err, serial)
		}
	})
}
