package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Just-in-time access end to end: bob asks for dba over SSH, alice approves
// from the CLI, bob's next jump works with the certificate he already has,
// and the access (and every session that depended on it) ends by itself.

// accessRoles: dev (bob, carol) may request dba for up to an hour with a
// reason, or breakglass; approvers (alice, ann) review dba alone, security
// (sam, sue) must be two to approve breakglass.
const accessRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: carol, roles: [dev]}
  - {name: alice, roles: [approver]}
  - {name: ann, roles: [approver]}
  - {name: sam, roles: [security]}
  - {name: sue, roles: [security]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request:
        roles: [dba, breakglass]
        max_duration: 1h
        reason_required: true
  - name: dba
    allow:
      logins: [postgres, root]
      node_labels: {team: data}
  - name: breakglass
    allow:
      logins: [root]
      node_labels: {team: data}
  - name: approver
    allow:
      review_requests: {roles: [dba], approvals: 1}
  - name: security
    allow:
      review_requests: {roles: [breakglass], approvals: 2}
`

// hook is a notify target: a real HTTP server that keeps every body it is
// sent.
type hook struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies [][]byte
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "want a POST with a body", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

// webhookMsg is the part of a webhook body the tests read.
type webhookMsg struct {
	Event   string `json:"event"`
	Actor   string `json:"actor"`
	Request struct {
		ID       string     `json:"id"`
		User     string     `json:"user"`
		Roles    []string   `json:"roles"`
		State    string     `json:"state"`
		GrantEnd *time.Time `json:"grant_end"`
	} `json:"request"`
}

// waitWebhook polls until the webhook target has received event for
// request id, and returns that message.
func (h *hook) waitWebhook(t *testing.T, id, event string) webhookMsg {
	t.Helper()
	var got []string
	ok := poll(60*time.Second, func() bool {
		got = got[:0]
		for _, b := range h.received() {
			var m webhookMsg
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("webhook body is not the JSON message: %v\n%s", err, b)
			}
			got = append(got, m.Event+" "+m.Request.ID)
			if m.Request.ID == id && m.Event == event {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("webhook never received %q for request %s; received %q", event, id, got)
	}
	for _, b := range h.received() {
		var m webhookMsg
		_ = json.Unmarshal(b, &m)
		if m.Request.ID == id && m.Event == event {
			return m
		}
	}
	panic("unreachable")
}

// waitSlack polls until the Slack target has received a text matching re.
func (h *hook) waitSlack(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var texts []string
	var found string
	ok := poll(60*time.Second, func() bool {
		texts = texts[:0]
		for _, b := range h.received() {
			var m struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("slack body is not {\"text\": ...}: %v\n%s", err, b)
			}
			texts = append(texts, m.Text)
			if re.MatchString(m.Text) {
				found = m.Text
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("slack never received a text matching %q; received %q", re, texts)
	}
	return found
}

// poll calls cond every 100ms until it is true or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accessEnv is a bastion with the access roles, a data node and a staging
// node, and a webhook and a Slack notify target.
type accessEnv struct {
	gh      *e2e.Gatehouse
	webhook *hook
	slack   *hook
	hostCA  string // file with the bastion's host CA key, for --host-ca
	users   map[string]*e2e.User
	t       *testing.T // the test that owns the bastion, and the users' files
}

func startAccess(t *testing.T, extraConfig map[string]any) *accessEnv {
	t.Helper()
	return startAccessRoles(t, accessRoles, extraConfig)
}

// startAccessRoles is startAccess with another roles.yaml.
func startAccessRoles(t *testing.T, roles string, extraConfig map[string]any) *accessEnv {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	env := &accessEnv{webhook: newHook(t), slack: newHook(t), users: map[string]*e2e.User{}, t: t}
	cfg := map[string]any{
		"notify": []map[string]any{
			{"kind": "webhook", "url": env.webhook.srv.URL + "/gatehouse"},
			{"kind": "slack", "url": env.slack.srv.URL + "/services/T0/B0/secret"},
		},
	}
	for k, v := range extraConfig {
		cfg[k] = v
	}
	env.gh = e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  roles,
		Config: cfg,
		Nodes: []e2e.NodeSpec{
			{Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}},
			{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
		},
	})
	env.hostCA = filepath.Join(env.gh.Dir, "host_ca.pub")
	if err := os.WriteFile(env.hostCA, []byte(env.gh.HostCA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// user returns the named user, creating its key and certificate once. They
// belong to the test that started the bastion, not to the (sub)test asking
// first, whose temporary files vanish when it ends.
func (env *accessEnv) user(t *testing.T, name string) *e2e.User {
	t.Helper()
	if u, ok := env.users[name]; ok {
		return u
	}
	u := e2e.NewUser(env.t, env.gh, name, time.Hour)
	env.users[name] = u
	return u
}

// cliCommand builds `gatehouse request ARGS` run as u with explicit
// connection flags (no `gatehouse login` profile).
func (env *accessEnv) cliCommand(ctx context.Context, t *testing.T, u *e2e.User, args ...string) *exec.Cmd {
	full := append([]string{"request"}, args...)
	full = append(full, "--bastion", env.gh.SSHAddr, "--user", u.Name, "--identity", u.KeyPath,
		"--host-ca", env.hostCA, "--home", t.TempDir())
	cmd := exec.CommandContext(ctx, env.gh.Binary, full...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// cli runs `gatehouse request ARGS` as u to completion.
func (env *accessEnv) cli(t *testing.T, u *e2e.User, args ...string) e2e.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runResult(t, env.cliCommand(ctx, t, u, args...))
}

// runResult runs cmd to completion and returns what it printed and its
// exit status; a command that could not run fails the test.
func runResult(t *testing.T, cmd *exec.Cmd) e2e.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := e2e.Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1}
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	if r.ExitCode == -1 {
		t.Fatalf("gatehouse %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, r)
	}
	return r
}

var idLine = regexp.MustCompile(`(?m)^id: (\S+)\r?$`)

// requestID is the id a `request` command printed on its `id: ID` line.
func requestID(t *testing.T, r e2e.Result) string {
	t.Helper()
	m := idLine.FindStringSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("want exit 0 and an `id: ID` line, got %s", r)
	}
	return m[1]
}

// request files a request for roles as u over SSH and returns its id.
func (env *accessEnv) request(t *testing.T, u *e2e.User, roles, reason, duration string) string {
	t.Helper()
	return requestID(t, u.Bastion("request", roles, "--reason", reason, "--duration", duration))
}

// approve approves id as reviewer from the CLI and checks the outcome.
func (env *accessEnv) approve(t *testing.T, reviewer *e2e.User, id, wantState string) {
	t.Helper()
	r := env.cli(t, reviewer, "approve", id, "--reason", "looks right")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "approved request "+id) || !strings.Contains(r.Stdout, "now "+wantState) {
		t.Fatalf("%s approves %s: want exit 0 and state %s, got %s", reviewer.Name, id, wantState, r)
	}
}

// state is the request's state as `requests ID` shows it to u.
func (env *accessEnv) state(t *testing.T, u *e2e.User, id string) string {
	t.Helper()
	r := u.Bastion("requests", id)
	m := regexp.MustCompile(`(?m)^state: (\S+)`).FindStringSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("requests %s as %s: want exit 0 and a state line, got %s", id, u.Name, r)
	}
	return m[1]
}

// refusalLine returns the single stderr line starting with "gatehouse:",
// failing if there is not exactly one.
func refusalLine(t *testing.T, r e2e.Result) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if i := strings.Index(l, "gatehouse:"); i >= 0 {
			lines = append(lines, strings.TrimSpace(l[i:]))
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want exactly one gatehouse: line on stderr, got %d in %s", len(lines), r)
	}
	return lines[0]
}

// refusedJump checks that u cannot reach dest and returns the refusal line.
func refusedJump(t *testing.T, u *e2e.User, dest string) string {
	t.Helper()
	r := u.SSH(dest, "echo REACHED")
	if r.ExitCode == 0 || strings.Contains(r.Stdout, "REACHED") {
		t.Fatalf("%s -> %s: want a refusal, got %s", u.Name, dest, r)
	}
	return refusalLine(t, r)
}

// allowedJump checks that u reaches dest as login.
func allowedJump(t *testing.T, u *e2e.User, dest, login string) {
	t.Helper()
	r := u.SSH(dest, "id -un")
	if r.ExitCode != 0 || r.Stdout != login+"\n" {
		t.Fatalf("%s -> %s: want %s and exit 0, got %s", u.Name, dest, login, r)
	}
}

// openShell starts an interactive session of u on dest and waits until
// its shell runs commands.
func openShell(t *testing.T, u *e2e.User, dest string) *e2e.Term {
	t.Helper()
	term := u.Interactive(dest)
	term.Send("echo ALIVE-$((40+2))\n")
	term.Expect(regexp.MustCompile(`ALIVE-42`), 60*time.Second)
	return term
}

// stillAlive checks the session still runs commands.
func stillAlive(t *testing.T, term *e2e.Term, tag string) {
	t.Helper()
	term.Send("echo " + tag + "-$((1+1))\n")
	term.Expect(regexp.MustCompile(regexp.QuoteMeta(tag)+`-2`), 30*time.Second)
}

// closedWithNotice waits for the bastion to print notice on the terminal
// and end the session; it returns when the notice was seen.
func closedWithNotice(t *testing.T, term *e2e.Term, notice *regexp.Regexp, timeout time.Duration) time.Time {
	t.Helper()
	term.Expect(notice, timeout)
	seen := time.Now()
	term.Wait(30 * time.Second)
	return seen
}

// TestAccessRequestStory is the product's headline story, start to end.
func TestAccessRequestStory(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	// Least privilege by default, and the refusal says how to get more.
	line := refusedJump(t, bob, "root@db-1")
	for _, want := range []string{"bob", "root", "db-1", "request one with"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal %q does not mention %q", line, want)
		}
	}

	r := bob.Bastion("request", "dba", "--reason", "INC-42 disk full", "--duration", "20s")
	id := requestID(t, r)
	if got := env.state(t, bob, id); got != "PENDING" {
		t.Fatalf("new request %s: want PENDING, got %s", id, got)
	}
	env.approve(t, alice, id, "APPROVED")

	// The grant works with the certificate bob already had; the session
	// is opened first, while the 20s grant is young.
	allowedJump(t, bob, "root@db-1", "root")
	term := openShell(t, bob, "root@db-1")

	// Notifications: machine-readable to the webhook, a sentence to Slack.
	created := env.webhook.waitWebhook(t, id, "created")
	if created.Request.User != "bob" || strings.Join(created.Request.Roles, ",") != "dba" {
		t.Errorf("webhook created message: want bob asking for dba, got %+v", created)
	}
	approved := env.webhook.waitWebhook(t, id, "approved")
	if approved.Actor != "alice" || approved.Request.State != "APPROVED" || approved.Request.GrantEnd == nil {
		t.Fatalf("webhook approved message: want alice, APPROVED and a grant end, got %+v", approved)
	}
	grantEnd := *approved.Request.GrantEnd
	env.slack.waitSlack(t, regexp.MustCompile(`^bob requests dba .*INC-42 disk full.*\[request `+regexp.QuoteMeta(id)+`\]`))
	env.slack.waitSlack(t, regexp.MustCompile(`^alice approved bob's request for dba.*\[request `+regexp.QuoteMeta(id)+`\]`))
	if time.Until(grantEnd) < 2*time.Second {
		t.Fatalf("the 20s grant ends at %s, too soon to check the session is alive first; the machine is too slow for this test", grantEnd)
	}
	stillAlive(t, term, "GRANTED")

	notice := regexp.MustCompile(`gatehouse: access via request ` + regexp.QuoteMeta(id) + ` ended at (\d\d:\d\d)`)
	seen := closedWithNotice(t, term, notice, time.Until(grantEnd)+60*time.Second)
	lag := seen.Sub(grantEnd)
	t.Logf("session closed %v after the grant ended", lag)
	if lag < 0 {
		t.Errorf("session closed %v before its grant ended at %s", -lag, grantEnd)
	}
	// The proxy re-checks live sessions every second; "a few seconds" is
	// the promise, with room for a loaded machine.
	if lag > 5*time.Second {
		t.Errorf("session closed %v after the grant ended; want within a few seconds", lag)
	}
	// The access watch names the grant's end; the proxy's safety-net
	// re-check, if it gets there first, the moment it noticed.
	if m := notice.FindStringSubmatch(term.Output()); m == nil || (m[1] != grantEnd.Local().Format("15:04") && m[1] != seen.Local().Format("15:04")) {
		t.Errorf("notice names %v, want the grant end %s", m, grantEnd.Local().Format("15:04"))
	}

	line = refusedJump(t, bob, "root@db-1")
	if !strings.Contains(line, "request one with") {
		t.Errorf("after the grant ended the refusal should again say how to request access: %q", line)
	}
	// A Slack webhook URL is a credential: it must not reach the log.
	if strings.Contains(env.gh.Log(), "/services/T0/B0/secret") {
		t.Errorf("the gatehouse log contains the Slack webhook URL")
	}
}

