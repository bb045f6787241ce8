package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a problem in a roles file. Operators fix roles files by line, so
// every loader error carries the file and, whenever YAML gives one, the line.
type Error struct {
	File string
	Line int // 0 when the YAML parser could not say
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and compiles the roles file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read roles file %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse compiles roles YAML; name is used in error messages. Parsing is
// strict: unknown keys, duplicate keys and roles, references to undefined
// roles, malformed label selectors and bad durations are all errors, because
// a typo in a deny rule must not silently widen access.
func Parse(name string, data []byte) (*Policy, error) {
	l := &loader{file: name}
	p, err := l.parse(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	p.source = name
	p.digest = hex.EncodeToString(sum[:])
	return p, nil
}

// loader carries the file name for errors and the role references seen so
// far, which can only be checked once every role is known.
type loader struct {
	file string
	refs []roleRef
}

type roleRef struct {
	name  string
	node  *yaml.Node
	where string
}

type field struct{ key, val *yaml.Node }

func (l *loader) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// yamlErr turns the parser's "yaml: line N: reason" into an *Error so syntax
// errors read like every other loader error.
func (l *loader) yamlErr(err error, data []byte) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, reason, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, reason
			}
		}
	}
	if line > 0 && strings.Contains(msg, "cannot start any token") {
		if lines := strings.Split(string(data), "\n"); line <= len(lines) && strings.Contains(lines[line-1], "\t") {
			msg += " (YAML does not allow tabs for indentation)"
		}
	}
	return &Error{File: l.file, Line: line, Msg: msg}
}

func (l *loader) parse(data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			// An empty file is far more likely a half-written one than an
			// intent to deny everyone; refusing it keeps the last good policy.
			return nil, &Error{File: l.file, Line: 1, Msg: "roles file is empty"}
		}
		return nil, l.yamlErr(err, data)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, l.errf(&extra, "only one YAML document is allowed in a roles file")
	} else if !errors.Is(err, io.EOF) {
		return nil, l.yamlErr(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &Error{File: l.file, Line: 1, Msg: "roles file is empty"}
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil, l.errf(root, "roles file is empty")
	}
	top, err := l.mapping(root, "the roles file", "roles", "users", "claims_to_roles")
	if err != nil {
		return nil, err
	}
	p := &Policy{roles: map[string]*role{}, users: map[string][]string{}}

	if f, ok := top["roles"]; ok && !isNull(f.val) {
		if f.val.Kind != yaml.SequenceNode {
			return nil, l.errf(f.val, "roles must be a list of roles")
		}
		firstLine := map[string]int{}
		for _, rn := range f.val.Content {
			r, nameNode, err := l.role(deref(rn))
			if err != nil {
				return nil, err
			}
			if line, dup := firstLine[r.name]; dup {
				return nil, l.errf(nameNode, "duplicate role %q (first defined on line %d)", r.name, line)
			}
			firstLine[r.name] = nameNode.Line
			p.roles[r.name] = r
			p.names = append(p.names, r.name)
		}
	}
	slices.Sort(p.names)

	if f, ok := top["users"]; ok && !isNull(f.val) {
		if err := l.users(f.val, p); err != nil {
			return nil, err
		}
	}
	if f, ok := top["claims_to_roles"]; ok && !isNull(f.val) {
		if err := l.claimsToRoles(f.val, p); err != nil {
			return nil, err
		}
	}
	for _, ref := range l.refs {
		if _, ok := p.roles[ref.name]; !ok {
			return nil, l.errf(ref.node, "%s refers to unknown role %q", ref.where, ref.name)
		}
	}
	return p, nil
}

// deref follows YAML aliases (*anchor) to the anchored node. The depth cap
// is belt and braces: the parser already rejects self-containing anchors.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 32; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// mapping checks that n is a mapping with only known, unrepeated keys and
// returns its fields by key.
func (l *loader) mapping(n *yaml.Node, what string, known ...string) (map[string]field, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil, l.errf(n, "%s must be a mapping (key: value)", what)
	}
	m := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, l.errf(k, "%s: keys must be plain words", what)
		}
		if k.ShortTag() == "!!merge" {
			return nil, l.errf(k, "merge keys (<<) are not supported in %s; write the keys out", what)
		}
		if !slices.Contains(known, k.Value) {
			return nil, l.errf(k, "unknown key %q in %s (known keys: %s)", k.Value, what, strings.Join(known, ", "))
		}
		if _, dup := m[k.Value]; dup {
			return nil, l.errf(k, "duplicate key %q in %s", k.Value, what)
		}
		m[k.Value] = field{key: k, val: v}
	}
	return m, nil
}

