package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// fakeRemote stands in for the other bastions reached through the shared
// database: Locate answers with where (or fails), Terminate records the end
// in the store when ends is set, as the holding bastion would.
type fakeRemote struct {
	store storage.Store
	where string
	ends  bool
	asked []string
}

func (f *fakeRemote) Locate(_ context.Context, s storage.Session) (string, error) {
	if f.where == "" {
		return "", errors.New("no answer")
	}
	return f.where, nil
}

func (f *fakeRemote) Terminate(ctx context.Context, s storage.Session, by string) error {
	f.asked = append(f.asked, s.ID+" by "+by)
	if !f.ends {
		return nil
	}
	zero := 0
	return f.store.EndSession(ctx, s.ID, time.Now().UTC(), "terminated", &zero, 0, 0)
}

// A live session held by another bastion: watching it is redirected (307)
// to that bastion's own address, answered 409 when both share this web
// address (a redirect would loop) and 503 when it does not answer;
// terminating it asks that bastion and answers once the end is recorded,
// or 503 saying it is not recorded yet.
func TestLiveSessionOnAnotherBastion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rem := &fakeRemote{store: e.store}
	e.h.opt.Remote = rem
	for _, id := range []string{"away-0001", "away-0002"} {
		if err := e.store.CreateSession(ctx, storage.Session{ID: id, User: "bob", Login: "root", Node: "db-1", Kind: "shell",
			Recording: id, Start: time.Now().UTC(), Status: "live", Bastion: "bastion-2"}); err != nil {
			t.Fatal(err)
		}
	}
	sam := e.login(t, "sam")
	sam.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	rem.where = "https://bastion-2.example.com/"
	res, _ := sam.get("/api/sessions/away-0001/live")
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != "https://bastion-2.example.com/api/sessions/away-0001/live" {
		t.Errorf("watch elsewhere: %d to %q, want 307 to bastion-2's own address", res.StatusCode, res.Header.Get("Location"))
	}
	rem.where = e.cfg.Web.PublicURL
	res, body := sam.get("/api/sessions/away-0001/live")
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "bastion bastion-2, which shares this web address") {
		t.Errorf("watch behind a shared address: %d %s, want 409 naming the bastion", res.StatusCode, body)
	}
	rem.where = ""
	if res, body := sam.get("/api/sessions/away-0001/live"); res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "did not answer") {
		t.Errorf("watch when the holder does not answer: %d %s, want 503", res.StatusCode, body)
	}

	rem.ends = true
	if code, body := sam.postJSON("/api/sessions/away-0001/terminate", sam.csrf, nil); code != http.StatusOK || !strings.Contains(body, "away-0001") {
		t.Errorf("terminate elsewhere: %d %s", code, body)
	}
	rem.ends = false
	if code, body := sam.postJSON("/api/sessions/away-0002/terminate", sam.csrf, nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "has not recorded the end yet") {
		t.Errorf("terminate whose end is never recorded: %d %s, want 503", code, body)
	}
	if len(rem.asked) != 2 || rem.asked[0] != "away-0001 by sam" {
		t.Errorf("terminations asked: %q", rem.asked)
	}
}