// TestAccessRequestRefusals: what the workflow refuses, each with one line
// saying why, and nothing changed by a refused command.
func TestAccessRequestRefusals(t *testing.T) {
	env := startAccess(t, nil)
	bob, carol, alice := env.user(t, "bob"), env.user(t, "carol"), env.user(t, "alice")
	pending := env.request(t, bob, "dba", "INC-7 slow queries", "10m")

	tests := []struct {
		name string
		as   *e2e.User
		args []string
		want *regexp.Regexp
	}{
		{"role not requestable", bob, []string{"request", "security", "--reason", "curious"},
			regexp.MustCompile(`gatehouse: request refused: .*role security is not requestable`)},
		{"reviewer role not requestable either", bob, []string{"request", "dba,approver", "--reason", "INC-7"},
			regexp.MustCompile(`gatehouse: request refused: .*approver is not requestable`)},
		{"duration above max", bob, []string{"request", "dba", "--reason", "INC-7", "--duration", "2h"},
			regexp.MustCompile(`gatehouse: request refused: .*duration 2h.* exceeds the maximum 1h`)},
		{"missing reason", bob, []string{"request", "dba", "--duration", "10m"},
			regexp.MustCompile(`gatehouse: request refused: .*reason is required`)},
		{"approving your own request", bob, []string{"approve", pending},
			regexp.MustCompile(`gatehouse: review refused: you cannot review your own request`)},
		// Without rights on it, a request answers as if it did not exist.
		{"reviewer without review rights", carol, []string{"approve", pending},
			regexp.MustCompile(`^gatehouse: no request ` + pending + ` that you may review$`)},
		{"denying without review rights", carol, []string{"deny", pending},
			regexp.MustCompile(`^gatehouse: no request ` + pending + ` that you may review$`)},
		{"cancelling someone else's request", carol, []string{"cancel", pending},
			regexp.MustCompile(`^gatehouse: no request ` + pending + ` that you may cancel$`)},
		{"a reviewer cancelling someone else's request", alice, []string{"cancel", pending},
			regexp.MustCompile(`gatehouse: cancel refused: you may only cancel your own requests`)},
		{"dropping a grant that is not active", bob, []string{"drop", pending},
			regexp.MustCompile(`gatehouse: drop refused: .*not an active grant`)},
		{"reviewing an unknown request", alice, []string{"approve", "nosuchid"},
			regexp.MustCompile(`^gatehouse: no request nosuchid that you may review$`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.as.Bastion(tc.args...)
			if r.ExitCode != 1 {
				t.Errorf("want exit 1, got %s", r)
			}
			if line := refusalLine(t, r); !tc.want.MatchString(line) {
				t.Errorf("refusal %q does not match %q", line, tc.want)
			}
			if idLine.MatchString(r.Stdout) {
				t.Errorf("a refused command printed a request id: %s", r)
			}
		})
	}
	// None of the refused reviews touched the pending request.
	if got := env.state(t, bob, pending); got != "PENDING" {
		t.Fatalf("after refused reviews %s should still be PENDING, got %s", pending, got)
	}
	if out := bob.Bastion("requests", pending).Stdout; strings.Contains(out, "review:") {
		t.Fatalf("refused reviews were recorded:\n%s", out)
	}
}

