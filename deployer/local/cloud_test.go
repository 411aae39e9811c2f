package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/logbuf"
	"github.com/miekg/dns"
)

func specFor(name, image string) deployer.ServerSpec {
	return deployer.ServerSpec{Service: "ns", Role: "ns1", Name: name, Label: name, Image: image,
		Tags: []string{deployer.TagGreenlight, deployer.ServiceTag("ns"), deployer.DeployTag(7)}, DeployID: 7}
}

func imageIDs(images []deployer.Image) []string {
	var out []string
	for _, im := range images {
		out = append(out, im.ID)
	}
	return out
}

func TestImagesAndBake(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ctx := context.Background()
	images, err := c.Images(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"local/ns-v2", "local/ns-v1", "local/ns-broken", "local/ns-stale"}
	if got := imageIDs(images); !slices.Equal(got, want) {
		t.Fatalf("Images = %q, want %q", got, want)
	}
	if !images[0].Golden || images[0].Label != "ns-golden-v2" || images[2].Golden || images[3].Golden {
		t.Errorf("golden flags or labels wrong: %+v", images)
	}

	v3, err := c.Bake(ctx, deployer.BakeSpec{Service: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if v3.ID != "local/ns-v3" || v3.Label != "ns-golden-v3" || !v3.Golden {
		t.Fatalf("Bake = %+v", v3)
	}
	images, _ = c.Images(ctx, "ns")
	if got := imageIDs(images); got[0] != "local/ns-v3" || len(got) != 5 {
		t.Fatalf("after Bake, Images = %q", got)
	}
	for i := 1; i < len(images); i++ { // newest first by time too
		if !images[i-1].Created.After(images[i].Created) {
			t.Errorf("%s (%v) is listed before %s (%v)", images[i-1].ID, images[i-1].Created, images[i].ID, images[i].Created)
		}
	}
	web, _ := c.Images(ctx, "web")
	if got := imageIDs(web); got[0] != "local/web-v2" || got[1] != "local/web-v1" {
		t.Fatalf("another service's images = %q", got)
	}

	// v3 serves a different www and a new AAAA.
	s := startServers(t, c, server{"ns1-3", "local/ns-v3", true})[0]
	tests := []struct {
		name   string
		qtype  uint16
		answer []string
	}{
		{"example.test", dns.TypeSOA, []string{"ns1.example.test. hostmaster.example.test. 2026110103 3600 600 1209600 300"}},
		{"www.example.test", dns.TypeA, []string{"192.0.2.11"}},
		{"www.example.test", dns.TypeAAAA, []string{"2001:db8::11"}},
		{"api.example.test", dns.TypeA, []string{"192.0.2.20"}},
	}
	for _, tt := range tests {
		r, err := ask("udp", s.Addr, tt.name, tt.qtype)
		if err != nil {
			t.Fatal(err)
		}
		if got := rdatas(r.Answer); !slices.Equal(got, tt.answer) {
			t.Errorf("v3 %s %s = %q, want %q", tt.name, dns.TypeToString[tt.qtype], got, tt.answer)
		}
	}
}

// A bake takes its label and description from the spec when given; the
// image survives a restart, and DeleteImage forgets it (twice is fine).
func TestBakeSpecAndDeleteImage(t *testing.T) {
	dir := t.TempDir()
	c := newTestCloud(t, dir)
	ctx := context.Background()
	spec := deployer.BakeSpec{Service: "ns", BaseImage: "linode/debian12", Label: "ns-golden-20261123-0400",
		Description: "baked from linode/debian12 by greenlight build 20261123-0400", BuildID: "20261123-0400"}
	img, err := c.Bake(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != "local/ns-v3" || img.Label != spec.Label || img.Description != spec.Description || !img.Golden {
		t.Fatalf("Bake = %+v", img)
	}
	s := startServers(t, c, server{"ns1-3", img.ID, true})[0]
	r, err := ask("udp", s.Addr, "example.test", dns.TypeSOA)
	if err != nil {
		t.Fatal(err)
	}
	if got := soaSerial(t, r); got != serialFor(3) {
		t.Errorf("serial of the baked image = %d, want %d", got, serialFor(3))
	}
	c.Close()

	c = newTestCloud(t, dir)
	images, _ := c.Images(ctx, "ns")
	if images[0].ID != img.ID || images[0].Label != spec.Label {
		t.Fatalf("after a restart, newest image = %+v", images[0])
	}
	for _, id := range []string{"local/ns-v1", "local/ns-v1", "local/nothing"} {
		if err := c.DeleteImage(ctx, id); err != nil {
			t.Fatalf("DeleteImage(%s) = %v", id, err)
		}
	}
	images, _ = c.Images(ctx, "ns")
	if got, want := imageIDs(images), []string{"local/ns-v3", "local/ns-v2", "local/ns-broken", "local/ns-stale"}; !slices.Equal(got, want) {
		t.Errorf("after DeleteImage, Images = %q, want %q", got, want)
	}
	next, err := c.Bake(ctx, deployer.BakeSpec{Service: "ns"})
	if err != nil || next.ID != "local/ns-v4" || next.Label != "ns-golden-v4" {
		t.Errorf("Bake without label = %+v, %v; want local/ns-v4 labelled ns-golden-v4", next, err)
	}
	c.Close()
	c = newTestCloud(t, dir)
	images, _ = c.Images(ctx, "ns")
	if slices.Contains(imageIDs(images), "local/ns-v1") {
		t.Errorf("a deleted image came back after a restart: %q", imageIDs(images))
	}
}

func TestCreateUnknownImage(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	_, err := c.Create(context.Background(), specFor("ns1-7", "local/ns-v9"))
	want := `image "local/ns-v9" does not exist; images: local/ns-v2, local/ns-v1; test images: local/ns-broken, local/ns-stale`
	if err == nil || err.Error() != want {
		t.Fatalf("Create = %v\nwant %s", err, want)
	}
	if code := deployer.ErrorCode(err); code != deployer.CodeInvalid {
		t.Errorf("code %q, want %q", code, deployer.CodeInvalid)
	}
	if servers, _ := c.ListByTag(context.Background(), deployer.TagGreenlight); len(servers) != 0 {
		t.Errorf("a failed Create left %v", servers)
	}
}

func TestCreateDeleteIdempotent(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	ctx := context.Background()
	a, err := c.Create(ctx, specFor("ns1-7", "local/ns-v2"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "local-1" || a.Status != "provisioning" || a.Name != "ns1-7" || a.Label != "ns1-7" || a.Image != "local/ns-v2" {
		t.Errorf("Create = %+v", a)
	}
	b, err := c.Create(ctx, specFor("ns1-7", "local/ns-v1"))
	if err != nil || b.ID != a.ID || b.Image != a.Image {
		t.Fatalf("second Create = %+v, %v; want the first server", b, err)
	}
	a, err = c.WaitRunning(ctx, a)
	if err != nil || a.Status != "running" || a.Addr == "" {
		t.Fatalf("WaitRunning = %+v, %v", a, err)
	}
	if a, err = c.Relabel(ctx, a, "ns1"); err != nil || a.Label != "ns1" {
		t.Fatalf("Relabel = %+v, %v", a, err)
	}
	for _, tag := range []string{deployer.TagGreenlight, deployer.DeployTag(7)} {
		if got, _ := c.ListByTag(ctx, tag); len(got) != 1 || got[0].ID != a.ID || got[0].Label != "ns1" {
			t.Errorf("ListByTag(%s) = %+v", tag, got)
		}
	}
	if got, _ := c.ListByTag(ctx, deployer.DeployTag(8)); len(got) != 0 {
		t.Errorf("ListByTag(deploy:8) = %+v", got)
	}

	for i := range 2 {
		if err := c.Delete(ctx, a); err != nil {
			t.Fatalf("Delete #%d: %v", i, err)
		}
	}
	if err := c.Delete(ctx, deployer.Server{ID: "local-99", Name: "ghost"}); err != nil {
		t.Fatalf("Delete of an unknown server: %v", err)
	}
	for _, network := range []string{"udp", "tcp"} {
		if _, err := ask(network, a.Addr, "example.test", dns.TypeSOA); err == nil {
			t.Errorf("a deleted server still answers over %s", network)
		}
	}
	if _, err := c.Relabel(ctx, a, "x"); deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("Relabel of a deleted server = %v", err)
	}
	if got, _ := c.ListByTag(ctx, deployer.TagGreenlight); len(got) != 0 {
		t.Errorf("after Delete, ListByTag = %+v", got)
	}
}

// The boot delay runs on the injected clock; WaitRunning and Provision say
// what is wrong while the server boots.
func TestBootOnClock(t *testing.T) {
	clock := deployer.NewManualClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
	c := newTestCloud(t, t.TempDir(), func(o *Options) { o.BootDelay = 0; o.Clock = clock }) // 0 → 2s
	ctx := context.Background()
	s, err := c.Create(ctx, specFor("ns1-7", "local/ns-v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Provision(ctx, s); err == nil || err.Error() != "cannot provision ns1-7: it is provisioning, not running" {
		t.Errorf("Provision while booting = %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = c.WaitRunning(short, s)
	if err == nil || err.Error() != "ns1-7 did not start: context deadline exceeded" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRunning before the boot delay = %v", err)
	}

	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if _, err := c.WaitRunning(canceled, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRunning with a cancelled context = %v", err)
	}

	clock.Advance(time.Second)
	if got, _ := c.ListByTag(ctx, deployer.TagGreenlight); got[0].Status != "provisioning" {
		t.Fatalf("running after 1s of a 2s boot: %+v", got[0])
	}
	clock.Advance(time.Second)
	s, err = c.WaitRunning(ctx, s)
	if err != nil || s.Status != "running" {
		t.Fatalf("WaitRunning = %+v, %v", s, err)
	}

	// Deleting a booting server cancels its boot.
	b, _ := c.Create(ctx, specFor("ns2-7", "local/ns-v1"))
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := c.WaitRunning(ctx, b); deployer.ErrorCode(err) != deployer.CodeNotFound {
		t.Errorf("WaitRunning of a deleted server = %v", err)
	}
}

// The inventory survives New → Close → New: same servers, names, ports and
// zones; servers still booting boot again.
func TestInventorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := deployer.NewManualClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
	c1, err := New(Options{Dir: dir, BootDelay: time.Second, Clock: clock, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c1.Bake(ctx, deployer.BakeSpec{Service: "ns"}); err != nil {
		t.Fatal(err)
	}
	var created []deployer.Server
	for _, sp := range []deployer.ServerSpec{
		specFor("ns1-7", "local/ns-v3"), specFor("ns2-7", "local/ns-v1"), specFor("ns3-7", "local/ns-v2"),
	} {
		s, err := c1.Create(ctx, sp)
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, s)
	}
	clock.Advance(time.Second)
	before := map[string]deployer.Server{}
	for i, s := range created {
		if s, err = c1.WaitRunning(ctx, s); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := c1.Provision(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		before[s.Name] = s
	}
	booting, _ := c1.Create(ctx, specFor("ns4-7", "local/ns-v1")) // never booted before Close
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ask("udp", before["ns1-7"].Addr, "example.test", dns.TypeSOA); err == nil {
		t.Fatal("a server still answers after Close")
	}

	path := filepath.Join(dir, InventoryFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("inventory mode %v, want 0600", fi.Mode().Perm())
	}
	var raw map[string]any
	if b, _ := os.ReadFile(path); json.Unmarshal(b, &raw) != nil {
		t.Fatalf("inventory is not JSON:\n%s", b)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".*tmp")); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}

	var logs logbuf.Buffer
	c2 := newTestCloud(t, dir, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }) // boots at once
	servers, err := c2.ListByTag(ctx, deployer.TagGreenlight)
	if err != nil || len(servers) != 4 {
		t.Fatalf("after restart ListByTag = %+v, %v", servers, err)
	}
	// Provisioned servers answer at once, on their old address.
	tests := []struct {
		name   string
		rcode  int
		serial uint32
	}{
		{"ns1-7", dns.RcodeSuccess, serialV3},
		{"ns2-7", dns.RcodeSuccess, serialV1},
		{"ns3-7", dns.RcodeRefused, 0}, // running but never provisioned
	}
	for _, tt := range tests {
		old := before[tt.name]
		i := slices.IndexFunc(servers, func(s deployer.Server) bool { return s.Name == tt.name })
		if i < 0 {
			t.Fatalf("%s is gone", tt.name)
		}
		s := servers[i]
		if s.ID != old.ID || s.Status != "running" || s.Image != old.Image {
			t.Errorf("%s after restart: %+v, before: %+v", tt.name, s, old)
		}
		// Another program on the machine may have taken the free port while
		// no cloud held it; then, and only then, the server moves.
		if s.Addr != old.Addr && !strings.Contains(logs.String(), "server="+tt.name+" old="+old.Addr) {
			t.Errorf("%s moved from %s to %s without saying its old port was taken:\n%s", tt.name, old.Addr, s.Addr, logs.String())
		}
		for _, network := range []string{"udp", "tcp"} {
			r, err := ask(network, s.Addr, "example.test", dns.TypeSOA)
			if err != nil {
				t.Fatalf("%s over %s: %v", tt.name, network, err)
			}
			if r.Rcode != tt.rcode || nsid(r) != tt.name {
				t.Errorf("%s over %s: %s NSID %q", tt.name, network, dns.RcodeToString[r.Rcode], nsid(r))
			}
			if tt.serial != 0 && soaSerial(t, r) != tt.serial {
				t.Errorf("%s: serial %d, want %d", tt.name, soaSerial(t, r), tt.serial)
			}
		}
	}
	if s, err := c2.WaitRunning(ctx, booting); err != nil || s.Status != "running" {
		t.Errorf("the server booting at Close: %+v, %v", s, err)
	}
	if images, _ := c2.Images(ctx, "ns"); images[0].ID != "local/ns-v3" {
		t.Errorf("baked image lost: %q", imageIDs(images))
	}
	if s, _ := c2.Create(ctx, specFor("ns1-8", "local/ns-v3")); s.ID != "local-5" {
		t.Errorf("IDs restart: new server is %s, want local-5", s.ID)
	}
}

// A server whose old port was taken while greenlight was down answers on a
// new one.
func TestRestartOnTakenPort(t *testing.T) {
	var (
		dir string
		s   deployer.Server
	)
	// Once the cloud closes, any program may take the freed port before the
	// test does; then start over with another.
	for attempt := 1; ; attempt++ {
		dir = t.TempDir()
		c1 := newTestCloud(t, dir)
		s = startServers(t, c1, server{"ns1-7", "local/ns-v1", true})[0]
		c1.Close()
		u, l, err := listenPair(s.Addr)
		if err == nil {
			defer u.Close()
			defer l.Close()
			break
		}
		if attempt == 5 {
			t.Fatalf("cannot take a server's freed port: %v", err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}

	var logs logbuf.Buffer
	c2 := newTestCloud(t, dir, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	got, err := c2.WaitRunning(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr == s.Addr || got.Addr == "" {
		t.Fatalf("Addr %q, old %q: want a new port", got.Addr, s.Addr)
	}
	if want := "server=ns1-7 old=" + s.Addr + " addr=" + got.Addr; !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, logs.String())
	}
	r, err := ask("udp", got.Addr, "example.test", dns.TypeSOA)
	if err != nil || soaSerial(t, r) != serialV1 {
		t.Fatalf("on the new port: %v %v", r, err)
	}
}

func TestClosedCloud(t *testing.T) {
	c := newTestCloud(t, t.TempDir())
	c.Close()
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Create(context.Background(), specFor("ns1-7", "local/ns-v1")); err == nil {
		t.Error("Create on a closed cloud succeeded")
	}
}

func TestListenPairSamePort(t *testing.T) {
	for range 20 {
		u, l, err := listenPair("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if u.LocalAddr().String() != l.Addr().String() {
			t.Errorf("UDP %s, TCP %s", u.LocalAddr(), l.Addr())
		}
		u.Close()
		l.Close()
	}
}

// FuzzLoadInventory: whatever is in the inventory file, loading it does not
// panic; what loads has the current version, and what save would write of it
// loads back to the same inventory. (The loop writes save's encoding itself:
// save's fsync would make each run hundreds of times slower. The seed
// inventory comes from a real save.)
func FuzzLoadInventory(f *testing.F) {
	dir := f.TempDir()
	c := newTestCloud(f, dir)
	startServers(f, c, server{"ns1-1", "local/ns-v1", true}, server{"ns2-1", "local/ns-broken", false})
	if _, err := c.Bake(context.Background(), deployer.BakeSpec{Service: "ns"}); err != nil {
		f.Fatal(err)
	}
	real, err := os.ReadFile(filepath.Join(dir, InventoryFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"version":1}`, `{"version":2}`, `{"version":1,"images":null,"servers":null}`,
		`{"version":1,"servers":[{"id":"local-1","tags":[],"created":"2026-11-01T09:00:00+01:00"}]}`,
		`{"version":1,"images":{"ns":[{"id":"x","created":"0001-01-01T00:00:00Z"}]}}`,
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), InventoryFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		inv, err := loadInventory(path)
		if err != nil {
			return
		}
		if inv.Version != inventoryVersion || inv.Images == nil {
			t.Fatalf("loaded version %d, images %v", inv.Version, inv.Images)
		}
		saved, err := json.MarshalIndent(inv, "", "  ") // as save writes it
		if err != nil {
			return // a time JSON cannot write (year > 9999): save, and so New, says so
		}
		if err := os.WriteFile(path, append(saved, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := loadInventory(path)
		if err != nil {
			t.Fatalf("the saved inventory does not load: %v\n%s", err, saved)
		}
		a, errA := json.Marshal(inv)
		b, errB := json.Marshal(again)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("loaded\n%s\nsaved and loaded again\n%s", a, b)
		}
	})
}
