// Package configs holds greenlight's configuration files and templates,
// embedded so the binary runs from any directory.
package configs

import "embed"

// Files holds local.yaml, the sample zones under zones/, the nginx
// stream template under nginx/ and the cloud-init templates under cloud-init/.
//
//go:embed local.yaml zones nginx cloud-init
var Files embed.FS
