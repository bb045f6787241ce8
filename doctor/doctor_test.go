package doctor

import (
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// TestLoginsLeavesTemplatesOut: a template login names whoever logs in,
// so doctor must never probe what it expands to for a made-up user.
func TestLoginsLeavesTemplatesOut(t *testing.T) {
	pol, err := policy.Parse("roles.yaml", []byte(`
roles:
  - name: dev
    allow:
      logins: [ubuntu, "{{username}}", "adm-{{username}}"]
      node_labels: {env: staging}
  - name: unix
    allow:
      logins: ["{{claims.unix_login}}", "{{email.local(username)}}"]
      node_labels: {env: staging}
  - name: dba
    allow:
      logins: [postgres]
      node_labels: {team: data}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"env": "staging"}, []string{"ubuntu"}},
		{map[string]string{"env": "staging", "team": "data"}, []string{"postgres", "ubuntu"}},
		{map[string]string{"env": "prod"}, nil},
	}
	for _, tc := range tests {
		got := Logins(pol, config.Node{Name: "n-1", Labels: tc.labels})
		if !slices.Equal(got, tc.want) {
			t.Errorf("Logins on %v = %q, want %q", tc.labels, got, tc.want)
		}
	}
}
