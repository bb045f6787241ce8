package web

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// postForm submits an HTML form the way the browser does (CSRF in a field).
func (b *browser) postForm(path string, v url.Values) (*http.Response, string) {
	b.t.Helper()
	v.Set("csrf_token", b.csrf)
	res, err := b.c.PostForm(b.base+path, v)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, readBody(b.t, res)
}

var seqCellRe = regexp.MustCompile(`<tr><td>(\d+)</td>`)

func seqs(page string) []string {
	var out []string
	for _, m := range seqCellRe.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// The audit page lists newest first and pages back to older events; a bad
// filter is a 400 that shows the one-line error and keeps what was typed.
func TestAuditPageNewestFirstAndBadFilter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := 0; i < auditPageSize+5; i++ {
		if err := e.audit.Append(ctx, storage.Event{Time: time.Now().UTC(), Type: "test.tick", Actor: "sam", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	sam := e.login(t, "sam")
	res, page := sam.get("/audit?type=test.tick")
	first := seqs(page)
	if res.StatusCode != http.StatusOK || len(first) != auditPageSize {
		t.Fatalf("first page: %d with %d rows", res.StatusCode, len(first))
	}
	if a, b := first[0], first[len(first)-1]; len(a) < len(b) || (len(a) == len(b) && a < b) {
		t.Fatalf("first page runs %s..%s, want newest first", a, b)
	}
	m := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(m[1], "before="+first[len(first)-1]) {
		t.Fatalf("no link to older events: %v", m)
	}
	_, page = sam.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	older := seqs(page)
	if len(older) != 5 || strings.Contains(page, `id="next-page"`) {
		t.Fatalf("second page rows %v (link %v)", older, strings.Contains(page, `id="next-page"`))
	}
	for _, s := range older {
		for _, f := range first {
			if s == f {
				t.Fatalf("event %s on both pages", s)
			}
		}
	}

	res, page = sam.get("/audit?since=yesterday&user=alice")
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("since=yesterday: %d, want 400", res.StatusCode)
	}
	for _, want := range []string{`id="filter-error"`, "yesterday", `name="user" value="alice"`, `name="since" value="yesterday"`, `id="audit-filter"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("bad-filter page lacks %q", want)
		}
	}
	if strings.Contains(page, "Forbidden") {
		t.Fatal("a bad filter is not a permission problem")
	}
	if res, _ := sam.get("/api/audit?since=yesterday"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("API since=yesterday: %d, want 400", res.StatusCode)
	}
	res, page = sam.get("/sessions?since=yesterday&node=db-1")
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="filter-error"`) || !strings.Contains(page, `name="node" value="db-1"`) {
		t.Fatalf("sessions since=yesterday: %d", res.StatusCode)
	}
	// The API still walks forward from after=.
	var evs struct{ Events []storage.Event }
	sam.getJSON("/api/audit?type=test.tick", &evs)
	if len(evs.Events) < 2 || evs.Events[0].Seq > evs.Events[1].Seq {
		t.Fatal("API order changed: want oldest first")
	}
}

// A refused request form comes back with the error and what was typed.
func TestRequestFormErrorKeepsInput(t *testing.T) {
	e := newEnv(t)
	bob := e.login(t, "bob")
	res, page := bob.postForm("/requests", url.Values{"roles": {"dba"}, "duration": {"forever"}, "reason": {"INC-9: disk full on db-1"}})
	if res.StatusCode != http.StatusBadRequest || res.Request.URL.Path != "/requests" {
		t.Fatalf("bad duration: %d at %s", res.StatusCode, res.Request.URL)
	}
	for _, want := range []string{`id="form-error"`, `bad duration`, `value="forever"`, "INC-9: disk full on db-1</textarea>", `value="dba" id="role-dba" checked`} {
		if !strings.Contains(page, want) {
			t.Fatalf("re-rendered form lacks %q:\n%s", want, page)
		}
	}
	// The untouched form keeps its default.
	if _, page := bob.get("/requests"); !strings.Contains(page, `value="1h"`) || strings.Contains(page, `id="form-error"`) {
		t.Fatal("fresh form lost its default or shows an old error")
	}
	// That default is the policy's default_duration.
	rolesFile, err := os.ReadFile(e.pol.Path())
	if err != nil {
		t.Fatal(err)
	}
	rolesFile = []byte(strings.Replace(string(rolesFile), "max_duration: 4h\n", "max_duration: 4h\n        default_duration: 2h\n", 1))
	if err := os.WriteFile(e.pol.Path(), rolesFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.pol.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, page := bob.get("/requests"); !strings.Contains(page, `id="duration" name="duration" value="2h"`) {
		t.Fatal("fresh form does not start at the policy's default_duration 2h")
	}
}

// Reviewers see how many requests wait for them in the navigation.
func TestReviewerNavBadge(t *testing.T) {
	e := newEnv(t)
	alice := e.login(t, "alice")
	if _, page := alice.get("/"); !strings.Contains(page, `href="/review"`) || strings.Contains(page, `id="review-count"`) {
		t.Fatal("alice: want the Review link without a count when nothing waits")
	}
	bob := e.login(t, "bob")
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "duration": "1h", "reason": "INC-1"}, nil); code != http.StatusCreated {
		t.Fatalf("bob request: %d", code)
	}
	if _, page := alice.get("/"); !strings.Contains(page, `id="review-count" title="1 waiting for your review">1</span>`) {
		t.Fatal("alice's nav does not show the one waiting request")
	}
	if _, page := bob.get("/"); strings.Contains(page, `id="review-count"`) {
		t.Fatal("bob reviews nothing but sees a count")
	}
}

// After Terminate, the list the user lands on shows the session ended.
func TestTerminateShowsEnded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := e.store.CreateSession(ctx, storage.Session{ID: "sess-kill1", User: "alice", Login: "root", Node: "db-1", Kind: "shell", Start: now, Status: "live"}); err != nil {
		t.Fatal(err)
	}
	e.live.mu.Lock()
	e.live.sessions = []proxy.LiveSession{{ID: "sess-kill1", User: "alice", Login: "root", Node: "db-1", Kind: "shell", Start: now}}
	e.live.onTerminate = func(id string) {
		if err := e.store.EndSession(context.Background(), id, time.Now().UTC(), "terminated", nil, 0, 0); err != nil {
			t.Error(err)
		}
	}
	e.live.mu.Unlock()
	sam := e.login(t, "sam")
	if _, page := sam.get("/sessions"); !strings.Contains(page, "● live") {
		t.Fatal("the running session is not shown live")
	}
	res, page := sam.postForm("/sessions/sess-kill1/terminate", url.Values{})
	if res.Request.URL.Path != "/sessions" || !strings.Contains(page, "Terminated session sess-kill1") {
		t.Fatalf("terminate landed on %s", res.Request.URL)
	}
	row := page[strings.Index(page, `id="s-sess-kill1"`):]
	row = row[:strings.Index(row, "</tr>")]
	if strings.Contains(row, "live") || !strings.Contains(row, "st-terminated") {
		t.Fatalf("session row after terminate: %s", row)
	}
}

// Every page names an icon, and the icon is served.
func TestFavicon(t *testing.T) {
	e := newEnv(t)
	sam := e.login(t, "sam")
	if _, page := sam.get("/"); !strings.Contains(page, `<link rel="icon" href="/static/favicon.svg"`) {
		t.Fatal("layout names no icon")
	}
	for _, path := range []string{"/static/favicon.svg", "/favicon.ico"} {
		res, body := sam.get(path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "image/svg+xml") || !strings.Contains(body, "<svg") {
			t.Fatalf("%s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
}
