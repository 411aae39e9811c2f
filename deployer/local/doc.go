// Package local is greenlight's embedded cloud: it lets greenlight run a real
// blue/green deploy with no accounts.
//
// A Cloud creates "servers" that are in-process authoritative DNS servers
// (miekg/dns) on loopback, each answering on UDP and TCP on one port and
// naming itself in EDNS NSID. A server answers REFUSED until it is
// provisioned; provisioning loads the zones its image serves, rendered from
// the templates in configs/zones. The inventory (servers, their ports,
// images) is kept in Dir/local-cloud.json, so a restarted greenlight finds
// its servers answering again.
//
// A Balancer is the local load balancer: a UDP and TCP proxy on one address
// that sends each query or connection to one server of the accepted set and
// can wait for traffic on the old set to finish.
package local