// TestAccessRequestReviews: two approvals counted once per approver, deny,
// --wait, cancel.
func TestAccessRequestReviews(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")
	for _, name := range []string{"ann", "carol", "sam", "sue"} {
		env.user(t, name) // here, not in a subtest that could fail on the parent
	}

	t.Run("two approvals needed, the same approver counts once", func(t *testing.T) {
		sam, sue := env.user(t, "sam"), env.user(t, "sue")
		id := env.request(t, bob, "breakglass", "INC-9 primary down", "10m")
		env.approve(t, sam, id, "PENDING")
		r := env.cli(t, sam, "approve", id)
		if r.ExitCode != 1 || !strings.Contains(r.Stderr, "you already reviewed request "+id) {
			t.Fatalf("second approval by sam: want exit 1 and `already reviewed`, got %s", r)
		}
		if got := env.state(t, bob, id); got != "PENDING" {
			t.Fatalf("after sam approved twice: want PENDING, got %s", got)
		}
		// alice reviews dba, not breakglass.
		if r := env.cli(t, alice, "approve", id); r.ExitCode != 1 || !strings.Contains(r.Stderr, "no request "+id+" that you may review") {
			t.Fatalf("alice may not review breakglass: want exit 1, got %s", r)
		}
		refusedJump(t, bob, "root@db-1")
		env.approve(t, sue, id, "APPROVED")
		show := bob.Bastion("requests", id).Stdout
		if n := strings.Count(show, "review: "); n != 2 {
			t.Errorf("want exactly 2 reviews recorded (sam, sue), got %d:\n%s", n, show)
		}
		allowedJump(t, bob, "root@db-1", "root")
		if r := bob.Bastion("drop", id); r.ExitCode != 0 {
			t.Fatalf("drop %s: %s", id, r)
		}
	})

	t.Run("deny", func(t *testing.T) {
		id := env.request(t, bob, "dba", "INC-10 want to look around", "10m")
		r := env.cli(t, alice, "deny", id, "--reason", "use the replica")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "denied request "+id) || !strings.Contains(r.Stdout, "DENIED") {
			t.Fatalf("alice denies: want exit 0 and DENIED, got %s", r)
		}
		if got := env.state(t, bob, id); got != "DENIED" {
			t.Fatalf("want DENIED, got %s", got)
		}
		if out := bob.Bastion("requests", id).Stdout; !strings.Contains(out, "use the replica") {
			t.Errorf("bob should see why he was denied:\n%s", out)
		}
		refusedJump(t, bob, "root@db-1")
		if r := env.cli(t, env.user(t, "ann"), "approve", id); r.ExitCode != 1 || !strings.Contains(r.Stderr, "already denied") {
			t.Fatalf("approving a denied request: want exit 1 and `already denied`, got %s", r)
		}
		refusedJump(t, bob, "root@db-1")
		m := env.webhook.waitWebhook(t, id, "denied")
		if m.Actor != "alice" || m.Request.State != "DENIED" {
			t.Errorf("webhook denied message: want alice and DENIED, got %+v", m)
		}
	})

	t.Run("wait for the decision", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := env.cliCommand(ctx, t, bob, "create", "--roles", "dba", "--reason", "INC-11 vacuum", "--duration", "5m", "--wait")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var id string
		var all []string
		for id == "" {
			select {
			case l, ok := <-lines:
				if !ok {
					_ = cmd.Wait()
					t.Fatalf("request --wait ended before printing an id: %q, stderr %s", all, stderr.String())
				}
				all = append(all, l)
				if m := idLine.FindStringSubmatch(l); m != nil {
					id = m[1]
				}
			case <-ctx.Done():
				t.Fatalf("request --wait printed no id: %q", all)
			}
		}
		env.approve(t, alice, id, "APPROVED")
		for l := range lines {
			all = append(all, l)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("request --wait: want exit 0 after approval, got %v; stdout %q stderr %s", err, all, stderr.String())
		}
		want := "request " + id + " APPROVED: dba granted until "
		if !strings.Contains(strings.Join(all, "\n"), want) {
			t.Fatalf("request --wait output should contain %q, got %q", want, all)
		}
		allowedJump(t, bob, "root@db-1", "root")
		if r := bob.Bastion("drop", id); r.ExitCode != 0 || !strings.Contains(r.Stdout, "REVOKED") {
			t.Fatalf("drop %s: %s", id, r)
		}
		refusedJump(t, bob, "root@db-1")
	})

	t.Run("who sees which request", func(t *testing.T) {
		id := env.request(t, bob, "dba", "INC-16 visibility", "10m")
		carol, sam := env.user(t, "carol"), env.user(t, "sam")
		listed := func(u *e2e.User) bool {
			t.Helper()
			r := env.cli(t, u, "ls")
			if r.ExitCode != 0 {
				t.Fatalf("request ls as %s: %s", u.Name, r)
			}
			for _, l := range strings.Split(r.Stdout, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == id {
					return true
				}
			}
			return false
		}
		for _, tc := range []struct {
			u    *e2e.User
			want bool
		}{{bob, true}, {alice, true}, {carol, false}, {sam, false}} {
			if got := listed(tc.u); got != tc.want {
				t.Errorf("request ls as %s lists %s (id first): %v, want %v", tc.u.Name, id, got, tc.want)
			}
		}
		if r := env.cli(t, alice, "show", id); r.ExitCode != 0 || !strings.Contains(r.Stdout, "reason: INC-16 visibility") {
			t.Errorf("alice, who reviews dba, should see the request: %s", r)
		}
		if r := env.cli(t, carol, "show", id); r.ExitCode != 1 || strings.Contains(r.Stdout+r.Stderr, "INC-16") {
			t.Errorf("carol should not see bob's request: %s", r)
		}
		if r := bob.Bastion("cancel", id); r.ExitCode != 0 {
			t.Fatalf("cancel %s: %s", id, r)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		id := env.request(t, bob, "dba", "INC-12 never mind", "10m")
		r := env.cli(t, bob, "cancel", id)
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "CANCELLED") {
			t.Fatalf("bob cancels: want exit 0 and CANCELLED, got %s", r)
		}
		if got := env.state(t, bob, id); got != "CANCELLED" {
			t.Fatalf("want CANCELLED, got %s", got)
		}
		if r := env.cli(t, alice, "approve", id); r.ExitCode != 1 || !strings.Contains(r.Stderr, "already cancelled") {
			t.Fatalf("approving a cancelled request: want exit 1 and `already cancelled`, got %s", r)
		}
		refusedJump(t, bob, "root@db-1")
		env.webhook.waitWebhook(t, id, "cancelled")
	})
}

