package e2e_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/immutable"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// Operations end to end: /metrics scraped with Prometheus' parser while a
// real OpenSSH session comes and goes, /healthz and /readyz while the
// store or the recording storage fails, JSON logs, and `gatehouse doctor`
// against real sshd nodes with one fault each.

const opsRoles = `
users:
  - {name: bob, roles: [ops]}
roles:
  - name: ops
    allow:
      logins: [root]
      node_labels: {env: staging}
  - name: ghost
    allow:
      logins: [gh-no-such-user]
      node_labels: {fault: nouser}
`

// configWith writes a copy of gh's gatehouse.yaml with key set to value
// and returns its path.
func configWith(t *testing.T, gh *e2e.Gatehouse, name, key string, value any) string {
	t.Helper()
	data, err := os.ReadFile(gh.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[key] = value
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(gh.Dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// restoredAuditIntact runs `gatehouse audit verify` and `audit ls` on the
// store config names (a restored backup) and checks the chain is intact
// and holds an event of type want.
func restoredAuditIntact(t *testing.T, gh *e2e.Gatehouse, config, want string) {
	t.Helper()
	r := gh.Run("audit", "verify", "--config", config)
	if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "audit log intact: ") {
		t.Fatalf("audit verify on the restored backup: %s", r)
	}
	r = gh.Run("audit", "ls", "--config", config, "--type", want, "--json")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, `"type":"`+want+`"`) {
		t.Fatalf("audit ls --type %s on the restored backup: %s", want, r)
	}
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func liveOn(t *testing.T, url, node string) float64 {
	t.Helper()
	v, ok := e2e.Scrape(t, url).Value("gatehouse_sessions_live", "node", node)
	if !ok {
		t.Fatalf("%s has no gatehouse_sessions_live{node=%q}", url, node)
	}
	return v
}

func TestOperationsMetricsHealthAndLogs(t *testing.T) {
	e2e.RequireAccount(t, "root")
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  opsRoles,
		Config: map[string]any{
			"metrics": map[string]any{"listen": metricsAddr},
			"logging": map[string]any{"format": "json"},
		},
		Nodes: []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
	})
	webMetrics := gh.WebURL + "/metrics"
	ownMetrics := "http://" + metricsAddr + "/metrics"
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	t.Run("the live-session gauge follows a real session", func(t *testing.T) {
		if v := liveOn(t, webMetrics, "web-1"); v != 0 {
			t.Fatalf("before any session: gatehouse_sessions_live{node=web-1} = %v, want 0", v)
		}
		term := openShell(t, bob, "root@web-1")
		// Registered before the shell prints, so no waiting is needed.
		for _, url := range []string{webMetrics, ownMetrics} {
			if v := liveOn(t, url, "web-1"); v != 1 {
				t.Errorf("during bob's shell: %s gatehouse_sessions_live{node=web-1} = %v, want 1", url, v)
			}
		}
		term.Send("exit 0\n")
		if code := term.Wait(30 * time.Second); code != 0 {
			t.Fatalf("shell exit status %d", code)
		}
		if !poll(30*time.Second, func() bool { return liveOn(t, webMetrics, "web-1") == 0 }) {
			t.Fatal("gatehouse_sessions_live{node=web-1} never went back to 0 after the shell ended")
		}
		m := e2e.Scrape(t, ownMetrics)
		atLeast := []struct {
			name   string
			labels []string
			min    float64
		}{
			{"gatehouse_ssh_connections_total", []string{"outcome", "authenticated"}, 1},
			{"gatehouse_access_decisions_total", []string{"outcome", "allowed"}, 1},
			{"gatehouse_node_dial_duration_seconds", []string{"node", "web-1", "outcome", "ok"}, 1},
			{"gatehouse_relay_bytes_total", []string{"direction", "from_node"}, 1},
			{"gatehouse_relay_bytes_total", []string{"direction", "to_node"}, 1},
			{"gatehouse_audit_events_total", nil, 3},
			{"gatehouse_audit_append_duration_seconds", nil, 1},
			{"gatehouse_recordings_started_total", nil, 1},
			{"gatehouse_build_info", nil, 1},
		}
		for _, c := range atLeast {
			if v, ok := m.Value(c.name, c.labels...); !ok || v < c.min {
				t.Errorf("%s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
			}
		}
		if v, ok := m.Value("gatehouse_requests", "state", "PENDING"); !ok || v != 0 {
			t.Errorf("gatehouse_requests{state=PENDING} = %v (present %v), want 0", v, ok)
		}
	})

	t.Run("a refused jump counts as denied", func(t *testing.T) {
		before, _ := e2e.Scrape(t, webMetrics).Value("gatehouse_access_decisions_total", "outcome", "denied")
		if r := bob.SSH("postgres@web-1", "true"); r.ExitCode == 0 {
			t.Fatalf("bob as postgres on web-1 must be refused: %s", r)
		}
		after, _ := e2e.Scrape(t, webMetrics).Value("gatehouse_access_decisions_total", "outcome", "denied")
		if after != before+1 {
			t.Errorf("gatehouse_access_decisions_total{outcome=denied}: %v -> %v, want one more", before, after)
		}
	})

	t.Run("healthz and readyz", func(t *testing.T) {
		for _, base := range []string{gh.WebURL, "http://" + metricsAddr} {
			if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
				t.Errorf("%s/healthz = %d %q, want 200 ok", base, code, body)
			}
			code, body := get(t, base+"/readyz")
			if code != 200 {
				t.Errorf("%s/readyz = %d, want 200:\n%s", base, code, body)
			}
			for _, check := range []string{"store", "recording storage", "ca", "policy"} {
				if !strings.Contains(body, "ok   "+check+"\n") {
					t.Errorf("%s/readyz does not report %q as ok:\n%s", base, check, body)
				}
			}
		}
	})

	t.Run("readyz fails while recording storage cannot be written", func(t *testing.T) {
		dir := filepath.Join(gh.DataDir, "recordings")
		writable := immutable.Dir(t, dir)
		code, body := get(t, gh.WebURL+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL recording storage: recording storage "+dir+" is not writable") {
			t.Errorf("/readyz with an unwritable recording dir = %d, want 503 with a FAIL recording storage line:\n%s", code, body)
		}
		if strings.Contains(body, "FAIL store") || !strings.Contains(body, "ok   store") {
			t.Errorf("/readyz must name only the failing check:\n%s", body)
		}
		if code, _ := get(t, gh.WebURL+"/healthz"); code != 200 {
			t.Errorf("/healthz = %d while not ready, want 200 (the process is up)", code)
		}
		writable()
		if code, body := get(t, gh.WebURL+"/readyz"); code != 200 {
			t.Errorf("/readyz after the directory is writable again = %d, want 200:\n%s", code, body)
		}
	})

	t.Run("logging.format json writes one JSON object per line", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(gh.Log()), "\n")
		sawServing := false
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q: %v", line, err)
			}
			if rec["msg"] == "gatehouse serving" && rec["level"] == "INFO" && rec["time"] != nil {
				sawServing = true
			}
		}
		if !sawServing {
			t.Errorf("no JSON `gatehouse serving` record among %d log lines", len(lines))
		}
	})

	t.Run("sqlite3 .backup of the live database restores a verifiable audit log", func(t *testing.T) {
		sqlite3, err := exec.LookPath("sqlite3")
		if err != nil {
			t.Skip("SKIPPED: the sqlite3 command is not installed (Debian: apt-get install sqlite3)")
		}
		backup := filepath.Join(t.TempDir(), "gatehouse-backup.db")
		// While the bastion serves: .backup uses SQLite's online backup API.
		if out, err := exec.Command(sqlite3, filepath.Join(gh.DataDir, "gatehouse.db"), ".backup '"+backup+"'").CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 .backup: %v\n%s", err, out)
		}
		restored := configWith(t, gh, "restored.yaml", "storage", map[string]any{"driver": "sqlite", "dsn": backup})
		restoredAuditIntact(t, gh, restored, "session.start")
	})

	t.Run("doctor passes on a healthy deployment", func(t *testing.T) {
		r := gh.Run("doctor")
		if r.ExitCode != 0 {
			t.Fatalf("gatehouse doctor on a healthy deployment: %s", r)
		}
		for _, want := range []string{
			"ok   config " + gh.ConfigPath + "\n",
			"ok   roles " + gh.RolesPath + " (2 roles)\n",
			"ok   store sqlite ",
			"ok   recording storage ",
			"ok   node web-1 (" + gh.Node("web-1").Addr + ") reachable\n",
			"ok   node web-1 (" + gh.Node("web-1").Addr + ") host key matches\n",
			"ok   node web-1 (" + gh.Node("web-1").Addr + ") accepts a Gatehouse certificate for login root\n",
		} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, r.Stdout)
			}
		}
	})
}

