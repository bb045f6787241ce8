package e2e_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/slacktest"
)

// TestSlackPlugin: `gatehouse plugin slack` against the real bastion and a
// Slack Web API stand-in (no real Slack runs here). Bob's request made over
// ssh is posted to the channel; carol's click is refused in Slack; alice
// clicks Approve (a signed interaction, as Slack sends it); bob's very next
// connection works; the audit log names alice as reviewer via bot:slack; the
// message was updated and bob told; breakglass asks reviewers for a reason,
// so carol's click there is refused at once, without a modal, and sam's
// click opens a modal and his typed reason goes with his approval;
// a plugin restarted mid-stream posts the request made while it was down.
func TestSlackPlugin(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, slackRoles, nil)
	gh := env.gh
	bob := env.user(t, "bob")
	token := addBot(t, gh, "slack", "chat-plugin")

	sl := slacktest.New("xoxb-e2e",
		slacktest.User{ID: "UALICE", Name: "alice", RealName: "Alice Example", Email: "alice@example.com"},
		slacktest.User{ID: "UBOB", Name: "bob", RealName: "Bob Example", Email: "bob@example.com"},
		slacktest.User{ID: "UCAROL", Name: "carol", RealName: "Carol Example", Email: "carol@example.com"},
		slacktest.User{ID: "USAM", Name: "sam", RealName: "Sam Security", Email: "sam@example.com"},
	)
	t.Cleanup(sl.Close)
	dir := t.TempDir()
	const secret = "e2e-signing-secret"
	secretFile := filepath.Join(dir, "signing_secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	cfgPath := filepath.Join(dir, "slack.yaml")
	cfg := fmt.Sprintf(`gatehouse_url: %s
bot_token: %s
slack_bot_token: xoxb-e2e
signing_secret_file: %s
channel: CREQ
listen: %s
slack_api_url: %s
state_file: %s
user_from_email: local_part
email_domain: example.com
`, gh.WebURL, token, secretFile, listen, sl.APIURL(), filepath.Join(dir, "state.json"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	plugin := gh.StartPlugin(t, "slack", cfgPath, listen)
	interactions := "http://" + listen + "/slack/interactions"

	refusedJump(t, bob, "root@db-1")
	id := env.request(t, bob, "dba", "INC-9 disk full", "10m")
	post := waitPosted(t, sl, id)
	ts := post.TS

	click := func(user, action, trigger string) {
		t.Helper()
		c := slacktest.Click{UserID: user, ActionID: action, Value: id, Channel: "CREQ", MessageTS: ts, TriggerID: trigger}
		code, err := slacktest.Post(http.DefaultClient, interactions, secret, time.Now().Unix(), c.Body())
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s clicks %s: %d %v", user, action, code, err)
		}
	}
	// Carol may not review dba: a one-line ephemeral refusal, nothing changes.
	click("UCAROL", "gatehouse_approve", "e2e-carol")
	calls, ok := sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool { return countCalls(cs, "chat.postEphemeral") > 0 })
	if !ok {
		t.Fatalf("no ephemeral refusal for carol; calls: %v", calls)
	}
	eph := lastCall(calls, "chat.postEphemeral")
	if eph.Form.Get("user") != "UCAROL" || !strings.HasPrefix(eph.Form.Get("text"), "Gatehouse: carol may not review") || strings.Contains(eph.Form.Get("text"), "\n") {
		t.Fatalf("ephemeral refusal %v", eph.Form)
	}
	if st := env.state(t, bob, id); st != "PENDING" {
		t.Fatalf("after carol's click the request is %s", st)
	}

	// A forged click (wrong secret) is refused before anything happens.
	forged := slacktest.Click{UserID: "UALICE", ActionID: "gatehouse_approve", Value: id, Channel: "CREQ", MessageTS: ts, TriggerID: "e2e-forged"}
	if code, err := slacktest.Post(http.DefaultClient, interactions, "not-the-secret", time.Now().Unix(), forged.Body()); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("forged click: %d %v, want 401", code, err)
	}
	if st := env.state(t, bob, id); st != "PENDING" {
		t.Fatalf("after a forged click the request is %s", st)
	}

	// Alice approves in Slack.
	click("UALICE", "gatehouse_approve", "e2e-alice")
	calls, ok = sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.update" && c.Form.Get("ts") == ts && strings.Contains(c.Form.Get("blocks"), "APPROVED") {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("the message was never updated to APPROVED; calls: %v", calls)
	}
	allowedJump(t, bob, "root@db-1", "root") // bob's very next connection

	r := gh.MustRun("audit", "ls", "--type", "request.approve", "--json")
	var ev struct {
		Actor, Target string
		Fields        map[string]any
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &ev); err != nil {
		t.Fatalf("audit ls --json: %v\n%s", err, r.Stdout)
	}
	if ev.Actor != "alice" || ev.Target != id || ev.Fields["via"] != "bot:slack" {
		t.Fatalf("request.approve event %+v, want actor alice via bot:slack", ev)
	}
	if rv := gh.MustRun("audit", "ls", "--type", "request.review", "--json").Stdout; !strings.Contains(rv, "approved in Slack by Alice Example") {
		t.Fatalf("review reason not recorded: %s", rv)
	}
	// Bob hears the outcome in a direct message.
	calls, ok = sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Form.Get("channel") == "UBOB" && strings.Contains(c.Form.Get("text"), "APPROVED") {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("bob got no direct message; calls: %v", calls)
	}

	// breakglass asks reviewers for a reason: sam's click opens a modal with
	// the click's trigger id and submits nothing; an empty reason keeps the
	// modal open; the reason he types goes with his approval.
	bg := env.request(t, bob, "breakglass", "INC-11 primary down", "10m")
	bgTS := waitPosted(t, sl, bg).TS
	// Carol may not review breakglass: she is told at the click, before any
	// modal asks her for a reason she could not use.
	ephBefore := len(sl.Calls("chat.postEphemeral"))
	cc := slacktest.Click{UserID: "UCAROL", ActionID: "gatehouse_approve", Value: bg, Channel: "CREQ", MessageTS: bgTS, TriggerID: "e2e-carol-bg"}
	if code, err := slacktest.Post(http.DefaultClient, interactions, secret, time.Now().Unix(), cc.Body()); err != nil || code != http.StatusOK {
		t.Fatalf("carol clicks Approve on breakglass: %d %v", code, err)
	}
	calls, ok = sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool { return countCalls(cs, "chat.postEphemeral") > ephBefore })
	if !ok {
		t.Fatalf("no ephemeral refusal for carol on breakglass; calls: %v", calls)
	}
	if eph := lastCall(calls, "chat.postEphemeral"); eph.Form.Get("user") != "UCAROL" || !strings.HasPrefix(eph.Form.Get("text"), "Gatehouse: carol may not review") {
		t.Fatalf("ephemeral refusal on breakglass %v", eph.Form)
	}
	if n := len(sl.Calls("views.open")); n != 0 {
		t.Fatalf("carol's refused click opened %d modal(s)", n)
	}
	c := slacktest.Click{UserID: "USAM", ActionID: "gatehouse_approve", Value: bg, Channel: "CREQ", MessageTS: bgTS, TriggerID: "e2e-sam"}
	if code, err := slacktest.Post(http.DefaultClient, interactions, secret, time.Now().Unix(), c.Body()); err != nil || code != http.StatusOK {
		t.Fatalf("sam clicks Approve: %d %v", code, err)
	}
	// The stand-in records the call before it has checked and kept the
	// view, so this waits for the view itself.
	var views []slacktest.View
	if !poll(time.Minute, func() bool { views = sl.Views(); return len(views) > 0 }) {
		t.Fatalf("no modal asked sam for a reason; views.open calls: %v", sl.Calls("views.open"))
	}
	if len(views) != 1 || views[0].TriggerID != "e2e-sam" || views[0].Title != "Approve request" {
		t.Fatalf("views opened: %+v", views)
	}
	if st := env.state(t, bob, bg); st != "PENDING" {
		t.Fatalf("after the click alone the request is %s", st)
	}
	submit := func(reason string) (int, string) {
		t.Helper()
		sub := slacktest.Submission{UserID: "USAM", View: views[0], Values: map[string]map[string]string{"reason": {"reason": reason}}}
		code, body, err := slacktest.Send(http.DefaultClient, interactions, secret, time.Now().Unix(), sub.Body())
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	if code, body := submit(" "); code != http.StatusOK || !strings.Contains(body, `"response_action":"errors"`) {
		t.Fatalf("empty reason: %d %s, want the modal kept open with an error", code, body)
	}
	if code, body := submit("failover drill INC-11 checked"); code != http.StatusOK || body != "" {
		t.Fatalf("submission: %d %q", code, body)
	}
	calls, ok = sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.update" && c.Form.Get("ts") == bgTS && strings.Contains(c.Form.Get("blocks"), "APPROVED") {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("the breakglass message was never updated to APPROVED; calls: %v", calls)
	}
	ev2 := waitAudit(t, gh, "request.review", "sam's review", func(ev auditLine) bool { return ev.Target == bg })
	if ev2.Actor != "sam" || ev2.Fields["via"] != "bot:slack" || ev2.Fields["reason"] != "failover drill INC-11 checked" {
		t.Fatalf("request.review %+v: want sam via bot:slack with his reason", ev2)
	}

	// Restarted mid-stream: the request made while the plugin was down is
	// posted when it comes back; the first one is not posted again.
	plugin.Stop(t)
	id2 := env.request(t, bob, "dba", "INC-10 while the plugin is down", "10m")
	gh.StartPlugin(t, "slack", cfgPath, listen)
	waitPosted(t, sl, id2)
	n := 0
	for _, c := range sl.Calls("chat.postMessage") {
		if c.Form.Get("channel") == "CREQ" && strings.Contains(c.Form.Get("blocks"), `"value":"`+id+`"`) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("request %s posted %d times, want once", id, n)
	}
}

