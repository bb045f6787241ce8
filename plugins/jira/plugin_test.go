package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/plugins/jira/jiratest"
)

func TestCheckSignature(t *testing.T) {
	body := []byte(`{"webhookEvent":"jira:issue_updated","issue":{"key":"SEC-1"}}`)
	secret := "It's a Secret to Everybody"
	// openssl dgst -sha256 -hmac SECRET of the body above.
	good := "sha256=bf72cfeffe445a4a4c4baf470fb9f742ff243960c5fe0ba32cbd65108c6963b1"
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		want                 bool
	}{
		{"openssl vector", secret, good, body, true},
		{"other body", secret, good, append(body, ' '), false},
		{"other secret", "x", good, body, false},
		{"no prefix", secret, strings.TrimPrefix(good, "sha256="), body, false},
		{"sha1", secret, "sha1=" + strings.TrimPrefix(good, "sha256="), body, false},
		{"not hex", secret, "sha256=zz", body, false},
		{"empty header", secret, "", body, false},
		{"empty secret", "", good, body, false},
	} {
		if got := checkSignature(tc.secret, tc.body, tc.header); got != tc.want {
			t.Errorf("%s: checkSignature = %v, want %v", tc.name, got, tc.want)
		}
	}
	if checkSecret("", "") || checkSecret("s", "") || checkSecret("s", "t") || !checkSecret("s3cret", "s3cret") {
		t.Error("checkSecret: only an equal, non-empty secret passes")
	}
}

func TestSeenSetForgetsOldest(t *testing.T) {
	s := newSeenSet(2)
	s.add("a")
	s.add("b")
	s.add("a") // no effect
	if !s.has("a") || !s.has("b") {
		t.Fatal("a and b must be seen")
	}
	s.add("c")
	if s.has("a") || !s.has("b") || !s.has("c") {
		t.Fatal("adding c to a full set of 2 must forget a, the oldest")
	}
}

func TestGatehouseUser(t *testing.T) {
	c := &Config{}
	c.Users.Match, c.Users.Domain = "local_part", "example.com"
	for email, want := range map[string]string{
		"alice@example.com": "alice", "Alice@EXAMPLE.com": "alice", "alice@evil.com": "", "": "", "alice": "", "@example.com": "",
	} {
		if got := c.gatehouseUser(email); got != want {
			t.Errorf("local_part: %q -> %q, want %q", email, got, want)
		}
	}
	if got := c.email("bob"); got != "bob@example.com" {
		t.Errorf("email(bob) = %q", got)
	}
	if got := c.email("bot:x"); got != "" {
		t.Errorf("email(bot:x) = %q, want none", got)
	}
	c.Users.Match = "email"
	if got := c.gatehouseUser("alice@evil.com"); got != "alice@evil.com" {
		t.Errorf("email mode: %q", got)
	}
}

// fakeBastion answers the few API routes the plugin uses, for one request
// that alice may review and carol may not.
type fakeBastion struct {
	mu       sync.Mutex
	req      apiclient.Request
	reviews  []string // "approve alice: reason"
	needMore bool     // an approval leaves the request pending
}

func (f *fakeBastion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer ghbot_test" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error": "bearer token not valid"}`)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/requests/"+f.req.ID)
	switch {
	case r.Method == "GET" && path == "":
		_ = json.NewEncoder(w).Encode(f.req)
	case r.Method == "POST" && (path == "/approve" || path == "/deny"):
		var in struct{ Reason, On_behalf_of string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.On_behalf_of != "alice" {
			w.WriteHeader(403)
			io.WriteString(w, `{"error": "`+in.On_behalf_of+` may not review requests for dba"}`)
			return
		}
		f.reviews = append(f.reviews, path[1:]+" "+in.On_behalf_of+": "+in.Reason)
		f.req.State = map[string]string{"/approve": "APPROVED", "/deny": "DENIED"}[path]
		if f.needMore && path == "/approve" {
			f.req.State = "PENDING"
		}
		_ = json.NewEncoder(w).Encode(f.req)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error": "not found"}`)
	}
}

type rig struct {
	jira *jiratest.Server
	gh   *fakeBastion
	p    *Plugin
	cfg  *Config
	hook http.Handler
}