// TestPostgreSQLBackupAndReadiness restores a pg_dump of a running
// bastion's database into a fresh one and verifies its audit chain; then
// stops the database under the bastion: /readyz turns 503 naming the
// store, /healthz and /metrics still answer, and readiness comes back with
// the database.
func TestPostgreSQLBackupAndReadiness(t *testing.T) {
	e2e.RequireSystem(t)
	cluster := pgtest.StartCluster(t)
	if !cluster.CanRestart() {
		t.Skip("SKIPPED: this test stops PostgreSQL; an external server cannot be stopped")
	}
	dsn := cluster.NewDatabase(t)
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  opsRoles,
		Config: map[string]any{"storage": map[string]any{"driver": "postgres", "dsn": dsn}},
	})
	if code, body := get(t, gh.WebURL+"/readyz"); code != 200 {
		t.Fatalf("/readyz with PostgreSQL up = %d:\n%s", code, body)
	}
	t.Run("pg_dump restores a verifiable audit log", func(t *testing.T) {
		gh.MustRun("lock", "--user", "bob", "--reason", "backup test")
		dump := filepath.Join(t.TempDir(), "gatehouse.sql")
		if out, err := exec.Command("pg_dump", "--no-owner", "--file", dump, dsn).CombinedOutput(); err != nil {
			t.Fatalf("pg_dump: %v\n%s", err, out)
		}
		target := cluster.NewDatabase(t)
		if out, err := exec.Command("psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--file", dump, target).CombinedOutput(); err != nil {
			t.Fatalf("psql restore: %v\n%s", err, out)
		}
		restored := configWith(t, gh, "restored.yaml", "storage", map[string]any{"driver": "postgres", "dsn": target})
		restoredAuditIntact(t, gh, restored, "user.lock")
	})
	cluster.Stop(t)
	code, body := get(t, gh.WebURL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL store: ping store: ") {
		t.Errorf("/readyz with PostgreSQL stopped = %d, want 503 with a FAIL store line:\n%s", code, body)
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.HasPrefix(line, "ok   ") && !strings.HasPrefix(line, "FAIL store: ") {
			t.Errorf("only the store should fail; got line %q", line)
		}
	}
	if code, _ := get(t, gh.WebURL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d during the outage, want 200", code)
	}
	m := e2e.Scrape(t, gh.WebURL+"/metrics")
	if v, ok := m.Value("gatehouse_store_errors_total", "op", "ping"); !ok || v < 1 {
		t.Errorf("gatehouse_store_errors_total{op=ping} = %v (present %v), want at least 1", v, ok)
	}
	cluster.Restart(t)
	var last string
	if !poll(60*time.Second, func() bool {
		var code int
		code, last = get(t, gh.WebURL+"/readyz")
		return code == 200
	}) {
		t.Fatalf("/readyz never returned to 200 after PostgreSQL came back:\n%s", last)
	}
}

