package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Resource is a resource grant: one login, through the allow rules of Role,
// instead of the whole role, on one node (Node) or on every node whose
// labels hold all the pairs of Labels. ID is the caller's handle for the
// grant (an access request id) and is passed back in Decision.Grants.
type Resource struct {
	ID    string
	Role  string
	Login string
	Node  string
	// Labels select the nodes when Node is empty. The selector is matched
	// against the node at every decision, so a node labelled so later is
	// covered too, as long as Role allows the login there.
	Labels map[string]string
}

// Covers reports whether g is for node n: n is the node g names, or n's
// labels hold every pair of g's selector. A grant naming neither covers
// nothing, so a lost field can never widen a grant to every node.
func (g Resource) Covers(n Node) bool {
	if g.Node == "" && len(g.Labels) == 0 {
		return false
	}
	return (g.Node == "" || g.Node == n.Name) && MatchLabels(g.Labels, n.Labels)
}

// MatchLabels reports whether labels hold every pair of sel, values
// compared exactly (a request's selector has no globs). An empty sel holds
// for every node; Covers never asks with one alone.
func MatchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ResourceAllows reports whether grant g lets s log in as login on n: the
// grant names exactly this login and covers this node, and g's role, as the
// policy defines it now, allows that login there and does not deny it. It
// is the one place that answers "does this resource grant cover this
// login"; Decide calls it for every resource grant of the subject.
func (p *Policy) ResourceAllows(s Subject, g Resource, login string, n Node) bool {
	if g.Login != login || !g.Covers(n) {
		return false
	}
	r := p.roles[g.Role]
	return r != nil && r.allows(&s, login, &n) && !r.denies(&s, login, &n)
}

// ResourceRoles lists, sorted, the roles s may request whose allow rules
// give login on n (and whose own deny rules do not take it away): the roles
// a resource request for login on n can be made through.
func (p *Policy) ResourceRoles(s Subject, login string, n Node) []string {
	return p.resourceRoles(s, Resource{Login: login, Node: n.Name}, []Node{n})
}

// SelectorRoles is ResourceRoles for a label selector: the roles s may
// request that give login on every node of nodes whose labels hold sel,
// and the names of those nodes, sorted. One role must do for all of them,
// so the grant means the same on every node it covers. When sel matches
// none of nodes there is no role: a grant must be checked against the
// nodes it would open today, and there are none.
func (p *Policy) SelectorRoles(s Subject, login string, sel map[string]string, nodes []Node) (roles, matched []string) {
	var hits []Node
	for _, n := range nodes {
		if len(sel) > 0 && MatchLabels(sel, n.Labels) {
			hits = append(hits, n)
			matched = append(matched, n.Name)
		}
	}
	slices.Sort(matched)
	return p.resourceRoles(s, Resource{Login: login, Labels: sel}, hits), matched
}

// resourceRoles lists the roles s may request through which g would allow
// its login on every one of nodes; none for no nodes.
func (p *Policy) resourceRoles(s Subject, g Resource, nodes []Node) []string {
	if len(nodes) == 0 {
		return nil
	}
	requestable, _, _ := p.Requestable(s)
	var out []string
	for _, name := range requestable {
		g.Role = name
		if !slices.ContainsFunc(nodes, func(n Node) bool { return !p.ResourceAllows(s, g, g.Login, n) }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// maxSelectorPairs bounds a request's selector: enough for any real
// inventory, small enough that a request stays one readable line.
const maxSelectorPairs = 16

// ParseLabels reads a selector written KEY=VALUE[,KEY=VALUE], the syntax of
// `request --labels` and the web form (storage.FormatLabels writes it back),
// and checks it with CheckLabels.
func ParseLabels(text string) (map[string]string, error) {
	sel := map[string]string{}
	for _, pair := range strings.Split(text, ",") {
		pair = strings.TrimSpace(pair)
		k, v, ok := strings.Cut(pair, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("labels: %q is not KEY=VALUE (write e.g. env=staging,team=db)", pair)
		}
		if _, dup := sel[k]; dup {
			return nil, fmt.Errorf("labels: key %q appears twice", k)
		}
		sel[k] = v
	}
	if err := CheckLabels(sel); err != nil {
		return nil, err
	}
	return sel, nil
}

// CheckLabels accepts a selector of 1 to 16 pairs whose keys and values are
// made of letters, digits and - _ . / : only. Anything else (a comma, an
// equals sign, a glob, a control character) could not be written back as
// KEY=VALUE or would read as a pattern, and a selector arrives from users
// through the API as well as from the parser.
func CheckLabels(sel map[string]string) error {
	if len(sel) == 0 {
		return fmt.Errorf("labels: name at least one KEY=VALUE pair")
	}
	if len(sel) > maxSelectorPairs {
		return fmt.Errorf("labels: at most %d pairs", maxSelectorPairs)
	}
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		if !validLabelText(k) {
			return fmt.Errorf("labels: key %q may hold only letters, digits and - _ . / :", k)
		}
		if !validLabelText(sel[k]) {
			return fmt.Errorf("labels: value %q of %s may hold only letters, digits and - _ . / :", sel[k], k)
		}
	}
	return nil
}

// validLabelText allows, besides role names' characters, the / and : of
// label keys like k8s.io/role and values like db:primary.
func validLabelText(s string) bool { return plainName(s, "-_./:") }
