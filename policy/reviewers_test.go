package policy

import (
	"slices"
	"testing"
)

func TestStaticReviewers(t *testing.T) {
	p, err := Parse("roles.yaml", []byte(`
users:
  - {name: bob, roles: [dev, approver]}
  - {name: alice, roles: [approver]}
  - {name: ann, roles: [approver, no-review]}
  - {name: sam, roles: [security]}
  - {name: carol, roles: [dev]}
roles:
  - name: dev
    allow: {logins: [ubuntu]}
  - name: dba
    allow: {logins: [postgres]}
  - name: breakglass
    allow: {logins: [root]}
  - name: approver
    allow: {review_requests: {roles: [dba]}}
  - name: no-review
    deny: {review_requests: {roles: [dba]}}
  - name: security
    allow: {review_requests: {roles: [dba, breakglass]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		requester string
		roles     []string
		want      []string
	}{
		{"bob", []string{"dba"}, []string{"alice", "sam"}}, // never the requester; ann is denied
		{"carol", []string{"dba"}, []string{"alice", "bob", "sam"}},
		{"carol", []string{"dba", "breakglass"}, []string{"sam"}}, // must cover every role
		{"carol", []string{"dev"}, nil},
	} {
		if got := p.StaticReviewers(tc.requester, tc.roles); !slices.Equal(got, tc.want) {
			t.Errorf("StaticReviewers(%s, %v) = %v, want %v", tc.requester, tc.roles, got, tc.want)
		}
	}
}
