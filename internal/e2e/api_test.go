package e2e_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
)

// apiRoles: the access roles plus a chat plugin (review_on_behalf), a bot
// that reviews nothing and has no plugin right, and a watcher.
const apiRoles = accessRoles + `
  - name: chat-plugin
    allow:
      review_on_behalf: true
  - name: reader
    allow:
      audit: [read]
`

var tokenLine = regexp.MustCompile(`(?m)^token: (ghbot_[A-Za-z0-9_-]{43})$`)

// addBot runs `gatehouse bot add` and returns the token it printed.
func addBot(t *testing.T, gh *e2e.Gatehouse, name, roles string, extra ...string) string {
	t.Helper()
	r := gh.MustRun(append([]string{"bot", "add", "--name", name, "--roles", roles}, extra...)...)
	m := tokenLine.FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("bot add printed no `token: TOKEN` line: %s", r)
	}
	return m[1]
}

// curl runs the real curl against the bastion's API and returns the HTTP
// status and body.
func curl(t *testing.T, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	body, code, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if i := strings.LastIndexByte(strings.TrimSpace(string(out)), '\n'); i >= 0 {
		s := strings.TrimSpace(string(out))
		body, code = s[:i], s[i+1:]
	}
	return code, body
}

func oneLineError(t *testing.T, body string) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e) != 1 || e["error"] == "" || strings.Contains(e["error"], "\n") {
		t.Fatalf("refusal %q is not {\"error\": \"one line\"}", body)
	}
	return e["error"]
}

