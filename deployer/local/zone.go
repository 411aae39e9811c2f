package local

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"text/template"

	"github.com/miekg/dns"
)

// zoneTemplate is one zones/NAME.zone file: a Go text/template of a zone file.
type zoneTemplate struct {
	origin string // "example.test."
	file   string // for parse errors: "zones/example.test.zone"
	tmpl   *template.Template
}

// zoneData is what a zone template is rendered with.
type zoneData struct {
	Serial  uint32 // the SOA serial
	Version int    // the image's version
	Server  string // the server's name, "ns1-7"
}

// loadZoneTemplates parses every zones/*.zone in fsys. The zone's name is the
// file's name without .zone.
func loadZoneTemplates(fsys fs.FS) ([]zoneTemplate, error) {
	files, err := fs.Glob(fsys, "zones/*.zone")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no zone templates: zones/*.zone matches nothing")
	}
	out := make([]zoneTemplate, 0, len(files))
	for _, file := range files {
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		t, err := template.New(path.Base(file)).Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("zone template %s: %w", file, err)
		}
		name := strings.TrimSuffix(path.Base(file), ".zone")
		zt := zoneTemplate{origin: dns.CanonicalName(name), file: file, tmpl: t}
		// Fail now, not at the first deploy, on a zone that does not even
		// render for v1.
		if _, err := zt.render(zoneData{Serial: serialFor(1), Version: 1, Server: "ns1-1"}); err != nil {
			return nil, err
		}
		out = append(out, zt)
	}
	return out, nil
}

// render executes the template and parses the result.
func (zt zoneTemplate) render(d zoneData) (*zone, error) {
	var buf bytes.Buffer
	if err := zt.tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("render zone %s: %w", zt.file, err)
	}
	return parseZone(zt.origin, &buf, zt.file)
}

// zone is one parsed zone, ready to answer from.
type zone struct {
	origin  string                         // canonical: "example.test."
	soa     *dns.SOA                       //
	records []dns.RR                       // every record in file order, the SOA first
	names   map[string]map[uint16][]dns.RR // canonical owner → type → records; an empty non-terminal has an empty map
}

// parseZone reads a zone file whose records must all lie inside origin.
func parseZone(origin string, r io.Reader, file string) (*zone, error) {
	z := &zone{origin: origin, names: map[string]map[uint16][]dns.RR{}}
	zp := dns.NewZoneParser(r, origin, file)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if err := z.add(rr); err != nil {
			return nil, fmt.Errorf("zone %s: %w", file, err)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, err // it names the file and line
	}
	if z.soa == nil {
		return nil, fmt.Errorf("zone %s: no SOA record for %s", file, origin)
	}
	return z, nil
}

func (z *zone) add(rr dns.RR) error {
	h := rr.Header()
	h.Name = dns.CanonicalName(h.Name)
	if !dns.IsSubDomain(z.origin, h.Name) {
		return fmt.Errorf("%s is outside the zone %s", h.Name, z.origin)
	}
	if soa, ok := rr.(*dns.SOA); ok {
		if h.Name != z.origin || z.soa != nil {
			return fmt.Errorf("a second SOA, or one not at the apex: %s", rr)
		}
		z.soa = soa
		z.records = append([]dns.RR{rr}, z.records...)
	} else {
		z.records = append(z.records, rr)
	}
	z.owner(h.Name)[h.Rrtype] = append(z.owner(h.Name)[h.Rrtype], rr)
	return nil
}

// owner returns name's records by type, creating them, and every empty
// non-terminal between name and the apex.
func (z *zone) owner(name string) map[uint16][]dns.RR {
	if types, ok := z.names[name]; ok {
		return types
	}
	types := map[uint16][]dns.RR{}
	z.names[name] = types
	for n := name; n != z.origin; {
		off, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[off:]
		if _, ok := z.names[n]; ok {
			break
		}
		z.names[n] = map[uint16][]dns.RR{}
	}
	return types
}

// lookup returns name's records of type qtype, and whether name exists.
func (z *zone) lookup(name string, qtype uint16) ([]dns.RR, bool) {
	types, ok := z.names[dns.CanonicalName(name)]
	if !ok {
		return nil, false
	}
	return append([]dns.RR(nil), types[qtype]...), true
}

// negative is the SOA for a negative answer's authority section, its TTL
// the lower of its own and the SOA minimum (RFC 2308, section 5).
func (z *zone) negative() []dns.RR {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return []dns.RR{soa}
}

// transfer is the zone as AXFR sends it: SOA, every other record, SOA.
func (z *zone) transfer() []dns.RR {
	return append(append([]dns.RR(nil), z.records...), z.soa)
}