func newRig(t testing.TB) *rig {
	t.Helper()
	jr := jiratest.New("SEC", []string{"Open", "Approved", "Denied", "Expired"},
		jiratest.User{AccountID: "a-alice", EmailAddress: "alice@example.com", DisplayName: "Alice"},
		jiratest.User{AccountID: "a-bob", EmailAddress: "bob@example.com", DisplayName: "Bob"},
		jiratest.User{AccountID: "a-carol", EmailAddress: "carol@example.com", DisplayName: "Carol"})
	t.Cleanup(jr.Close)
	fb := &fakeBastion{req: apiclient.Request{ID: "k3xq7d2m9a4fzp", User: "bob", Roles: []string{"dba"}, Reason: "INC-7 {noformat}lag",
		Duration: 90 * time.Minute, State: "PENDING", Expires: time.Now().Add(time.Hour)}}
	gs := httptest.NewServer(fb)
	t.Cleanup(gs.Close)
	cfg := &Config{}
	cfg.Gatehouse.URL, cfg.Gatehouse.Token = gs.URL, "ghbot_test"
	cfg.Jira.URL, cfg.Jira.Email, cfg.Jira.APIToken, cfg.Jira.Project = jr.URL, jr.Bot.EmailAddress, jr.Token, "SEC"
	cfg.Webhook.Secret, cfg.Webhook.SigningSecret = "url-secret", "hmac-secret"
	cfg.Users.Domain = "example.com"
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	api, _ := apiclient.New(gs.URL, apiclient.WithToken("ghbot_test"))
	p, err := New(cfg, api, NewClient(jr.URL, cfg.Jira.Email, cfg.Jira.APIToken), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{jira: jr, gh: fb, p: p, cfg: cfg, hook: p.Handler()}
}

func (r *rig) created(t *testing.T) string {
	t.Helper()
	if err := r.p.HandleEvent(context.Background(), apiclient.Event{ID: 7, Event: "created", RequestID: r.gh.req.ID, Actor: "bob", Request: r.gh.req}); err != nil {
		t.Fatal(err)
	}
	is := r.jira.Issues()
	if len(is) != 1 {
		t.Fatalf("want one issue, got %d", len(is))
	}
	return is[0].Key
}

// post delivers a webhook body; sign adds a valid X-Hub-Signature.
func (r *rig) post(body []byte, query, delivery string, sign bool) int {
	req := httptest.NewRequest("POST", "/jira/webhook"+query, bytes.NewReader(body))
	if sign {
		req.Header.Set("X-Hub-Signature", sign256(r.cfg.Webhook.SigningSecret, body))
	}
	if delivery != "" {
		req.Header.Set("X-Atlassian-Webhook-Identifier", delivery)
	}
	w := httptest.NewRecorder()
	r.hook.ServeHTTP(w, req)
	return w.Code
}

func TestOpensIssueWithReporterAndLink(t *testing.T) {
	r := newRig(t)
	key := r.created(t)
	is := r.jira.Issue(key)
	if is.Reporter.AccountID != "a-bob" || is.Project != "SEC" || is.IssueType != "Task" || is.Status != "Open" {
		t.Fatalf("issue %+v: want reporter bob, SEC Task, Open", is)
	}
	for _, want := range []string{"k3xq7d2m9a4fzp", "bob", "dba", "1h30m"} {
		if !strings.Contains(is.Summary, want) {
			t.Errorf("summary %q lacks %q", is.Summary, want)
		}
	}
	for _, want := range []string{"INC-7 lag", r.cfg.Gatehouse.URL + "/requests/k3xq7d2m9a4fzp", "*Roles:* dba", "*Duration:* 1h30m"} {
		if !strings.Contains(is.Description, want) {
			t.Errorf("description lacks %q:\n%s", want, is.Description)
		}
	}
	if strings.Count(is.Description, "{noformat}") != 2 {
		t.Errorf("the reason broke out of its {noformat} block:\n%s", is.Description)
	}
	// A restarted plugin knows the issue and the last event.
	st, err := loadState(r.cfg.StateFile)
	if err != nil || st.LastEventID != 7 || st.Issues["k3xq7d2m9a4fzp"] != key {
		t.Fatalf("state after the event: %+v, %v", st, err)
	}
	// The same event again (a replay) opens no second issue.
	if err := r.p.HandleEvent(context.Background(), apiclient.Event{ID: 7, Event: "created", RequestID: r.gh.req.ID, Request: r.gh.req}); err != nil || len(r.jira.Issues()) != 1 {
		t.Fatalf("replayed created event: %v, %d issues", err, len(r.jira.Issues()))
	}
}

func TestDecisionsElsewhereMoveTheIssue(t *testing.T) {
	for _, tc := range []struct{ event, status, comment string }{
		{"approved", "Approved", "approved by alice via bot:slack: fine"},
		{"denied", "Denied", "denied by alice via bot:slack: fine"},
		{"expired", "Expired", "expired without enough approvals"},
	} {
		r := newRig(t)
		key := r.created(t)
		ev := apiclient.Event{ID: 9, Event: tc.event, RequestID: r.gh.req.ID, Actor: "alice", Via: "bot:slack", Reason: "fine", Request: r.gh.req}
		if err := r.p.HandleEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		is := r.jira.Issue(key)
		if is.Status != tc.status || len(is.Comments) != 1 || !strings.Contains(is.Comments[0].Body, tc.comment) {
			t.Errorf("%s: issue in %s with comments %+v, want %s and %q", tc.event, is.Status, is.Comments, tc.status, tc.comment)
		}
		if h := is.Histories[len(is.Histories)-1]; h.Author.AccountID != r.jira.Bot.AccountID {
			t.Errorf("%s: the move is recorded as %+v, want the bot", tc.event, h.Author)
		}
	}
}

func TestWebhookApprovesOnBehalfOfTheMover(t *testing.T) {
	r := newRig(t)
	key := r.created(t)
	r.jira.Comment(key, "carol@example.com", "Reason: not mine to give")
	r.jira.Comment(key, "alice@example.com", "Reason: INC-7 is real")
	body := r.jira.Move(key, "Approved", "alice@example.com")
	// The secret and the signature are both needed.
	if c := r.post(body, "", "d1", true); c != 401 {
		t.Fatalf("no ?secret=: %d, want 401", c)
	}
	if c := r.post(body, "?secret=wrong", "d1", true); c != 401 {
		t.Fatalf("wrong secret: %d, want 401", c)
	}
	if c := r.post(body, "?secret=url-secret", "d1", false); c != 401 {
		t.Fatalf("no signature: %d, want 401", c)
	}
	if len(r.gh.reviews) != 0 {
		t.Fatalf("a refused webhook reviewed: %q", r.gh.reviews)
	}
	if c := r.post(body, "?secret=url-secret", "d1", true); c != 204 {
		t.Fatalf("good webhook: %d, want 204", c)
	}
	if got := strings.Join(r.gh.reviews, "|"); got != "approve alice: INC-7 is real" {
		t.Fatalf("reviews %q, want alice's approval with her Reason: comment", got)
	}
	// Jira's retry of the same delivery is ignored, even though the
	// request would still be looked at: the fake would record a second
	// review if the plugin acted.
	r.gh.mu.Lock()
	r.gh.req.State = "PENDING"
	r.gh.mu.Unlock()
	if c := r.post(body, "?secret=url-secret", "d1", true); c != 204 || len(r.gh.reviews) != 1 {
		t.Fatalf("duplicate delivery: %d, reviews %q", c, r.gh.reviews)
	}
}

func TestWebhookTrustsJiraNotTheBody(t *testing.T) {
	r := newRig(t)
	key := r.created(t)
	// carol moves it; the forged body says alice did.
	body := r.jira.Move(key, "Approved", "carol@example.com")
	forged := bytes.ReplaceAll(body, []byte("carol"), []byte("alice"))
	if c := r.post(forged, "?secret=url-secret", "d2", true); c != 204 {
		t.Fatalf("webhook: %d", c)
	}
	if len(r.gh.reviews) != 0 {
		t.Fatalf("the plugin trusted the body: %q", r.gh.reviews)
	}
	is := r.jira.Issue(key)
	last := is.Comments[len(is.Comments)-1].Body
	if is.Status != "Open" || last != "Gatehouse reverted this change: carol may not review requests for dba" {
		t.Fatalf("carol's move: issue %s, last comment %q; want it back in Open with the refusal", is.Status, last)
	}
	if h := is.Histories[len(is.Histories)-1]; h.Author.AccountID != r.jira.Bot.AccountID || h.Items[0].ToString != "Open" {
		t.Fatalf("the revert is %+v", h)
	}
}

func TestWebhookUnmappedAccountIsReverted(t *testing.T) {
	r := newRig(t)
	key := r.created(t)
	r.cfg.Users.Domain = "corp.example"
	body := r.jira.Move(key, "Denied", "alice@example.com")
	if c := r.post(body, "?secret=url-secret", "", true); c != 204 {
		t.Fatalf("webhook: %d", c)
	}
	is := r.jira.Issue(key)
	if len(r.gh.reviews) != 0 || is.Status != "Open" || !strings.Contains(is.Comments[len(is.Comments)-1].Body, "maps to no Gatehouse user") {
		t.Fatalf("unmapped mover: reviews %q, status %s, comments %+v", r.gh.reviews, is.Status, is.Comments)
	}
}

func TestLoadConfigFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jira.yaml")
	write := func(s string) {
		if err := writeFile(path, s); err != nil {
			t.Fatal(err)
		}
	}
	write("gatehouse: {url: http://127.0.0.1:1, token: t}\njira: {url: http://127.0.0.1:2, api_token: x, project: SEC}\n")
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "webhook.secret or webhook.signing_secret is required") {
		t.Fatalf("no webhook secret: %v", err)
	}
	write("gatehouse: {url: http://127.0.0.1:1, token: t}\njira: {url: http://127.0.0.1:2, api_token: x, project: SEC}\nwebhook: {secret: s}\nbogus: 1\n")
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	write("gatehouse: {url: http://127.0.0.1:1, token: t}\njira: {url: http://127.0.0.1:2, api_token: x, project: SEC}\nwebhook: {secret: s}\n")
	c, err := LoadConfig(path)
	if err != nil || c.Jira.Statuses.Approved != "Approved" || c.Users.Match != "local_part" {
		t.Fatalf("minimal config: %+v, %v", c, err)
	}
}

