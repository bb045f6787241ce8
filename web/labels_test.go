package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The request form takes a label selector in the syntax of `request
// --labels`; a bad one comes back with the error and what was typed, a good
// one is shown to the requester, the reviewer and, once granted, on the
// home page.
func TestRequestFormLabels(t *testing.T) {
	e := newEnv(t)
	bob, alice := e.login(t, "bob"), e.login(t, "alice")
	res, page := bob.postForm("/requests", url.Values{"labels": {"team"}, "login": {"postgres"}, "duration": {"1h"}, "reason": {"INC-9"}})
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad labels: %d", res.StatusCode)
	}
	for _, want := range []string{`id="form-error"`, `is not KEY=VALUE`, `name="labels" value="team"`, `<details open>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("re-rendered form lacks %q:\n%s", want, page)
		}
	}
	res, page = bob.postForm("/requests", url.Values{"roles": {"dba"}, "labels": {"team=data"}, "login": {"postgres"}, "duration": {"1h"}, "reason": {"INC-9"}})
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "Requested login postgres on nodes labelled team=data (role dba) for 1h") {
		t.Fatalf("label request: %d\n%s", res.StatusCode, page)
	}
	if !strings.Contains(page, "login <code>postgres</code> on <code>nodes labelled team=data</code> (dba)") {
		t.Fatalf("the requests page does not show the selector:\n%s", page)
	}
	_, page = alice.get("/review")
	if !strings.Contains(page, "asks for login <code>postgres</code> on <code>nodes labelled team=data</code> through") {
		t.Fatalf("the review page does not show the selector:\n%s", page)
	}
	id := page[strings.Index(page, `data-id="`)+len(`data-id="`):]
	id = id[:strings.IndexByte(id, '"')]
	if res, _ := alice.postForm("/requests/"+id+"/approve", url.Values{"back": {"/review"}}); res.StatusCode != http.StatusOK {
		t.Fatalf("approve %s: %d", id, res.StatusCode)
	}
	if _, page := bob.get("/"); !strings.Contains(page, "login <code>postgres</code> on <code>nodes labelled team=data</code> through") {
		t.Fatalf("the home page does not show the label grant:\n%s", page)
	}
}
