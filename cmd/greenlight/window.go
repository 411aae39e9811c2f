package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// DeployWindowConfig is a time traffic may be switched: on days, from
// "09:00" to "16:00" in tz (UTC when empty).
type DeployWindowConfig struct {
	Days []string `yaml:"days"`
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
	TZ   string   `yaml:"tz"`
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseDeployWindow turns a deploy window of the config into the
// deployer's terms; a problem is a keyError under key.
func ParseDeployWindow(key string, c DeployWindowConfig) (deployer.DeployWindow, error) {
	var w deployer.DeployWindow
	if len(c.Days) == 0 {
		return w, &keyError{key + ".days", "list the days the window is open: [mon, tue, wed, thu, fri, sat, sun]"}
	}
	for _, d := range c.Days {
		wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return w, &keyError{key + ".days", fmt.Sprintf("%q is not a day (mon, tue, wed, thu, fri, sat, sun)", d)}
		}
		w.Days = append(w.Days, wd)
	}
	var err error
	if w.From, err = clockTime(c.From); err != nil {
		return w, &keyError{key + ".from", err.Error()}
	}
	if w.To, err = clockTime(c.To); err != nil {
		return w, &keyError{key + ".to", err.Error()}
	}
	if w.From >= w.To {
		return w, &keyError{key + ".to", fmt.Sprintf("%s is not after from (%s); a window ends on the day it starts", c.To, c.From)}
	}
	w.Location = time.UTC
	if c.TZ != "" {
		if w.Location, err = time.LoadLocation(c.TZ); err != nil {
			return w, &keyError{key + ".tz", fmt.Sprintf("%q is not a time zone (like Europe/Berlin)", c.TZ)}
		}
	}
	return w, nil
}

// clockTime reads "HH:MM" (00:00 to 24:00) as the time since midnight.
func clockTime(s string) (time.Duration, error) {
	var h, m int
	if n, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || n != 2 || len(s) != 5 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day like 09:00", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

func deployWindows(key string, cs []DeployWindowConfig) []deployer.DeployWindow {
	var out []deployer.DeployWindow
	for i, c := range cs {
		if w, err := ParseDeployWindow(fmt.Sprintf("%s[%d]", key, i), c); err == nil {
			out = append(out, w)
		}
	}
	return out
}
