package policy

import (
	"slices"
	"strings"
)

// selector is a compiled node_labels block: every requirement must hold.
type selector struct {
	any  bool // {'*': '*'}: every node, whatever its labels
	reqs []labelReq
	text string // rendered once for Rule strings
}

// labelReq is one key of a selector; the node's value must equal one of
// exact, or match one of globs, or anyValue is set and the key exists.
type labelReq struct {
	key      string
	anyValue bool
	exact    []string
	globs    []string
}

func (s *selector) matches(labels map[string]string) bool {
	for i := range s.reqs {
		r := &s.reqs[i]
		v, ok := labels[r.key]
		if !ok {
			return false
		}
		if r.anyValue || slices.Contains(r.exact, v) {
			continue
		}
		found := false
		for _, g := range r.globs {
			if glob(g, v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return s.any || len(s.reqs) > 0
}

// render writes the selector the way an operator would write it in flow
// YAML, keys sorted, so Rule strings are stable.
func (s *selector) render(written map[string][]string) string {
	if s.any && len(s.reqs) == 0 {
		return "any node"
	}
	keys := make([]string, 0, len(written))
	for k := range written {
		if k != "*" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		vs := written[k]
		if len(vs) == 1 {
			b.WriteString(vs[0])
			continue
		}
		b.WriteByte('[')
		b.WriteString(strings.Join(vs, ", "))
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.String()
}

// hasGlobMeta reports whether a pattern needs glob matching.
func hasGlobMeta(s string) bool { return strings.ContainsAny(s, "*?") }

// glob matches name against pattern where '*' is any run of characters
// (including '/', unlike path.Match, because group names like "org/eng" are
// common) and '?' is one character. It backtracks only to the last star, so
// it is linear in practice and never allocates.
func glob(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// traitSource says where a login template takes its values from.
type traitSource int8

const (
	fromUsername traitSource = iota + 1
	fromClaim
)

// loginPattern is one entry of logins: a literal login or a template with a
// single {{...}} expression and optional text around it.
type loginPattern struct {
	literal    string
	template   bool
	prefix     string
	suffix     string
	source     traitSource
	claim      string
	emailLocal bool
}

// values returns the raw trait values before transformation.
func (lp *loginPattern) values(s *Subject) []string {
	if lp.source == fromUsername {
		if s.User == "" {
			return nil
		}
		return []string{s.User}
	}
	return s.Claims[lp.claim]
}

func (lp *loginPattern) transform(v string) string {
	if lp.emailLocal {
		if i := strings.IndexByte(v, '@'); i >= 0 {
			return v[:i]
		}
	}
	return v
}

// matches reports whether login is produced by this pattern for s. It
// compares in place rather than expanding, so a decision does not allocate.
func (lp *loginPattern) matches(s *Subject, login string) bool {
	if !lp.template {
		return lp.literal == login
	}
	if len(login) <= len(lp.prefix)+len(lp.suffix) ||
		!strings.HasPrefix(login, lp.prefix) || !strings.HasSuffix(login, lp.suffix) {
		return false
	}
	mid := login[len(lp.prefix) : len(login)-len(lp.suffix)]
	if lp.source == fromUsername {
		return s.User != "" && lp.transform(s.User) == mid
	}
	for _, v := range s.Claims[lp.claim] {
		if lp.transform(v) == mid {
			return true
		}
	}
	return false
}

// expand appends every valid login this pattern yields for s. A missing
// claim yields nothing; values that are not valid logins (spaces, slashes,
// empty) are dropped rather than passed to a node's sshd.
func (lp *loginPattern) expand(s *Subject, out []string) []string {
	if !lp.template {
		return append(out, lp.literal)
	}
	for _, v := range lp.values(s) {
		v = lp.transform(v)
		if v == "" {
			continue
		}
		l := lp.prefix + v + lp.suffix
		if validLogin(l) {
			out = append(out, l)
		}
	}
	return out
}

// matchLogins reports whether any pattern yields login for s.
func matchLogins(ps []loginPattern, s *Subject, login string) bool {
	for i := range ps {
		if ps[i].matches(s, login) {
			return true
		}
	}
	return false
}

// validLogin accepts the printable ASCII names sshd and NSS accept in
// practice, and refuses anything that could be read as a path, a glob, a
// list separator or a template.
func validLogin(l string) bool {
	if l == "" || len(l) > 256 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '/', '\\', ':', ',', '*', '?', '[', ']', '{', '}', '"', '\'', '`', '|', '<', '>', ';', '&', '#':
			return false
		}
	}
	return true
}

// validRoleName keeps role names to something that is safe in rule
// strings, SSH commands (`request dba,ops`) and URLs.
func validRoleName(n string) bool { return plainName(n, "-_.") }

// plainName reports whether s is 1 to 128 ASCII letters, digits and bytes
// of extra: text that needs no quoting wherever it is shown or typed.
func plainName(s, extra string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}
