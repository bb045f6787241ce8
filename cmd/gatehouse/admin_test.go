package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newConfig writes a minimal bastion config (SQLite, no nodes, no OIDC)
// whose roles file lists bob.
func newConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	roles := filepath.Join(dir, "roles.yaml")
	if err := os.WriteFile(roles, []byte("users:\n  - {name: bob, roles: [dev]}\nroles:\n  - name: dev\n    allow:\n      logins: [ubuntu]\n      node_labels: {env: staging}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gatehouse.yaml")
	body := "data_dir: " + filepath.Join(dir, "data") + "\nssh:\n  listen: 127.0.0.1:0\nweb:\n  listen: 127.0.0.1:0\n  public_url: http://127.0.0.1:1\nstorage:\n  driver: sqlite\nroles_file: " + roles + "\nnodes: []\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestLockCommands: lock prints only its result, names the operator as the
// actor, refuses unknown users unless forced; audit ls --type matches
// prefixes and says so on stderr when nothing matches.
func TestLockCommands(t *testing.T) {
	cfg := newConfig(t)
	tests := []struct {
		name       string
		args       []string
		code       int
		out, err   string // substrings; err "" means stderr must be empty
		notOutText string
	}{
		{"lock known user", []string{"lock", "--config", cfg, "--user", "bob", "--reason", "investigation", "--by", "carol"},
			0, "locked bob until unlocked (by admin:carol)", "", "level="},
		{"lock unknown user refused", []string{"lock", "--config", cfg, "--user", "bobb", "--reason", "typo"},
			2, "", `unknown user "bobb"`, ""},
		{"lock unknown user forced", []string{"lock", "--config", cfg, "--user", "newhire", "--reason", "before first login", "--force", "--ttl", "1h", "--by", "carol"},
			0, "locked newhire until ", "", ""},
		{"lock unknown bot refused", []string{"lock", "--config", cfg, "--user", "bot:nobody", "--reason", "x"},
			2, "", `unknown user "bot:nobody"`, ""},
		{"add bot", []string{"bot", "add", "--config", cfg, "--name", "chat", "--roles", "dev"},
			0, "token: ", "", ""},
		{"lock existing bot", []string{"lock", "--config", cfg, "--user", "bot:chat", "--reason", "leaked token", "--by", "carol"},
			0, "locked bot:chat", "", ""},
		{"unlock", []string{"unlock", "--config", cfg, "--user", "bob", "--by", "carol"},
			0, "unlocked bob (by admin:carol)", "", ""},
		{"audit type prefix", []string{"audit", "ls", "--config", cfg, "--type", "user"},
			0, "user.lock", "", ""},
		{"audit exact type", []string{"audit", "ls", "--config", cfg, "--type", "user.unlock"},
			0, "admin:carol", "", ""},
		{"audit unknown type", []string{"audit", "ls", "--config", cfg, "--type", "no-such-type"},
			0, "", `no event has type "no-such-type"`, ""},
		{"audit request prefix, none yet", []string{"audit", "ls", "--config", cfg, "--type", "request"},
			0, "", `"request."`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("stdout %q lacks %q", out, tc.out)
			}
			if tc.err == "" && errOut != "" {
				t.Errorf("stderr not empty: %q", errOut)
			}
			if tc.err != "" && !strings.Contains(errOut, tc.err) {
				t.Errorf("stderr %q lacks %q", errOut, tc.err)
			}
			if tc.notOutText != "" && strings.Contains(out+errOut, tc.notOutText) {
				t.Errorf("output has %q: %s%s", tc.notOutText, out, errOut)
			}
		})
	}
	// The lock's audit event names who did it.
	_, out, _ := runCLI("audit", "ls", "--config", cfg, "--type", "user.lock", "--json")
	if !strings.Contains(out, `"actor":"admin:carol"`) || !strings.Contains(out, `"target":"newhire"`) {
		t.Errorf("user.lock events do not name admin:carol and newhire:\n%s", out)
	}
}