// TestAccessDropEndsSessions: dropping a grant closes the sessions that
// needed it, and only those: bob's dev session on web-1 stays open.
func TestAccessDropEndsSessions(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	id := env.request(t, bob, "dba", "INC-13 reindex", "10m")
	env.approve(t, alice, id, "APPROVED")
	db := openShell(t, bob, "root@db-1")
	web := openShell(t, bob, "ubuntu@web-1")

	r := bob.Bastion("drop", id)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "request "+id+" is now REVOKED") {
		t.Fatalf("bob drops his grant: want exit 0 and REVOKED, got %s", r)
	}
	closedWithNotice(t, db, regexp.MustCompile(`gatehouse: access via request `+regexp.QuoteMeta(id)+` ended at \d\d:\d\d`), 30*time.Second)
	refusedJump(t, bob, "root@db-1")
	m := env.webhook.waitWebhook(t, id, "revoked")
	if m.Request.State != "REVOKED" {
		t.Errorf("webhook revoked message: want REVOKED, got %+v", m)
	}

	// The proxy's once-a-second re-check is the safety net that could
	// still close web-1 wrongly: give it several rounds, then check.
	time.Sleep(3 * time.Second)
	stillAlive(t, web, "WEB")
	if strings.Contains(web.Output(), "gatehouse:") {
		t.Fatalf("the dev session got a gatehouse notice: %q", web.Output())
	}
	web.Send("exit 0\n")
	if code := web.Wait(30 * time.Second); code != 0 {
		t.Fatalf("web-1 session: want a normal exit 0, got %d", code)
	}
}

