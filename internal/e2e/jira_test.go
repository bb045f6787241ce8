package e2e_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/plugins/jira/jiratest"
)

const jiraRoles = accessRoles + `
  - name: jira-plugin
    allow:
      review_on_behalf: true
`

// TestJiraPlugin: the real `gatehouse plugin jira` between the real bastion
// and a Jira REST stand-in. bob's request made over ssh opens an issue with
// bob as reporter; carol (no reviewer) moving it to Approved is reverted with
// the bastion's refusal; alice's move approves it on her behalf, so bob's
// very next connection works and the audit log names alice via bot:jira; a
// request denied over ssh moves its issue to Denied; a request made while
// the plugin is down gets its issue when the plugin comes back
// (Last-Event-ID from the state file).
func TestJiraPlugin(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, jiraRoles, nil)
	gh := env.gh
	bob, alice := env.user(t, "bob"), env.user(t, "alice")
	jr, listen, cfgPath := jiraSetup(t, gh)
	plugin := e2e.StartJiraPlugin(t, gh, cfgPath, listen)

	delivery := 0
	webhook := func(body []byte) {
		t.Helper()
		delivery++
		m := hmac.New(sha256.New, []byte("hmac-secret"))
		m.Write(body)
		req, _ := http.NewRequest("POST", "http://"+listen+"/jira/webhook?secret=url-secret", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
		req.Header.Set("X-Atlassian-Webhook-Identifier", fmt.Sprintf("delivery-%d", delivery))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST webhook: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("POST webhook: %s, want 204", res.Status)
		}
	}
	// issueFor waits until the stand-in holds an issue for request id.
	issueFor := func(id string) *jiratest.Issue {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			for _, is := range jr.Issues() {
				if strings.Contains(is.Summary, id) {
					return jr.Issue(is.Key)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no Jira issue for request %s; issues: %+v", id, jr.Issues())
		return nil
	}
	waitStatus := func(key, status string) *jiratest.Issue {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if is := jr.Issue(key); is.Status == status {
				return is
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("issue %s never reached %s: %+v", key, status, jr.Issue(key))
		return nil
	}

	refusedJump(t, bob, "root@db-1")
	id := env.request(t, bob, "dba", "INC-7 replica lag", "10m")
	is := issueFor(id)
	if is.Reporter.AccountID != "a-bob" || !strings.Contains(is.Description, gh.WebURL+"/requests/"+id) ||
		!strings.Contains(is.Description, "INC-7 replica lag") || !strings.Contains(is.Summary, "dba") {
		t.Fatalf("issue for %s: %+v", id, is)
	}

	// carol may not review: her move is reverted, with the bastion's refusal.
	webhook(jr.Move(is.Key, "Approved", "carol@example.com"))
	is = jr.Issue(is.Key)
	last := is.Comments[len(is.Comments)-1]
	if is.Status != "Open" || last.Author.AccountID != jr.Bot.AccountID ||
		!strings.HasPrefix(last.Body, "Gatehouse reverted this change: carol may not review") {
		t.Fatalf("after carol's move: status %s, last comment %+v", is.Status, last)
	}
	if st := env.state(t, bob, id); st != "PENDING" {
		t.Fatalf("after carol's move the request is %s", st)
	}

	// alice gives a reason and moves it: the plugin approves on her behalf.
	jr.Comment(is.Key, "alice@example.com", "Reason: INC-7 confirmed")
	webhook(jr.Move(is.Key, "Approved", "alice@example.com"))
	allowedJump(t, bob, "root@db-1", "root") // bob's very next connection
	r := gh.MustRun("audit", "ls", "--type", "request.approve", "--json")
	var ev struct {
		Actor, Target string
		Fields        map[string]any
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &ev); err != nil {
		t.Fatalf("audit ls --json: %v\n%s", err, r.Stdout)
	}
	if ev.Actor != "alice" || ev.Target != id || ev.Fields["via"] != "bot:jira" {
		t.Fatalf("request.approve event %+v, want actor alice via bot:jira", ev)
	}
	if show := bob.Bastion("requests", id); !strings.Contains(show.Stdout, "INC-7 confirmed") {
		t.Errorf("alice's Reason: comment is not the review's reason:\n%s", show.Stdout)
	}
	// The approved event reaches the issue as a comment; it stays Approved.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(lastComment(jr.Issue(is.Key)), "approved by alice via bot:jira") {
		if time.Now().After(deadline) {
			t.Fatalf("no approval comment on %s: %+v", is.Key, jr.Issue(is.Key).Comments)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := jr.Issue(is.Key).Status; st != "Approved" {
		t.Fatalf("approved request's issue is %s", st)
	}

	// Decided elsewhere: alice denies over ssh; the issue follows.
	id2 := env.request(t, bob, "dba", "INC-8 more", "10m")
	is2 := issueFor(id2)
	if r := alice.Bastion("deny", id2, "--reason", "use the replica"); r.ExitCode != 0 {
		t.Fatalf("alice denies over ssh: %s", r)
	}
	is2 = waitStatus(is2.Key, "Denied")
	if !strings.Contains(lastComment(is2), "denied by alice") || !strings.Contains(lastComment(is2), "use the replica") {
		t.Fatalf("denied issue's comments: %+v", is2.Comments)
	}

	// A request made while the plugin is down gets its issue on restart.
	plugin.Stop(t)
	id3 := env.request(t, bob, "dba", "INC-9 while the plugin sleeps", "10m")
	e2e.StartJiraPlugin(t, gh, cfgPath, listen)
	issueFor(id3)
	if n := len(jr.Issues()); n != 3 {
		t.Fatalf("after the restart there are %d issues, want 3 (no duplicates)", n)
	}
}

func lastComment(is *jiratest.Issue) string {
	if len(is.Comments) == 0 {
		return ""
	}
	return is.Comments[len(is.Comments)-1].Body
}

// TestJiraPluginExpired: a request nobody reviews expires on the bastion
// and its Jira issue moves to Expired.
func TestJiraPluginExpired(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccessRoles(t, jiraRoles, map[string]any{"requests": map[string]any{"pending_ttl": "3s"}})
	bob := env.user(t, "bob")
	jr, listen, cfgPath := jiraSetup(t, env.gh)
	e2e.StartJiraPlugin(t, env.gh, cfgPath, listen)
	id := env.request(t, bob, "dba", "INC-10 nobody looks", "10m")
	deadline := time.Now().Add(time.Minute)
	for {
		is := jr.Issues()
		if len(is) == 1 && strings.Contains(is[0].Summary, id) && is[0].Status == "Expired" {
			if !strings.Contains(lastComment(&is[0]), "expired") {
				t.Fatalf("expired issue's comments: %+v", is[0].Comments)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s: want one issue in Expired, have %+v", id, is)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jiraSetup starts the Jira stand-in (alice, bob, carol @example.com), adds
// bot:jira and writes jira.yaml; it returns the stand-in, the plugin's
// listen address and the config path.
func jiraSetup(t *testing.T, gh *e2e.Gatehouse) (*jiratest.Server, string, string) {
	t.Helper()
	token := addBot(t, gh, "jira", "jira-plugin")
	jr := jiratest.New("SEC", []string{"Open", "Approved", "Denied", "Expired"},
		jiratest.User{AccountID: "a-alice", EmailAddress: "alice@example.com", DisplayName: "Alice"},
		jiratest.User{AccountID: "a-bob", EmailAddress: "bob@example.com", DisplayName: "Bob"},
		jiratest.User{AccountID: "a-carol", EmailAddress: "carol@example.com", DisplayName: "Carol"})
	t.Cleanup(jr.Close)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "bot-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	cfgPath := filepath.Join(dir, "jira.yaml")
	cfg := fmt.Sprintf(`listen: %s
state_file: %s
gatehouse:
  url: %s
  token_file: %s
jira:
  url: %s
  email: %s
  api_token: %s
  project: SEC
  issue_type: Task
webhook:
  secret: url-secret
  signing_secret: hmac-secret
users:
  match: local_part
  domain: example.com
`, listen, filepath.Join(dir, "state.json"), gh.WebURL, tokenFile, jr.URL, jr.Bot.EmailAddress, jr.Token)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return jr, listen, cfgPath
}
