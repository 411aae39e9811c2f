package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/storage"
)

// storeResult is one size's figures: each command through the router and
// the store calls behind it, as a mean over calls (a refused approve
// writes an audit entry, one synced write); the data file's size as the
// deploys left it and after bbolt's Compact.
type storeResult struct {
	n                          int
	fill                       time.Duration // writing all n deploys
	status, history, historyMl timing
	approve, approveID         timing
	active, deployment, audit  timing
	size, compacted            fileStats
}

// fileStats describes a bbolt file: its size on disk (bbolt grows it in
// steps, doubling while small), the pages it holds data in, and the bytes
// of keys and values in them.
type fileStats struct {
	disk, used, data int64
}

// timing is the mean of a run of calls, and its first call, the one that
// finds the freshly opened store's cache empty.
type timing struct{ mean, first time.Duration }

// benchStore fills a store with sizes[i] ended deploys, written step by
// step as the pipeline writes them, and times the commands a person types,
// calls times each.
func benchStore(ctx context.Context, sizes []int, calls, diffLines int, out io.Writer, log *slog.Logger) error {
	var rs []storeResult
	for _, n := range sizes {
		r, err := storeOnce(ctx, n, calls, diffLines, log)
		if err != nil {
			return fmt.Errorf("%d deploys: %w", n, err)
		}
		rs = append(rs, r)
	}
	row := func(name string, f func(storeResult) string) {
		fmt.Fprintf(out, "%-34s", name)
		for _, r := range rs {
			fmt.Fprintf(out, " %15s", f(r))
		}
		fmt.Fprintln(out)
	}
	ms := func(t timing) string {
		return fmt.Sprintf("%.3f (%.3f)", float64(t.mean)/1e6, float64(t.first)/1e6)
	}
	row("ms, mean (first call)", func(storeResult) string { return "" })
	row("stored deploys", func(r storeResult) string { return fmt.Sprint(r.n) })
	row("/deploy status ns", func(r storeResult) string { return ms(r.status) })
	row("/deploy history ns -n 20", func(r storeResult) string { return ms(r.history) })
	row("/deploy history mail -n 20", func(r storeResult) string { return ms(r.historyMl) })
	row("/deploy approve (bare)", func(r storeResult) string { return ms(r.approve) })
	row("/deploy approve #N", func(r storeResult) string { return ms(r.approveID) })
	row("Store.ActiveDeployments", func(r storeResult) string { return ms(r.active) })
	row("Store.Deployment(id)", func(r storeResult) string { return ms(r.deployment) })
	row("Store.Audit (one synced write)", func(r storeResult) string { return ms(r.audit) })
	row("writes of one deploy, no fsync", func(r storeResult) string {
		return fmt.Sprintf("%.3f ms", float64(r.fill)/float64(r.n)/1e6)
	})
	mib := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	kib := func(v int64, n int) string { return fmt.Sprintf("%.2f KiB", float64(v)/float64(n)/1024) }
	row("greenlight.db on disk", func(r storeResult) string { return mib(r.size.disk) })
	row("pages in use", func(r storeResult) string { return mib(r.size.used) })
	row("pages in use per deploy", func(r storeResult) string { return kib(r.size.used, r.n) })
	row("keys and values per deploy", func(r storeResult) string { return kib(r.size.data, r.n) })
	row("after bbolt Compact: on disk", func(r storeResult) string { return mib(r.compacted.disk) })
	row("after Compact: in use per deploy", func(r storeResult) string { return kib(r.compacted.used, r.n) })
	return nil
}

// nopSwitch is a switch for a deployer that never switches.
type nopSwitch struct{}

func (nopSwitch) Accept(context.Context, []deployer.Server) error { return nil }
func (nopSwitch) Drain(context.Context, []deployer.Server) error  { return nil }
func (nopSwitch) Endpoints() []string                             { return []string{"127.0.0.1:53"} }

