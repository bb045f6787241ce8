package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// pluginRoles adds a plugin role (review_on_behalf) and a role a bot can
// hold without any other right.
const pluginRoles = `
  - name: chat-plugin
    allow:
      review_on_behalf: true
  - name: watcher
    allow:
      review_requests: {roles: [dba]}
`

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load web/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("web/openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// TestOpenAPIListsEveryRoute: every /api/ route the handler registers is in
// the document, and every operation of the document is a registered route.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	registered := map[string]bool{}
	for _, pattern := range e.h.APIRoutes() {
		method, path, _ := strings.Cut(pattern, " ")
		registered[method+" "+path] = true
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not in web/openapi.yaml", pattern)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				t.Errorf("web/openapi.yaml documents %s %s, which the server does not serve", method, path)
			}
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: %v", len(registered), e.h.APIRoutes())
	}
}

// validator is an http.RoundTripper that checks every request and response
// against the OpenAPI document and records which documented responses it saw.
type validator struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper

	mu   sync.Mutex
	seen map[string]bool // "METHOD PATH STATUS"
}

func newValidator(t *testing.T, doc *openapi3.T, base string) *validator {
	doc.Servers = openapi3.Servers{{URL: base}}
	// These bodies are text for their readers, not structures to check
	// against a schema (the library keeps its decoders in one global table).
	for _, ct := range []string{"application/yaml", "application/x-asciicast", "text/event-stream"} {
		openapi3filter.RegisterBodyDecoder(ct, rawBody)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, router: r, next: http.DefaultTransport, seen: map[string]bool{}}
}

