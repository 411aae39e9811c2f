package main

import (
	"fmt"
	"os"

	"github.com/greenlight/greenlight/deployer/dnscheck"
)

// compareOptions builds a service's comparison options; a TSIG secret comes
// from the environment variable the config names.
func (c CheckConfig) compareOptions(service string) (dnscheck.CompareOptions, error) {
	opts := dnscheck.CompareOptions{Timeout: c.Timeout.Std()}
	for _, e := range c.Expect {
		opts.Fallback = append(opts.Fallback, dnscheck.Question{Name: e.Name, Type: e.Type})
	}
	if t := c.TSIG; t != nil {
		secret := os.Getenv(t.SecretEnv)
		if secret == "" {
			return opts, fmt.Errorf("services.%s.check.tsig: the environment variable %s holding the TSIG secret is not set", service, t.SecretEnv)
		}
		opts.TSIG = &dnscheck.TSIG{Name: t.Name, Algorithm: t.Algorithm, Secret: secret}
	}
	return opts, nil
}