// fillStore records n ended deploys as the pipeline writes them: begin,
// each step started and done, the checks and a zone diff of diffLines
// lines at check-next, and the finish. One deploy in 500 is of mail, the others of ns. Two
// deploys of other services stay in flight, one of them needing attention.
func fillStore(db *storage.DB, n, diffLines int) error {
	lines := make([]string, diffLines)
	for i := range lines {
		lines[i] = fmt.Sprintf("+ host%d.example.test. 300 IN A 192.0.2.%d", i, i%250)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	servers := func(gen int) []deployer.Server {
		return []deployer.Server{
			{ID: fmt.Sprint("local-", 2*gen), Name: fmt.Sprintf("ns1-%d", gen), Role: "ns1", Addr: "127.0.0.1:40001", Image: "local/ns-v2"},
			{ID: fmt.Sprint("local-", 2*gen+1), Name: fmt.Sprintf("ns2-%d", gen), Role: "ns2", Addr: "127.0.0.1:40002", Image: "local/ns-v2"},
		}
	}
	for i := 1; i <= n; i++ {
		service := "ns"
		if i%500 == 1 {
			service = "mail"
		}
		created := t0.Add(time.Duration(i) * time.Hour)
		d := &deployer.Deployment{Service: service, Requester: "bench", Reason: "weekly image", ImageOld: "local/ns-v1", ImageNew: "local/ns-v2",
			Old: servers(i - 1), Steps: deployer.NewSteps(), Phase: deployer.PhaseRunning, Created: created}
		if err := db.BeginDeployment(d, nil); err != nil {
			return err
		}
		for j, step := range d.Steps {
			at := created.Add(time.Duration(j) * time.Minute)
			if _, err := db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
				x.Steps[j].Status, x.Steps[j].Started, x.Updated = deployer.StatusRunning, at, at
				return nil
			}); err != nil {
				return err
			}
			if _, err := db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
				x.Steps[j].Status, x.Steps[j].Finished, x.Updated = deployer.StatusDone, at.Add(time.Second), at.Add(time.Second)
				switch step.Name {
				case deployer.StepCreate:
					x.Next = servers(i)
				case deployer.StepCheckNext:
					x.Checks = []string{"2 servers · 1 zone · 1 expected record · UDP+TCP · 3/3 passes · serial 2026110102"}
					x.Diffs = []deployer.ZoneDiff{{Zone: "example.test.", OldSerial: 1, NewSerial: 2,
						Summary: fmt.Sprintf("example.test.: serial 1 → 2 · %d added", diffLines), Lines: lines, Added: diffLines}}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		live := &deployer.ServiceState{Service: service, Image: "local/ns-v2", Servers: servers(i), DeployID: d.ID, Updated: created}
		if _, err := db.FinishDeployment(d.ID, func(x *deployer.Deployment) error {
			x.Phase, x.Finished = deployer.PhaseSucceeded, created.Add(20*time.Minute)
			return nil
		}, live); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		service string
		phase   deployer.Phase
	}{{"web", deployer.PhaseRunning}, {"dns", deployer.PhaseNeedsAttention}} {
		d := &deployer.Deployment{Service: s.service, Requester: "bench", Steps: deployer.NewSteps(), Phase: s.phase, Created: t0}
		if err := db.BeginDeployment(d, nil); err != nil {
			return err
		}
	}
	return nil
}

func storeOnce(ctx context.Context, n, calls, diffLines int, log *slog.Logger) (storeResult, error) {
	r := storeResult{n: n}
	dir, err := os.MkdirTemp("", "greenlight-store-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "greenlight.db")
	// Filling skips fsync: it changes how long the fill takes, not what
	// the file holds.
	db, err := storage.Open(path, storage.Options{NoSync: true})
	if err != nil {
		return r, err
	}
	start := time.Now()
	if err := fillStore(db, n, diffLines); err != nil {
		_ = db.Close()
		return r, err
	}
	r.fill = time.Since(start)
	if err := db.Close(); err != nil {
		return r, err
	}
	if r.size, err = statFile(path); err != nil {
		return r, err
	}
	compacted := filepath.Join(dir, "compacted.db")
	if err := compact(path, compacted); err != nil {
		return r, err
	}
	if r.compacted, err = statFile(compacted); err != nil {
		return r, err
	}

	db, err = storage.Open(path, storage.Options{})
	if err != nil {
		return r, err
	}
	defer db.Close()
	cloud, err := local.New(local.Options{Dir: dir, BootDelay: -1, Logger: log})
	if err != nil {
		return r, err
	}
	defer cloud.Close()
	var svcs []*deployer.Service
	for _, name := range []string{"ns", "mail"} {
		svcs = append(svcs, &deployer.Service{Name: name, Roles: []string{"ns1", "ns2"}, Check: deployer.CheckSpec{Zones: []string{"example.test"}},
			Cloud: cloud, Provisioner: cloud, Switch: nopSwitch{}, Checker: dnscheck.New(dnscheck.Options{Logger: log})})
	}
	dep, err := deployer.New(deployer.Config{Store: db, Logger: log, Services: svcs})
	if err != nil {
		return r, err
	}
	router := &bot.Router{Deployer: dep, Auth: &bot.Authorizer{Policies: map[string]bot.Policy{}}}
	timeIt := func(what string, fn func() error) (timing, error) {
		var t timing
		start := time.Now()
		for i := range calls {
			if err := fn(); err != nil {
				return t, fmt.Errorf("%s: %w", what, err)
			}
			if i == 0 {
				t.first = time.Since(start)
			}
		}
		t.mean = time.Since(start) / time.Duration(calls)
		return t, nil
	}
	command := func(text string) func() error {
		return func() error {
			if reply := router.Handle(ctx, bot.Request{User: "bench", Channel: "C1", Text: text}); len(reply.Messages) == 0 {
				return fmt.Errorf("no answer")
			}
			return nil
		}
	}
	mid := uint64(n/2 + 1)
	for _, m := range []struct {
		into *timing
		what string
		fn   func() error
	}{
		{&r.status, "status", command("/deploy status ns")},
		{&r.history, "history", command("/deploy history ns -n 20")},
		{&r.historyMl, "history of mail", command("/deploy history mail -n 20")},
		{&r.approve, "bare approve", command("/deploy approve")},
		{&r.approveID, "approve #N", command(fmt.Sprintf("/deploy approve #%d", mid))},
		{&r.active, "ActiveDeployments", func() error {
			a, err := db.ActiveDeployments()
			if err == nil && len(a) != 2 {
				err = fmt.Errorf("%d deploys in flight, want 2", len(a))
			}
			return err
		}},
		{&r.deployment, "Deployment", func() error { _, err := db.Deployment(mid); return err }},
		{&r.audit, "Audit", func() error {
			return db.Audit(deployer.AuditEntry{User: "bench", Action: "refused approve", Detail: "no deploy awaits approval"})
		}},
	} {
		if *m.into, err = timeIt(m.what, m.fn); err != nil {
			return r, err
		}
	}
	return r, nil
}

// compact copies the bbolt file at src into dst with bbolt's Compact, as
// `bbolt compact` does.
func compact(src, dst string) error {
	from, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return err
	}
	if err := bolt.Compact(to, from, 64<<20); err != nil {
		_ = to.Close()
		return err
	}
	return to.Close()
}

// statFile measures the closed bbolt file at path.
func statFile(path string) (fileStats, error) {
	var st fileStats
	fi, err := os.Stat(path)
	if err != nil {
		return st, err
	}
	st.disk = fi.Size()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return st, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		free := db.Stats().FreePageN + db.Stats().PendingPageN
		st.used = tx.Size() - int64(free*db.Info().PageSize)
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			bs := b.Stats()
			st.data += int64(bs.LeafInuse + bs.InlineBucketInuse)
			return nil
		})
	})
	return st, err
}