// keyNode is the key node named key in mapping n, or nil.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return k
		}
	}
	return nil
}

func (l *loader) str(n *yaml.Node, what string) (string, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", l.errf(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func (l *loader) strList(n *yaml.Node, what string) ([]string, []*yaml.Node, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nil, l.errf(n, "%s must be a list, e.g. [a, b]", what)
	}
	out := make([]string, 0, len(n.Content))
	nodes := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		c = deref(c)
		s, err := l.str(c, "each entry of "+what)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
		nodes = append(nodes, c)
	}
	return out, nodes, nil
}

func (l *loader) duration(n *yaml.Node, what string) (time.Duration, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return 0, l.errf(n, "%s must be a duration like 90s, 15m or 2h", what)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		return 0, l.errf(n, "bad duration %q for %s (use e.g. 90s, 15m, 2h)", n.Value, what)
	}
	return d, nil
}

func (l *loader) boolean(n *yaml.Node, what string) (bool, error) {
	n = deref(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, l.errf(n, "%s must be true or false", what)
	}
	return b, nil
}

func (l *loader) positive(n *yaml.Node, what string) (int, error) {
	n = deref(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v < 1 || v > 1000 {
		return 0, l.errf(n, "%s must be a whole number from 1 to 1000", what)
	}
	return v, nil
}

// roleList reads a list of role names and records them for the
// unknown-role check.
func (l *loader) roleList(n *yaml.Node, where string) ([]string, error) {
	names, nodes, err := l.strList(n, where)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, l.errf(n, "%s must name at least one role", where)
	}
	for i, name := range names {
		l.refs = append(l.refs, roleRef{name: name, node: nodes[i], where: where})
	}
	return names, nil
}

func (l *loader) role(n *yaml.Node) (*role, *yaml.Node, error) {
	f, err := l.mapping(n, "a role", "name", "allow", "deny", "options")
	if err != nil {
		return nil, nil, err
	}
	nf, ok := f["name"]
	if !ok {
		return nil, nil, l.errf(n, "role has no name")
	}
	name, err := l.str(nf.val, "role name")
	if err != nil {
		return nil, nil, err
	}
	if !validRoleName(name) {
		return nil, nil, l.errf(nf.val, "role name %q may contain only letters, digits, '-', '_' and '.'", name)
	}
	r := &role{name: name}
	if a, ok := f["allow"]; ok && !isNull(a.val) {
		if r.allow, err = l.rules(a.val, "role "+name+" allow", false); err != nil {
			return nil, nil, err
		}
	}
	if d, ok := f["deny"]; ok && !isNull(d.val) {
		if r.deny, err = l.rules(d.val, "role "+name+" deny", true); err != nil {
			return nil, nil, err
		}
	}
	if o, ok := f["options"]; ok && !isNull(o.val) {
		if r.opts, err = l.options(o.val, "role "+name+" options"); err != nil {
			return nil, nil, err
		}
	}
	r.compileRuleText()
	return r, nf.val, nil
}

func (r *role) compileRuleText() {
	r.allowPrefix = "role " + r.name + " allows login "
	if r.allow.nodes != nil {
		r.allowSuffix = " on " + r.allow.nodes.text
		for _, q := range r.allow.nodes.reqs {
			r.selKeys = append(r.selKeys, q.key)
		}
	}
	if r.deny.hasLogins {
		r.denyPrefix = "role " + r.name + " denies login "
		if r.deny.nodes != nil {
			r.denySuffix = " on " + r.deny.nodes.text
		}
	} else if r.deny.nodes != nil {
		r.denyPrefix = "role " + r.name + " denies " + r.deny.nodes.text
	}
}

