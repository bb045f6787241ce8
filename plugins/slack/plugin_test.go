package slack

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
	"github.com/gatehouse-dev/gatehouse/internal/slacktest"
)

// fakeBastion answers the two API routes a click uses, as the real server
// does for on-behalf reviews (the real one is exercised end to end in
// internal/e2e TestSlackPlugin): only alice may review.
type fakeBastion struct {
	mu      sync.Mutex
	reviews []string // "approve alice: reason"
	checks  []string // "alice approve": the click-time questions asked
	// passCheck names people the click-time check lets through though
	// their review is refused: the answer changed in between.
	passCheck map[string]bool
}

func (b *fakeBastion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer ghbot_test" {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "token not valid"})
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // api requests ID [action]
	if len(parts) == 3 && r.Method == http.MethodGet {
		// Requests whose id starts with "strict" ask reviewers for a reason.
		w.Header().Set("Content-Type", "application/json")
		out := struct {
			apiclient.Request
			CanReview    *bool  `json:"can_review,omitempty"`
			CannotReview string `json:"cannot_review,omitempty"`
		}{Request: apiclient.Request{ID: parts[2], User: "bob", Roles: []string{"dba"}, Reason: "INC-7",
			State: "PENDING", ReviewReasonRequired: strings.HasPrefix(parts[2], "strict")}}
		if q := r.URL.Query(); q.Has("on_behalf_of") {
			person := q.Get("on_behalf_of")
			b.mu.Lock()
			b.checks = append(b.checks, person+" "+q.Get("verdict"))
			may := person == "alice" || b.passCheck[person]
			b.mu.Unlock()
			out.CanReview = &may
			if !may {
				out.CannotReview = person + " may not review dba"
			}
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	if len(parts) != 4 || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var body struct {
		Reason     string `json:"reason"`
		OnBehalfOf string `json:"on_behalf_of"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	w.Header().Set("Content-Type", "application/json")
	if body.OnBehalfOf != "alice" {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": body.OnBehalfOf + " may not review dba"})
		return
	}
	b.mu.Lock()
	b.reviews = append(b.reviews, parts[3]+" "+body.OnBehalfOf+": "+body.Reason)
	b.mu.Unlock()
	_ = json.NewEncoder(w).Encode(apiclient.Request{ID: parts[2], User: "bob", Roles: []string{"dba"}, State: "APPROVED", StateBy: "alice",
		Reviews: []apiclient.Review{{Reviewer: "alice", Via: "bot:slack", Approve: true, Reason: body.Reason}}})
}

func (b *fakeBastion) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.reviews...)
}

func (b *fakeBastion) gotChecks() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.checks...)
}

const testSecret = "test-signing-secret"

func newTestPlugin(t *testing.T) (*Plugin, *slacktest.Server, *fakeBastion) {
	t.Helper()
	sl := slacktest.New("xoxb-test",
		slacktest.User{ID: "UALICE", Name: "alice", RealName: "Alice Example", Email: "alice@example.com"},
		slacktest.User{ID: "UBOB", Name: "bob", RealName: "Bob Example", Email: "bob@example.com"},
		slacktest.User{ID: "UCAROL", Name: "carol", RealName: "Carol Example", Email: "Carol@example.com"},
		slacktest.User{ID: "UNOMAIL", Name: "ghost"},
		slacktest.User{ID: "UGUEST", Name: "alice2", RealName: "Alice Guest", Email: "alice@elsewhere.example"},
	)
	t.Cleanup(sl.Close)
	fb := &fakeBastion{}
	gh := httptest.NewServer(fb)
	t.Cleanup(gh.Close)
	cfg := Config{
		GatehouseURL: gh.URL, BotToken: "ghbot_test", SlackBotToken: "xoxb-test", SigningSecret: testSecret,
		Channel: "CREQ", Listen: "127.0.0.1:0", SlackAPIURL: sl.APIURL(),
		StateFile: filepath.Join(t.TempDir(), "state.json"), UserFromEmail: "local_part", EmailDomain: "example.com",
	}
	p, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	p.retryWait = time.Millisecond
	return p, sl, fb
}

// post sends body to the handler with Slack's headers for secret at ts.
func post(p *Plugin, secret string, ts int64, body string) int {
	code, _ := send(p, secret, ts, body)
	return code
}

// send is post that also returns the answer's body.
func send(p *Plugin, secret string, ts int64, body string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", slacktest.Sign(secret, ts, body))
	rec := httptest.NewRecorder()
	p.handleInteraction(rec, req)
	p.clicks.Wait()
	return rec.Code, rec.Body.String()
}

func TestPostsRequestsAndFollowsThem(t *testing.T) {
	p, sl, _ := newTestPlugin(t)
	sl.RateLimit("chat.postMessage", 2) // the post goes through on the third try
	req := apiclient.Request{ID: "r1", User: "bob", Roles: []string{"dba"}, Reason: "INC-7 <!channel>", Duration: 10 * time.Minute, State: "PENDING"}
	if err := p.handleEvent(t.Context(), apiclient.Event{ID: 41, Event: "created", RequestID: "r1", Request: req}); err != nil {
		t.Fatal(err)
	}
	posts := sl.Calls("chat.postMessage")
	if len(posts) != 1 || posts[0].Form.Get("channel") != "CREQ" {
		t.Fatalf("chat.postMessage calls %v, want one to CREQ", posts)
	}
	blocks := posts[0].Form.Get("blocks")
	for _, want := range []string{`"action_id":"gatehouse_approve"`, `"action_id":"gatehouse_deny"`, `"value":"r1"`, "INC-7 \\u0026lt;!channel\\u0026gt;"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("posted blocks lack %s: %s", want, blocks)
		}
	}
	st, err := loadState(p.cfg.StateFile)
	if err != nil || st.LastEventID != 41 || st.Messages["r1"].TS == "" {
		t.Fatalf("state after the post: %+v %v", st, err)
	}

	// Approved elsewhere while the plugin was restarted: the new process
	// finds the message in the state file, it loses its buttons, bob gets a DM.
	p, err = New(p.cfg, p.log)
	if err != nil {
		t.Fatal(err)
	}
	req.State, req.StateBy = "APPROVED", "alice"
	if err := p.handleEvent(t.Context(), apiclient.Event{ID: 43, Event: "approved", RequestID: "r1", Request: req}); err != nil {
		t.Fatal(err)
	}
	ups := sl.Calls("chat.update")
	if len(ups) != 1 || ups[0].Form.Get("ts") != st.Messages["r1"].TS || strings.Contains(ups[0].Form.Get("blocks"), "gatehouse_approve") ||
		!strings.Contains(ups[0].Form.Get("blocks"), "APPROVED") {
		t.Fatalf("chat.update calls %v, want the message updated to APPROVED without buttons", ups)
	}
	if l := sl.Calls("users.lookupByEmail"); len(l) != 1 || l[0].Form.Get("email") != "bob@example.com" {
		t.Fatalf("users.lookupByEmail calls %v", l)
	}
	posts = sl.Calls("chat.postMessage")
	if len(posts) != 2 || posts[1].Form.Get("channel") != "UBOB" || !strings.Contains(posts[1].Form.Get("text"), "APPROVED") {
		t.Fatalf("no direct message to bob: %v", posts)
	}
	if st, _ := loadState(p.cfg.StateFile); st.LastEventID != 43 {
		t.Fatalf("last event id %d, want 43", st.LastEventID)
	}
}

// TestStoppedMidEventRecordsNothing: an event cut short by shutdown is not
// recorded as handled, so the restarted plugin handles it again.
func TestStoppedMidEventRecordsNothing(t *testing.T) {
	p, _, _ := newTestPlugin(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := apiclient.Request{ID: "r9", User: "bob", Roles: []string{"dba"}, State: "PENDING"}
	if err := p.handleEvent(ctx, apiclient.Event{ID: 9, Event: "created", RequestID: "r9", Request: req}); err == nil {
		t.Fatal("a cancelled handleEvent reported success")
	}
	if st, _ := loadState(p.cfg.StateFile); st.LastEventID != 0 {
		t.Fatalf("a cut-short event was recorded: last id %d", st.LastEventID)
	}
}

// TestFirstStartSkipsHistory: with no state file the watch starts at the
// beginning; a decided request is neither posted nor announced to anyone.
func TestFirstStartSkipsHistory(t *testing.T) {
	p, sl, _ := newTestPlugin(t)
	if p.st.LastEventID != 0 {
		t.Fatalf("first start resumes after %d, want 0", p.st.LastEventID)
	}
	old := apiclient.Request{ID: "old", User: "bob", Roles: []string{"dba"}, State: "APPROVED"}
	for i, ev := range []string{"created", "reviewed", "approved"} {
		if err := p.handleEvent(t.Context(), apiclient.Event{ID: int64(i + 1), Event: ev, RequestID: "old", Request: old}); err != nil {
			t.Fatal(err)
		}
	}
	if calls := sl.Calls(""); len(calls) != 0 {
		t.Fatalf("replaying history called Slack: %v", calls)
	}
	if st, _ := loadState(p.cfg.StateFile); st.LastEventID != 3 || len(st.Messages) != 0 {
		t.Fatalf("state after history: %+v", st)
	}
}

func TestInteractions(t *testing.T) {
	p, sl, fb := newTestPlugin(t)
	now := p.now().Unix()
	click := slacktest.Click{UserID: "UALICE", ActionID: actionApprove, Value: "r1", Channel: "CREQ", MessageTS: "1700000000.000001", TriggerID: "t1"}

	if code := post(p, "wrong-secret", now, click.Body()); code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d, want 401", code)
	}
	if code := post(p, testSecret, now-int64(MaxSkew/time.Second)-1, click.Body()); code != http.StatusUnauthorized {
		t.Fatalf("old timestamp: %d, want 401", code)
	}
	if got := fb.got(); len(got) != 0 {
		t.Fatalf("refused clicks reached the bastion: %v", got)
	}

	if code := post(p, testSecret, now, click.Body()); code != http.StatusOK {
		t.Fatalf("signed click: %d", code)
	}
	if got := fb.got(); len(got) != 1 || got[0] != "approve alice: approved in Slack by Alice Example" {
		t.Fatalf("reviews at the bastion %q", got)
	}
	if ups := sl.Calls("chat.update"); len(ups) != 1 || !strings.Contains(ups[0].Form.Get("blocks"), "APPROVED") {
		t.Fatalf("message not updated after the click: %v", ups)
	}

	// The same request again (a replay), and the same click re-signed later.
	if code := post(p, testSecret, now, click.Body()); code != http.StatusOK {
		t.Fatalf("replay: %d", code)
	}
	if code := post(p, testSecret, now+1, click.Body()); code != http.StatusOK {
		t.Fatalf("replay re-signed: %d", code)
	}
	if got := fb.got(); len(got) != 1 {
		t.Fatalf("a replayed click was submitted again: %q", got)
	}

	// Someone who may not review, and someone Slack knows no e-mail for.
	for _, tc := range []struct{ user, trigger, want string }{
		{"UCAROL", "t2", "Gatehouse: carol may not review dba"},
		{"UNOMAIL", "t3", "Gatehouse: your Slack account has no e-mail address that names a Gatehouse user"},
		{"UGUEST", "t4", "Gatehouse: only example.com addresses name Gatehouse users"},
	} {
		c := click
		c.UserID, c.TriggerID = tc.user, tc.trigger
		if code := post(p, testSecret, now, c.Body()); code != http.StatusOK {
			t.Fatalf("%s click: %d", tc.user, code)
		}
		eph := sl.Calls("chat.postEphemeral")
		last := eph[len(eph)-1]
		if last.Form.Get("user") != tc.user || last.Form.Get("channel") != "CREQ" || last.Form.Get("text") != tc.want {
			t.Fatalf("ephemeral refusal %v, want %q to %s", last.Form, tc.want, tc.user)
		}
	}
	if got := fb.got(); len(got) != 1 {
		t.Fatalf("refused clicks were submitted: %q", got)
	}
}

// TestReasonModal: a click on a request whose role asks reviewers for a
// reason opens a modal (views.open with the click's trigger id) instead of
// reviewing; its submission reviews on behalf of whoever submitted it, with
// the reason typed; an empty reason keeps the modal open with an error; a
// replayed submission is not submitted twice.
func TestReasonModal(t *testing.T) {
	p, sl, fb := newTestPlugin(t)
	now := p.now().Unix()
	click := slacktest.Click{UserID: "UALICE", ActionID: actionDeny, Value: "strict1", Channel: "CREQ", MessageTS: "1700000000.000001", TriggerID: "t-modal"}
	if code := post(p, testSecret, now, click.Body()); code != http.StatusOK {
		t.Fatalf("click: %d", code)
	}
	if got := fb.got(); len(got) != 0 {
		t.Fatalf("a review was submitted before a reason was given: %q", got)
	}
	views := sl.Views()
	if len(views) != 1 || views[0].TriggerID != "t-modal" || views[0].CallbackID != reasonCallback || views[0].Title != "Deny request" {
		t.Fatalf("views opened %+v, want one reason modal for the click's trigger", views)
	}
	if b := string(views[0].Blocks); !strings.Contains(b, `"block_id":"reason"`) || !strings.Contains(b, "INC-7") {
		t.Fatalf("modal blocks %s", b)
	}
	var meta reasonMeta
	if err := json.Unmarshal([]byte(views[0].PrivateMetadata), &meta); err != nil || meta != (reasonMeta{Request: "strict1", Channel: "CREQ", TS: "1700000000.000001"}) {
		t.Fatalf("modal metadata %q: %+v %v", views[0].PrivateMetadata, meta, err)
	}

	// Submitted empty: Slack is told to show an error in the modal.
	empty := slacktest.Submission{UserID: "UALICE", View: views[0], Values: map[string]map[string]string{"reason": {"reason": "  "}}}
	code, body := send(p, testSecret, now, empty.Body())
	if code != http.StatusOK || !strings.Contains(body, `"response_action":"errors"`) || !strings.Contains(body, `"reason":"A reason is required`) {
		t.Fatalf("empty reason: %d %s", code, body)
	}
	if got := fb.got(); len(got) != 0 {
		t.Fatalf("an empty reason was submitted: %q", got)
	}

	sub := slacktest.Submission{UserID: "UALICE", View: views[0], Values: map[string]map[string]string{"reason": {"reason": "use the replica"}}}
	if code, body := send(p, testSecret, now+1, sub.Body()); code != http.StatusOK || body != "" {
		t.Fatalf("submission: %d %q, want 200 and an empty body (closes the modal)", code, body)
	}
	if got := fb.got(); len(got) != 1 || got[0] != "deny alice: use the replica" {
		t.Fatalf("reviews at the bastion %q", got)
	}
	// Replayed, and re-signed later: still one review.
	post(p, testSecret, now+1, sub.Body())
	post(p, testSecret, now+2, sub.Body())
	if got := fb.got(); len(got) != 1 {
		t.Fatalf("a replayed submission was submitted again: %q", got)
	}

	// Carol may not review: she hears so at her click, and no modal opens.
	c := click
	c.UserID, c.TriggerID = "UCAROL", "t-carol"
	post(p, testSecret, now, c.Body())
	if views := sl.Views(); len(views) != 1 {
		t.Fatalf("a modal opened for someone who may not review: %+v", views)
	}
	eph := sl.Calls("chat.postEphemeral")
	if len(eph) != 1 || eph[0].Form.Get("user") != "UCAROL" || eph[0].Form.Get("text") != "Gatehouse: carol may not review dba" {
		t.Fatalf("carol's refusal %v", eph)
	}
	if checks := fb.gotChecks(); len(checks) != 2 || checks[0] != "alice deny" || checks[1] != "carol deny" {
		t.Fatalf("click-time checks %q, want alice's and carol's denials", checks)
	}

	// The answer may change between click and submission: the submission
	// is checked again by the bastion, and its refusal reaches her.
	fb.mu.Lock()
	fb.passCheck = map[string]bool{"carol": true}
	fb.mu.Unlock()
	c.TriggerID = "t-carol-2"
	post(p, testSecret, now+1, c.Body())
	views = sl.Views()
	if len(views) != 2 {
		t.Fatalf("views %+v", views)
	}
	sub = slacktest.Submission{UserID: "UCAROL", View: views[1], Values: map[string]map[string]string{"reason": {"reason": "why not"}}}
	post(p, testSecret, now+1, sub.Body())
	eph = sl.Calls("chat.postEphemeral")
	if len(eph) != 2 || eph[1].Form.Get("user") != "UCAROL" || eph[1].Form.Get("text") != "Gatehouse: carol may not review dba" {
		t.Fatalf("carol's refused submission %v", eph)
	}
	if got := fb.got(); len(got) != 1 {
		t.Fatalf("carol's review was recorded: %q", got)
	}
	// When the modal cannot be opened (here: no trigger id), the clicker
	// is told and nothing is submitted.
	c.UserID, c.TriggerID = "UALICE", ""
	post(p, testSecret, now+3, c.Body())
	if eph := sl.Calls("chat.postEphemeral"); len(eph) != 3 || !strings.Contains(eph[2].Form.Get("text"), "could not be opened") {
		t.Fatalf("reused trigger: %v", eph)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(s string) string {
		p := filepath.Join(dir, "slack.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := "gatehouse_url: https://b.example.com\nbot_token: ghbot_x\nslack_bot_token: xoxb-1\nchannel: C1\nlisten: :8089\nstate_file: /tmp/s.json\nemail_domain: Example.com\n"
	c, err := LoadConfig(write(base + "signing_secret_file: " + secret + "\n"))
	if err != nil || c.SigningSecret != "s3cret" || c.SlackAPIURL != DefaultSlackAPIURL || c.UserFromEmail != "local_part" || c.EmailDomain != "example.com" {
		t.Fatalf("LoadConfig: %+v %v", c, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{base, "signing_secret (or signing_secret_file) is required"},
		{base + "signing_secret: a\nsigning_secret_file: " + secret + "\n", "not both"},
		{base + "signing_secret: a\nuser_from_email: upn\n", "want local_part or email"},
		{base + "signing_secret: a\nchanel: C2\n", "chanel"},
		{"signing_secret: a\nbot_token: b\nslack_bot_token: c\n", "required: channel, gatehouse_url, listen, state_file"},
		{strings.Replace(base, "email_domain: Example.com\n", "", 1) + "signing_secret: a\n", "local_part needs email_domain"},
	} {
		if _, err := LoadConfig(write(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%q): %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
