package linodetest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"

	"github.com/miekg/dns"
)

// servedZones is what a server's cloud-init set it up to serve: the zones
// of its nsd.conf, loaded from the zone files the user data wrote, and who
// may transfer them.
type servedZones struct {
	zones map[string]*zoneData // by lower-case FQDN
	acl   []xfrRule
	keys  map[string]string // TSIG key name (FQDN) → base64 secret
}

type xfrRule struct {
	from netip.Prefix
	key  string // "" for NOKEY
}

type zoneData struct {
	soa   *dns.SOA
	names map[string][]dns.RR // by lower-case owner, the SOA included
	all   []dns.RR
}

// zonesFromUserData reads the nsd.conf files a cloud-config's write_files
// writes under /etc/nsd, and loads every zone they name from the zone files
// the same user data writes. It returns nil when the user data writes no
// zone file (the image is to carry them).
func zonesFromUserData(userData []byte) (*servedZones, error) {
	if len(userData) == 0 {
		return nil, nil
	}
	files, err := WrittenFiles(userData)
	if err != nil {
		return nil, err
	}
	sz := &servedZones{zones: map[string]*zoneData{}, keys: map[string]string{}}
	for p, conf := range files {
		if !strings.HasPrefix(p, "/etc/nsd/") || !strings.HasSuffix(p, ".conf") {
			continue
		}
		if err := sz.readConf(conf, files); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	if len(sz.zones) == 0 {
		return nil, nil
	}
	return sz, nil
}

// readConf follows nsd.conf's zone: and key: clauses, line by line.
func (sz *servedZones) readConf(conf []byte, files map[string][]byte) error {
	var clause, zone, zonefile, keyName, keySecret string
	var rules []xfrRule
	flush := func() error {
		switch clause {
		case "zone":
			if zone == "" || zonefile == "" {
				return fmt.Errorf("a zone clause without name or zonefile")
			}
			data, ok := files[zonefile]
			if !ok {
				break // the image carries it: the built-in zones answer
			}
			zd, err := loadZone(zone, path.Base(zonefile), data)
			if err != nil {
				return err
			}
			sz.zones[dns.CanonicalName(zone)] = zd
			sz.acl = append(sz.acl, rules...)
		case "key":
			sz.keys[dns.CanonicalName(keyName)] = keySecret
		}
		clause, zone, zonefile, keyName, keySecret, rules = "", "", "", "", "", nil
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch k {
		case "server", "zone", "key", "remote-control", "pattern":
			if err := flush(); err != nil {
				return err
			}
			clause = k
		case "name":
			if clause == "zone" {
				zone = v
			} else if clause == "key" {
				keyName = v
			}
		case "zonefile":
			zonefile = v
		case "secret":
			keySecret = v
		case "provide-xfr":
			from, key, _ := strings.Cut(v, " ")
			p, err := netip.ParsePrefix(from)
			if err != nil {
				a, aerr := netip.ParseAddr(from)
				if aerr != nil {
					return fmt.Errorf("provide-xfr %q: %w", v, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			rule := xfrRule{from: p}
			if key = strings.TrimSpace(key); key != "NOKEY" && key != "" {
				rule.key = dns.CanonicalName(key)
			}
			rules = append(rules, rule)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

func loadZone(zone, file string, data []byte) (*zoneData, error) {
	zd := &zoneData{names: map[string][]dns.RR{}}
	zp := dns.NewZoneParser(bytes.NewReader(data), dns.Fqdn(zone), file)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			zd.soa = soa
		}
		owner := dns.CanonicalName(rr.Header().Name)
		zd.names[owner] = append(zd.names[owner], rr)
		zd.all = append(zd.all, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	if zd.soa == nil {
		return nil, fmt.Errorf("%s has no SOA", file)
	}
	return zd, nil
}

// find is the zone name falls in, or "".
func (sz *servedZones) find(name string) string {
	best := ""
	for z := range sz.zones {
		if dns.IsSubDomain(z, name) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

// mayTransfer applies the provide-xfr rules to a transfer of the zone
// asked from remote, signed with key ("" unsigned) when tsigOK.
func (sz *servedZones) mayTransfer(remote net.Addr, key string, tsigOK bool) bool {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return false
	}
	for _, r := range sz.acl {
		if !r.from.Contains(ap.Addr().Unmap()) {
			continue
		}
		if r.key == "" || (tsigOK && dns.CanonicalName(key) == r.key) {
			return true
		}
	}
	return false
}

// answer fills m, a reply to q in zone z, as an authoritative server does:
// the RRset, or NODATA, or NXDOMAIN, with the SOA in authority.
func (zd *zoneData) answer(m *dns.Msg, q dns.Question) {
	m.Authoritative = true
	name := dns.CanonicalName(q.Name)
	rrs, exists := zd.names[name]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) > 0 {
		return
	}
	if !exists {
		for owner := range zd.names { // an empty non-terminal exists too
			if dns.IsSubDomain(name, owner) {
				exists = true
				break
			}
		}
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, dns.Copy(zd.soa))
}
