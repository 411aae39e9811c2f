// Package configs holds greenlight's configuration files and templates,
// embedded so the binary runs from any directory.
package configs

import "embed"

// Files holds local.yaml, the sample zones under zones/ and the nginx
// stream template under nginx/.
//
//go:embed local.yaml zones nginx
var Files embed.FS