// TestDoctorFindsEachNodeFault runs `gatehouse doctor` against real sshd
// nodes, each with one fault a user would otherwise meet at login.
func TestDoctorFindsEachNodeFault(t *testing.T) {
	e2e.RequireAccount(t, "root")
	if _, err := osuser.Lookup("gh-no-such-user"); err == nil {
		t.Fatal("this test needs the account gh-no-such-user to NOT exist")
	}
	bin := builder.BuildGatehouse(t)
	dir := t.TempDir()
	noCA := filepath.Join(dir, "no-trusted-ca.pub")
	if err := os.WriteFile(noCA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, otherPub := e2e.GenerateKey(t, dir, "not-the-node")
	staging := map[string]string{"env": "staging"}
	// Template logins name whoever logs in; doctor must not probe them
	// (a probe as some made-up user would fail on every node).
	roles := opsRoles + `
  - name: personal
    allow:
      logins: ["{{username}}", "{{claims.unix_login}}"]
      node_labels: {env: staging}
  - name: personal-only
    allow:
      logins: ["{{username}}"]
      node_labels: {fault: templateonly}
`
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  roles,
		Nodes: []e2e.NodeSpec{
			{Name: "good-1", Labels: staging},
			{Name: "template-1", Labels: map[string]string{"fault": "templateonly"}},
			{Name: "wrongkey-1", Labels: staging, PinnedKey: e2e.ReadKeyLine(t, otherPub)},
			{Name: "nocak-1", Labels: staging, Options: e2e.NodeOptions{TrustedUserCAKeys: noCA}},
			{Name: "nouser-1", Labels: map[string]string{"fault": "nouser"}},
			{Name: "down-1", Labels: staging, Down: true},
		},
	})
	// The OIDC issuer is checked too: a real provider, and an address
	// where nothing answers.
	idp := e2e.StartDevIDP(t, gh.WebURL, e2e.DevIDPOptions{Binary: bin})
	withIssuer := func(name, issuer string) string {
		oidc := idp.OIDCConfig()
		oidc["issuer"] = issuer
		return configWith(t, gh, name, "oidc", oidc)
	}
	doctor := func(config string) e2e.Result {
		r := gh.Run("doctor", "--config", config)
		t.Logf("gatehouse doctor --config %s (exit %d):\n%s%s", config, r.ExitCode, r.Stdout, r.Stderr)
		return r
	}

	r := doctor(withIssuer("idp-up.yaml", idp.Issuer))
	if r.ExitCode != 1 {
		t.Errorf("doctor with faulty nodes exited %d, want 1", r.ExitCode)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	has := func(prefix, contains string) {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) && strings.Contains(l, contains) {
				return
			}
		}
		t.Errorf("no line starting %q and containing %q", prefix, contains)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "ok   ") && !strings.HasPrefix(l, "FAIL ") {
			t.Errorf("line is neither ok nor FAIL: %q", l)
		}
	}
	has("ok   oidc issuer "+idp.Issuer, "")
	has("ok   node good-1 ", "accepts a Gatehouse certificate for login root")
	has("ok   node wrongkey-1 ", "reachable")
	has("FAIL node wrongkey-1 ", "host key matches: host key verification failed")
	has("ok   node nocak-1 ", "host key matches")
	has("FAIL node nocak-1 ", "accepts a Gatehouse certificate for login root: the node refused a certificate from the Gatehouse user CA")
	has("FAIL node nouser-1 ", `accepts a Gatehouse certificate for login gh-no-such-user: the node refused`)
	has("FAIL node down-1 ", "reachable: dial ")
	has("FAIL node down-1 ", "connection refused")
	has("ok   node template-1 ", "reachable")
	has("ok   node template-1 ", "no role allows a fixed login here; nothing to check (logins from templates are not tried)")
	for _, l := range lines {
		if strings.Contains(l, "gatehouse-doctor") || strings.Contains(l, "{{") || strings.Contains(l, "login bob") {
			t.Errorf("doctor probed a template login: %q", l)
		}
	}
	fails := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "FAIL ") {
			fails++
		}
	}
	if fails != 4 {
		t.Errorf("want exactly 4 FAIL lines (one per faulty node), got %d", fails)
	}

	r = doctor(withIssuer("idp-down.yaml", "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))))
	if r.ExitCode != 1 || !strings.Contains(r.Stdout, "FAIL oidc issuer http://127.0.0.1:") {
		t.Errorf("doctor with an unreachable issuer: want exit 1 and a FAIL oidc issuer line: %s", r)
	}
}