// On a first run the plugin replays the log from the start: settled
// requests from before it started get no issue, but a request created
// since gets one even if it was decided before the event arrived.
func TestFirstRunReplaySkipsSettledHistory(t *testing.T) {
	r := newRig(t)
	old := r.gh.req
	old.State = "APPROVED"
	ctx := context.Background()
	if err := r.p.HandleEvent(ctx, apiclient.Event{ID: 1, Event: "created", Time: r.p.replayBefore.Add(-time.Hour), RequestID: old.ID, Request: old}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.jira.Issues()); n != 0 {
		t.Fatalf("an old settled request got %d issues", n)
	}
	expired := old
	expired.ID, expired.State = "newandgone1234", "EXPIRED"
	if err := r.p.HandleEvent(ctx, apiclient.Event{ID: 2, Event: "created", Time: r.p.replayBefore.Add(time.Second), RequestID: expired.ID, Request: expired}); err != nil {
		t.Fatal(err)
	}
	if err := r.p.HandleEvent(ctx, apiclient.Event{ID: 3, Event: "expired", RequestID: expired.ID, Request: expired}); err != nil {
		t.Fatal(err)
	}
	is := r.jira.Issues()
	if len(is) != 1 || is[0].Status != "Expired" {
		t.Fatalf("a request created after the start: issues %+v, want one, Expired", is)
	}
}

