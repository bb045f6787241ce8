package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/immutable"
)

// TestDoctorFaults runs `gatehouse doctor` on a deployment without nodes
// or OIDC (real SQLite, real directories): all good exits 0 with only ok
// lines; each fault exits 1 with exactly one FAIL line, naming the check.
// The node and OIDC faults are in internal/e2e (TestDoctorFindsEachNodeFault).
func TestDoctorFaults(t *testing.T) {
	// A regular file where a directory must be: nothing can be created
	// below it, not even by root (tests often run as root).
	notADir := func(t *testing.T, cfg string) string {
		f := filepath.Join(filepath.Dir(cfg), "a-file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name  string
		fault func(t *testing.T, cfg string)
		fail  string // the FAIL line's start; "" when all pass
	}{
		{"all good", func(*testing.T, string) {}, ""},
		{"config does not parse", func(t *testing.T, cfg string) {
			writeFile(t, cfg, "data_dir: [not, a, path\n")
		}, "FAIL config: "},
		{"roles do not parse", func(t *testing.T, cfg string) {
			writeFile(t, filepath.Join(filepath.Dir(cfg), "roles.yaml"), "roles:\n  - name: dev\n    allow: {logins: [\"{{nope}}\"], node_labels: {env: x}}\n")
		}, "FAIL roles "},
		{"sqlite store cannot be opened", func(t *testing.T, cfg string) {
			editConfig(t, cfg, "  driver: sqlite\n", "  driver: sqlite\n  dsn: "+filepath.Join(notADir(t, cfg), "gatehouse.db")+"\n")
		}, "FAIL store sqlite "},
		{"postgres store unreachable", func(t *testing.T, cfg string) {
			editConfig(t, cfg, "  driver: sqlite\n", fmt.Sprintf("  driver: postgres\n  dsn: postgres://gatehouse@127.0.0.1:%d/gatehouse?sslmode=disable&connect_timeout=2\n", closedPort(t)))
		}, "FAIL store postgres: "},
		{"recording storage cannot be created", func(t *testing.T, cfg string) {
			appendConfig(t, cfg, "recording:\n  dir: "+filepath.Join(notADir(t, cfg), "recordings")+"\n")
		}, "FAIL recording storage "},
		{"recording storage not writable", func(t *testing.T, cfg string) {
			dir := filepath.Join(filepath.Dir(cfg), "recordings")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			immutable.Dir(t, dir)
			appendConfig(t, cfg, "recording:\n  dir: "+dir+"\n")
		}, "FAIL recording storage "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newConfig(t)
			tc.fault(t, cfg)
			code, stdout, stderr := runCLI("doctor", "--config", cfg)
			t.Logf("gatehouse doctor (exit %d):\n%s%s", code, stdout, stderr)
			var fails []string
			for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
				switch {
				case strings.HasPrefix(l, "FAIL "):
					fails = append(fails, l)
				case !strings.HasPrefix(l, "ok   "):
					t.Errorf("line is neither ok nor FAIL: %q", l)
				}
			}
			if tc.fail == "" {
				if code != 0 || len(fails) != 0 {
					t.Errorf("healthy deployment: exit %d, FAIL lines %q; want exit 0 and none", code, fails)
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if len(fails) != 1 || !strings.HasPrefix(fails[0], tc.fail) {
				t.Errorf("FAIL lines %q, want exactly one starting %q", fails, tc.fail)
			}
		})
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// editConfig replaces old, which must occur, in the config file.
func editConfig(t *testing.T, cfg, old, new string) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s lacks %q", cfg, old)
	}
	writeFile(t, cfg, strings.Replace(string(data), old, new, 1))
}

func appendConfig(t *testing.T, cfg, more string) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, string(data)+more)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
