package linode

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"path"
	"slices"
	"strings"
	"text/template"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/zones"
)

// UserDataLimit is how many bytes of user data Linode accepts, counted
// after base64 decoding; more is refused at instance creation ("decoded
// user_data must not exceed 16384 bytes").
const UserDataLimit = 16384

// ZoneDir is where the rendered cloud-init writes zone files on a server.
const ZoneDir = "/etc/nsd/zones"

// UserDataVars are what a cloud-init template may use.
type UserDataVars struct {
	Name, Role, Service, Image string
	DeployID                   uint64
	Zones                      []string // the zones to serve, as in check.zones
	// ZoneFiles are the files of the zones directory, to be written by
	// write_files; empty when the image carries the zone files.
	ZoneFiles    []ZoneFileVars
	ZonesDigest  string   // "sha256:…" of the zone files; empty without them
	ZoneDir      string   // where the files go: /etc/nsd/zones
	TransferFrom []string // addresses allowed AXFR (check.transfer_from)
	TSIG         *TSIGVars
	// Served is every zone with the path of its file on the server.
	Served []ServedZone
}

// ServedZone is one zone clause of nsd.conf.
type ServedZone struct{ Name, Path string }

// ZoneFileVars is one zone file in the user data.
type ZoneFileVars struct {
	Zone     string // "example.test." (as nsd.conf names it, without the dot: see Name)
	Name     string // "example.test"
	Path     string // /etc/nsd/zones/example.test.zone
	Encoding string // cloud-init's write_files encoding: gz+b64
	Content  string // the file's bytes, gzipped and base64-encoded
	Serial   uint32
}

// TSIGVars is the key transfers are signed with, for nsd.conf's key clause.
type TSIGVars struct {
	Name, Algorithm, Secret string
}

// UserDataOptions configure NewUserData.
type UserDataOptions struct {
	Name, Source string   // the template (configs/cloud-init/nsd.yaml)
	Zones        []string // check.zones
	// ZoneFiles, when set, is the zones directory every server gets its
	// zone files from; nil when the image carries them.
	ZoneFiles    *zones.Options
	TransferFrom []string
	TSIG         *TSIGVars
	Limit        int // bytes of decoded user data; default UserDataLimit
}

// UserData renders a server's cloud-init user data, with the files of the
// zones directory in write_files. Render is the Cloud's Options.UserData;
// Load is the service's deployer.ZoneSource, so that a deploy whose user
// data Linode would refuse is refused before anything is created.
type UserData struct {
	t    *template.Template
	opts UserDataOptions
}

// NewUserData parses the template and renders it for a sample server, so a
// template that does not parse or render is an error at start-up rather
// than at the next deploy.
func NewUserData(opts UserDataOptions) (*UserData, error) {
	t, err := template.New(opts.Name).Option("missingkey=error").Parse(opts.Source)
	if err != nil {
		return nil, fmt.Errorf("cloud-init template %s: %w", opts.Name, err)
	}
	if opts.Limit <= 0 {
		opts.Limit = UserDataLimit
	}
	opts.Zones = slices.Clone(opts.Zones)
	opts.TransferFrom = slices.Clone(opts.TransferFrom)
	u := &UserData{t: t, opts: opts}
	if _, err := u.render(sampleSpec(), nil); err != nil {
		return nil, err
	}
	return u, nil
}

func sampleSpec() deployer.ServerSpec {
	return deployer.ServerSpec{Name: "ns1-1", Role: "ns1", Service: "ns", Image: "linode/debian12", DeployID: 1}
}

// UserDataTemplate is NewUserData for a service whose image carries its
// zone files, as the Cloud's Options.UserData.
func UserDataTemplate(name, src string, zoneNames []string) (func(context.Context, deployer.ServerSpec) ([]byte, error), error) {
	u, err := NewUserData(UserDataOptions{Name: name, Source: src, Zones: zoneNames})
	if err != nil {
		return nil, err
	}
	return u.Render, nil
}

