package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmailTargetKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "smtp-pass"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "g.yaml"), []byte(`notify:
  - kind: email
    smtp: smtp.example.com:587
    from: gatehouse@example.com
    username: gh
    password_file: smtp-pass
    to_domain: example.com
    reviewers_to: [security@example.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify[0]
	if n.Password != "s3cret" || n.PasswordFile != filepath.Join(dir, "smtp-pass") || n.ToDomain != "example.com" {
		t.Errorf("parsed %+v", n)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"{kind: email, from: a@example.com}", "smtp"},
		{"{kind: email, smtp: h:25}", "from"},
		{"{kind: email, smtp: h:25, from: \"a@example.com\\r\\nBcc: x@y\"}", "from"},
		{"{kind: email, smtp: h:25, from: a@example.com, starttls: maybe}", "starttls"},
		{"{kind: email, smtp: h:25, from: a@example.com, username: u}", "password_file"},
		{"{kind: email, smtp: h:25, from: a@example.com, to_domain: \"@x\"}", "to_domain"},
		{"{kind: email, smtp: h:25, from: a@example.com, ca_file: /nonexistent}", "ca_file"},
		{"{kind: email, smtp: h:25, from: a@example.com, reviewers_to: [\"not an address\"]}", "reviewers_to"},
		{"{kind: pager, url: http://x}", "want slack, webhook or email"},
	} {
		_, err := Parse(filepath.Join(dir, "g.yaml"), []byte("notify:\n  - "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %s", tc.yaml, err, tc.want)
		}
	}
}
