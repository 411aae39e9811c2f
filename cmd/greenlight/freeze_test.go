package main

import (
	"strings"
	"testing"
	"time"
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
