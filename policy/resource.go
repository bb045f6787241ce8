package policy

import "slices"

// Resource is a resource grant: one login on one node, through the allow
// rules of Role, instead of the whole role. ID is the caller's handle for
// the grant (an access request id) and is passed back in Decision.Grants.
type Resource struct {
	ID    string
	Role  string
	Login string
	Node  string
}

// ResourceAllows reports whether grant g lets s log in as login on n: the
// grant names exactly this login and this node, and g's role, as the policy
// defines it now, allows that login there and does not deny it. It is the
// one place that answers "does this resource grant cover this login";
// Decide calls it for every resource grant of the subject.
func (p *Policy) ResourceAllows(s Subject, g Resource, login string, n Node) bool {
	if g.Node != n.Name || g.Login != login {
		return false
	}
	r := p.roles[g.Role]
	return r != nil && r.allows(&s, login, &n) && !r.denies(&s, login, &n)
}

// ResourceRoles lists, sorted, the roles s may request whose allow rules
// give login on n (and whose own deny rules do not take it away): the roles
// a resource request for login on n can be made through.
func (p *Policy) ResourceRoles(s Subject, login string, n Node) []string {
	requestable, _, _ := p.Requestable(s)
	var out []string
	for _, name := range requestable {
		if p.ResourceAllows(s, Resource{Role: name, Login: login, Node: n.Name}, login, n) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