// TestWorkflowAPIOnBehalf: bob asks over ssh; a chat plugin's bot approves
// through the API on behalf of alice; bob's very next connection works; the
// audit log names alice as reviewer via the bot. The refusals on the way:
// a bot without review_on_behalf, on behalf of the requester himself, a
// removed bot's token, an expired token.
func TestWorkflowAPIOnBehalf(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, apiRoles, nil)
	gh := env.gh
	bob := env.user(t, "bob")
	chat := addBot(t, gh, "chat", "chat-plugin")
	plain := addBot(t, gh, "plain", "reader")
	expired := addBot(t, gh, "brief", "reader", "--ttl", "1ms")
	if ls := gh.MustRun("bot", "ls").Stdout; !strings.Contains(ls, "bot:chat") || !strings.Contains(ls, "chat-plugin") || strings.Contains(ls, chat) {
		t.Fatalf("bot ls: %q (must list bot:chat with its roles, never the token)", ls)
	}

	// A watcher on the stream before anything happens.
	api, err := apiclient.New(gh.WebURL, apiclient.WithToken(chat))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	events := make(chan apiclient.Event, 16)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- api.Watch(ctx, 0, func(ev apiclient.Event) error { events <- ev; return nil })
	}()

	refusedJump(t, bob, "root@db-1")
	id := env.request(t, bob, "dba", "INC-7 replica lag", "10m")

	url := gh.WebURL + "/api/requests/" + id
	auth := "Authorization: Bearer "
	code, body := curl(t, "-H", auth+chat, gh.WebURL+"/api/requests?scope=all&state=pending&role=dba")
	if code != "200" || !strings.Contains(body, id) {
		t.Fatalf("GET /api/requests as the plugin: %s %s", code, body)
	}

	refusals := []struct {
		name, token, body, status, msg string
	}{
		{"a bot without review_on_behalf", plain, `{"on_behalf_of": "alice"}`, "403", "bot:plain may not review on behalf of others"},
		{"on behalf of the requester", chat, `{"on_behalf_of": "bob"}`, "403", "bob cannot review their own request"},
		{"on behalf of someone who may not review", chat, `{"on_behalf_of": "carol"}`, "403", "carol may not review"},
		{"an expired token", expired, `{"on_behalf_of": "alice"}`, "401", "not valid"},
		{"no token", "", `{"on_behalf_of": "alice"}`, "401", "Bearer"},
	}
	for _, tc := range refusals {
		args := []string{"-X", "POST", "-H", "Content-Type: application/json", "-d", tc.body, url + "/approve"}
		if tc.token != "" {
			args = append([]string{"-H", auth + tc.token}, args...)
		}
		code, body := curl(t, args...)
		if code != tc.status || !strings.Contains(oneLineError(t, body), tc.msg) {
			t.Errorf("%s: %s %s, want %s with %q", tc.name, code, body, tc.status, tc.msg)
		}
	}
	if st := env.state(t, bob, id); st != "PENDING" {
		t.Fatalf("after refusals the request is %s", st)
	}

	// The plugin relays alice's approval.
	code, body = curl(t, "-X", "POST", "-H", auth+chat, "-H", "Content-Type: application/json",
		"-d", `{"reason": "go ahead", "on_behalf_of": "alice"}`, url+"/approve")
	if code != "200" || !strings.Contains(body, `"APPROVED"`) || !strings.Contains(body, `"via": "bot:chat"`) {
		t.Fatalf("approve on behalf of alice: %s %s", code, body)
	}
	allowedJump(t, bob, "root@db-1", "root") // bob's very next connection

	// The audit log names alice as the reviewer and the bot it came through.
	r := gh.MustRun("audit", "ls", "--type", "request.approve", "--json")
	var ev struct {
		Actor, Target string
		Fields        map[string]any
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &ev); err != nil {
		t.Fatalf("audit ls --json: %v\n%s", err, r.Stdout)
	}
	if ev.Actor != "alice" || ev.Target != id || ev.Fields["via"] != "bot:chat" {
		t.Fatalf("request.approve event %+v, want actor alice, via bot:chat", ev)
	}
	if out := gh.MustRun("audit", "ls", "--type", "bot.add").Stdout; !strings.Contains(out, "bot:chat") {
		t.Fatalf("no bot.add event for bot:chat: %q", out)
	}

	// The watcher saw created, reviewed and approved, in order.
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-events:
			if ev.RequestID == id {
				got = append(got, ev.Event+" "+ev.Actor+" "+ev.Via)
			}
		case <-ctx.Done():
			t.Fatalf("watch saw only %q", got)
		}
	}
	if want := []string{"created bob ", "reviewed alice bot:chat", "approved alice bot:chat"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("watch events %q, want %q", got, want)
	}

	// bot rm: the token fails at once, and the open watch ends with the refusal.
	gh.MustRun("bot", "rm", "--name", "chat")
	code, body = curl(t, "-H", auth+chat, gh.WebURL+"/api/me")
	if code != "401" || !strings.Contains(oneLineError(t, body), "not valid") {
		t.Fatalf("removed bot's token: %s %s, want 401", code, body)
	}
	select {
	case err := <-watchDone:
		var apiErr *apiclient.Error
		if !asAPIError(err, &apiErr) || apiErr.Status != 401 {
			t.Fatalf("watch of the removed bot ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("watch of the removed bot never ended")
	}
	if out := gh.MustRun("audit", "ls", "--type", "bot.rm").Stdout; !strings.Contains(out, "bot:chat") {
		t.Fatalf("no bot.rm event for bot:chat: %q", out)
	}
}

func asAPIError(err error, target **apiclient.Error) bool {
	e, ok := err.(*apiclient.Error)
	if ok {
		*target = e
	}
	return ok
}

// TestWorkflowAPIWatchAcrossBastions: on an HA pair, a watch on bastion-2
// sees a request created over ssh on bastion-1 and its approval through
// bastion-1's API; the event ids come from the shared audit chain; a bot
// removed through bastion-1 is refused on bastion-2 at once.
func TestWorkflowAPIWatchAcrossBastions(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "root")
	cluster := pgtest.StartCluster(t)
	gh1, gh2, _ := startHA(t, cluster.NewDatabase(t))
	// A bot added through bastion-2's config works on bastion-1: one store.
	tok := addBot(t, gh2, "approver-bot", "approver")
	bob := e2e.NewUser(t, gh1, "bob", time.Hour)

	api2, _ := apiclient.New(gh2.WebURL, apiclient.WithToken(tok))
	api1, _ := apiclient.New(gh1.WebURL, apiclient.WithToken(tok))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	events := make(chan apiclient.Event, 16)
	go func() {
		_ = api2.Watch(ctx, 0, func(ev apiclient.Event) error { events <- ev; return nil })
	}()

	id := requestID(t, bob.Bastion("request", "dba", "--reason", "INC-9", "--duration", "10m"))
	next := func() apiclient.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-ctx.Done():
			t.Fatal("bastion-2's watch saw nothing")
		}
		panic("unreachable")
	}
	if ev := next(); ev.Event != "created" || ev.RequestID != id || ev.Actor != "bob" {
		t.Fatalf("first event on bastion-2: %+v", ev)
	}
	if _, err := api1.Approve(ctx, id, apiclient.ReviewOptions{Reason: "auto"}); err != nil {
		t.Fatalf("the bot approves through bastion-1: %v", err)
	}
	reviewed, approved := next(), next()
	if reviewed.Event != "reviewed" || approved.Event != "approved" || approved.Actor != "bot:approver-bot" ||
		approved.Request.State != "APPROVED" || approved.ID <= reviewed.ID {
		t.Fatalf("on bastion-2 after the approval: %+v then %+v", reviewed, approved)
	}
	allowedJump(t, bob, "root@db-1", "root")

	// bot rm through bastion-1: the very next call on bastion-2 is refused,
	// since every use of a token is checked against the shared store.
	gh1.MustRun("bot", "rm", "--name", "approver-bot")
	_, err := api2.Request(ctx, id)
	var apiErr *apiclient.Error
	if !asAPIError(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("the removed bot's token on bastion-2: %v, want 401", err)
	}
}
