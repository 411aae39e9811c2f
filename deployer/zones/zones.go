// Package zones reads a service's zones directory: one zone file per zone
// the service serves, validated with miekg/dns's zone parser, with a digest
// and the SOA serials recorded in the deployment that ships them.
//
// Every file is checked before a deploy creates anything: a syntax error is
// refused naming the file and line, and so are a file without a SOA, a SOA
// whose owner is not the zone, and a *.zone file in the directory for a
// zone the service does not list (most likely a zone someone forgot to add
// to check.zones, which would otherwise never be served).
package zones

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
)

// MaxFileSize bounds one zone file; a larger one is refused rather than read.
const MaxFileSize = 64 << 20

// Suffix is the file name suffix of a zone file: "example.test.zone".
const Suffix = ".zone"

// Options say where a service's zone files are.
type Options struct {
	Dir   string
	Zones []string // the service's zones (check.zones)
	// Files names a zone's file when it is not "<zone>.zone" (zone without
	// its trailing dot), relative to Dir.
	Files map[string]string
}

// File is one zone file and its bytes.
type File struct {
	deployer.ZoneFile
	Content []byte
}

// Set is the content of a zones directory, validated.
type Set struct {
	Dir     string
	Files   []File // in the order of Options.Zones
	Content deployer.ZoneContent
}

// FileName is the file a zone is read from under opts: its own entry in
// Files, or "<zone>.zone".
func (o Options) FileName(zone string) string {
	if name, ok := o.Files[zone]; ok && name != "" {
		return name
	}
	if name, ok := o.Files[dns.Fqdn(zone)]; ok && name != "" {
		return name
	}
	return strings.TrimSuffix(zone, ".") + Suffix
}

// Load reads and validates every zone file of opts.
func Load(ctx context.Context, opts Options) (*Set, error) {
	if opts.Dir == "" {
		return nil, deployer.Errorf(deployer.CodeInvalid, "no zones directory")
	}
	if len(opts.Zones) == 0 {
		return nil, deployer.Errorf(deployer.CodeInvalid, "no zones to read")
	}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, &deployer.Error{Code: deployer.CodeFailed, Message: "cannot read the zones directory " + opts.Dir, Err: err}
	}
	set := &Set{Dir: opts.Dir}
	used := map[string]string{}
	for _, zone := range opts.Zones {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := opts.FileName(zone)
		if other, dup := used[name]; dup {
			return nil, deployer.Errorf(deployer.CodeInvalid, "zones %s and %s both name the file %s", other, zone, name)
		}
		used[name] = zone
		data, err := readFile(filepath.Join(opts.Dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, deployer.Errorf(deployer.CodeInvalid, "zone %s has no file %s in %s", strings.TrimSuffix(zone, "."), name, opts.Dir)
			}
			return nil, fmt.Errorf("zone %s: %w", strings.TrimSuffix(zone, "."), err)
		}
		serial, err := Parse(zone, name, data)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		set.Files = append(set.Files, File{
			ZoneFile: deployer.ZoneFile{Zone: dns.Fqdn(zone), File: name, Serial: serial, Digest: hex.EncodeToString(sum[:]), Size: len(data)},
			Content:  data,
		})
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), Suffix) {
			continue
		}
		if _, ok := used[e.Name()]; !ok {
			zone := strings.TrimSuffix(e.Name(), Suffix)
			return nil, deployer.Errorf(deployer.CodeInvalid, "%s is in the zones directory but %s is not one of the service's zones (%s): add it to check.zones, or move the file away",
				e.Name(), zone, strings.Join(opts.Zones, ", "))
		}
	}
	set.Content = deployer.ZoneContent{Digest: Digest(set.Files), Files: make([]deployer.ZoneFile, len(set.Files))}
	for i, f := range set.Files {
		set.Content.Files[i] = f.ZoneFile
	}
	return set, nil
}

// readFile reads a regular file of at most MaxFileSize bytes.
func readFile(path string) ([]byte, error) {
	cannot := func(err error) error {
		return &deployer.Error{Code: deployer.CodeFailed, Message: "cannot read " + filepath.Base(path), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, cannot(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, cannot(err)
	}
	if !st.Mode().IsRegular() {
		return nil, deployer.Errorf(deployer.CodeInvalid, "%s is not a regular file", filepath.Base(path))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, cannot(err)
	}
	if len(data) > MaxFileSize {
		return nil, deployer.Errorf(deployer.CodeInvalid, "%s is larger than %d MiB", filepath.Base(path), MaxFileSize>>20)
	}
	return data, nil
}

// Parse validates one zone file of zone, read from a file called name (for
// messages), and returns its SOA serial. The file must parse, hold exactly
// one SOA, and that SOA must be the zone's apex. $INCLUDE is refused: a
// deploy ships the files of the directory and nothing else.
func Parse(zone, name string, data []byte) (uint32, error) {
	origin := dns.Fqdn(zone)
	if _, ok := dns.IsDomainName(origin); !ok {
		return 0, deployer.Errorf(deployer.CodeInvalid, "%q is not a zone name", zone)
	}
	zp := dns.NewZoneParser(bytes.NewReader(data), origin, name)
	var soa *dns.SOA
	records := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		records++
		s, isSOA := rr.(*dns.SOA)
		if !isSOA {
			if !dns.IsSubDomain(origin, rr.Header().Name) {
				return 0, deployer.Errorf(deployer.CodeInvalid, "%s: %s is outside the zone %s", name, rr.Header().Name, origin)
			}
			continue
		}
		if !strings.EqualFold(s.Hdr.Name, origin) {
			return 0, deployer.Errorf(deployer.CodeInvalid, "%s: the SOA is for %s, not the zone %s", name, s.Hdr.Name, origin)
		}
		if soa != nil {
			return 0, deployer.Errorf(deployer.CodeInvalid, "%s: more than one SOA record", name)
		}
		soa = s
	}
	if err := zp.Err(); err != nil {
		return 0, parseError(name, err)
	}
	if soa == nil {
		if records == 0 {
			return 0, deployer.Errorf(deployer.CodeInvalid, "%s: the file has no records (a zone needs at least its SOA)", name)
		}
		return 0, deployer.Errorf(deployer.CodeInvalid, "%s: no SOA record for %s (every zone file needs one at its apex)", name, origin)
	}
	return soa.Serial, nil
}

// parseError names the file and line of a zone parser's error, for the
// person who wrote the file. The parser's own text is
// "<file>: dns: <what>: "<token>" at line: L:C".
func parseError(name string, err error) error {
	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		return deployer.Errorf(deployer.CodeInvalid, "%s: %v", name, err)
	}
	text := strings.TrimPrefix(pe.Error(), name+": ")
	text = strings.TrimPrefix(text, "dns: ")
	i := strings.LastIndex(text, " at line: ")
	if i < 0 {
		return deployer.Errorf(deployer.CodeInvalid, "%s: %s", name, text)
	}
	what, pos := text[:i], text[i+len(" at line: "):]
	line, _, _ := strings.Cut(pos, ":")
	return deployer.Errorf(deployer.CodeInvalid, "%s line %s: %s", name, line, what)
}

// Digest is "sha256:<hex>" over every file's zone, file name and bytes,
// framed so that no two different sets share it.
func Digest(files []File) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Zone, b.Zone) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%d:%s%d:%s%d:", len(f.Zone), f.Zone, len(f.File), f.File, len(f.Content))
		h.Write(f.Content)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
