// Package configs holds greenlight's configuration files and templates,
// embedded so the binary runs from any directory.
package configs

import "embed"

// Files holds local.yaml and the sample zones under zones/.
//
//go:embed local.yaml zones
var Files embed.FS