// Load reads and validates the zones directory and checks that the user
// data carrying it fits Linode's limit. It is the service's ZoneSource.
func (u *UserData) Load(ctx context.Context) (deployer.ZoneContent, error) {
	if u.opts.ZoneFiles == nil {
		return deployer.ZoneContent{}, deployer.Errorf(deployer.CodeInvalid, "the service has no zones directory")
	}
	set, err := zones.Load(ctx, *u.opts.ZoneFiles)
	if err != nil {
		return deployer.ZoneContent{}, err
	}
	if _, err := u.render(sampleSpec(), set); err != nil {
		return deployer.ZoneContent{}, err
	}
	return set.Content, nil
}

// Render renders the user data of the server spec asks for. With a zones
// directory, its files must still be those the deploy recorded
// (spec.Zones): a file edited after the plan would otherwise make the next
// set serve content nobody checked.
func (u *UserData) Render(ctx context.Context, spec deployer.ServerSpec) ([]byte, error) {
	var set *zones.Set
	if u.opts.ZoneFiles != nil {
		var err error
		if set, err = zones.Load(ctx, *u.opts.ZoneFiles); err != nil {
			return nil, err
		}
		if spec.Zones != nil && spec.Zones.Digest != set.Content.Digest {
			return nil, deployer.Errorf(deployer.CodeConflict,
				"the zone files changed after deploy #%d was planned (%s, now %s): deploy again to ship the new ones",
				spec.DeployID, spec.Zones.Short(), set.Content.Short())
		}
	}
	return u.render(spec, set)
}

func (u *UserData) render(spec deployer.ServerSpec, set *zones.Set) ([]byte, error) {
	vars := UserDataVars{Name: spec.Name, Role: spec.Role, Service: spec.Service, Image: spec.Image, DeployID: spec.DeployID,
		Zones: slices.Clone(u.opts.Zones), ZoneDir: ZoneDir, TransferFrom: slices.Clone(u.opts.TransferFrom), TSIG: u.opts.TSIG}
	for _, z := range u.opts.Zones {
		name := strings.TrimSuffix(z, ".")
		vars.Served = append(vars.Served, ServedZone{Name: name, Path: path.Join(ZoneDir, name+zones.Suffix)})
	}
	if set != nil {
		var err error
		vars.ZonesDigest = set.Content.Digest
		if vars.ZoneFiles, vars.Served, err = ZoneFilesOf(set); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	if err := u.t.Execute(&b, vars); err != nil {
		// The template is the operator's: what it trips on is theirs to read.
		return nil, deployer.Errorf(deployer.CodeInvalid, "render cloud-init for %s: %v", spec.Name, err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("#cloud-config")) {
		return nil, deployer.Errorf(deployer.CodeInvalid, "cloud-init for %s does not start with #cloud-config", spec.Name)
	}
	if n := b.Len(); n > u.opts.Limit {
		return nil, deployer.Errorf(deployer.CodeInvalid,
			"the cloud-init user data of %s is %d bytes, %d more than Linode's limit of %d (the zone files are %d bytes compressed): ship the zones with provisioner kind: command, or bake them into the golden image and leave zones.dir out",
			spec.Name, n, n-u.opts.Limit, u.opts.Limit, zoneBytes(vars.ZoneFiles))
	}
	return b.Bytes(), nil
}

// ZoneFilesOf are set's files as cloud-init's write_files entries (gzipped,
// base64) and nsd.conf's zone clauses.
func ZoneFilesOf(set *zones.Set) ([]ZoneFileVars, []ServedZone, error) {
	var files []ZoneFileVars
	var served []ServedZone
	for _, f := range set.Files {
		enc, err := gzipBase64(f.Content)
		if err != nil {
			return nil, nil, err
		}
		name := strings.TrimSuffix(f.Zone, ".")
		files = append(files, ZoneFileVars{Zone: f.Zone, Name: name,
			Path: path.Join(ZoneDir, f.File), Encoding: "gz+b64", Content: enc, Serial: f.Serial})
		served = append(served, ServedZone{Name: name, Path: path.Join(ZoneDir, f.File)})
	}
	return files, served, nil
}

func zoneBytes(files []ZoneFileVars) int {
	n := 0
	for _, f := range files {
		n += len(f.Content)
	}
	return n
}

// gzipBase64 is cloud-init's gz+b64 encoding of data.
func gzipBase64(data []byte) (string, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(data); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b.Bytes()), nil
}
