package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// Traffic is where a service's queries go, as status, the App Home and the
// terminal banner say it first.
type Traffic struct {
	Servers  []deployer.Server
	Image    string
	DeployID uint64 // the deploy that made this set serve, 0 for the first set
	// Moving is set while the switch to Servers (or back from them) is
	// in progress: queries may reach either set.
	Moving string
	// Kept is the set kept for a rollback, until KeptUntil.
	Kept      []deployer.Server
	KeptImage string
	KeptUntil time.Time
	// Attention says why the deploy in flight needs a person, where
	// traffic is, and the commands that end it.
	Attention string
}

// TrafficOf reads where traffic is from a service's status: the live set,
// or the set the deploy in flight recorded it sent traffic to. While a
// switch is under way, or a deploy needs attention, it says so.
func TrafficOf(st deployer.Status) Traffic {
	t := Traffic{Servers: st.Live.Servers, Image: st.Live.Image, DeployID: st.Live.DeployID}
	d := st.Active
	if d == nil || len(d.Next) == 0 {
		return t
	}
	if d.Phase == deployer.PhaseNeedsAttention {
		t.Attention = deployer.AttentionText(*d)
	}
	tr := d.Traffic
	switch {
	case tr.Target == "":
		return t
	case tr.Target == deployer.TrafficNext && !tr.Settled:
		t.Moving = fmt.Sprintf("deploy #%d is switching traffic from %s to %s; queries may reach either set", d.ID, serverList(d.Old), serverList(d.Next))
		return t
	case tr.Target == deployer.TrafficOld:
		t.Servers, t.Image = d.Old, d.ImageOld
		if !tr.Settled {
			t.Moving = fmt.Sprintf("deploy #%d is moving traffic back to %s; queries may still reach %s", d.ID, serverList(d.Old), serverList(d.Next))
		}
		return t
	}
	t.Servers, t.Image, t.DeployID = d.Next, d.ImageNew, d.ID
	if len(d.Old) > 0 && d.Phase == deployer.PhaseRollbackWindow {
		t.Kept, t.KeptImage, t.KeptUntil = d.Old, d.ImageOld, d.RollbackDeadline
	}
	if d.Rollback != nil {
		t.Moving = fmt.Sprintf("%s asked for a rollback at %s; traffic is moving back to %s", d.Rollback.By, deployer.TimeOfDay(d.Rollback.At), serverList(d.Old))
	}
	return t
}

// PhaseText is a deployment's phase as a person reads it.
func PhaseText(p deployer.Phase) string {
	switch p {
	case deployer.PhaseAwaitingApproval:
		return "waiting for approval"
	case deployer.PhaseRollbackWindow:
		return "live, in its rollback window"
	case deployer.PhaseRolledBack:
		return "rolled back"
	case deployer.PhasePlanned:
		return "dry run"
	case deployer.PhaseNeedsAttention:
		return "needs attention"
	}
	return string(p)
}

// FailureText is why a deployment failed, said once: the title of the step
// that failed and what it found.
func FailureText(d deployer.Deployment) string {
	for _, s := range d.Steps {
		if s.Status == deployer.StatusFailed && s.Detail != "" {
			return fmt.Sprintf("%s: %s", s.Name.Title(), s.Detail)
		}
	}
	return d.Error
}

// failedStep is the step a deployment failed at, or "".
func failedStep(d deployer.Deployment) deployer.StepName {
	for _, s := range d.Steps {
		if s.Status == deployer.StatusFailed {
			return s.Name
		}
	}
	return ""
}

// Plural is "1 server", "2 servers".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// serversWithAddrs is "ns1-0 (127.0.0.1:5301), ns2-0 (…)".
func serversWithAddrs(s []deployer.Server) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.Name
		if x.Addr != "" {
			parts[i] += " (" + x.Addr + ")"
		}
	}
	return strings.Join(parts, ", ")
}
