package deployer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Schedule is a recurring time: the first one after t (a robfig/cron
// schedule, CRON_TZ included).
type Schedule interface {
	Next(t time.Time) time.Time
}

// FreezeWindow is a recurring freeze from the config: deploys are refused
// from each Start until the End that follows it.
type FreezeWindow struct {
	Name   string
	Reason string
	Start  Schedule
	End    Schedule
	// Location shows the window's times to people (its CRON_TZ); nil is UTC.
	Location *time.Location
}

// At reports the freeze in force at now, if any, and the next one to
// start after now. Only Next is known of a schedule, so now is inside a
// freeze when the next end comes before the next start.
func (w FreezeWindow) At(now time.Time) (current, next *Freeze) {
	start, end := w.Start.Next(now), w.End.Next(now)
	if start.IsZero() || end.IsZero() {
		return nil, nil
	}
	if end.Before(start) {
		current = &Freeze{Name: w.Name, Reason: w.Reason, End: end, Location: w.Location}
	}
	if after := w.End.Next(start); !after.IsZero() {
		next = &Freeze{Name: w.Name, Reason: w.Reason, Start: start, End: after, Location: w.Location}
	}
	return current, next
}

// Freeze is a time when deploys of a service are refused: a window of the
// config in force, or one an admin set in chat.
type Freeze struct {
	Service string    `json:"service,omitempty"` // "" = every service
	Name    string    `json:"name,omitempty"`
	Reason  string    `json:"reason"`
	Start   time.Time `json:"start,omitzero"` // zero when not known (a config window in force)
	End     time.Time `json:"end,omitzero"`   // zero: until someone unfreezes
	By      string    `json:"by,omitempty"`   // who set it in chat; "" = the config
	// Location shows the freeze's times to people; nil is UTC.
	Location *time.Location `json:"-"`
}

// About is the freeze in parentheses: "year-end: holidays".
func (f Freeze) About() string {
	switch {
	case f.Name != "" && f.Reason != "":
		return f.Name + ": " + f.Reason
	case f.Name != "":
		return f.Name
	}
	return f.Reason
}

// Until says when the freeze ends, in its time zone.
func (f Freeze) Until() string {
	if f.End.IsZero() {
		return "someone unfreezes it"
	}
	return FreezeTime(f.End, f.Location)
}

// SetBy says where the freeze comes from.
func (f Freeze) SetBy() string {
	if f.By == "" {
		return "set in the config"
	}
	return "set by " + f.By
}

// FreezeTime shows a time as the refusal and the status do: "Sat 2 Jan 08:00 CET".
func FreezeTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2 Jan 15:04 MST")
}

// FrozenError refuses a deploy during a freeze.
type FrozenError struct {
	Service string
	Freeze  Freeze
}

func (e *FrozenError) Error() string {
	return fmt.Sprintf("%s is frozen (%s) until %s, %s — an admin can deploy anyway with --override-freeze",
		e.Service, e.Freeze.About(), e.Freeze.Until(), e.Freeze.SetBy())
}

// FreezeStore keeps the freezes set in chat, so they survive a restart.
type FreezeStore interface {
	// Freezes returns every freeze set in chat.
	Freezes() ([]Freeze, error)
	// SetFreeze records f, replacing the one of the same service.
	SetFreeze(f Freeze) error
	// DeleteFreeze removes the freeze of service ("" = of every service).
	DeleteFreeze(service string) (Freeze, bool, error)
}

func (dep *Deployer) freezeStore() (FreezeStore, error) {
	fs, ok := dep.store.(FreezeStore)
	if !ok {
		return nil, Errorf(CodeInvalid, "this store cannot keep freezes")
	}
	return fs, nil
}

// Frozen returns the freezes of service in force at now, the one that
// lasts longest first, and the next freeze of the config to start.
func (dep *Deployer) Frozen(service string, now time.Time) (current []Freeze, next *Freeze, err error) {
	svc, err := dep.Service(service)
	if err != nil {
		return nil, nil, err
	}
	if fs, ok := dep.store.(FreezeStore); ok {
		set, err := fs.Freezes()
		if err != nil {
			return nil, nil, err
		}
		for _, f := range set {
			if (f.Service == "" || f.Service == service) && !now.Before(f.Start) && (f.End.IsZero() || now.Before(f.End)) {
				current = append(current, f)
			}
		}
	}
	for _, w := range svc.Freezes {
		cur, nx := w.At(now)
		if cur != nil {
			cur.Service = service
			current = append(current, *cur)
		}
		if nx != nil && (next == nil || nx.Start.Before(next.Start)) {
			nx.Service = service
			next = nx
		}
	}
	sortFreezes(current)
	return current, next, nil
}

