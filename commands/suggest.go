package commands

import (
	"strings"
	"unicode/utf8"
)

// suggest returns the candidate word probably meant, or "". The closest
// candidate within a Damerau–Levenshtein distance of 2 wins (earlier
// candidates win ties); failing that, the one candidate word is a prefix of.
// Short candidates allow less distance (half their length), or "x" would
// suggest every two-letter service.
func suggest(word string, candidates []string) string {
	if word == "" {
		return ""
	}
	n := utf8.RuneCountInString(word)
	best, bestDist := "", 3
	for _, c := range candidates {
		limit := min(2, len(c)/2)
		if d := n - utf8.RuneCountInString(c); d > limit || -d > limit {
			continue // cheap bound: the distance is at least the length difference
		}
		if d := distance([]rune(word), []rune(c)); d <= limit && d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	match := ""
	for _, c := range candidates {
		if strings.HasPrefix(c, word) {
			if match != "" && match != c {
				return "" // ambiguous
			}
			match = c
		}
	}
	return match
}

// distance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent letters each cost 1.
func distance(a, b []rune) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
