package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// answer is everything a response tells its reader, with the id they
// asked about replaced by ID.
type answer struct {
	status          int
	location, flash string
	body            string
}

func (b *browser) answer(t *testing.T, method, path, id string, form url.Values) answer {
	t.Helper()
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var res *http.Response
	var err error
	switch {
	case method == http.MethodGet:
		res, err = c.Get(b.base + path)
	case form != nil:
		res, err = c.PostForm(b.base+path, form)
	default:
		req, _ := http.NewRequest(method, b.base+path, strings.NewReader(`{"reason":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", b.csrf)
		res, err = c.Do(req)
	}
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, location: res.Header.Get("Location"), body: readBody(t, res)}
	for _, ck := range res.Cookies() {
		if ck.Name == flashCookie {
			a.flash = ck.Value
		}
	}
	a.body = strings.ReplaceAll(a.body, id, "ID")
	a.flash = strings.ReplaceAll(a.flash, url.QueryEscape(id), "ID")
	// The page carries the viewer's CSRF token; it does not depend on the id.
	return a
}

// TestNoRequestOracleOnTheWeb: someone with no rights on a request gets,
// for its real id, byte for byte the answer a made-up id gets, on the JSON
// API, on the forms and on the request link: same status, same body, same
// redirect and flash message.
func TestNoRequestOracleOnTheWeb(t *testing.T) {
	e := newEnv(t)
	bob, sam := e.login(t, "bob"), e.login(t, "sam")
	var req storage.Request
	if code := bob.api("/api/requests", map[string]any{"roles": []string{"dba"}, "reason": "INC-1", "duration": "1h"}, &req); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	fake := "abcdefghijklmn"
	form := url.Values{"csrf_token": {sam.csrf}, "back": {"/review"}, "reason": {"x"}}
	for _, action := range []string{"approve", "deny", "cancel", "drop"} {
		for _, ch := range []struct {
			name, method, path string
			form               url.Values
		}{
			{"api", http.MethodPost, "/api/requests/{id}/" + action, nil},
			{"form", http.MethodPost, "/requests/{id}/" + action, form},
		} {
			t.Run(ch.name+" "+action, func(t *testing.T) {
				real := sam.answer(t, ch.method, strings.ReplaceAll(ch.path, "{id}", req.ID), req.ID, ch.form)
				made := sam.answer(t, ch.method, strings.ReplaceAll(ch.path, "{id}", fake), fake, ch.form)
				if real != made {
					t.Fatalf("real id:\n%+v\nmade-up id:\n%+v", real, made)
				}
				if ch.name == "api" && (real.status != http.StatusNotFound || !strings.Contains(real.body, `"error": "no request ID that you may `)) {
					t.Fatalf("want 404 and the one error, got %+v", real)
				}
				if ch.name == "form" && (real.status != http.StatusSeeOther || !strings.Contains(real.flash, "no+request+ID")) {
					t.Fatalf("want 303 back with the one message, got %+v", real)
				}
			})
		}
	}
	t.Run("link", func(t *testing.T) {
		sam.get("/") // shows, and so clears, the last form's flash message
		real := sam.answer(t, http.MethodGet, "/requests/"+req.ID, req.ID, nil)
		made := sam.answer(t, http.MethodGet, "/requests/"+fake, fake, nil)
		if real != made || real.status != http.StatusNotFound {
			t.Fatalf("real id:\n%+v\nmade-up id:\n%+v", real, made)
		}
	})
	// Nothing happened to the request, and its owner still cancels it.
	var out storage.Request
	if code := bob.api("/api/requests/"+req.ID+"/cancel", nil, &out); code != http.StatusOK || out.State != storage.StateCancelled {
		t.Fatalf("bob cancels: %d %+v", code, out)
	}
}
