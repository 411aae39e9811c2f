package deployer_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/storage"
)

// New fills in the defaults on a copy of each service: the caller's Service
// is left as given, and Deployer.Service returns the copy.
func TestNewLeavesTheCallersServiceAlone(t *testing.T) {
	h := newHarness(t)
	svc := deployer.Service{Name: "other", Roles: []string{"a"}, Check: deployer.CheckSpec{Zones: []string{zone}},
		Cloud: h.cloud, Provisioner: h.cloud, Switch: h.lb, Checker: dnscheck.New(dnscheck.Options{})}
	given := svc
	db, err := storage.Open(t.TempDir()+"/x.db", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, err := deployer.New(deployer.Config{Store: db, Services: []*deployer.Service{&svc}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(svc, given) {
		t.Errorf("New changed the caller's service:\n got %+v\nwant %+v", svc, given)
	}
	got, err := d.Service("other")
	if err != nil {
		t.Fatal(err)
	}
	if got == &svc {
		t.Fatal("the Deployer keeps the caller's service, not a copy")
	}
	if got.ApprovalTimeout != deployer.DefaultApprovalTimeout || got.Timeouts.Create != 10*time.Minute ||
		got.Check.Passes != 3 || got.Limits.MinRRsets != 10 {
		t.Errorf("the Deployer's copy lacks the defaults: %+v", got)
	}
}