func rawBody(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s: not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return v.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	in := &openapi3filter.RequestValidationInput{Request: req.Clone(req.Context()), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	// Calls that are refused for a malformed body are meant to be invalid.
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil && req.Header.Get("X-Test-Invalid") == "" {
		v.t.Errorf("%s %s: request does not match the document: %v", req.Method, req.URL.Path, err)
	}
	res, err := v.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	v.mu.Lock()
	v.seen[req.Method+" "+route.Path+" "+strconv.Itoa(res.StatusCode)] = true
	v.mu.Unlock()
	stream := strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
	var body []byte
	if !stream {
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: stream,
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		v.t.Errorf("%s %s: %d response does not match the document: %v\n%s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
	return res, nil
}

// caller is one identity calling the API through the validator.
type caller struct {
	t     *testing.T
	base  string
	c     *http.Client
	token string // bearer token, or ""
	csrf  string // for cookie callers
}

func (c *caller) do(method, path string, body any, hdr ...string) (int, string) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (c *caller) want(status int, method, path string, body any, hdr ...string) string {
	c.t.Helper()
	code, text := c.do(method, path, body, hdr...)
	if code != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, text, status)
	}
	if code >= 400 {
		var e map[string]string
		if err := json.Unmarshal([]byte(text), &e); err != nil || len(e) != 1 || e["error"] == "" || strings.Contains(e["error"], "\n") {
			c.t.Fatalf("%s %s: refusal %q is not {\"error\": \"one line\"}", method, path, text)
		}
	}
	return text
}

func addBot(t *testing.T, e *env, name string, ttl time.Duration, roles ...string) string {
	t.Helper()
	_, tok, err := e.acc.AddBot(context.Background(), access.Admin(), name, roles, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAPIConformsToOpenAPI drives every route of the real handler, with
// every response the document lists, through a validating client.
func TestAPIConformsToOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnvRoles(t, pluginRoles)
	v := newValidator(t, doc, e.srv.URL)
	as := func(b *browser) *caller {
		jar := b.c.Jar
		return &caller{t: t, base: e.srv.URL, c: &http.Client{Jar: jar, Transport: v,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, csrf: b.csrf}
	}
	bob, alice, sam := as(e.login(t, "bob")), as(e.login(t, "alice")), as(e.login(t, "sam"))
	anon := &caller{t: t, base: e.srv.URL, c: &http.Client{Transport: v}}
	plugin := &caller{t: t, base: e.srv.URL, c: &http.Client{Transport: v}, token: addBot(t, e, "chat", time.Hour, "chat-plugin")}
	noCSRF := *sam
	noCSRF.csrf = ""
	e.addSession(t, "s-bob-0001", "bob", "db-1", "ls\r\n")
	sealedTo, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.addRecordedSession(t, "s-bob-0002", "bob", "db-1", "ls\r\n", session.RecorderOptions{Encrypt: []age.Recipient{sealedTo.Recipient()}})
	e.live.mu.Lock()
	e.live.sessions = []proxy.LiveSession{{ID: "s-bob-0001", User: "bob", Node: "db-1", Login: "root"}}
	e.live.mu.Unlock()
	e.live.out <- []byte("hello\r\n")
	close(e.live.out)

	anon.want(200, "GET", "/api/openapi.yaml", nil)
	bob.want(200, "GET", "/api/me", nil)
	anon.want(401, "GET", "/api/me", nil)
	plugin.want(200, "GET", "/api/me", nil)

	// requests
	var r1 storage.Request
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-1", "duration": "1h"})), &r1)
	bob.want(400, "POST", "/api/requests", `{"roles":["dba"],"bogus":1}`, "X-Test-Invalid", "1")
	bob.want(403, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}}) // reason required
	anon.want(401, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}})
	bob.want(200, "GET", "/api/requests", nil)
	plugin.want(200, "GET", "/api/requests?scope=all&state=pending&role=dba&limit=5", nil)
	bob.want(400, "GET", "/api/requests?state=bogus", nil)
	anon.want(401, "GET", "/api/requests", nil)
	bob.want(200, "GET", "/api/requests/"+r1.ID, nil)
	bob.want(404, "GET", "/api/requests/nope", nil)
	anon.want(401, "GET", "/api/requests/"+r1.ID, nil)
	plugin.want(200, "GET", "/api/requests/"+r1.ID+"?on_behalf_of=alice&verdict=approve", nil)
	plugin.want(400, "GET", "/api/requests/"+r1.ID+"?on_behalf_of=alice&verdict=maybe", nil, "X-Test-Invalid", "1")
	alice.want(403, "GET", "/api/requests/"+r1.ID+"?on_behalf_of=alice", nil)
	alice.want(200, "GET", "/api/review", nil)
	anon.want(401, "GET", "/api/review", nil)

	// approve, deny, cancel, drop; each with its refusals
	for _, action := range []string{"approve", "deny", "cancel", "drop"} {
		p := "/api/requests/" + r1.ID + "/" + action
		bob.want(400, "POST", p, `{"reason":`, "X-Test-Invalid", "1")
		anon.want(401, "POST", p, nil)
		bob.want(404, "POST", "/api/requests/nope/"+action, nil)
	}
	bob.want(403, "POST", "/api/requests/"+r1.ID+"/approve", map[string]string{"reason": "me"})
	bob.want(403, "POST", "/api/requests/"+r1.ID+"/deny", nil)
	alice.want(403, "POST", "/api/requests/"+r1.ID+"/cancel", nil)
	plugin.want(403, "POST", "/api/requests/"+r1.ID+"/approve", map[string]string{"on_behalf_of": "bob"})
	plugin.want(200, "POST", "/api/requests/"+r1.ID+"/approve", map[string]string{"reason": "ok", "on_behalf_of": "alice"})
	alice.want(403, "POST", "/api/requests/"+r1.ID+"/drop", nil)
	bob.want(200, "POST", "/api/requests/"+r1.ID+"/drop", nil)
	var r2, r3 storage.Request
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-2"})), &r2)
	alice.want(200, "POST", "/api/requests/"+r2.ID+"/deny", map[string]string{"reason": "not now"})
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-3"})), &r3)
	bob.want(200, "POST", "/api/requests/"+r3.ID+"/cancel", nil)

	// A resource request for one session, its rule progress, and an
	// approval naming the roles it approves.
	var r4 requestView
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"node": "db-1", "login": "postgres", "reason": "INC-4", "for_session": true})), &r4)
	if r4.Node != "db-1" || r4.Login != "postgres" || !r4.ForSession || r4.Approval.Status != "needs 1 more approval from any reviewer" || r4.Approval.Met {
		t.Fatalf("resource request %+v", r4)
	}
	bob.want(403, "POST", "/api/requests", map[string]any{"node": "db-1", "login": "www", "reason": "INC-5"})
	alice.want(400, "POST", "/api/requests/"+r4.ID+"/deny", map[string]any{"roles": []string{"dba"}})
	json.Unmarshal([]byte(alice.want(200, "POST", "/api/requests/"+r4.ID+"/approve", map[string]any{"roles": []string{"dba"}})), &r4)
	if r4.State != storage.StateApproved || !r4.Approval.Met || r4.Approval.Status != "rule met: 1 from any reviewer (alice)" {
		t.Fatalf("approved resource request %+v", r4)
	}

	// A resource request by label selector: the selector in and out, a
	// selector matching no node refused, and the grant in /api/me.
	var r5 requestView
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"labels": map[string]string{"team": "data"}, "login": "postgres", "reason": "INC-6"})), &r5)
	if r5.Labels["team"] != "data" || len(r5.Labels) != 1 || r5.Node != "" || r5.Login != "postgres" || strings.Join(r5.Roles, ",") != "dba" {
		t.Fatalf("label request %+v", r5)
	}
	bob.want(403, "POST", "/api/requests", map[string]any{"labels": map[string]string{"team": "nowhere"}, "login": "postgres", "reason": "INC-7"})
	bob.want(403, "POST", "/api/requests", map[string]any{"labels": map[string]string{"team": "data"}, "node": "db-1", "login": "postgres", "reason": "INC-7"})
	alice.want(200, "POST", "/api/requests/"+r5.ID+"/approve", map[string]any{"reason": "ok"})
	var me struct{ Grants []grantView }
	json.Unmarshal([]byte(bob.want(200, "GET", "/api/me", nil)), &me)
	if !slices.ContainsFunc(me.Grants, func(g grantView) bool { return g.ID == r5.ID && g.Labels["team"] == "data" && g.Login == "postgres" }) {
		t.Fatalf("/api/me grants lack the label grant: %+v", me.Grants)
	}

	// watch
	// The stream's events are checked against the WatchEvent schema here,
	// since the validator cannot read a body that never ends.
	res := streamGet(t, plugin, "/api/watch?after=0", "")
	schema := doc.Components.Schemas["WatchEvent"].Value
	sc := bufio.NewScanner(res.Body)
	n := 0
	for n < 5 && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("watch data is not JSON: %v\n%s", err, data)
		}
		if err := schema.VisitJSON(v); err != nil {
			t.Errorf("watch event does not match WatchEvent: %v\n%s", err, data)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("the watch replayed %d events, want at least 5", n)
	}
	res.Body.Close()
	plugin.want(400, "GET", "/api/watch?after=x", nil, "X-Test-Invalid", "1")
	anon.want(401, "GET", "/api/watch", nil)

	// sessions
	sam.want(200, "GET", "/api/sessions?user=bob", nil)
	bob.want(403, "GET", "/api/sessions", nil)
	anon.want(401, "GET", "/api/sessions", nil)
	sam.want(200, "GET", "/api/sessions/s-bob-0001/recording", nil)
	bob.want(404, "GET", "/api/sessions/s-bob-0001/recording", nil)
	anon.want(401, "GET", "/api/sessions/s-bob-0001/recording", nil)
	sam.want(409, "GET", "/api/sessions/s-bob-0002/recording", nil)
	sam.want(200, "GET", "/api/sessions/s-bob-0001/live", nil)
	sam.want(404, "GET", "/api/sessions/nope/live", nil)
	sam.want(400, "GET", "/api/sessions?since=yesterday", nil)
	anon.want(401, "GET", "/api/sessions/s-bob-0001/live", nil)
	noCSRF.want(403, "POST", "/api/sessions/s-bob-0001/terminate", nil)
	sam.want(200, "POST", "/api/sessions/s-bob-0001/terminate", nil)
	sam.want(404, "POST", "/api/sessions/nope/terminate", nil)
	anon.want(401, "POST", "/api/sessions/s-bob-0001/terminate", nil)

	// audit
	sam.want(200, "GET", "/api/audit?type=request.create", nil)
	sam.want(400, "GET", "/api/audit?since=yesterday", nil)
	bob.want(403, "GET", "/api/audit", nil)
	anon.want(401, "GET", "/api/audit", nil)
	sam.want(200, "POST", "/api/audit/verify", nil)
	bob.want(403, "POST", "/api/audit/verify", nil)
	anon.want(401, "POST", "/api/audit/verify", nil)

	// locks
	sam.want(201, "POST", "/api/locks", map[string]string{"user": "carol", "reason": "test", "ttl": "1h"})
	sam.want(400, "POST", "/api/locks", `{"user":"carol","why":"x"}`, "X-Test-Invalid", "1")
	bob.want(403, "POST", "/api/locks", map[string]string{"user": "carol", "reason": "test"})
	anon.want(401, "POST", "/api/locks", map[string]string{"user": "carol", "reason": "test"})
	sam.want(200, "GET", "/api/locks", nil)
	bob.want(403, "GET", "/api/locks", nil)
	anon.want(401, "GET", "/api/locks", nil)
	sam.want(200, "POST", "/api/locks/carol/unlock", nil)
	sam.want(404, "POST", "/api/locks/carol/unlock", nil)
	bob.want(403, "POST", "/api/locks/carol/unlock", nil)
	anon.want(401, "POST", "/api/locks/carol/unlock", nil)

	// Every response the document promises was produced and validated.
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if !v.seen[method+" "+path+" "+code] {
					missing = append(missing, method+" "+path+" "+code)
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented responses never exercised:\n%s", strings.Join(missing, "\n"))
	}
}