// TestAccessExpiryKeepsOtherSessions: a grant that runs out closes the
// session on db-1 it allowed, while the session on web-1 that bob's own
// dev role allows stays open.
func TestAccessExpiryKeepsOtherSessions(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	web := openShell(t, bob, "ubuntu@web-1")
	id := env.request(t, bob, "dba", "INC-14 quick check", "20s")
	env.approve(t, alice, id, "APPROVED")
	db := openShell(t, bob, "root@db-1")
	grantEnd := *env.webhook.waitWebhook(t, id, "approved").Request.GrantEnd
	if !time.Now().Before(grantEnd) {
		t.Fatalf("the 20s grant ended before the test got this far; the machine is too slow for this test")
	}
	closedWithNotice(t, db, regexp.MustCompile(`gatehouse: access via request `+regexp.QuoteMeta(id)+` ended at`), time.Until(grantEnd)+60*time.Second)

	time.Sleep(3 * time.Second) // several rounds of the proxy's re-check
	stillAlive(t, web, "WEB")
	if strings.Contains(web.Output(), "gatehouse:") {
		t.Fatalf("the dev session got a gatehouse notice: %q", web.Output())
	}
	allowedJump(t, bob, "ubuntu@web-1", "ubuntu")
	refusedJump(t, bob, "root@db-1")
}
