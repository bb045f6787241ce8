package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
)

func TestParseCredential(t *testing.T) {
	c, err := parseCredential("token: ghusr_abc\nurl: https://bastion.example\nexpires: 2026-12-05T10:00:00Z\n")
	if err != nil || c.Token != "ghusr_abc" || c.URL != "https://bastion.example" || !c.Expires.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("parseCredential = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "token: x\nurl: http://b\n", "token: x\nurl: http://b\nexpires: soon\n"} {
		if _, err := parseCredential(bad); err == nil {
			t.Errorf("parseCredential(%q) accepted", bad)
		}
	}
}

// fakeAPI answers the routes the request commands use, with one pending
// request r1 that only alice may review, and counts the tokens it saw.
type fakeAPI struct {
	mu     sync.Mutex
	tokens map[string]int
	state  string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.tokens[tok]++
	w.Header().Set("Content-Type", "application/json")
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	if !strings.HasPrefix(tok, "ghusr_") {
		fail(http.StatusUnauthorized, "the API token is not valid (unknown, expired or revoked)")
		return
	}
	req := apiclient.Request{ID: "r1", User: "bob", Roles: []string{"dba"}, Reason: "INC-1 \x1b[2J", State: f.state}
	switch r.Method + " " + r.URL.Path {
	case "POST /api/requests":
		var in apiclient.NewRequest
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.Reason == "" {
			fail(http.StatusForbidden, "a reason is required")
			return
		}
		req.State = "PENDING"
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(req)
	case "GET /api/requests":
		if r.URL.Query().Get("scope") != "all" {
			fail(http.StatusBadRequest, "want scope=all")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"requests": []apiclient.Request{req}})
	case "GET /api/requests/r1":
		_ = json.NewEncoder(w).Encode(req)
	case "POST /api/requests/r1/approve":
		var in struct {
			Reason     string `json:"reason"`
			OnBehalfOf string `json:"on_behalf_of"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		if tok != "ghusr_alice" || in.OnBehalfOf != "" {
			fail(http.StatusNotFound, "no request r1 that you may review")
			return
		}
		f.state = "APPROVED"
		req.State = f.state
		_ = json.NewEncoder(w).Encode(req)
	default:
		fail(http.StatusNotFound, "no request that you may see")
	}
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{tokens: map[string]int{}, state: "PENDING"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// requestsAs is the commands as user, minting tokens named for them.
func requestsAs(user, url string, mints *int, life time.Duration) (*Requests, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	c := NewRequests(Profile{User: user}, &out, &errb)
	c.Poll = time.Millisecond
	c.s.mint = func(_ context.Context, p Profile) (APICredential, error) {
		*mints++
		return APICredential{Token: "ghusr_" + p.User, URL: url, Expires: time.Now().Add(life)}, nil
	}
	return c, &out, &errb
}

func TestRequestsOverTheAPI(t *testing.T) {
	ctx := context.Background()
	f, srv := newFakeAPI(t)
	mints := 0
	bob, out, errb := requestsAs("bob", srv.URL, &mints, time.Hour)

	if code, err := bob.Create(ctx, []string{"dba"}, "INC-1", "", false); err != nil || code != 0 ||
		!strings.Contains(out.String(), "id: r1\n") || !strings.Contains(out.String(), "gatehouse request approve r1") {
		t.Fatalf("create: %d %v\n%s%s", code, err, out, errb)
	}
	if code, err := bob.Create(ctx, []string{"dba"}, "", "", false); err != nil || code != 1 || errb.String() != "gatehouse: request refused: a reason is required\n" {
		t.Fatalf("create without a reason: %d %v %q", code, err, errb)
	}
	out.Reset()
	if code, err := bob.List(ctx); err != nil || code != 0 || !strings.HasPrefix(out.String(), "r1") || strings.Contains(out.String(), "\x1b") {
		t.Fatalf("ls: %d %v %q", code, err, out)
	}
	out.Reset()
	if code, err := bob.Show(ctx, "r1"); err != nil || code != 0 || !strings.Contains(out.String(), `reason: INC-1 \x1b[2J`) {
		t.Fatalf("show: %d %v %q", code, err, out)
	}
	errb.Reset()
	if code, err := bob.Review(ctx, "r1", true, ""); err != nil || code != 1 || errb.String() != "gatehouse: no request r1 that you may review\n" {
		t.Fatalf("bob approves: %d %v %q", code, err, errb)
	}
	if mints != 1 {
		t.Fatalf("minted %d tokens for one run, want 1", mints)
	}

	// --wait: alice approves meanwhile; bob's tokens last a minute only, so
	// the wait mints fresh ones rather than fail.
	short := 0
	waiter, wout, werr := requestsAs("bob", srv.URL, &short, time.Minute)
	done := make(chan int)
	go func() {
		code, err := waiter.Create(ctx, []string{"dba"}, "INC-1", "", true)
		if err != nil {
			t.Error(err)
		}
		done <- code
	}()
	alice, aout, _ := requestsAs("alice", srv.URL, &mints, time.Hour)
	if code, err := alice.Review(ctx, "r1", true, "ok"); err != nil || code != 0 || aout.String() != "you approved request r1; it is now APPROVED\n" {
		t.Fatalf("alice approves: %d %v %q", code, err, aout)
	}
	if code := <-done; code != 0 || !strings.Contains(wout.String(), "request r1 APPROVED: dba granted") {
		t.Fatalf("wait: %d %q %q", code, wout, werr)
	}
	if short < 2 {
		t.Errorf("a wait with short-lived tokens minted %d, want a fresh one per poll", short)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokens[""] != 0 {
		t.Error("a call went out without a token")
	}
}

// TestRequestsUnreachable: no API at the address the bastion named is one
// error naming the address; a failing mint is returned as is.
func TestRequestsUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	n := 0
	c, _, _ := requestsAs("bob", url, &n, time.Hour)
	_, err := c.List(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the bastion's API at "+url+": ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unreachable API: %v", err)
	}
	c.s.mint = func(context.Context, Profile) (APICredential, error) {
		return APICredential{}, errors.New("connect to bastion: refused")
	}
	c.s.api = nil
	if _, err := c.Show(context.Background(), "r1"); err == nil || err.Error() != "connect to bastion: refused" {
		t.Fatalf("failing mint: %v", err)
	}
}