// streamGet opens an SSE stream and fails unless it answers 200.
func streamGet(t *testing.T, c *caller, path, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s %s", path, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return res
}

// sse is one parsed server-sent event.
type sse struct {
	ID, Event string
	Data      watchEvent
}

// readEvents reads n events from an SSE stream (comments skipped).
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []sse {
	t.Helper()
	var out []sse
	var cur sse
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" {
				out = append(out, cur)
			}
			cur = sse{}
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(out), n, sc.Err())
	}
	return out
}

func kinds(evs []sse) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Event+":"+e.Data.RequestID)
	}
	return out
}

// TestWatchResumesFromLastEventID: a watcher that disconnects and comes
// back with Last-Event-ID gets exactly the events it missed, in order, and
// only those on requests it may see.
func TestWatchResumesFromLastEventID(t *testing.T) {
	e := newEnvRoles(t, pluginRoles)
	ctx := context.Background()
	tok := addBot(t, e, "watch", time.Hour, "watcher")
	w := &caller{t: t, base: e.srv.URL, c: &http.Client{}, token: tok}
	bob := e.login(t, "bob")
	alice := e.login(t, "alice")

	res := streamGet(t, w, "/api/watch", "") // from now
	sc := bufio.NewScanner(res.Body)
	var r1 storage.Request
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-1"}, &r1); code != 201 {
		t.Fatalf("create: %d", code)
	}
	first := readEvents(t, sc, 1)
	if first[0].Event != "created" || first[0].Data.RequestID != r1.ID || first[0].Data.Actor != "bob" || first[0].ID != strconv.FormatInt(first[0].Data.ID, 10) {
		t.Fatalf("first event %+v", first[0])
	}
	res.Body.Close() // the plugin goes away

	// While it is away: alice approves r1, bob asks again and cancels, and
	// a request the watcher may not see (web, nobody reviews it) comes and goes.
	if code := alice.api("/api/requests/"+r1.ID+"/approve", map[string]string{"reason": "ok"}, nil); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	var r2 storage.Request
	bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-2"}, &r2)
	bob.api("/api/requests/"+r2.ID+"/cancel", nil, nil)
	if _, err := e.acc.Revoke(ctx, access.Admin(), r1.ID, "done"); err != nil {
		t.Fatal(err)
	}

	res = streamGet(t, w, "/api/watch", first[0].ID)
	defer res.Body.Close()
	sc = bufio.NewScanner(res.Body)
	missed := readEvents(t, sc, 5)
	want := []string{"reviewed:" + r1.ID, "approved:" + r1.ID, "created:" + r2.ID, "cancelled:" + r2.ID, "revoked:" + r1.ID}
	if got := kinds(missed); !slices.Equal(got, want) {
		t.Fatalf("after reconnect: %v, want %v", got, want)
	}
	prev, _ := strconv.ParseInt(first[0].ID, 10, 64)
	for _, ev := range missed {
		id, _ := strconv.ParseInt(ev.ID, 10, 64)
		if id <= prev {
			t.Fatalf("ids not increasing: %v", kinds(missed))
		}
		prev = id
	}
	if missed[1].Data.Actor != "alice" || missed[1].Data.Request.State != storage.StateRevoked {
		t.Fatalf("approved event %+v (request shows its state now)", missed[1].Data)
	}
	// And it goes on live.
	var r3 storage.Request
	bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-3"}, &r3)
	if got := kinds(readEvents(t, sc, 1)); got[0] != "created:"+r3.ID {
		t.Fatalf("live after resume: %v", got)
	}
}

