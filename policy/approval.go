package policy

import (
	"fmt"
	"slices"
	"strings"
)

// ApprovalGroup is one entry of an approval rule: Count approvals from
// distinct reviewers who hold any of Roles. Empty Roles means any reviewer
// of the request (the plain "approvals: N" form).
type ApprovalGroup struct {
	Roles []string `json:"roles,omitempty"`
	Count int      `json:"count"`
}

// ApprovalRule is what decides a request: every group must be met (an
// AND-rule), and Denials denials deny it.
type ApprovalRule struct {
	Groups  []ApprovalGroup `json:"groups"`
	Denials int             `json:"denials"`
}

// Approval is one approving review as the rule sees it: who, and which of
// the roles the rule names they held when they approved.
type Approval struct {
	Reviewer string
	Roles    []string
}

// GroupProgress is how far one group of a rule is.
type GroupProgress struct {
	ApprovalGroup
	By []string `json:"by"` // reviewers counted in this group, in the order they approved
}

// Missing is how many more approvals the group needs.
func (g GroupProgress) Missing() int { return max(g.Count-len(g.By), 0) }

// Progress is a rule measured against the approvals so far.
type Progress struct {
	Met    bool            `json:"met"`
	Groups []GroupProgress `json:"groups"`
}

// ApprovalRule returns the rule that decides a request for requested: the
// review_requests rules of every role in the policy that cover a requested
// role, all of them in force at once (the strictest reading when rules
// overlap). Plain counts merge into one "any reviewer" group with the
// largest count; groups naming the same roles keep the largest count. ok is
// false when some requested role has no review rule: nobody could approve it.
func (p *Policy) ApprovalRule(requested []string) (rule ApprovalRule, ok bool) {
	if len(requested) == 0 {
		return rule, false
	}
	covered := map[string]bool{}
	add := func(g ApprovalGroup) {
		for i := range rule.Groups {
			if slices.Equal(rule.Groups[i].Roles, g.Roles) {
				rule.Groups[i].Count = max(rule.Groups[i].Count, g.Count)
				return
			}
		}
		rule.Groups = append(rule.Groups, ApprovalGroup{Roles: slices.Clone(g.Roles), Count: g.Count})
	}
	for _, name := range p.names {
		a := &p.roles[name].allow
		hit := false
		for _, req := range requested {
			if a.review[req] {
				covered[req], hit = true, true
			}
		}
		if !hit {
			continue
		}
		rule.Denials = max(rule.Denials, a.denials)
		if len(a.groups) == 0 {
			add(ApprovalGroup{Count: max(a.approvals, 1)})
		}
		for _, g := range a.groups {
			add(g)
		}
	}
	for _, req := range requested {
		if !covered[req] {
			return ApprovalRule{}, false
		}
	}
	// Role groups first, in the order written; the catch-all last, so a
	// reviewer is matched to the group only they can fill.
	slices.SortStableFunc(rule.Groups, func(a, b ApprovalGroup) int {
		return boolInt(len(a.Roles) == 0) - boolInt(len(b.Roles) == 0)
	})
	rule.Denials = max(rule.Denials, 1)
	return rule, true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Relevant returns the roles among held that the rule's groups name,
// sorted: what a review must record so the rule can be measured later.
func (r ApprovalRule) Relevant(held []string) []string {
	var out []string
	for _, g := range r.Groups {
		for _, role := range g.Roles {
			if slices.Contains(held, role) {
				out = append(out, role)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CanCount reports whether an approval by someone holding held could count
// in any group of the rule.
func (r ApprovalRule) CanCount(held []string) bool {
	for _, g := range r.Groups {
		if fits(g, held) {
			return true
		}
	}
	return false
}

func fits(g ApprovalGroup, held []string) bool {
	if len(g.Roles) == 0 {
		return true
	}
	for _, role := range g.Roles {
		if slices.Contains(held, role) {
			return true
		}
	}
	return false
}

// Measure counts approvals against the rule. Each reviewer counts once, in
// one group: the assignment is a maximum matching of reviewers to the
// groups' open places, so a reviewer who belongs to several groups lands in
// whichever group lets the most places be filled, whatever order the
// approvals came in.
func (r ApprovalRule) Measure(approvals []Approval) Progress {
	// slots[i] is the group of place i; owner[i] the approval in it or -1.
	var slots []int
	for gi, g := range r.Groups {
		for range g.Count {
			slots = append(slots, gi)
		}
	}
	owner := make([]int, len(slots))
	for i := range owner {
		owner[i] = -1
	}
	var try func(ai int, seen []bool) bool
	try = func(ai int, seen []bool) bool {
		for si, gi := range slots {
			if seen[si] || !fits(r.Groups[gi], approvals[ai].Roles) {
				continue
			}
			seen[si] = true
			if owner[si] < 0 || try(owner[si], seen) {
				owner[si] = ai
				return true
			}
		}
		return false
	}
	for ai := range approvals {
		if slices.ContainsFunc(approvals[:ai], func(a Approval) bool { return a.Reviewer == approvals[ai].Reviewer }) {
			continue // a reviewer counts once
		}
		try(ai, make([]bool, len(slots)))
	}
	pr := Progress{Met: true, Groups: make([]GroupProgress, len(r.Groups))}
	for gi, g := range r.Groups {
		pr.Groups[gi] = GroupProgress{ApprovalGroup: g, By: []string{}}
	}
	for ai := range approvals {
		for si, gi := range slots {
			if owner[si] == ai {
				pr.Groups[gi].By = append(pr.Groups[gi].By, approvals[ai].Reviewer)
			}
		}
	}
	for _, g := range pr.Groups {
		if g.Missing() > 0 {
			pr.Met = false
		}
	}
	return pr
}

// String explains the progress in one line: "approved: 1 from dba-lead
// (alice), 1 from manager (carol)" or "needs 1 more approval from manager".
func (pr Progress) String() string {
	if pr.Met {
		var parts []string
		for _, g := range pr.Groups {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(g.By), groupName(g.ApprovalGroup), strings.Join(g.By, ", ")))
		}
		return "rule met: " + strings.Join(parts, ", ")
	}
	var parts []string
	for _, g := range pr.Groups {
		if n := g.Missing(); n > 0 {
			parts = append(parts, fmt.Sprintf("%d more %s %s", n, plural(n, "approval", "approvals"), groupName(g.ApprovalGroup)))
		}
	}
	return "needs " + strings.Join(parts, " and ")
}

// String describes the rule: "1 approval from dba-lead and 1 approval from
// manager; 1 denial denies".
func (r ApprovalRule) String() string {
	return r.Approvals() + fmt.Sprintf("; %d %s", r.Denials, plural(r.Denials, "denial denies", "denials deny"))
}

// Approvals describes what approves: "1 approval from dba-lead and 1
// approval from manager".
func (r ApprovalRule) Approvals() string {
	var parts []string
	for _, g := range r.Groups {
		parts = append(parts, fmt.Sprintf("%d %s %s", g.Count, plural(g.Count, "approval", "approvals"), groupName(g)))
	}
	return strings.Join(parts, " and ")
}

func groupName(g ApprovalGroup) string {
	if len(g.Roles) == 0 {
		return "from any reviewer"
	}
	return "from " + strings.Join(g.Roles, " or ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ForSessionRequired reports whether any role of s that lets s request one
// of roles says for_session_required: the grant must then be asked for
// with --for-session (the stricter reading when roles disagree).
func (p *Policy) ForSessionRequired(s Subject, roles []string) bool {
	req := false
	p.subjectRoles(&s, func(r *role) {
		for _, name := range roles {
			req = req || r.allow.request[name] && r.allow.sessionReq
		}
	})
	return req
}

// RequestHelp explains, one line per role s may request, what a request
// for it needs: "dba: 1 approval from dba-lead and 1 approval from manager;
// 1 denial denies; at most 4h; for one session only; allows this login".
// The last part appears when the role would allow login on n, so an
// operator's `policy check` shows how a refused user can get in.
func (p *Policy) RequestHelp(s Subject, login string, n Node) []string {
	roles, _, _ := p.Requestable(s)
	var out []string
	for _, name := range roles {
		line := name + ": "
		if rule, ok := p.ApprovalRule([]string{name}); ok {
			line += rule.String()
		} else {
			line += "no role reviews it, so it cannot be approved"
		}
		if d, ok := p.MaxRequestDuration(s, []string{name}); ok {
			line += "; at most " + FormatDuration(d)
		}
		if p.ForSessionRequired(s, []string{name}) {
			line += "; for one session only (--for-session)"
		}
		if p.ResourceAllows(s, Resource{Role: name, Login: login, Node: n.Name}, login, n) {
			line += "; allows this login (whole role, or request --node " + n.Name + " --login " + login + ")"
		}
		out = append(out, line)
	}
	return out
}
