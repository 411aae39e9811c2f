package linodetest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/greenlight/greenlight/deployer/linode/linodetest"
	"github.com/linode/linodego"
)

// The field names of a record as TestDomainRecord_Create recorded it.
var recordKeys = []string{"created", "id", "name", "port", "priority", "protocol", "service", "tag", "target", "ttl_sec", "type", "updated", "weight"}

func TestDomainRecordsHaveTheRecordedShape(t *testing.T) {
	s := linodetest.NewServer(linodetest.Options{})
	defer s.Close()
	d := s.AddDomain(linodetest.Domain{Domain: "linodego-blue-test.com"})

	status, _, body := call(t, s, "GET", fmt.Sprintf("/v4/domains/%d", d.ID), "", "")
	if status != 200 || body["domain"] != "linodego-blue-test.com" || body["type"] != "master" || body["ttl_sec"] != 0.0 {
		t.Errorf("GET domain: %d %v", status, body)
	}
	base := fmt.Sprintf("/v4beta/domains/%d/records", d.ID)
	status, _, rec := call(t, s, "POST", base, "", `{"type":"A","name":"a","target":"127.0.0.1"}`)
	if status != 200 || !slices.Equal(keys(rec), recordKeys) || rec["ttl_sec"] != 0.0 || rec["service"] != nil || rec["name"] != "a" {
		t.Fatalf("create record: %d %v", status, rec)
	}
	path := fmt.Sprintf("%s/%d", base, idOf(rec))
	status, _, body = call(t, s, "PUT", path, "", `{"name":"renamed"}`)
	if status != 200 || body["name"] != "renamed" || body["target"] != "127.0.0.1" {
		t.Errorf("rename: %d %v", status, body)
	}
	status, _, body = call(t, s, "PUT", path, "", `{"ttl_sec":100}`)
	if status != 200 || body["ttl_sec"] != 120.0 {
		t.Errorf("TTL 100 is stored as %v, want 120 (rounded up as Linode does)", body["ttl_sec"])
	}
	status, _, body = call(t, s, "PUT", path, "", `{"target":"2001:db8::1"}`)
	if status != 400 || !equalJSON(body, `{"errors":[{"reason":"Must be a valid IPv4 address","field":"target"}]}`) {
		t.Errorf("A record with an IPv6 target: %d %v", status, body)
	}
	status, _, body = call(t, s, "GET", base, "", "")
	if status != 200 || body["results"] != 1.0 || body["data"].([]any)[0].(map[string]any)["name"] != "renamed" {
		t.Errorf("list: %d %v", status, body)
	}
	if status, _, _ = call(t, s, "DELETE", path, "", ""); status != 200 {
		t.Errorf("delete: %d", status)
	}
	if status, _, _ = call(t, s, "GET", "/v4/domains/1/records", "", ""); status != 404 {
		t.Errorf("records of a domain that does not exist: %d, want 404", status)
	}

	// linodego reads it.
	c := s.NewClient(token)
	ctx := context.Background()
	made, err := c.CreateDomainRecord(ctx, d.ID, linodego.DomainRecordCreateOptions{Type: linodego.RecordTypeAAAA, Name: "ns1", Target: "2001:db8::53", TTLSec: 300})
	if err != nil || made.Target != "2001:db8::53" || made.TTLSec != 300 || made.Created == nil {
		t.Fatalf("CreateDomainRecord = %+v, %v", made, err)
	}
	list, err := c.ListDomainRecords(ctx, d.ID, nil)
	if err != nil || len(list) != 1 || list[0].ID != made.ID {
		t.Errorf("ListDomainRecords = %+v, %v", list, err)
	}
	if got := s.DomainRecords(d.ID); len(got) != 1 || got[0].Type != "AAAA" {
		t.Errorf("DomainRecords = %+v", got)
	}
	if got := linodetest.RoundTTL(5000000); got != 2419200 {
		t.Errorf("RoundTTL(5000000) = %d", got)
	}
}
