package dnscheck

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// problem is what one query to one server found wrong; what follows the
// query's name (" answered SERVFAIL", ": serial 7 is lower than the live 9").
type problem struct {
	q    query
	what string
}

func (p problem) String() string { return p.q.String() + p.what }

// group says a round's problems once each: the same finding over UDP and
// TCP, for several questions, and on several servers is one line —
// "ns1-2, ns2-2: SOA example.test. and A ns1.example.test. over UDP+TCP
// answered SERVFAIL". Lines are sorted and unique.
func group(problems []problem) []string {
	type byQuery struct{ target, question, what string }
	nets := map[byQuery][]string{}
	var order []byQuery
	for _, p := range problems {
		k := byQuery{p.q.target, fmt.Sprintf("%s %s", dns.TypeToString[p.q.qtype], p.q.name), p.what}
		if _, ok := nets[k]; !ok {
			order = append(order, k)
		}
		if n := strings.ToUpper(p.q.net); !slices.Contains(nets[k], n) {
			nets[k] = append(nets[k], n)
		}
	}
	type byTarget struct{ target, nets, what string }
	questions := map[byTarget][]string{}
	var order2 []byTarget
	for _, k := range order {
		n := slices.Clone(nets[k])
		slices.SortFunc(n, func(a, b string) int { return strings.Compare(b, a) }) // UDP before TCP
		k2 := byTarget{k.target, strings.Join(n, "+"), k.what}
		if _, ok := questions[k2]; !ok {
			order2 = append(order2, k2)
		}
		if !slices.Contains(questions[k2], k.question) {
			questions[k2] = append(questions[k2], k.question)
		}
	}
	type finding struct{ questions, nets, what string }
	targets := map[finding][]string{}
	var order3 []finding
	for _, k := range order2 {
		q := slices.Clone(questions[k])
		slices.SortStableFunc(q, func(a, b string) int { // SOA first, then as asked
			return cmpBool(!strings.HasPrefix(a, "SOA "), !strings.HasPrefix(b, "SOA "))
		})
		f := finding{andList(q), k.nets, k.what}
		if _, ok := targets[f]; !ok {
			order3 = append(order3, f)
		}
		if !slices.Contains(targets[f], k.target) {
			targets[f] = append(targets[f], k.target)
		}
	}
	out := make([]string, 0, len(order3))
	for _, f := range order3 {
		t := slices.Clone(targets[f])
		slices.Sort(t)
		out = append(out, fmt.Sprintf("%s: %s over %s%s", strings.Join(t, ", "), f.questions, f.nets, f.what))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// andList is "a", "a and b", "a, b and c".
func andList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
