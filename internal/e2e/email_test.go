package e2e_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/mailpit"
)

// TestAccessRequestEmail: bob asks for dba over ssh; the dba reviewers
// named in roles.yaml (alice, ann) and the reviewers_to list get an e-mail
// through a real SMTP server (mailpit) that insists on STARTTLS; alice
// approves and bob gets the decision by e-mail.
func TestAccessRequestEmail(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{RequireSTARTTLS: true})
	env := startAccess(t, map[string]any{
		"notify": []map[string]any{{
			"kind": "email", "smtp": srv.SMTPAddr, "from": "gatehouse@example.com",
			"starttls": "required", "ca_file": srv.CAFile, "to_domain": "example.com",
			"reviewers_to": []string{"security@example.com"},
		}},
	})
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	reason := "INC-77 replica lag\r\nBcc: mallory@evil.example"
	id := env.request(t, bob, "dba", reason, "30m")
	link := env.gh.WebURL + "/requests/" + id

	created := srv.WaitFor(t, "about the new request", func(m mailpit.Message) bool {
		return strings.Contains(m.Subject, "bob requests dba") && strings.Contains(m.Subject, id)
	})
	slices.Sort(created.To)
	if want := []string{"alice@example.com", "ann@example.com", "security@example.com"}; !slices.Equal(created.To, want) {
		t.Errorf("new-request mail went to %q, want %q", created.To, want)
	}
	if created.From != "gatehouse@example.com" {
		t.Errorf("From %q", created.From)
	}
	for _, want := range []string{"Requester: bob", "Roles:     dba", "INC-77 replica lag", "Duration:  30m", "Approval:  needs 1 more approval", link} {
		if !strings.Contains(created.Text, want) {
			t.Errorf("new-request mail body lacks %q:\n%s", want, created.Text)
		}
	}
	if strings.Contains(created.Subject, "INC-77") || len(created.Headers["Bcc"]) != 0 {
		t.Errorf("the reason leaked into the headers: subject %q, headers %v", created.Subject, created.Headers)
	}

	env.approve(t, alice, id, "APPROVED")
	decided := srv.WaitFor(t, "about the decision", func(m mailpit.Message) bool {
		return strings.Contains(m.Subject, "approved") && strings.Contains(m.Subject, id)
	})
	if !slices.Equal(decided.To, []string{"bob@example.com"}) {
		t.Errorf("decision mail went to %q, want bob only", decided.To)
	}
	for _, want := range []string{"approved by alice", "looks right", link} {
		if !strings.Contains(decided.Text, want) {
			t.Errorf("decision mail body lacks %q:\n%s", want, decided.Text)
		}
	}
	if strings.Contains(env.gh.Log(), "notification failed") {
		t.Errorf("the bastion logged a failed notification:\n%s", env.gh.Log())
	}
}
