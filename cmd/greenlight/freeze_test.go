package main

import (
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// ParseFreeze never panics, and a freeze it accepts is inside-or-outside
// consistently: inside means the end it shows comes before the next start.
func FuzzParseFreeze(f *testing.F) {
	f.Add("year-end", "CRON_TZ=Europe/Berlin 0 18 23 12 *", "CRON_TZ=Europe/Berlin 0 8 2 1 *", int64(1798041600))
	f.Add("w", "@daily", "@weekly", int64(0))
	f.Add("", "TZ=Nowhere 0 0 * * *", "* * * * *", int64(-1))
	f.Fuzz(func(t *testing.T, name, start, end string, at int64) {
		w, err := ParseFreeze("freezes[0]", FreezeConfig{Name: name, Start: start, End: end})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "freezes[0].") {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		now := time.Unix(at%(1<<34), 0).UTC()
		cur, next := w.At(now)
		if cur != nil && !cur.End.After(now) {
			t.Fatalf("a freeze in force at %s ends at %s", now, cur.End)
		}
		if next != nil && !next.Start.After(now) {
			t.Fatalf("the next freeze after %s starts at %s", now, next.Start)
		}
	})
}

// ParseDeployWindow never panics; a window it accepts opens before it closes.
func FuzzParseDeployWindow(f *testing.F) {
	f.Add("mon,tue", "09:00", "16:00", "Europe/Berlin", int64(1798041600))
	f.Add("sun", "00:00", "24:00", "", int64(0))
	f.Add("x", "25:00", "9", "Nowhere", int64(-5))
	f.Fuzz(func(t *testing.T, days, from, to, tz string, at int64) {
		w, err := ParseDeployWindow("w", DeployWindowConfig{Days: strings.Split(days, ","), From: from, To: to, TZ: tz})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "w.") {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		if w.From >= w.To || w.To > 24*time.Hour || len(w.Days) == 0 {
			t.Fatalf("accepted %+v", w)
		}
		_ = w.String()
		_ = deployer.NextWindowOpening([]deployer.DeployWindow{w}, time.Unix(at%(1<<34), 0))
	})
}
