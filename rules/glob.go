package rules

import "strings"

// pattern is an exact string or a glob: '*' matches any run of characters
// ('/' included, so "docker.io/*" matches every image under docker.io) and
// '?' matches one character. Nothing else is special.
type pattern struct {
	s    string
	glob bool
}

func compilePatterns(ps []string) []pattern {
	if len(ps) == 0 {
		return nil
	}
	out := make([]pattern, len(ps))
	for i, p := range ps {
		out[i] = pattern{s: p, glob: strings.ContainsAny(p, "*?")}
	}
	return out
}

func matchAny(ps []pattern, s string) bool {
	for _, p := range ps {
		if p.glob {
			if globMatch(p.s, s) {
				return true
			}
		} else if p.s == s {
			return true
		}
	}
	return false
}

// globMatch matches s against pattern in O(len(pattern)*len(s)) at worst,
// backtracking only to the last '*'. '?' matches one rune.
func globMatch(pattern, s string) bool {
	p := []rune(pattern)
	t := []rune(s)
	pi, ti := 0, 0
	star, mark := -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			mark++
			pi, ti = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
