package web

import (
	"bufio"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestSignedOutIsSentToSignIn(t *testing.T) {
	e := newEnv(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(e.srv.URL + "/sessions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/oidc/login?next=") {
		t.Fatalf("GET /sessions signed out: %d %s, want a redirect to sign in", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = noFollow.Post(e.srv.URL+"/api/requests", "application/json", strings.NewReader(`{"roles":["dba"]}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /api/requests signed out: %d, want 401", res.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	bob := e.login(t, "bob")
	for _, path := range []string{"/", "/api/me", "/static/app.js", "/static/vendor/asciinema-player.min.js", "/no-such-page"} {
		res, _ := bob.get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	res, _ := bob.get("/static/vendor/xterm.js")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("embedded xterm.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// No page may carry inline script: everything runs from files.
	for _, path := range []string{"/", "/requests"} {
		_, body := bob.get(path)
		if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") {
			t.Errorf("%s has inline script", path)
		}
	}
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t)
	bob := e.login(t, "bob")
	alice := e.login(t, "alice")
	body := map[string]any{"roles": []string{"dba"}, "reason": "INC-1", "duration": "1h"}
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"missing", "", http.StatusForbidden},
		{"wrong", "not-the-token", http.StatusForbidden},
		{"another session's", alice.csrf, http.StatusForbidden},
		{"own", bob.csrf, http.StatusCreated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, text := bob.postJSON("/api/requests", c.token, body)
			if code != c.want {
				t.Fatalf("POST /api/requests with %s token: %d %s, want %d", c.name, code, text, c.want)
			}
			if c.want == http.StatusForbidden && !strings.Contains(text, "CSRF") {
				t.Fatalf("refusal %q should say why", text)
			}
		})
	}
	var list struct{ Requests []storage.Request }
	bob.getJSON("/api/requests", &list)
	if len(list.Requests) != 1 {
		t.Fatalf("refused posts must not create requests: have %d", len(list.Requests))
	}
	// Forms too: a form post without its hidden field changes nothing.
	res, err := bob.c.PostForm(bob.base+"/requests/"+list.Requests[0].ID+"/cancel", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("form post without csrf_token: %d, want 403", res.StatusCode)
	}
	res, err = bob.c.PostForm(bob.base+"/requests/"+list.Requests[0].ID+"/cancel", url.Values{"csrf_token": {bob.csrf}, "back": {"/requests"}})
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, res)
	if !strings.Contains(page, "Cancelled request "+list.Requests[0].ID) {
		t.Fatalf("form cancel with token should land on /requests saying so, got %s", page)
	}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	e.addSession(t, "s-alice-0001", "alice", "db-1", "select secret from vault;\r\n")
	e.addSession(t, "s-bob-00001", "bob", "web-1", "hello from bob\r\n")
	bob, alice, sam := e.login(t, "bob"), e.login(t, "alice"), e.login(t, "sam")
	cases := []struct {
		who  *browser
		name string
		path string
		want int
	}{
		{bob, "bob", "/sessions", http.StatusForbidden},
		{bob, "bob", "/api/sessions", http.StatusForbidden},
		{bob, "bob", "/audit", http.StatusForbidden},
		{bob, "bob", "/api/audit", http.StatusForbidden},
		{bob, "bob", "/locks", http.StatusForbidden},
		{bob, "bob", "/api/locks", http.StatusForbidden},
		{bob, "bob", "/review", http.StatusForbidden},
		// Another user's recording, and even his own: playing needs
		// sessions: play. Not found, so ids cannot be probed.
		{bob, "bob", "/api/sessions/s-alice-0001/recording", http.StatusNotFound},
		{bob, "bob", "/api/sessions/s-bob-00001/recording", http.StatusNotFound},
		{bob, "bob", "/sessions/s-alice-0001", http.StatusNotFound},
		{bob, "bob", "/api/sessions/s-alice-0001/live", http.StatusNotFound},
		{alice, "alice", "/review", http.StatusOK},
		{alice, "alice", "/api/sessions", http.StatusForbidden},
		{sam, "sam", "/sessions", http.StatusOK},
		{sam, "sam", "/api/sessions", http.StatusOK},
		{sam, "sam", "/audit", http.StatusOK},
		{sam, "sam", "/api/audit", http.StatusOK},
		{sam, "sam", "/locks", http.StatusOK},
		{sam, "sam", "/sessions/s-alice-0001", http.StatusOK},
		{sam, "sam", "/api/sessions/s-alice-0001/recording", http.StatusOK},
		{sam, "sam", "/api/sessions/nope/recording", http.StatusNotFound},
		{sam, "sam", "/api/sessions/..%2f..%2fetc/recording", http.StatusNotFound},
		{sam, "sam", "/review", http.StatusForbidden},
	}
	for _, c := range cases {
		res, body := c.who.get(c.path)
		if res.StatusCode != c.want {
			t.Errorf("%s GET %s: %d, want %d: %.200s", c.name, c.path, res.StatusCode, c.want, body)
		}
		if c.want == http.StatusNotFound && strings.Contains(body, "vault") {
			t.Errorf("%s GET %s leaked recording content", c.name, c.path)
		}
	}
	// The same refusal for a session that exists and one that does not.
	_, a := bob.get("/api/sessions/s-alice-0001/recording")
	_, b := bob.get("/api/sessions/s-nobody-0009/recording")
	if strings.ReplaceAll(a, "s-alice-0001", "X") != strings.ReplaceAll(b, "s-nobody-0009", "X") {
		t.Errorf("refusals differ for existing and missing sessions: %q vs %q", a, b)
	}
	// Navigation offers only what the roles allow.
	_, home := bob.get("/")
	for _, link := range []string{`href="/sessions"`, `href="/audit"`, `href="/locks"`, `href="/review"`} {
		if strings.Contains(home, link) {
			t.Errorf("bob's home links to %s", link)
		}
	}
	_, home = sam.get("/")
	for _, link := range []string{`href="/sessions"`, `href="/audit"`, `href="/locks"`} {
		if !strings.Contains(home, link) {
			t.Errorf("sam's home lacks %s", link)
		}
	}

	res, body := sam.get("/api/sessions/s-alice-0001/recording")
	if ct := res.Header.Get("Content-Type"); ct != "application/x-asciicast" {
		t.Errorf("recording Content-Type %q", ct)
	}
	if !strings.Contains(res.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("recording must be sandboxed, CSP %q", res.Header.Get("Content-Security-Policy"))
	}
	if !strings.HasPrefix(body, `{"version":2`) || !strings.Contains(body, "select secret from vault") {
		t.Errorf("recording body %q", body)
	}
	// Terminating needs sessions: terminate; bob's attempt changes nothing.
	e.live.mu.Lock()
	e.live.sessions = []proxy.LiveSession{{ID: "s-alice-0001", User: "alice", Login: "root", Node: "db-1", Kind: "shell", Start: time.Now()}}
	e.live.mu.Unlock()
	if code, _ := bob.postJSON("/api/sessions/s-alice-0001/terminate", bob.csrf, nil); code != http.StatusNotFound {
		t.Errorf("bob terminate: %d, want 404", code)
	}
	if code, text := sam.postJSON("/api/sessions/s-alice-0001/terminate", sam.csrf, nil); code != http.StatusOK {
		t.Errorf("sam terminate: %d %s", code, text)
	}
	if got := e.live.terminated; !slices.Equal(got, []string{"s-alice-0001 by sam"}) {
		t.Errorf("terminated %v", got)
	}
}

func TestSessionFiltersAndGrep(t *testing.T) {
	e := newEnv(t)
	e.addSession(t, "sess-0001", "alice", "db-1", "\x1b[1mDROP TABLE\x1b[0m users;\r\n")
	e.addSession(t, "sess-0002", "bob", "web-1", "ls -la\r\n")
	sam := e.login(t, "sam")
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"sess-0002", "sess-0001"}},
		{"?user=alice", []string{"sess-0001"}},
		{"?node=web-1", []string{"sess-0002"}},
		{"?grep=drop+table", []string{"sess-0001"}},
		{"?grep=nothing-like-this", nil},
		{"?since=1h", []string{"sess-0002", "sess-0001"}},
	}
	for _, c := range cases {
		var out struct{ Sessions []sessionView }
		if code := sam.getJSON("/api/sessions"+c.query, &out); code != http.StatusOK {
			t.Fatalf("%s: %d", c.query, code)
		}
		var ids []string
		for _, s := range out.Sessions {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("sessions%s = %v, want %v", c.query, ids, c.want)
		}
	}
	if code := sam.getJSON("/api/sessions?since=yesterdayish", nil); code != http.StatusBadRequest {
		t.Errorf("bad since: %d, want 400 (bad input, not a permission problem)", code)
	}
}

// An encrypted recording is neither played nor searched by the web
// server, which holds no key: the player says how to export it instead,
// the recording API answers 409, and a search says what it skipped.
func TestEncryptedRecordingNotPlayed(t *testing.T) {
	e := newEnv(t)
	ident, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.addRecordedSession(t, "sealed-0001", "alice", "db-1", "DROP TABLE users;\r\n",
		session.RecorderOptions{Encrypt: []age.Recipient{ident.Recipient()}})
	e.addSession(t, "plain-0002", "bob", "db-1", "DROP TABLE orders;\r\n")
	sam := e.login(t, "sam")

	res, page := sam.get("/sessions/sealed-0001")
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `id="encrypted"`) || strings.Contains(page, `id="player"`) ||
		!strings.Contains(page, "--identity KEYFILE sealed-0001") {
		t.Errorf("player page of an encrypted recording: %d\n%s", res.StatusCode, page)
	}
	if _, page := sam.get("/sessions/plain-0002"); !strings.Contains(page, `id="player"`) {
		t.Errorf("player page of a plain recording has no player:\n%s", page)
	}
	res, body := sam.get("/api/sessions/sealed-0001/recording")
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "sessions export --identity FILE sealed-0001") || strings.Contains(body, "DROP") {
		t.Errorf("recording API of an encrypted recording: %d %s", res.StatusCode, body)
	}

	var out struct{ Sessions []sessionView }
	if code := sam.getJSON("/api/sessions?grep=drop+table", &out); code != http.StatusOK {
		t.Fatalf("grep: %d", code)
	}
	if len(out.Sessions) != 1 || out.Sessions[0].ID != "plain-0002" {
		t.Errorf("grep found %+v, want only the plain recording", out.Sessions)
	}
	if _, page := sam.get("/sessions?grep=drop+table"); !strings.Contains(page, `id="unsearched"`) {
		t.Errorf("search page does not say an encrypted recording was skipped:\n%s", page)
	}
	out.Sessions = nil
	sam.getJSON("/api/sessions", &out)
	for _, s := range out.Sessions {
		if s.Encrypted != (s.ID == "sealed-0001") {
			t.Errorf("%s: encrypted = %v", s.ID, s.Encrypted)
		}
	}
}

func TestRequestReviewGrant(t *testing.T) {
	e := newEnv(t)
	bob, alice, sam := e.login(t, "bob"), e.login(t, "alice"), e.login(t, "sam")

	var m me
	bob.getJSON("/api/me", &m)
	if slices.Contains(m.Roles, "dba") || slices.ContainsFunc(m.Nodes, func(n nodeView) bool { return n.Node == "db-1" }) {
		t.Fatalf("bob before the grant: %+v", m)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Node != "web-1" || !slices.Contains(m.Nodes[0].SSH, "ssh -J bob@127.0.0.1:2222 ubuntu@web-1") {
		t.Fatalf("bob's nodes %+v (ssh line uses the public host when listening on 0.0.0.0)", m.Nodes)
	}

	var req storage.Request
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "duration": "2h"}, nil); code != http.StatusForbidden {
		t.Fatalf("request without the required reason: %d", code)
	}
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-42", "duration": "9h"}, nil); code != http.StatusForbidden {
		t.Fatalf("request beyond max_duration: %d", code)
	}
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-42 replica lag", "duration": "2h"}, &req); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}

	var q struct{ Requests []storage.Request }
	alice.getJSON("/api/review", &q)
	if len(q.Requests) != 1 || q.Requests[0].ID != req.ID || q.Requests[0].Reason != "INC-42 replica lag" {
		t.Fatalf("alice's queue %+v", q.Requests)
	}
	sam.getJSON("/api/review", &q)
	if len(q.Requests) != 0 {
		t.Fatalf("sam reviews nothing, queue %+v", q.Requests)
	}
	_, frag := alice.get("/review?fragment=1")
	if !strings.Contains(frag, `data-id="`+req.ID+`"`) || strings.Contains(frag, "<html") {
		t.Fatalf("queue fragment %s", frag)
	}

	// Others' requests are not theirs to act on or read.
	if code := bob.api("/api/requests/"+req.ID+"/approve", map[string]string{"reason": "me"}, nil); code != http.StatusForbidden {
		t.Fatalf("bob approving his own: %d", code)
	}
	if code := alice.api("/api/requests/"+req.ID+"/cancel", nil, nil); code != http.StatusForbidden {
		t.Fatalf("alice cancelling bob's: %d", code)
	}
	if code := sam.api("/api/requests/"+req.ID+"/approve", nil, nil); code != http.StatusNotFound && code != http.StatusForbidden {
		t.Fatalf("sam approving: %d", code)
	}
	var aliceList struct{ Requests []storage.Request }
	alice.getJSON("/api/requests", &aliceList)
	if len(aliceList.Requests) != 0 {
		t.Fatalf("alice's own list shows others' requests: %+v", aliceList.Requests)
	}

	if code := alice.api("/api/requests/"+req.ID+"/approve", map[string]string{"reason": "ok for INC-42"}, &req); code != http.StatusOK || req.State != storage.StateApproved {
		t.Fatalf("alice approves: %d %+v", code, req)
	}
	bob.getJSON("/api/me", &m)
	if !slices.Contains(m.Roles, "dba") || len(m.Grants) != 1 || time.Until(m.Grants[0].End) <= time.Hour {
		t.Fatalf("bob after approval: roles %v grants %+v", m.Roles, m.Grants)
	}
	i := slices.IndexFunc(m.Nodes, func(n nodeView) bool { return n.Node == "db-1" })
	if i < 0 || !slices.Contains(m.Nodes[i].SSH, "ssh -J bob@127.0.0.1:2222 root@db-1") {
		t.Fatalf("bob's nodes after approval %+v", m.Nodes)
	}
	_, home := bob.get("/")
	if !strings.Contains(home, "ssh -J bob@127.0.0.1:2222 root@db-1") || !strings.Contains(home, "data-countdown") {
		t.Fatalf("home page lacks the grant: %s", home)
	}
	// The decision says which rule it met, to the requester on his list and
	// to the reviewer on the request's own page (her queue no longer has it).
	if _, page := bob.get("/requests"); !strings.Contains(page, `data-met="true"`) || !strings.Contains(page, "rule met: 1 from any reviewer (alice)") {
		t.Fatalf("bob's list lacks the approved request's rule line: %s", page)
	}
	res, page := alice.get("/requests/" + req.ID)
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/requests/"+req.ID || !strings.Contains(page, "rule met: 1 from any reviewer (alice)") || !strings.Contains(page, "st-approved") {
		t.Fatalf("alice's view of the decided request: %d %s %s", res.StatusCode, res.Request.URL, page)
	}

	// Dropping is for one's own grant only.
	if code := alice.api("/api/requests/"+req.ID+"/drop", nil, nil); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Fatalf("alice dropping bob's grant: %d", code)
	}
	if code := bob.api("/api/requests/"+req.ID+"/drop", nil, &req); code != http.StatusOK || req.State != storage.StateRevoked {
		t.Fatalf("bob drops: %d %+v", code, req)
	}
	bob.getJSON("/api/me", &m)
	if slices.Contains(m.Roles, "dba") {
		t.Fatalf("dba still held after drop: %v", m.Roles)
	}
}

func TestLocksAndAuditVerify(t *testing.T) {
	e := newEnv(t)
	bob, sam := e.login(t, "bob"), e.login(t, "sam")
	if code := bob.api("/api/locks", map[string]string{"user": "sam", "reason": "revenge"}, nil); code != http.StatusForbidden {
		t.Fatalf("bob locking: %d", code)
	}
	var l storage.Lock
	if code := sam.api("/api/locks", map[string]string{"user": "bob", "reason": "stolen laptop", "ttl": "1h"}, &l); code != http.StatusCreated || l.Expires == nil {
		t.Fatalf("sam locks bob: %d %+v", code, l)
	}
	var m me
	bob.getJSON("/api/me", &m)
	if !m.Locked || len(m.Roles) != 0 || len(m.Nodes) != 0 {
		t.Fatalf("locked bob sees %+v", m)
	}
	// The reason stays with the security team, on every channel.
	_, raw := bob.get("/api/me")
	_, page := bob.get("/")
	if !strings.Contains(page, `id="locked"`) {
		t.Fatal("locked bob's page does not say so")
	}
	if strings.Contains(page, "stolen laptop") || strings.Contains(raw, "stolen laptop") {
		t.Fatal("locked bob is shown the lock's reason")
	}
	if code := sam.api("/api/locks/bob/unlock", nil, nil); code != http.StatusOK {
		t.Fatalf("unlock: %d", code)
	}
	if code := sam.api("/api/locks/bob/unlock", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unlock twice: %d", code)
	}

	if code := bob.api("/api/audit/verify", nil, nil); code != http.StatusForbidden {
		t.Fatalf("bob verifying: %d", code)
	}
	var res verifyResult
	if code := sam.api("/api/audit/verify", nil, &res); code != http.StatusOK || !res.Report.OK || res.Report.Events == 0 || res.By != "sam" {
		t.Fatalf("verify: %d %+v", code, res)
	}
	_, page = sam.get("/audit")
	if !strings.Contains(page, "Chain intact") {
		t.Fatal("audit page does not show the verification")
	}
	var evs struct {
		Events    []storage.Event
		NextAfter int64 `json:"next_after"`
	}
	sam.getJSON("/api/audit?type=user.lock", &evs)
	if len(evs.Events) != 1 || evs.Events[0].Target != "bob" || evs.Events[0].Actor != "sam" {
		t.Fatalf("user.lock events %+v", evs.Events)
	}
	sam.getJSON("/api/audit?after="+itoa(evs.Events[0].Seq)+"&type=user.lock", &evs)
	if len(evs.Events) != 0 {
		t.Fatalf("paging after the only event returned %+v", evs.Events)
	}
}

func TestLiveStream(t *testing.T) {
	e := newEnv(t)
	e.addSession(t, "sess-live1", "alice", "db-1", "")
	e.live.mu.Lock()
	e.live.sessions = []proxy.LiveSession{{ID: "sess-live1", User: "alice", Login: "root", Node: "db-1", Kind: "shell", Start: time.Now()}}
	e.live.mu.Unlock()
	sam := e.login(t, "sam")
	if res, page := sam.get("/sessions/sess-live1/live"); res.StatusCode != http.StatusOK || !strings.Contains(page, `data-src="/api/sessions/sess-live1/live"`) {
		t.Fatalf("live page %d", res.StatusCode)
	}
	res, err := sam.c.Get(sam.base + "/api/sessions/sess-live1/live")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	// A title-setting OSC must not reach the watcher; the text must.
	e.live.out <- []byte("hello \x1b]0;pwned\x07world\r\n")
	close(e.live.out)
	sc := bufio.NewScanner(res.Body)
	var data []string
	var ended bool
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok && !ended {
			b, err := base64.StdEncoding.DecodeString(d)
			if err != nil {
				t.Fatalf("chunk %q: %v", d, err)
			}
			data = append(data, string(b))
		}
		if line == "event: end" {
			ended = true
		}
	}
	got := strings.Join(data, "")
	if got != "hello world\r\n" || !ended {
		t.Fatalf("streamed %q ended=%v", got, ended)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
