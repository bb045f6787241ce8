package policy

import (
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the loader: it must return a policy
// or an *Error, never panic, and a policy it accepts must answer every
// question without panicking.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/roles.yaml", "../configs/roles.yaml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "roles: []", "roles:\n  - name: a\n    allow: {logins: ['{{username}}'], node_labels: {'*': '*'}}\n",
		"roles:\n  - name: a\n    allow: {logins: ['x-{{email.local(claims.mail)}}-y'], node_labels: {env: [a, 'b*', '*']}}\n",
		"a: &a [*a]", "roles: &r\n  - *r\n", "users: [{name: u, roles: [x]}]", "roles:\n\t- x",
		"claims_to_roles: [{claim: g, value: 'e*', roles: [a]}]\nroles: [{name: a, deny: {node_labels: {k: v}}}]",
		"roles:\n  - name: a\n    allow: {request: {roles: [a], for_session_required: true}, review_requests: {roles: [a], approvals: [{roles: [a], count: 2}, {roles: [a, b]}]}}\n  - {name: b}\n",
	} {
		f.Add([]byte(s))
	}
	node := Node{Name: "n", Labels: map[string]string{"env": "prod", "team": "data", "k": "v"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "fuzz.yaml" {
				t.Fatalf("error %v (%T) is not a *policy.Error for fuzz.yaml", err, err)
			}
			return
		}
		claims := map[string][]string{"groups": {"eng", "ops"}, "mail": {"a@b"}}
		s := Subject{User: "u@x", Claims: claims, Roles: append(p.BaseRoles("u", claims), p.RoleNames()...)}
		for _, login := range []string{"root", "u@x", "ubuntu"} {
			p.Decide(s, login, node)
		}
		p.Logins(s, node)
		roles, _, _ := p.Requestable(s)
		_ = p.CheckRequest(s, roles, time.Hour, "why")
		p.ReviewThreshold(s, p.RoleNames())
		p.Reviewable(s)
		p.Can(s, AreaSessions, VerbJoin)
		if rule, ok := p.ApprovalRule(p.RoleNames()); ok {
			pr := rule.Measure([]Approval{{Reviewer: "a", Roles: p.RoleNames()}, {Reviewer: "b"}, {Reviewer: "a"}})
			_ = pr.String() + rule.String()
		}
		s.Resources = []Resource{{ID: "g", Role: "a", Login: "root", Node: "n"}}
		p.Decide(s, "root", node)
		p.RequestHelp(s, "root", node)
	})
}
