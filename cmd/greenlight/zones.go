package main

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/zones"
)

// compareOptions builds a service's comparison options; a TSIG secret comes
// from the environment variable the config names.
func (c CheckConfig) compareOptions(service string, getenv func(string) string) (dnscheck.CompareOptions, error) {
	opts := dnscheck.CompareOptions{Timeout: c.Timeout.Std()}
	for _, e := range c.Expect {
		opts.Fallback = append(opts.Fallback, dnscheck.Question{Name: e.Name, Type: e.Type})
	}
	if t := c.TSIG; t != nil {
		secret := getenv(t.SecretEnv)
		if secret == "" {
			return opts, fmt.Errorf("services.%s.check.tsig: the environment variable %s holding the TSIG secret is not set", service, t.SecretEnv)
		}
		opts.TSIG = &dnscheck.TSIG{Name: t.Name, Algorithm: t.Algorithm, Secret: secret}
	}
	return opts, nil
}

// validateZones checks the zones section and check.transfer_from.
func (s *ServiceConfig) validateZones(key string) error {
	for i, from := range s.Check.TransferFrom {
		if _, err := netip.ParsePrefix(from); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(from); err == nil {
			continue
		}
		return &keyError{fmt.Sprintf("%s.check.transfer_from[%d]", key, i), fmt.Sprintf("%q is not an address or CIDR prefix (like 203.0.113.5/32)", from)}
	}
	if s.Cloud == "linode" && s.compareZones() && len(s.Check.TransferFrom) == 0 &&
		(s.Provisioner.Kind == "" || s.Provisioner.Kind == "cloud-init") {
		return &keyError{key + ".check.transfer_from", "list the addresses greenlight runs from (like [203.0.113.5/32]): the servers allow zone transfers (AXFR) only to them, and greenlight cannot know its own public address; or set compare_zones: false"}
	}
	z := s.Zones
	if z == nil {
		return nil
	}
	if z.Dir == "" {
		return &keyError{key + ".zones.dir", "name the directory that holds one <zone>.zone file per zone of check.zones"}
	}
	for zone, file := range z.Files {
		if !slices.ContainsFunc(s.Check.Zones, func(c string) bool { return dns.Fqdn(c) == dns.Fqdn(zone) }) {
			return &keyError{key + ".zones.files", fmt.Sprintf("%s is not one of check.zones (%s)", zone, strings.Join(s.Check.Zones, ", "))}
		}
		if file == "" || file != filepath.Base(file) || file == "." || file == ".." {
			return &keyError{key + ".zones.files", fmt.Sprintf("the file of %s must be a file name in zones.dir, not %q", zone, file)}
		}
	}
	return nil
}

func (s *ServiceConfig) compareZones() bool {
	return s.Check.CompareZones == nil || *s.Check.CompareZones
}

// zonesOptions are the zones package's options for the service, or nil
// when its zones come with the image.
func (s *ServiceConfig) zonesOptions() *zones.Options {
	if s.Zones == nil {
		return nil
	}
	return &zones.Options{Dir: s.Zones.Dir, Zones: slices.Clone(s.Check.Zones), Files: maps.Clone(s.Zones.Files)}
}
