package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// versionString is the module version and, when the build recorded them,
// the commit it was built from and the Go release.
func versionString() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	parts := []string{"greenlight", v}
	if ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified == "true" {
			rev += "+dirty"
		}
		if rev != "" {
			parts = append(parts, rev)
		}
	}
	return strings.Join(append(parts, runtime.Version()), " ")
}
