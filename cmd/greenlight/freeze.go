package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/greenlight/greenlight/deployer"
)

// FreezeConfig is one recurring freeze: deploys are refused from each
// start until the end that follows it. Start and end are cron schedules
// (five fields, optionally after CRON_TZ=Zone; UTC without it).
type FreezeConfig struct {
	Name   string `yaml:"name"`
	Start  string `yaml:"start"`
	End    string `yaml:"end"`
	Reason string `yaml:"reason"`
}

func freezeParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseFreeze turns a freeze of the config into the deployer's terms; a
// problem is a keyError naming key.start, key.end or key.
func ParseFreeze(key string, f FreezeConfig) (deployer.FreezeWindow, error) {
	w := deployer.FreezeWindow{Name: f.Name, Reason: f.Reason}
	if strings.TrimSpace(f.Name) == "" {
		return w, &keyError{key + ".name", "a freeze needs a name (it is shown when a deploy is refused)"}
	}
	var err error
	if w.Start, err = freezeParser().Parse(f.Start); err != nil {
		return w, &keyError{key + ".start", fmt.Sprintf("%q is not a cron schedule: %v", f.Start, err)}
	}
	if w.End, err = freezeParser().Parse(f.End); err != nil {
		return w, &keyError{key + ".end", fmt.Sprintf("%q is not a cron schedule: %v", f.End, err)}
	}
	w.Location = cronZone(f.End)
	if w.Location == time.UTC {
		w.Location = cronZone(f.Start)
	}
	return w, nil
}

// cronZone is the time zone a cron spec names with CRON_TZ= or TZ=, else UTC.
func cronZone(spec string) *time.Location {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), prefix); ok {
			name, _, _ := strings.Cut(rest, " ")
			if loc, err := time.LoadLocation(name); err == nil {
				return loc
			}
		}
	}
	return time.UTC
}
