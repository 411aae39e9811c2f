package linodetest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// applyFilter keeps the objects an X-Filter header selects, in the order it
// asks for. It understands what linodego's Filter writes: {"field": value},
// {"field": {"+op": value}} with +eq, +neq, +contains, +gt, +gte, +lt, +lte,
// "+and"/"+or" lists, and "+order_by"/"+order". A value matches a list
// field (tags) when any element matches, as in the real API.
func applyFilter(objs []map[string]any, header string) ([]map[string]any, error) {
	if header == "" {
		return objs, nil
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(header), &f); err != nil {
		return nil, fmt.Errorf("invalid JSON in X-Filter")
	}
	out := []map[string]any{}
	for _, o := range objs {
		ok, err := matchFilter(o, f)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, o)
		}
	}
	if by, _ := f["+order_by"].(string); by != "" {
		desc := f["+order"] == "desc"
		slices.SortStableFunc(out, func(a, b map[string]any) int {
			x, _ := lookup(a, by)
			y, _ := lookup(b, by)
			if desc {
				return compare(y, x)
			}
			return compare(x, y)
		})
	}
	return out, nil
}

func matchFilter(o, f map[string]any) (bool, error) {
	for k, v := range f {
		switch k {
		case "+order_by", "+order":
			continue
		case "+and", "+or":
			list, ok := v.([]any)
			if !ok {
				return false, fmt.Errorf("%s takes a list of filters", k)
			}
			some, all := false, true
			for _, item := range list {
				sub, ok := item.(map[string]any)
				if !ok {
					return false, fmt.Errorf("%s takes a list of filters", k)
				}
				m, err := matchFilter(o, sub)
				if err != nil {
					return false, err
				}
				some, all = some || m, all && m
			}
			if (k == "+and" && !all) || (k == "+or" && !some) {
				return false, nil
			}
		default:
			got, ok := lookup(o, k)
			if !ok {
				//lint:ignore ST1005 the Linode API's own words
				return false, fmt.Errorf("Cannot filter on %s", k)
			}
			op, want := "+eq", v
			if m, ok := v.(map[string]any); ok && len(m) == 1 {
				for op, want = range m {
				}
			}
			m, err := matchOp(got, op, want)
			if err != nil || !m {
				return false, err
			}
		}
	}
	return true, nil
}

// lookup finds a dotted field ("entity.id") in o.
func lookup(o map[string]any, field string) (any, bool) {
	var cur any = o
	for part := range strings.SplitSeq(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func matchOp(got any, op string, want any) (bool, error) {
	if list, ok := got.([]any); ok {
		if op == "+neq" {
			m, err := matchOp(got, "+eq", want)
			return !m, err
		}
		for _, el := range list {
			if m, err := matchOp(el, op, want); err != nil || m {
				return m, err
			}
		}
		return false, nil
	}
	switch op {
	case "+eq":
		return compare(got, want) == 0, nil
	case "+neq":
		return compare(got, want) != 0, nil
	case "+contains":
		return strings.Contains(strings.ToLower(fmt.Sprint(got)), strings.ToLower(fmt.Sprint(want))), nil
	case "+gt":
		return compare(got, want) > 0, nil
	case "+gte":
		return compare(got, want) >= 0, nil
	case "+lt":
		return compare(got, want) < 0, nil
	case "+lte":
		return compare(got, want) <= 0, nil
	}
	return false, fmt.Errorf("unknown filter operator %s", op)
}

func compare(a, b any) int {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}
