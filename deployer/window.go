package deployer

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DeployWindow is a time when a service's traffic may be switched, as
// Spinnaker's execution windows: on Days, from From to To after local
// midnight in Location. Outside every window a deploy is prepared and may
// be approved, but its switch waits until a window opens.
type DeployWindow struct {
	Days     []time.Weekday
	From, To time.Duration // since midnight; From < To
	Location *time.Location
}

func (w DeployWindow) loc() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// at reports whether now is inside w, else when w next opens.
func (w DeployWindow) at(now time.Time) (open bool, next time.Time) {
	local := now.In(w.loc())
	for i := -1; i <= 8; i++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+i, 0, 0, 0, 0, w.loc())
		if !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		from := clockOn(day, w.From, w.loc())
		to := clockOn(day, w.To, w.loc())
		if !now.Before(from) && now.Before(to) {
			return true, time.Time{}
		}
		if from.After(now) && (next.IsZero() || from.Before(next)) {
			next = from
		}
	}
	return false, next
}

// clockOn is the wall-clock time d after midnight of day in loc.
func clockOn(day time.Time, d time.Duration, loc *time.Location) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), int(d/time.Hour), int(d%time.Hour/time.Minute), 0, 0, loc)
}

// String is the window as people read it: "mon tue 09:00–16:00 Europe/Berlin".
func (w DeployWindow) String() string {
	days := make([]string, len(w.Days))
	for i, d := range w.Days {
		days[i] = strings.ToLower(d.String()[:3])
	}
	return fmt.Sprintf("%s %02d:%02d–%02d:%02d %s", strings.Join(days, " "),
		int(w.From/time.Hour), int(w.From%time.Hour/time.Minute), int(w.To/time.Hour), int(w.To%time.Hour/time.Minute), w.loc())
}

// windowAt reports whether a service with windows may switch at now; when
// it may not, it returns when the first window opens and that window's
// zone. No windows means always.
func windowAt(ws []DeployWindow, now time.Time) (open bool, next time.Time, loc *time.Location) {
	if len(ws) == 0 {
		return true, time.Time{}, nil
	}
	for _, w := range ws {
		o, n := w.at(now)
		if o {
			return true, time.Time{}, nil
		}
		if !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next, loc = n, w.loc()
		}
	}
	return false, next, loc
}

// TimeOfDay is how the chat says when something happened or ends within
// the day: t in UTC, to the second ("14:03:07 UTC").
func TimeOfDay(t time.Time) string { return t.UTC().Format("15:04:05 MST") }

// SwitchTime shows when a waiting switch happens: "09:00 CET on Mon 2 Nov".
func SwitchTime(t time.Time, zone string) string {
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "" {
		loc = time.UTC
	}
	t = t.In(loc)
	return t.Format("15:04 MST") + " on " + t.Format("Mon 2 Jan")
}

// NextWindowOpening says when windows next open after now, "" when one is
// open now or none ever opens.
func NextWindowOpening(ws []DeployWindow, now time.Time) string {
	open, next, loc := windowAt(ws, now)
	if open || next.IsZero() {
		return ""
	}
	return SwitchTime(next, loc.String())
}