func (l *loader) rules(n *yaml.Node, what string, deny bool) (rules, error) {
	var r rules
	f, err := l.mapping(n, what, "logins", "node_labels", "request", "review_requests", "review_on_behalf", "sessions", "audit", "locks")
	if err != nil {
		return r, err
	}
	if v, ok := f["review_on_behalf"]; ok {
		on, err := l.boolean(v.val, what+" review_on_behalf")
		if err != nil {
			return r, err
		}
		if on {
			r.perms |= permReviewOnBehalf
		}
	}
	if v, ok := f["logins"]; ok {
		r.hasLogins = true
		logins, nodes, err := l.strList(v.val, what+" logins")
		if err != nil {
			return r, err
		}
		if len(logins) == 0 && deny {
			// An empty deny list reads like "deny nothing" but unset means
			// "deny every login"; refuse the ambiguity.
			return r, l.errf(v.val, "%s logins is empty; remove the key to deny every login", what)
		}
		for i, s := range logins {
			lp, err := l.loginPattern(nodes[i], s)
			if err != nil {
				return r, err
			}
			r.logins = append(r.logins, lp)
		}
	}
	if v, ok := f["node_labels"]; ok {
		if r.nodes, err = l.selector(v.val, what+" node_labels"); err != nil {
			return r, err
		}
	}
	if v, ok := f["request"]; ok && !isNull(v.val) {
		keys := []string{"roles", "max_duration", "default_duration", "reason_required", "for_session_required"}
		if deny {
			keys = keys[:1]
		}
		if k := keyNode(v.val, "review_reason_required"); k != nil {
			// Where people look first: say where it goes instead of only
			// "unknown key".
			return r, l.errf(k, "review_reason_required is not a key of %s request: it is an option of the role being requested (that role's options: review_reason_required: true)", what)
		}
		rf, err := l.mapping(v.val, what+" request", keys...)
		if err != nil {
			return r, err
		}
		rv, ok := rf["roles"]
		if !ok {
			return r, l.errf(v.val, "%s request needs roles", what)
		}
		names, err := l.roleList(rv.val, what+" request roles")
		if err != nil {
			return r, err
		}
		r.request = set(names)
		if d, ok := rf["max_duration"]; ok {
			if r.maxReq, err = l.duration(d.val, what+" request max_duration"); err != nil {
				return r, err
			}
			if r.maxReq == 0 {
				return r, l.errf(d.val, "%s request max_duration must be more than 0", what)
			}
		}
		if !deny && r.maxReq == 0 {
			r.maxReq = DefaultMaxRequestDuration
		}
		if d, ok := rf["default_duration"]; ok {
			if r.defReq, err = l.duration(d.val, what+" request default_duration"); err != nil {
				return r, err
			}
			if r.defReq == 0 {
				return r, l.errf(d.val, "%s request default_duration must be more than 0", what)
			}
			if r.defReq > r.maxReq {
				return r, l.errf(d.val, "%s request default_duration %s is above its max_duration %s", what, FormatDuration(r.defReq), FormatDuration(r.maxReq))
			}
		} else if !deny {
			r.defReq = min(DefaultRequestDuration, r.maxReq)
		}
		if b, ok := rf["reason_required"]; ok {
			if r.reasonReq, err = l.boolean(b.val, what+" request reason_required"); err != nil {
				return r, err
			}
		}
		if b, ok := rf["for_session_required"]; ok {
			if r.sessionReq, err = l.boolean(b.val, what+" request for_session_required"); err != nil {
				return r, err
			}
		}
	}
	if v, ok := f["review_requests"]; ok && !isNull(v.val) {
		keys := []string{"roles", "approvals", "denials"}
		if deny {
			keys = keys[:1]
		}
		rf, err := l.mapping(v.val, what+" review_requests", keys...)
		if err != nil {
			return r, err
		}
		rv, ok := rf["roles"]
		if !ok {
			return r, l.errf(v.val, "%s review_requests needs roles", what)
		}
		names, err := l.roleList(rv.val, what+" review_requests roles")
		if err != nil {
			return r, err
		}
		r.review = set(names)
		r.approvals, r.denials = 1, 1
		if a, ok := rf["approvals"]; ok {
			if deref(a.val).Kind == yaml.SequenceNode {
				if r.groups, err = l.approvalGroups(a.val, what+" review_requests approvals"); err != nil {
					return r, err
				}
				r.approvals = 0
			} else if r.approvals, err = l.positive(a.val, what+" review_requests approvals"); err != nil {
				return r, err
			}
		}
		if d, ok := rf["denials"]; ok {
			if r.denials, err = l.positive(d.val, what+" review_requests denials"); err != nil {
				return r, err
			}
		}
	}
	for _, area := range []string{AreaSessions, AreaAudit, AreaLocks} {
		v, ok := f[area]
		if !ok {
			continue
		}
		verbs, nodes, err := l.strList(v.val, what+" "+area)
		if err != nil {
			return r, err
		}
		for i, verb := range verbs {
			bit := permOf(area, verb)
			if bit == 0 {
				return r, l.errf(nodes[i], "unknown %s permission %q in %s (known: %s)", area, verb, what, verbsOf(area))
			}
			r.perms |= bit
		}
	}
	return r, nil
}