// TestBearerTokens: a bot token works on every route without CSRF; a bad,
// expired or removed token is 401 with one line, at once.
func TestBearerTokens(t *testing.T) {
	e := newEnvRoles(t, pluginRoles)
	ctx := context.Background()
	tok := addBot(t, e, "chat", time.Hour, "chat-plugin")
	expired := addBot(t, e, "old", time.Nanosecond, "watcher")
	c := &caller{t: t, base: e.srv.URL, c: &http.Client{}, token: tok}
	var me struct{ User string }
	json.Unmarshal([]byte(c.want(200, "GET", "/api/me", nil)), &me)
	if me.User != "bot:chat" {
		t.Fatalf("bot is %q, want bot:chat", me.User)
	}
	// A POST without any CSRF token is fine with a bearer token.
	c.want(403, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "x"}) // refused by policy, not CSRF
	for name, h := range map[string]string{
		"unknown": "Bearer ghbot_" + strings.Repeat("x", 43),
		"expired": "Bearer " + expired,
		"scheme":  "Basic " + tok,
		"empty":   "Bearer ",
	} {
		code, text := c.do("GET", "/api/me", nil, "Authorization", h)
		if code != 401 || !strings.HasPrefix(text, "{") || strings.Count(strings.TrimSpace(text), "\n") > 2 {
			t.Errorf("%s token: %d %s, want 401 with one line", name, code, text)
		}
	}

	// A watch stream of a bot that is removed ends with an error event.
	res := streamGet(t, c, "/api/watch", "")
	defer res.Body.Close()
	if err := e.acc.RemoveBot(ctx, access.Admin(), "chat"); err != nil {
		t.Fatal(err)
	}
	c.want(401, "GET", "/api/me", nil)
	// Wake the stream (it also wakes on its poll).
	bob := e.login(t, "bob")
	bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-1"}, nil)
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), "event: error") || !strings.Contains(string(body), access.ErrBadToken.Error()) || strings.Contains(string(body), "event: created") {
		t.Fatalf("stream of a removed bot: %q", body)
	}
}

