package linodetest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxWrittenFile bounds one decoded write_files entry.
const maxWrittenFile = 16 << 20

// WrittenFiles returns the files a cloud-config's write_files would write,
// path → bytes, decoding each entry's encoding as cloud-init does (plain
// text, b64/base64, gz/gzip, gz+b64/gzip+base64 and their spellings). It
// lets a fake server serve what real cloud-init would have put on disk.
func WrittenFiles(userData []byte) (map[string][]byte, error) {
	if !bytes.HasPrefix(userData, []byte("#cloud-config")) {
		return nil, fmt.Errorf("user data is not a cloud-config")
	}
	var doc struct {
		WriteFiles []struct {
			Path     string `yaml:"path"`
			Encoding string `yaml:"encoding"`
			Content  string `yaml:"content"`
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return nil, fmt.Errorf("user data is not YAML: %w", err)
	}
	out := map[string][]byte{}
	for i, f := range doc.WriteFiles {
		if f.Path == "" {
			return nil, fmt.Errorf("write_files[%d] has no path", i)
		}
		data, err := decodeContent(f.Encoding, f.Content)
		if err != nil {
			return nil, fmt.Errorf("write_files[%d] (%s): %w", i, f.Path, err)
		}
		out[f.Path] = data
	}
	return out, nil
}

func decodeContent(encoding, content string) ([]byte, error) {
	var b64, gz bool
	switch strings.ToLower(encoding) {
	case "", "text/plain":
	case "b64", "base64":
		b64 = true
	case "gz", "gzip":
		gz = true
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		b64, gz = true, true
	default:
		return nil, fmt.Errorf("unknown encoding %q", encoding)
	}
	data := []byte(content)
	if b64 {
		var err error
		if data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(content)); err != nil {
			return nil, fmt.Errorf("content is not base64: %w", err)
		}
	}
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("content is not gzip: %w", err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, maxWrittenFile+1)); err != nil {
			return nil, fmt.Errorf("content is not gzip: %w", err)
		}
		if len(data) > maxWrittenFile {
			return nil, fmt.Errorf("content is larger than %d MiB", maxWrittenFile>>20)
		}
	}
	return data, nil
}