// With two approvals needed, alice's move is recorded and the issue goes
// back to Open for the next reviewer. The secret may come as a header.
func TestWebhookMoreApprovalsNeeded(t *testing.T) {
	r := newRig(t)
	r.gh.needMore = true
	key := r.created(t)
	body := r.jira.Move(key, "Approved", "alice@example.com")
	req := httptest.NewRequest("POST", "/jira/webhook", bytes.NewReader(body))
	req.Header.Set("X-Gatehouse-Webhook-Secret", "url-secret")
	req.Header.Set("X-Hub-Signature", sign256("hmac-secret", body))
	w := httptest.NewRecorder()
	r.hook.ServeHTTP(w, req)
	if w.Code != 204 || len(r.gh.reviews) != 1 {
		t.Fatalf("webhook with the secret in a header: %d, reviews %q", w.Code, r.gh.reviews)
	}
	is := r.jira.Issue(key)
	if is.Status != "Open" || !strings.Contains(lastBody(is), "alice's review is recorded") {
		t.Fatalf("after one of two approvals: %s, %q", is.Status, lastBody(is))
	}
}

func lastBody(is *jiratest.Issue) string { return is.Comments[len(is.Comments)-1].Body }

// Without jira.email the token is a bearer token (Data Center personal
// access token); with it, basic auth (Cloud API token).
func TestClientAuth(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		io.WriteString(w, `[]`)
	}))
	defer srv.Close()
	ctx := context.Background()
	if _, err := NewClient(srv.URL, "", "pat-123").FindUser(ctx, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(srv.URL, "bot@example.com", "tok").FindUser(ctx, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "Bearer pat-123" || got[1] != "Basic Ym90QGV4YW1wbGUuY29tOnRvaw==" {
		t.Fatalf("Authorization headers %q", got)
	}
}

// Jira versions differ in the order of changelog histories: the mover is
// the author of the newest one by time, whichever order they come in.
func TestMoverIsNewestStatusChange(t *testing.T) {
	for _, newestFirst := range []bool{false, true} {
		r := newRig(t)
		r.jira.NewestFirst = newestFirst
		key := r.created(t)
		r.post(r.jira.Move(key, "Approved", "carol@example.com"), "?secret=url-secret", "", true)
		if len(r.gh.reviews) != 0 || r.jira.Issue(key).Status != "Open" {
			t.Fatalf("newest first %v: carol's move not reverted", newestFirst)
		}
		r.jira.Comment(key, "alice@example.com", "Reason: first thought")
		r.jira.Comment(key, "alice@example.com", "reason: second thought")
		r.post(r.jira.Move(key, "Approved", "alice@example.com"), "?secret=url-secret", "", true)
		if got := strings.Join(r.gh.reviews, "|"); got != "approve alice: second thought" {
			t.Fatalf("newest first %v: reviews %q, want alice's with her newest reason", newestFirst, got)
		}
	}
}