func verbsOf(area string) string {
	switch area {
	case AreaSessions:
		return "list, play, join, terminate"
	case AreaAudit:
		return "read"
	default:
		return "manage"
	}
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func (l *loader) options(n *yaml.Node, what string) (roleOptions, error) {
	var o roleOptions
	f, err := l.mapping(n, what, "max_session_ttl", "port_forwarding", "agent_forwarding", "review_reason_required")
	if err != nil {
		return o, err
	}
	o.hasOptions = len(f) > 0
	if v, ok := f["review_reason_required"]; ok {
		if o.reviewReason, err = l.boolean(v.val, what+" review_reason_required"); err != nil {
			return o, err
		}
	}
	if v, ok := f["max_session_ttl"]; ok {
		if o.maxTTL, err = l.duration(v.val, what+" max_session_ttl"); err != nil {
			return o, err
		}
	}
	tri := func(key string) (tristate, error) {
		v, ok := f[key]
		if !ok {
			return unset, nil
		}
		b, err := l.boolean(v.val, what+" "+key)
		if err != nil {
			return unset, err
		}
		if b {
			return setTrue, nil
		}
		return setFalse, nil
	}
	if o.portFwd, err = tri("port_forwarding"); err != nil {
		return o, err
	}
	if o.agentFwd, err = tri("agent_forwarding"); err != nil {
		return o, err
	}
	return o, nil
}

// selector compiles node_labels. Each key's value is one string or a list;
// "*" means "the label exists with any value", other values containing * or
// ? are globs, and the single pair '*': '*' means every node.
func (l *loader) selector(n *yaml.Node, what string) (*selector, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil, l.errf(n, "%s must be a mapping of label to value, e.g. {env: staging}", what)
	}
	if len(n.Content) == 0 {
		return nil, l.errf(n, "%s is empty; use {'*': '*'} to match every node", what)
	}
	s := &selector{}
	written := map[string][]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" {
			return nil, l.errf(k, "%s: label keys must be non-empty strings", what)
		}
		if k.ShortTag() == "!!merge" {
			return nil, l.errf(k, "merge keys (<<) are not supported in %s", what)
		}
		key := k.Value
		if _, dup := written[key]; dup {
			return nil, l.errf(k, "%s: duplicate label %q", what, key)
		}
		var vals []*yaml.Node
		switch v.Kind {
		case yaml.ScalarNode:
			vals = []*yaml.Node{v}
		case yaml.SequenceNode:
			if len(v.Content) == 0 {
				return nil, l.errf(v, "%s: label %q has an empty list of values", what, key)
			}
			vals = v.Content
		default:
			return nil, l.errf(v, "%s: label %q must have a value or a list of values", what, key)
		}
		req := labelReq{key: key}
		for _, vn := range vals {
			vn = deref(vn)
			if vn.Kind != yaml.ScalarNode || isNull(vn) || vn.Value == "" {
				return nil, l.errf(vn, "%s: label %q: values must be non-empty strings", what, key)
			}
			val := vn.Value
			written[key] = append(written[key], val)
			switch {
			case key == "*":
				if val != "*" || len(vals) != 1 {
					return nil, l.errf(vn, "%s: the label key '*' only goes with the value '*' (every node)", what)
				}
				s.any = true
			case val == "*":
				req.anyValue = true
			case hasGlobMeta(val):
				req.globs = append(req.globs, val)
			default:
				req.exact = append(req.exact, val)
			}
		}
		if key != "*" {
			s.reqs = append(s.reqs, req)
		}
	}
	s.text = s.render(written)
	return s, nil
}

// loginPattern compiles one logins entry: a literal login, or a template
// with one {{username}}, {{claims.NAME}} or {{email.local(...)}} expression.
func (l *loader) loginPattern(n *yaml.Node, s string) (loginPattern, error) {
	open := strings.Index(s, "{{")
	if open < 0 {
		if !validLogin(s) {
			return loginPattern{}, l.errf(n, "login %q is not a valid login name", s)
		}
		return loginPattern{literal: s}, nil
	}
	end := strings.Index(s[open:], "}}")
	if end < 0 {
		return loginPattern{}, l.errf(n, "login %q: unclosed {{", s)
	}
	lp := loginPattern{template: true, prefix: s[:open], suffix: s[open+end+2:]}
	if strings.Contains(lp.suffix, "{{") || strings.Contains(lp.suffix, "}}") || strings.Contains(lp.prefix, "}}") {
		return loginPattern{}, l.errf(n, "login %q: only one {{...}} expression is allowed", s)
	}
	if (lp.prefix != "" || lp.suffix != "") && !validLogin(lp.prefix+"x"+lp.suffix) {
		return loginPattern{}, l.errf(n, "login %q: the text around {{...}} is not valid in a login name", s)
	}
	expr := strings.TrimSpace(s[open+2 : open+end])
	if inner, ok := strings.CutPrefix(expr, "email.local("); ok {
		inner, ok = strings.CutSuffix(inner, ")")
		if !ok {
			return loginPattern{}, l.errf(n, "login %q: email.local( needs a closing )", s)
		}
		lp.emailLocal = true
		expr = strings.TrimSpace(inner)
	}
	switch {
	case expr == "username":
		lp.source = fromUsername
	case strings.HasPrefix(expr, "claims.") && len(expr) > len("claims.") && !strings.ContainsAny(expr, " \t{}()"):
		lp.source = fromClaim
		lp.claim = strings.TrimPrefix(expr, "claims.")
	default:
		return loginPattern{}, l.errf(n, "login %q: unknown trait {{%s}} (use {{username}}, {{claims.NAME}} or {{email.local(username)}})", s, expr)
	}
	return lp, nil
}

