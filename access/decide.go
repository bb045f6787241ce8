package access

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// Identity is who asks for access: a user and the identity-provider claims
// of the login behind the connection (nil when there is none, as for an
// admin-issued certificate).
type Identity struct {
	User   string
	Claims map[string][]string
}

// RuleLock is the Rule of a verdict that refuses a locked user.
const RuleLock = "lock"

// Verdict is the answer to "may this identity use this login on this node
// now", with what it rests on.
type Verdict struct {
	Allowed bool
	// Rule is what decided: the policy rule that allowed or refused, or
	// RuleLock.
	Rule string
	// Reason is the user-facing why, for the refusal line: the rule, or
	// "bob is locked". It names nothing but the asker's own request.
	Reason string
	// Notice, when set, is the whole refusal a user sees (after
	// "gatehouse: ") in place of "bob may not log in as ...": a lock is
	// about the person, not the login. It never names the lock's reason.
	Notice string
	// Hint, on a refusal, is what the user can do about it.
	Hint string
	// Roles are the roles that allow the login.
	Roles []string
	// RequestIDs are the grants the access depends on: set only when no
	// role the user holds without a request allows it, so ending every one
	// of them ends the access.
	RequestIDs []string
	// Options are the session options of the allowing roles.
	Options policy.Options
	// Standing is what the answer was computed from: roles, active grants
	// and the lock, read at one moment under one policy.
	Standing Effective
}

// Authorize is the one answer to "may this identity use this login on this
// node now": the user's lock, their roles (users:, claims_to_roles over
// id.Claims, active grants), the policy's decision, the grants the access
// depends on, and what to do about a refusal. The bastion asks it for
// every new jump and every re-check of a live session; `gatehouse policy
// check` asks it too.
//
// It reads the store every time: nothing is cached past a change. An error
// means the question could not be answered (the store is unreachable, no
// policy is loaded); callers must treat it as a refusal for anything new.
func (s *Service) Authorize(ctx context.Context, id Identity, login string, node policy.Node) (Verdict, error) {
	e, err := s.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return Verdict{}, fmt.Errorf("authorize %s: %w", id.User, err)
	}
	return e.Decide(login, node), nil
}

// Admit is Authorize's answer before any login or node is named: may this
// identity use the bastion's own commands now. Only a lock refuses here,
// with the verdict Authorize would give; a standing that cannot be read is
// an error, which callers treat as no.
func (s *Service) Admit(ctx context.Context, id Identity) (Verdict, error) {
	e, err := s.Effective(ctx, id.User, id.Claims)
	if err != nil {
		return Verdict{}, fmt.Errorf("admit %s: %w", id.User, err)
	}
	if e.Lock != nil {
		return e.lockVerdict(), nil
	}
	return Verdict{Standing: e, Allowed: true}, nil
}

// lockVerdict is the refusal of a locked user, wherever they come.
func (e Effective) lockVerdict() Verdict {
	return Verdict{Standing: e, Rule: RuleLock, Reason: e.User() + " is locked", Notice: e.LockNotice()}
}

// Decide is Authorize's decision from a standing already read: pure, no
// I/O. A standing without a policy (Admin) is refused.
func (e Effective) Decide(login string, node policy.Node) Verdict {
	if e.Lock != nil {
		return e.lockVerdict()
	}
	v := Verdict{Standing: e}
	if e.pol == nil {
		v.Rule = "no roles policy loaded"
		v.Reason = v.Rule
		return v
	}
	d := e.pol.Decide(e.Subject, login, node)
	v.Allowed, v.Rule, v.Reason, v.Roles, v.Options = d.Allowed, d.Rule, d.Rule, d.Roles, d.Options
	if !d.Allowed {
		v.Hint = e.hint(login, node)
		return v
	}
	v.RequestIDs = e.grantsBehind(d)
	return v
}

// hint is what a user refused login on node can do: request one of the
// roles they may request, and, when a grant of that login alone through one
// of them would let them in (the whole decision says so, a deny of a role
// they hold included), request just that.
func (e Effective) hint(login string, node policy.Node) string {
	roles, _, _ := e.pol.Requestable(e.Subject)
	if len(roles) == 0 {
		return ""
	}
	h := fmt.Sprintf("request one with: ssh bastion request %s --reason ...", strings.Join(roles, ","))
	for _, role := range e.pol.ResourceRoles(e.Subject, login, node) {
		with := e.Subject
		with.Resources = append(slices.Clone(e.Subject.Resources), policy.Resource{Role: role, Login: login, Node: node.Name})
		if e.pol.Decide(with, login, node).Allowed {
			return h + fmt.Sprintf(", or this login only with: ssh bastion request --node %s --login %s --reason ...",
				termsafe.String(node.Name), termsafe.String(login))
		}
	}
	return h
}

// grantsBehind lists, sorted, the grants that allow d: those providing the
// allowing roles and the resource grants (policy.ResourceAllows) that
// allow it, when no role held without a request is among the allowing
// roles; nil otherwise.
func (e Effective) grantsBehind(d policy.Decision) []string {
	for _, r := range d.Roles {
		if slices.Contains(e.Base, r) {
			return nil
		}
	}
	var ids []string
	for _, r := range d.Roles {
		for _, id := range e.GrantsFor(r) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range d.Grants {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Logins lists the logins e may use on node now, sorted: every one Decide
// allows among those the policy's allow rules name for the node. It is
// what node lists show ("ssh bastion nodes", the web home page), so they
// never offer a login the bastion would refuse.
func (e Effective) Logins(node policy.Node) []string {
	if e.Lock != nil || e.pol == nil {
		return nil
	}
	var out []string
	for _, l := range e.pol.Logins(e.Subject, node) {
		if e.Decide(l, node).Allowed {
			out = append(out, l)
		}
	}
	return out
}

// LockNotice is the one line a locked user sees on every channel (ssh,
// bastion commands, web), without the "gatehouse: " prefix; "" when e is
// not locked. The lock's reason stays with the security team: it may be
// about an investigation the user should not learn of.
func (e Effective) LockNotice() string {
	if e.Lock == nil {
		return ""
	}
	msg := termsafe.String(e.User()) + " is locked"
	if e.Lock.Expires != nil {
		msg += " until " + e.Lock.Expires.Local().Format("2006-01-02 15:04 MST")
	}
	return msg + "; contact your security team"
}

// Assume is e holding exactly roles, whatever users:, claims and grants
// say: a hypothetical standing for `gatehouse policy check --roles`. A lock
// still applies.
func (e Effective) Assume(roles []string) Effective {
	e.Base, e.Grants = slices.Clone(roles), nil
	e.Subject.Roles = nil
	if e.Lock == nil {
		e.Subject.Roles = slices.Clone(roles)
	}
	return e
}