// TestWatchKeepAlive: an idle stream carries comment lines, so proxies and
// clients see it is alive; a stream from the present starts with its id.
func TestWatchKeepAlive(t *testing.T) {
	e := newEnvRoles(t, pluginRoles)
	w := &caller{t: t, base: e.srv.URL, c: &http.Client{}, token: addBot(t, e, "idle", time.Hour, "watcher")}
	res := streamGet(t, w, "/api/watch", "")
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == ": keep-alive" {
			break
		}
	}
	if !slices.Contains(lines, ": keep-alive") || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "id: ") }) {
		t.Fatalf("idle stream: %q, want an id line and a keep-alive comment", lines)
	}
}

// TestUserTokens: a person's API token (what `gatehouse request` uses) acts
// as that person through every /api/ route: the two-person rule and their
// own roles hold, on_behalf_of is refused, the audit names them, and a lock
// ends the token.
func TestUserTokens(t *testing.T) {
	e := newEnvRoles(t, pluginRoles)
	ctx := context.Background()
	bob := &caller{t: t, base: e.srv.URL, c: &http.Client{}, token: mustUserToken(t, e, "bob")}
	alice := &caller{t: t, base: e.srv.URL, c: &http.Client{}, token: mustUserToken(t, e, "alice")}
	var me struct{ User string }
	json.Unmarshal([]byte(bob.want(200, "GET", "/api/me", nil)), &me)
	if me.User != "bob" {
		t.Fatalf("bob's token is %q", me.User)
	}
	var r struct {
		ID                   string
		State                string
		ReviewReasonRequired *bool `json:"review_reason_required"`
		Reviews              []struct{ Reviewer, Via string }
	}
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-3"})), &r)
	bob.want(403, "POST", "/api/requests/"+r.ID+"/approve", map[string]any{"reason": "mine"}) // two-person rule
	json.Unmarshal([]byte(alice.want(200, "GET", "/api/requests/"+r.ID, nil)), &r)
	if r.ReviewReasonRequired == nil || *r.ReviewReasonRequired {
		t.Fatalf("review_reason_required of a dba request: %v, want false and present", r.ReviewReasonRequired)
	}
	if text := alice.want(403, "POST", "/api/requests/"+r.ID+"/approve", map[string]any{"reason": "x", "on_behalf_of": "sam"}); !strings.Contains(text, "acts only as its user") {
		t.Fatalf("on_behalf_of with a user token: %s", text)
	}
	json.Unmarshal([]byte(alice.want(200, "POST", "/api/requests/"+r.ID+"/approve", map[string]any{"reason": "ok"})), &r)
	if r.State != "APPROVED" || len(r.Reviews) != 1 || r.Reviews[0].Reviewer != "alice" || r.Reviews[0].Via != "" {
		t.Fatalf("after alice's approval: %+v", r)
	}
	evs, err := e.store.ListEvents(ctx, storage.EventFilter{Type: audit.TypeRequestApprove})
	if err != nil || len(evs) != 1 || evs[0].Actor != "alice" || evs[0].Fields["via"] != nil {
		t.Fatalf("request.approve events %+v %v", evs, err)
	}
	if _, err := e.acc.Lock(ctx, access.Admin(), "bob", "token leaked", 0); err != nil {
		t.Fatal(err)
	}
	bob.want(401, "GET", "/api/me", nil)
	alice.want(200, "GET", "/api/me", nil)
}

