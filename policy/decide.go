package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// BaseRoles returns the roles user holds without any access request: the
// static users: grants plus every claims_to_roles mapping that one of the
// claim's values matches. Sorted, without duplicates.
func (p *Policy) BaseRoles(user string, claims map[string][]string) []string {
	out := slices.Clone(p.users[user])
	for _, m := range p.claims {
		for _, v := range claims[m.claim] {
			if v == m.value || hasGlobMeta(m.value) && glob(m.value, v) {
				out = append(out, m.roles...)
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subjectRoles calls fn for each distinct defined role of s. Roles the
// policy no longer defines (say, a grant for a role deleted since) are
// skipped: they grant nothing and deny nothing.
func (p *Policy) subjectRoles(s *Subject, fn func(r *role)) {
	for i, name := range s.Roles {
		if slices.Contains(s.Roles[:i], name) {
			continue
		}
		if r := p.roles[name]; r != nil {
			fn(r)
		}
	}
}

// denies reports whether r's deny block forbids login on n for s.
func (r *role) denies(s *Subject, login string, n *Node) bool {
	d := &r.deny
	if !d.sshDeny() {
		return false
	}
	if d.hasLogins && !matchLogins(d.logins, s, login) {
		return false
	}
	return d.nodes == nil || d.nodes.matches(n.Labels)
}

// allows reports whether r's allow block grants login on n for s. An allow
// block without node_labels grants nothing: "every node" must be written as
// {'*': '*'} so it is never the result of a forgotten key.
func (r *role) allows(s *Subject, login string, n *Node) bool {
	a := &r.allow
	return a.nodes != nil && matchLogins(a.logins, s, login) && a.nodes.matches(n.Labels)
}

// Decide answers whether s may log in as login on n. Every deny rule of
// every role of s is checked before any allow rule, so deny beats allow no
// matter the order of roles. When several roles decide, the
// alphabetically first one is named, so the Rule is stable.
func (p *Policy) Decide(s Subject, login string, n Node) Decision {
	if !validLogin(login) {
		return Decision{Rule: fmt.Sprintf("login %q is not a valid login name", login)}
	}
	var denyBy *role
	p.subjectRoles(&s, func(r *role) {
		if r.denies(&s, login, &n) && (denyBy == nil || r.name < denyBy.name) {
			denyBy = r
		}
	})
	if denyBy != nil {
		rule := denyBy.denyPrefix
		if denyBy.deny.hasLogins {
			rule = denyBy.denyPrefix + login + denyBy.denySuffix
		}
		return Decision{Rule: rule}
	}

	d := Decision{Options: Options{PortForwarding: true, AgentForwarding: true}}
	var first *role
	p.subjectRoles(&s, func(r *role) {
		if !r.allows(&s, login, &n) {
			return
		}
		if d.Roles == nil {
			d.Roles = make([]string, 0, len(s.Roles)) // one allocation however many roles allow
		}
		d.Roles = append(d.Roles, r.name)
		if first == nil || r.name < first.name {
			first = r
		}
		d.merge(r)
	})
	for _, g := range s.Resources {
		if !p.ResourceAllows(s, g, login, n) {
			continue
		}
		r := p.roles[g.Role]
		d.Grants = append(d.Grants, g.ID)
		if !slices.Contains(d.Roles, r.name) {
			d.Roles = append(d.Roles, r.name)
		}
		if first == nil || r.name < first.name {
			first = r
		}
		d.merge(r)
	}
	if first == nil {
		return Decision{Rule: "no role allows login " + login + " on " + p.renderNode(&s, &n)}
	}
	slices.Sort(d.Roles)
	d.Allowed = true
	d.Rule = first.allowPrefix + login + first.allowSuffix
	if len(d.Grants) > 0 && !slices.ContainsFunc(s.Roles, func(name string) bool { return name == first.name }) {
		d.Rule = "a resource grant of role " + first.name + " allows login " + login + " on " + n.Name
	}
	return d
}

// merge folds r's options into d's, the most restrictive winning.
func (d *Decision) merge(r *role) {
	o := &r.opts
	if o.maxTTL > 0 && (d.Options.MaxSessionTTL == 0 || o.maxTTL < d.Options.MaxSessionTTL) {
		d.Options.MaxSessionTTL = o.maxTTL
	}
	if o.portFwd == setFalse {
		d.Options.PortForwarding = false
	}
	if o.agentFwd == setFalse {
		d.Options.AgentForwarding = false
	}
}

// renderNode shows the node's labels for a refusal. Only labels that the
// subject's own roles select on are shown (env: prod tells bob why his
// env: staging role does not apply; team: data adds nothing), falling back
// to every label when none of them is relevant. Node labels are sorted so the
// message is stable.
func (p *Policy) renderNode(s *Subject, n *Node) string {
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	relevant := keys[:0:0]
	for _, k := range keys {
		hit := false
		p.subjectRoles(s, func(r *role) { hit = hit || slices.Contains(r.selKeys, k) })
		if hit {
			relevant = append(relevant, k)
		}
	}
	if len(relevant) > 0 {
		keys = relevant
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(n.Labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// Logins returns the logins s may use on n now, sorted; empty if none. It is
// what "ssh bob@bastion" lists per node and what a client can offer.
func (p *Policy) Logins(s Subject, n Node) []string {
	var cands []string
	p.subjectRoles(&s, func(r *role) {
		if r.allow.nodes != nil && r.allow.nodes.matches(n.Labels) {
			for i := range r.allow.logins {
				cands = r.allow.logins[i].expand(&s, cands)
			}
		}
	})
	for _, g := range s.Resources {
		if p.ResourceAllows(s, g, g.Login, n) {
			cands = append(cands, g.Login)
		}
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	out := cands[:0]
	for _, login := range cands {
		denied := false
		p.subjectRoles(&s, func(r *role) { denied = denied || r.denies(&s, login, &n) })
		if !denied {
			out = append(out, login)
		}
	}
	if len(out) == 0 {
		return []string{}
	}
	return out
}

// Requestable summarises what s may ask for: the union of the roles its
// roles allow requesting (minus any a role of s denies requesting), the
// largest max_duration among the roles that allow requesting, and whether
// any of them requires a reason. CheckRequest applies the per-role limits.
func (p *Policy) Requestable(s Subject) (roles []string, maxDuration time.Duration, reasonRequired bool) {
	roles = []string{}
	p.subjectRoles(&s, func(r *role) {
		if len(r.allow.request) == 0 {
			return
		}
		granted := false
		for name := range r.allow.request {
			if !p.requestDenied(&s, name) {
				roles = append(roles, name)
				granted = true
			}
		}
		if !granted {
			return
		}
		maxDuration = max(maxDuration, r.allow.maxReq)
		reasonRequired = reasonRequired || r.allow.reasonReq
	})
	slices.Sort(roles)
	return slices.Compact(roles), maxDuration, reasonRequired
}

// ReviewReasonRequired reports whether a review of a request for roles must
// give a reason: one of them sets options.review_reason_required. It depends
// on the request alone (not on who asked or who reviews), so every channel
// and every plugin asking about the same request gets the same answer. The
// first such role is returned to name in the refusal.
func (p *Policy) ReviewReasonRequired(roles []string) (string, bool) {
	for _, name := range roles {
		if r, ok := p.roles[name]; ok && r.opts.reviewReason {
			return name, true
		}
	}
	return "", false
}

func (p *Policy) requestDenied(s *Subject, name string) bool {
	denied := false
	p.subjectRoles(s, func(r *role) { denied = denied || r.deny.request[name] })
	return denied
}

// requestLimit returns the limits for requesting one role: the largest
// max_duration among s's roles that allow requesting it, and whether any of
// them requires a reason (the safer reading when roles disagree).
func (p *Policy) requestLimit(s *Subject, name string) (ok bool, maxD time.Duration, reason bool) {
	if p.requestDenied(s, name) {
		return false, 0, false
	}
	p.subjectRoles(s, func(r *role) {
		if r.allow.request[name] {
			ok = true
			maxD = max(maxD, r.allow.maxReq)
			reason = reason || r.allow.reasonReq
		}
	})
	return ok, maxD, reason
}

// ErrRequestRefused is wrapped by every CheckRequest error so callers can
// tell a policy refusal from other failures.
var ErrRequestRefused = errors.New("request refused by policy")

// CheckRequest checks an access request s wants to make for roles, lasting
// d (0 means "the longest allowed", which the caller then applies via
// MaxRequestDuration), with reason. Errors are one line meant for the
// requester and name only roles they asked for.
func (p *Policy) CheckRequest(s Subject, roles []string, d time.Duration, reason string) error {
	if len(roles) == 0 {
		return fmt.Errorf("%w: no roles requested", ErrRequestRefused)
	}
	if d < 0 {
		return fmt.Errorf("%w: duration %s is negative", ErrRequestRefused, FormatDuration(d))
	}
	limit, needReason := time.Duration(0), false
	for i, name := range roles {
		ok, maxD, rr := p.requestLimit(&s, name)
		if !ok {
			return fmt.Errorf("%w: role %s is not requestable by you", ErrRequestRefused, name)
		}
		if i == 0 || maxD < limit {
			limit = maxD
		}
		needReason = needReason || rr
	}
	if d > limit {
		return fmt.Errorf("%w: duration %s exceeds the maximum %s", ErrRequestRefused, FormatDuration(d), FormatDuration(limit))
	}
	if needReason && strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: a reason is required", ErrRequestRefused)
	}
	return nil
}

// MaxRequestDuration is the longest grant s may request for all of roles at
// once (the smallest of the per-role maxima); ok is false if any role is not
// requestable by s.
func (p *Policy) MaxRequestDuration(s Subject, roles []string) (d time.Duration, ok bool) {
	for i, name := range roles {
		rok, maxD, _ := p.requestLimit(&s, name)
		if !rok {
			return 0, false
		}
		if i == 0 || maxD < d {
			d = maxD
		}
	}
	return d, len(roles) > 0
}

// DefaultRequestDuration is the grant s gets when asking for roles without
// naming a duration: the smallest default_duration among s's roles that
// allow requesting any of roles (the cautious choice when they disagree),
// never above MaxRequestDuration. ok is false if any role is not
// requestable by s.
func (p *Policy) DefaultRequestDuration(s Subject, roles []string) (d time.Duration, ok bool) {
	maxD, ok := p.MaxRequestDuration(s, roles)
	if !ok {
		return 0, false
	}
	d = maxD
	p.subjectRoles(&s, func(r *role) {
		for _, name := range roles {
			if r.allow.request[name] {
				d = min(d, r.allow.defReq)
			}
		}
	})
	return d, true
}

// ReviewThreshold says whether s may review a request for requested (ok
// only if s's roles may review every one of them and none denies it), and
// how many approvals and denials decide such a request: the largest
// thresholds among s's review rules that cover any requested role.
func (p *Policy) ReviewThreshold(s Subject, requested []string) (approvals, denials int, ok bool) {
	if len(requested) == 0 {
		return 0, 0, false
	}
	for _, name := range requested {
		covered, denied := false, false
		p.subjectRoles(&s, func(r *role) {
			denied = denied || r.deny.review[name]
			if r.allow.review[name] {
				covered = true
				approvals = max(approvals, r.allow.approvals)
				denials = max(denials, r.allow.denials)
			}
		})
		if !covered || denied {
			return 0, 0, false
		}
	}
	return max(approvals, 1), max(denials, 1), true
}

// Reviewable lists the roles s may review requests for, sorted.
func (p *Policy) Reviewable(s Subject) []string {
	out := []string{}
	p.subjectRoles(&s, func(r *role) {
		for name := range r.allow.review {
			denied := false
			p.subjectRoles(&s, func(d *role) { denied = denied || d.deny.review[name] })
			if !denied {
				out = append(out, name)
			}
		}
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// Can reports whether s holds a permission: area "sessions" with verb list,
// play, join or terminate; "audit" with read; "locks" with manage. Unknown
// pairs are never allowed.
func (p *Policy) Can(s Subject, area, verb string) bool {
	bit := permOf(area, verb)
	if bit == 0 {
		return false
	}
	allowed, denied := false, false
	p.subjectRoles(&s, func(r *role) {
		allowed = allowed || r.allow.perms&bit != 0
		denied = denied || r.deny.perms&bit != 0
	})
	return allowed && !denied
}

// MayReviewOnBehalf reports whether s may submit reviews attributed to a
// named person (allow.review_on_behalf: true, and no role denies it). It
// only opens the door: the named person's own rights decide the review.
func (p *Policy) MayReviewOnBehalf(s Subject) bool {
	allowed, denied := false, false
	p.subjectRoles(&s, func(r *role) {
		allowed = allowed || r.allow.perms&permReviewOnBehalf != 0
		denied = denied || r.deny.perms&permReviewOnBehalf != 0
	})
	return allowed && !denied
}

// FormatDuration prints durations the way people write them in roles.yaml:
// 4h rather than 4h0m0s, 1h30m rather than 1h30m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// StaticReviewers lists, sorted, the users named in users: whose static
// roles may review a request by requester for requested (see
// ReviewThreshold). Reviewers who hold their review rights only through
// claims_to_roles are not known until they log in, so they are not listed:
// notifications reach them through a shared address instead.
func (p *Policy) StaticReviewers(requester string, requested []string) []string {
	var out []string
	for name := range p.users {
		if name == requester {
			continue
		}
		if _, _, ok := p.ReviewThreshold(Subject{User: name, Roles: p.BaseRoles(name, nil)}, requested); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// RequestLimit is what the policy allows s when requesting role alone: ok
// if some role of s allows requesting it and none denies it, the longest
// grant it may ask for, and whether a reason is required.
func (p *Policy) RequestLimit(s Subject, role string) (maxDuration time.Duration, reasonRequired, ok bool) {
	ok, maxDuration, reasonRequired = p.requestLimit(&s, role)
	return maxDuration, reasonRequired, ok
}
