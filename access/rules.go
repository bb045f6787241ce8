package access

import (
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// requestedRoles are the roles r asked for, whatever was granted.
func requestedRoles(r storage.Request) []string {
	if len(r.Requested) > 0 {
		return r.Requested
	}
	return r.Roles
}

// approvalsOf lists the approvals of r that include role, as the rule
// measures them; an approval naming no roles includes every one.
func approvalsOf(r storage.Request, role string) []policy.Approval {
	var out []policy.Approval
	for _, rv := range r.Reviews {
		if rv.Approve && (len(rv.Roles) == 0 || slices.Contains(rv.Roles, role)) {
			out = append(out, policy.Approval{Reviewer: rv.Reviewer, Roles: rv.As})
		}
	}
	return out
}

// grantedRoles are the requested roles of r whose own approvals meet rule.
func grantedRoles(rule policy.ApprovalRule, r storage.Request) []string {
	var out []string
	for _, role := range requestedRoles(r) {
		if rule.Measure(approvalsOf(r, role)).Met {
			out = append(out, role)
		}
	}
	return out
}

// RuleStatus explains a request's approval rule and how far it is: what
// `requests ID`, the web page and the API show.
type RuleStatus struct {
	// Rule is the rule in words: "1 approval from dba-lead and 1 approval
	// from manager; 1 denial denies".
	Rule string `json:"rule"`
	// Status is one line: "needs 1 more approval from manager", or per role
	// when approvals named different roles ("dba: rule met …; web: needs …").
	Status string `json:"status"`
	// Met is true once the approvals meet the rule for every requested role.
	Met bool `json:"met"`
	// Groups is the progress of each group of the rule, counting the
	// approvals that cover every requested role.
	Groups []policy.GroupProgress `json:"groups"`
}

// Explain measures r against the rule the policy in force sets for it.
// Requests nobody may review (their roles lost every review rule) say so.
func Explain(p *policy.Policy, r storage.Request) RuleStatus {
	roles := requestedRoles(r)
	rule, ok := p.ApprovalRule(roles)
	if !ok {
		return RuleStatus{Rule: "no review rule covers " + strings.Join(roles, ","), Status: "nobody may approve it", Groups: []policy.GroupProgress{}}
	}
	st := RuleStatus{Rule: rule.String(), Met: true}
	var lines []string
	same := true
	for i, role := range roles {
		pr := rule.Measure(approvalsOf(r, role))
		st.Met = st.Met && pr.Met
		lines = append(lines, role+": "+pr.String())
		if i > 0 && pr.String() != strings.TrimPrefix(lines[0], roles[0]+": ") {
			same = false
		}
	}
	if same {
		st.Status = strings.TrimPrefix(lines[0], roles[0]+": ")
	} else {
		st.Status = strings.Join(lines, "; ")
	}
	var all []policy.Approval
	for _, rv := range r.Reviews {
		if rv.Approve && (len(rv.Roles) == 0 || len(rv.Roles) == len(roles)) {
			all = append(all, policy.Approval{Reviewer: rv.Reviewer, Roles: rv.As})
		}
	}
	st.Groups = rule.Measure(all).Groups
	return st
}

// Explain is Explain with the policy in force; an empty status when no
// policy is loaded.
func (s *Service) Explain(r storage.Request) RuleStatus {
	p, err := s.policy()
	if err != nil {
		return RuleStatus{Groups: []policy.GroupProgress{}}
	}
	return Explain(p, r)
}