// TestReviewCheckOnBehalf: a plugin bot asks whether a person may review a
// request now (GET with on_behalf_of) and gets the answer the review would
// give, without any review recorded; a caller without review_on_behalf is
// refused the question.
func TestReviewCheckOnBehalf(t *testing.T) {
	e := newEnvRoles(t, pluginRoles)
	v := newValidator(t, loadOpenAPI(t), e.srv.URL)
	as := func(token string) *caller {
		return &caller{t: t, base: e.srv.URL, c: &http.Client{Transport: v}, token: token}
	}
	plugin, watcher := as(addBot(t, e, "chat", time.Hour, "chat-plugin")), as(addBot(t, e, "watch", time.Hour, "watcher"))
	bob, alice := as(mustUserToken(t, e, "bob")), as(mustUserToken(t, e, "alice"))
	var r storage.Request
	json.Unmarshal([]byte(bob.want(201, "POST", "/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-9"})), &r)
	path := "/api/requests/" + r.ID

	type answer struct {
		ID           string
		State        string
		Reviews      []storage.Review
		CanReview    *bool  `json:"can_review"`
		CannotReview string `json:"cannot_review"`
	}
	ask := func(query string) answer {
		t.Helper()
		var a answer
		if err := json.Unmarshal([]byte(plugin.want(200, "GET", path+query, nil)), &a); err != nil || a.ID != r.ID || a.CanReview == nil {
			t.Fatalf("GET %s: %+v %v", query, a, err)
		}
		return a
	}
	if a := ask("?on_behalf_of=alice&verdict=approve"); !*a.CanReview || a.CannotReview != "" {
		t.Fatalf("alice, a reviewer of dba: %+v", a)
	}
	for person, why := range map[string]string{
		"sam": "sam may not review request " + r.ID,
		"bob": "bob cannot review their own request",
	} {
		if a := ask("?on_behalf_of=" + person); *a.CanReview || a.CannotReview != why {
			t.Fatalf("%s: %+v, want %q", person, a, why)
		}
		// The review on their behalf is refused with the same line.
		if text := plugin.want(403, "POST", path+"/approve", map[string]string{"reason": "ok", "on_behalf_of": person}); !strings.Contains(text, why) {
			t.Fatalf("%s's review: %s", person, text)
		}
	}
	if text := plugin.want(403, "GET", path+"?on_behalf_of=bot:watch", nil); !strings.Contains(text, "on_behalf_of must name a person") {
		t.Fatalf("on behalf of a bot: %s", text)
	}

	// Without review_on_behalf the question itself is refused.
	if text := watcher.want(403, "GET", path+"?on_behalf_of=alice", nil); !strings.Contains(text, "may not review on behalf of others") {
		t.Fatalf("a bot without review_on_behalf: %s", text)
	}
	if text := alice.want(403, "GET", path+"?on_behalf_of=alice", nil); !strings.Contains(text, "acts only as its user") {
		t.Fatalf("a user token: %s", text)
	}
	plugin.want(404, "GET", "/api/requests/nope?on_behalf_of=alice", nil)
	plugin.want(400, "GET", path+"?verdict=approve", nil)

	// Asking recorded nothing; alice's review then goes through, and the
	// next answer says the request is decided.
	if a := ask("?on_behalf_of=alice&verdict=deny"); len(a.Reviews) != 0 || a.State != storage.StatePending {
		t.Fatalf("after the checks: %+v", a)
	}
	plugin.want(200, "POST", path+"/approve", map[string]string{"reason": "ok", "on_behalf_of": "alice"})
	if a := ask("?on_behalf_of=alice"); *a.CanReview || a.CannotReview != "request "+r.ID+" is already approved" {
		t.Fatalf("after alice approved: %+v", a)
	}
}

func mustUserToken(t *testing.T, e *env, user string) string {
	t.Helper()
	tok, _, err := e.acc.IssueUserToken(context.Background(), access.TokenSubject{User: user}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
