package policy

import (
	"strings"
	"testing"
)

func TestReviewOnBehalf(t *testing.T) {
	const roles = `roles:
  - name: dba
  - name: slack-plugin
    allow:
      review_on_behalf: true
  - name: off
    allow:
      review_on_behalf: false
  - name: muzzled
    deny:
      review_on_behalf: true
  - name: approver
    allow:
      review_requests: {roles: [dba]}
`
	p, err := Parse("roles.yaml", []byte(roles))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		roles []string
		want  bool
	}{
		{"plugin role allows", []string{"slack-plugin"}, true},
		{"false allows nothing", []string{"off"}, false},
		{"deny beats allow", []string{"slack-plugin", "muzzled"}, false},
		{"a reviewer is not an on-behalf reviewer", []string{"approver"}, false},
		{"no roles", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.MayReviewOnBehalf(Subject{User: "bot:slack", Roles: tc.roles}); got != tc.want {
				t.Fatalf("MayReviewOnBehalf(%v) = %v, want %v", tc.roles, got, tc.want)
			}
		})
	}
	// review_on_behalf is not a review right of its own: the plugin's roles
	// review nothing.
	if _, _, ok := p.ReviewThreshold(Subject{Roles: []string{"slack-plugin"}}, []string{"dba"}); ok {
		t.Error("review_on_behalf alone may review dba")
	}
}

func TestReviewOnBehalfParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, msg string }{
		{"not a bool", `roles:
  - name: p
    allow:
      review_on_behalf: yes please
`, "role p allow review_on_behalf must be true or false"},
		{"a list", `roles:
  - name: p
    allow:
      review_on_behalf: [alice]
`, "review_on_behalf must be true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("roles.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.msg)
			}
		})
	}
}
