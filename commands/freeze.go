package commands

import (
	"fmt"
	"time"
)

// MaxFreeze is the longest --for a freeze takes.
const MaxFreeze = 366 * 24 * time.Hour

// ParseFor reads freeze --for: a Go duration, positive and at most MaxFreeze.
func ParseFor(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("--for takes a duration like 2h, 90m or 48h, not %s", short(v))
	}
	if d <= 0 || d > MaxFreeze {
		return 0, fmt.Errorf("--for must be more than 0 and at most %s, not %s", MaxFreeze, short(v))
	}
	return d, nil
}

// untilLayouts are the spellings --until takes: RFC 3339, seconds optional.
var untilLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"}

// ParseUntil reads freeze --until: an RFC 3339 time with its offset (Z for
// UTC), seconds optional, returned in UTC.
func ParseUntil(v string) (time.Time, error) {
	for _, layout := range untilLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("--until takes a time with its offset like 2026-12-27T08:00Z or 2026-12-27T09:00+01:00, not %s", short(v))
}