// FreezeRequest is a freeze set in chat: of one service, or of all.
type FreezeRequest struct {
	Service string // "" = every service
	User    string
	Reason  string
	Until   time.Time // zero: until unfrozen
}

// Freeze refuses deploys of a service (or of all) until req.Until or until
// someone unfreezes it. Deploys in flight go on.
func (dep *Deployer) Freeze(ctx context.Context, req FreezeRequest) (Freeze, error) {
	if req.Service != "" {
		if _, err := dep.Service(req.Service); err != nil {
			return Freeze{}, err
		}
	}
	now := dep.clock.Now()
	if !req.Until.IsZero() && !req.Until.After(now) {
		return Freeze{}, Errorf(CodeInvalid, "the freeze would end at %s, which has passed", FreezeTime(req.Until, nil))
	}
	if strings.TrimSpace(req.Reason) == "" {
		return Freeze{}, Errorf(CodeInvalid, "a freeze needs a reason (--reason TEXT)")
	}
	fs, err := dep.freezeStore()
	if err != nil {
		return Freeze{}, err
	}
	f := Freeze{Service: req.Service, Reason: req.Reason, Start: now, End: req.Until, By: req.User}
	if err := fs.SetFreeze(f); err != nil {
		return Freeze{}, err
	}
	dep.audit(req.User, "freeze", req.Service, 0, fmt.Sprintf("%s until %s", req.Reason, f.Until()))
	dep.log.Info("freeze set", "service", orAll(req.Service), "user", req.User, "until", req.Until)
	return f, nil
}

// Unfreeze removes the freeze set in chat for service ("" = the one of
// every service). Freezes of the config stay: --override-freeze passes them.
func (dep *Deployer) Unfreeze(ctx context.Context, service, user string) (Freeze, error) {
	if service != "" {
		if _, err := dep.Service(service); err != nil {
			return Freeze{}, err
		}
	}
	fs, err := dep.freezeStore()
	if err != nil {
		return Freeze{}, err
	}
	f, ok, err := fs.DeleteFreeze(service)
	if err != nil {
		return Freeze{}, err
	}
	if !ok || (!f.End.IsZero() && !dep.clock.Now().Before(f.End)) {
		why := fmt.Sprintf("%s has no freeze set in chat", orAll(service))
		if service != "" {
			if cur, _, ferr := dep.Frozen(service, dep.clock.Now()); ferr == nil && len(cur) > 0 {
				why += fmt.Sprintf("; it is frozen (%s) until %s, %s — an admin can deploy anyway with --override-freeze", cur[0].About(), cur[0].Until(), cur[0].SetBy())
			}
		}
		dep.audit(user, "refused unfreeze", service, 0, why)
		return Freeze{}, Errorf(CodeNotFound, "%s", why)
	}
	dep.audit(user, "unfreeze", service, 0, fmt.Sprintf("removed the freeze set by %s (%s)", f.By, f.Reason))
	return f, nil
}

func orAll(service string) string {
	if service == "" {
		return "every service"
	}
	return service
}

// checkFreeze refuses a deploy during a freeze unless it overrides it.
func (dep *Deployer) checkFreeze(svc *Service, req Request) (*Freeze, error) {
	current, _, err := dep.Frozen(svc.Name, dep.clock.Now())
	if err != nil || len(current) == 0 {
		return nil, err
	}
	f := current[0]
	if !req.Options.OverrideFreeze {
		dep.audit(req.User, "refused deploy", svc.Name, 0, fmt.Sprintf("frozen (%s) until %s", f.About(), f.Until()))
		return nil, &FrozenError{Service: svc.Name, Freeze: f}
	}
	return &f, nil
}

// sortFreezes puts the freeze that lasts longest first: open-ended ones,
// then by the latest end.
func sortFreezes(fs []Freeze) {
	slices.SortStableFunc(fs, func(a, b Freeze) int {
		switch {
		case a.End.IsZero() && b.End.IsZero():
			return 0
		case a.End.IsZero():
			return -1
		case b.End.IsZero():
			return 1
		}
		return b.End.Compare(a.End)
	})
}
