package main

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// configError is a mistake in the configuration, said as a person fixes
// it: the key's dotted path, its line, and what to write instead.
type configError struct {
	key  string // "services.ns.rollback_window"; "" when no key is at fault
	line int
	msg  string
}

func (e *configError) Error() string {
	var parts []string
	if e.key != "" {
		parts = append(parts, e.key)
	}
	if e.line > 0 {
		parts = append(parts, fmt.Sprintf("line %d", e.line))
	}
	return strings.Join(append(parts, e.msg), ": ")
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkShape walks the YAML document against the configuration's types
// before it is decoded, so an unknown key or a value of the wrong kind is
// named by its path and line, with the nearest known key suggested.
func checkShape(root *yaml.Node) error {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	visits := 0
	return shapeOf(n, reflect.TypeFor[Config](), "", 0, &visits)
}

// maxVisits bounds the walk over aliases that repeat one another.
const maxVisits = 100000

// maxDepth bounds the walk: the configuration nests a few levels, and an
// alias may point at its own ancestor.
const maxDepth = 32

func shapeOf(n *yaml.Node, t reflect.Type, path string, depth int, visits *int) error {
	if *visits++; *visits > maxVisits {
		return &configError{key: path, line: n.Line, msg: "too many values (aliases that repeat one another?)"}
	}
	if depth > maxDepth {
		return &configError{key: path, line: n.Line, msg: "nested too deep (does an alias refer to itself?)"}
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // it checks itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return kindError(n, t, path)
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // a merge key: its keys are checked where they are written
			}
			ft, ok := fields[k.Value]
			if !ok {
				return unknownKey(k, joinKey(path, keyName(k.Value)), slices.Sorted(mapKeys(fields)))
			}
			if err := shapeOf(v, ft, joinKey(path, k.Value), depth+1, visits); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return kindError(n, t, path)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := shapeOf(n.Content[i+1], t.Elem(), joinKey(path, keyName(n.Content[i].Value)), depth+1, visits); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return kindError(n, t, path)
		}
		for i, c := range n.Content {
			if err := shapeOf(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1, visits); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return kindError(n, t, path)
		}
		if !scalarFits(n, t) {
			return &configError{key: path, line: n.Line, msg: fmt.Sprintf("%s is not %s", shownValue(n), kindWords(t))}
		}
	}
	return nil
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// keyName is a key as a path shows it: quoted unless it is a plain word.
func keyName(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return shownValue(&yaml.Node{Value: k})
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// yamlFields maps a struct's YAML keys to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// scalarFits reports whether a scalar decodes into a value of type t.
func scalarFits(n *yaml.Node, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		return true
	case reflect.Bool:
		return n.Tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		return n.Tag == "!!int" && err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		_, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		return n.Tag == "!!int" && err == nil
	case reflect.Float32, reflect.Float64:
		return n.Tag == "!!int" || n.Tag == "!!float"
	}
	return true
}

// kindWords says what a value of type t is written as.
func kindWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list ([a, b] or one \"- item\" per line)"
	case reflect.Map, reflect.Struct:
		return "a section of keys (key: value, one per line)"
	}
	return "a value of another kind"
}

func kindError(n *yaml.Node, t reflect.Type, path string) error {
	what := "a list"
	switch n.Kind {
	case yaml.MappingNode:
		what = "a section of keys"
	case yaml.ScalarNode:
		what = shownValue(n)
	}
	return &configError{key: path, line: n.Line, msg: fmt.Sprintf("%s where %s belongs", what, kindWords(t))}
}

// shownValue quotes a scalar for a message, cut short.
func shownValue(n *yaml.Node) string {
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

func unknownKey(k *yaml.Node, path string, known []string) error {
	msg := "no such key"
	if near := nearest(k.Value, known); near != "" {
		msg += "; did you mean " + near + "?"
	} else {
		msg += "; the keys here are " + strings.Join(known, ", ")
	}
	return &configError{key: path, line: k.Line, msg: msg}
}

// nearest is the known key closest to s by edit distance, when it is close
// enough to be a slip of the keyboard.
func nearest(s string, known []string) string {
	best, bestD := "", 0
	for _, k := range known {
		d := editDistance(strings.ToLower(s), k)
		if best == "" || d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError phrases the YAML parser's complaint without its prefix.
func syntaxError(err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &configError{line: line, msg: "not valid YAML: " + m[2]}
	}
	return &configError{msg: "not valid YAML: " + msg}
}