// slackRoles: apiRoles where breakglass asks its reviewers for a reason and
// one approval (sam's) decides it.
var slackRoles = strings.Replace(strings.Replace(apiRoles, `  - name: breakglass
    allow:`, `  - name: breakglass
    options: {review_reason_required: true}
    allow:`, 1), "review_requests: {roles: [breakglass], approvals: 2}", "review_requests: {roles: [breakglass], approvals: 1}", 1)

// waitPosted waits for the channel post of request id with its buttons.
func waitPosted(t *testing.T, sl *slacktest.Server, id string) slacktest.Call {
	t.Helper()
	var found slacktest.Call
	calls, ok := sl.WaitFor(time.Minute, func(cs []slacktest.Call) bool {
		for _, c := range cs {
			b := c.Form.Get("blocks")
			if c.Method == "chat.postMessage" && c.Form.Get("channel") == "CREQ" && strings.Contains(b, `"value":"`+id+`"`) && strings.Contains(b, "gatehouse_approve") {
				found = c
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("request %s never posted to the channel; calls: %v", id, calls)
	}
	return found
}

func countCalls(cs []slacktest.Call, method string) int {
	n := 0
	for _, c := range cs {
		if c.Method == method {
			n++
		}
	}
	return n
}

func lastCall(cs []slacktest.Call, method string) slacktest.Call {
	var last slacktest.Call
	for _, c := range cs {
		if c.Method == method {
			last = c
		}
	}
	return last
}