func (l *loader) users(n *yaml.Node, p *Policy) error {
	if n.Kind != yaml.SequenceNode {
		return l.errf(n, "users must be a list of {name: ..., roles: [...]}")
	}
	for _, un := range n.Content {
		un = deref(un)
		f, err := l.mapping(un, "a users entry", "name", "roles")
		if err != nil {
			return err
		}
		nf, ok := f["name"]
		if !ok {
			return l.errf(un, "users entry has no name")
		}
		name, err := l.str(nf.val, "user name")
		if err != nil {
			return err
		}
		if name == "" {
			return l.errf(nf.val, "user name is empty")
		}
		if _, dup := p.users[name]; dup {
			return l.errf(nf.val, "duplicate users entry for %q", name)
		}
		rf, ok := f["roles"]
		if !ok {
			return l.errf(un, "users entry %q has no roles", name)
		}
		roles, err := l.roleList(rf.val, "users entry "+name+" roles")
		if err != nil {
			return err
		}
		p.users[name] = roles
	}
	return nil
}

func (l *loader) claimsToRoles(n *yaml.Node, p *Policy) error {
	if n.Kind != yaml.SequenceNode {
		return l.errf(n, "claims_to_roles must be a list of {claim: ..., value: ..., roles: [...]}")
	}
	for _, cn := range n.Content {
		cn = deref(cn)
		f, err := l.mapping(cn, "a claims_to_roles entry", "claim", "value", "roles")
		if err != nil {
			return err
		}
		var m claimMapping
		for _, k := range []string{"claim", "value", "roles"} {
			if _, ok := f[k]; !ok {
				return l.errf(cn, "claims_to_roles entry needs %s", k)
			}
		}
		if m.claim, err = l.str(f["claim"].val, "claims_to_roles claim"); err != nil {
			return err
		}
		v := f["value"].val
		if v.Kind != yaml.ScalarNode || isNull(v) {
			return l.errf(v, "claims_to_roles value must be a string or a glob like eng-*")
		}
		m.value = v.Value
		if m.claim == "" || m.value == "" {
			return l.errf(cn, "claims_to_roles claim and value must not be empty")
		}
		if m.roles, err = l.roleList(f["roles"].val, "claims_to_roles roles"); err != nil {
			return err
		}
		p.claims = append(p.claims, m)
	}
	return nil
}

// approvalGroups reads the AND-rule form of review_requests approvals: a
// list of {roles: [...], count: N}, every entry of which must be met.
func (l *loader) approvalGroups(n *yaml.Node, what string) ([]ApprovalGroup, error) {
	n = deref(n)
	if len(n.Content) == 0 {
		return nil, l.errf(n, "%s must list at least one {roles: [...], count: N}", what)
	}
	var out []ApprovalGroup
	for _, item := range n.Content {
		f, err := l.mapping(item, what+" entry", "roles", "count")
		if err != nil {
			return nil, err
		}
		rv, ok := f["roles"]
		if !ok {
			return nil, l.errf(item, "%s entry needs roles", what)
		}
		names, err := l.roleList(rv.val, what+" roles")
		if err != nil {
			return nil, err
		}
		g := ApprovalGroup{Roles: names, Count: 1}
		if c, ok := f["count"]; ok {
			if g.Count, err = l.positive(c.val, what+" count"); err != nil {
				return nil, err
			}
		}
		slices.Sort(g.Roles)
		g.Roles = slices.Compact(g.Roles)
		for _, prev := range out {
			if slices.Equal(prev.Roles, g.Roles) {
				return nil, l.errf(item, "%s names roles %s twice; write one entry with a larger count", what, strings.Join(g.Roles, ","))
			}
		}
		out = append(out, g)
	}
	return out, nil
}
