package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/storage"
	"golang.org/x/crypto/ssh"
)

func TestHTTPLoginSessionAndLogout(t *testing.T) {
	e := newEnv(t)
	c, body := e.httpLogin(t, "alice", "alice", "/whoami")
	if !strings.Contains(body, `<p id="user">alice</p>`) || !strings.Contains(body, "approvers,engineers") {
		t.Fatalf("after sign-in want alice's page with her groups, got: %s", body)
	}
	ev, ok := e.audit.find("oidc.login", nil)
	if !ok || ev.Actor != "alice" || ev.Fields["kind"] != "web" {
		t.Fatalf("want an oidc.login web event for alice, got %+v (found %v)", ev, ok)
	}
	csrf := csrfRe.FindStringSubmatch(body)[1]

	// Sign-out without the CSRF token is refused and the session survives.
	res, err := c.PostForm(e.srv.URL+"/oidc/logout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: status %d, want 403", res.StatusCode)
	}
	res, err = c.PostForm(e.srv.URL+"/oidc/logout", url.Values{"csrf_token": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res); res.StatusCode != 200 || !strings.Contains(b, "Signed out") {
		t.Fatalf("logout: %d %s", res.StatusCode, b)
	}
	// The revoked session is refused at once, even with the old cookie.
	old := &http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(e.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			t.Fatalf("session cookie still in the jar after logout")
		}
	}
	res, err = old.Get(e.srv.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/oidc/login?next=") {
		t.Fatalf("after logout /whoami: %d to %q, want redirect to sign-in", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestLogoutRevokesStoredSession(t *testing.T) {
	e := newEnv(t)
	c, body := e.httpLogin(t, "bob", "bob", "/whoami")
	csrf := csrfRe.FindStringSubmatch(body)[1]
	u, _ := url.Parse(e.srv.URL)
	var secret string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			secret = ck.Value
		}
	}
	res, err := c.PostForm(e.srv.URL+"/oidc/logout", url.Values{"csrf_token": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	l, err := e.store.GetLogin(context.Background(), hashToken("session", secret))
	if err != nil || !l.Revoked || l.Kind != "web" || l.User != "bob" {
		t.Fatalf("stored session after logout: %+v, %v; want bob's web login, revoked", l, err)
	}
	// Replaying the stolen cookie does not work.
	req, _ := http.NewRequest("GET", e.srv.URL+"/whoami", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
	if _, ok := e.svc.Session(req); ok {
		t.Fatal("revoked session still accepted")
	}
}

func TestUnverifiedEmailRefused(t *testing.T) {
	e := newEnv(t)
	_, body := e.httpLogin(t, "eve", "eve", "/whoami")
	if !strings.Contains(body, "not verified") {
		t.Fatalf("want refusal for unverified email, got: %s", body)
	}
	if _, ok := e.audit.find("oidc.login_failed", nil); !ok {
		t.Fatal("refusal not audited")
	}
}

// TestStateIsSingleUseAndBoundToBrowser replays a callback URL and tries it
// from a browser that did not start the sign-in.
func TestStateIsSingleUseAndBoundToBrowser(t *testing.T) {
	e := newEnv(t)
	var callback string
	c, _ := e.httpLogin(t, "bob", "bob", "/whoami")
	// Start a second sign-in but stop at the callback to capture it.
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/oidc/callback" {
			callback = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	res, err := c.Get(e.srv.URL + "/oidc/login?next=/whoami")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	id := authRequestIDRe.FindStringSubmatch(body)[1]
	res, err = c.PostForm(e.idpSrv.URL+"/login", url.Values{"authRequestID": {id}, "username": {"bob"}, "password": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if callback == "" {
		t.Fatal("did not reach the callback")
	}

	// Another browser (no pre-login cookie) cannot finish it...
	stranger := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = stranger.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(b, "another browser") {
		t.Fatalf("callback from another browser: %d %s", res.StatusCode, b)
	}
	// ...and its attempt consumed the state, so the replay by the right
	// browser is refused too: state is single-use whoever presents it.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err = c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(b, "already used") {
		t.Fatalf("replayed callback: %d %s", res.StatusCode, b)
	}
}

func TestCallbackReplayAfterSuccess(t *testing.T) {
	e := newEnv(t)
	jarClient, _ := e.httpLogin(t, "bob", "bob", "/whoami") // warm: proves the flow works
	var callback string
	jarClient.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/oidc/callback" && callback == "" {
			callback = req.URL.String()
		}
		return nil
	}
	res, err := jarClient.Get(e.srv.URL + "/oidc/login?next=/whoami")
	if err != nil {
		t.Fatal(err)
	}
	id := authRequestIDRe.FindStringSubmatch(readAll(t, res))[1]
	res, err = jarClient.PostForm(e.idpSrv.URL+"/login", url.Values{"authRequestID": {id}, "username": {"bob"}, "password": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res); !strings.Contains(b, `<p id="user">bob</p>`) {
		t.Fatalf("second sign-in failed: %s", b)
	}
	jarClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err = jarClient.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(b, "already used") {
		t.Fatalf("replayed successful callback: %d %s", res.StatusCode, b)
	}
}

func TestSSHLoginURLRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, _ := e.httpLogin(t, "bob", "bob", "/whoami")
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.CheckRedirect = noFollow

	confirm := func(code, csrf string) (int, string) {
		res, err := c.PostForm(e.srv.URL+"/ssh-login/"+code, url.Values{"csrf_token": {csrf}, "action": {"confirm"}})
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, readAll(t, res)
	}
	open := func(code string) (int, string) {
		res, err := c.Get(e.srv.URL + "/ssh-login/" + code)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, readAll(t, res)
	}

	t.Run("used twice", func(t *testing.T) {
		sl, err := e.svc.StartSSHLogin(ctx, "SHA256:twice", "192.0.2.7:40000")
		if err != nil {
			t.Fatal(err)
		}
		st, body := open(sl.Code)
		if st != 200 || !strings.Contains(body, "SHA256:twice") || !strings.Contains(body, "192.0.2.7:40000") {
			t.Fatalf("confirm page: %d %s", st, body)
		}
		// The site's look and a duration a person reads, not Go's 12h0m0s.
		for _, want := range []string{`href="/static/app.css"`, `rel="icon"`, "act as you for 12 hours."} {
			if !strings.Contains(body, want) {
				t.Fatalf("confirm page lacks %q: %s", want, body)
			}
		}
		csrf := csrfRe.FindStringSubmatch(body)[1]
		if st, body := confirm(sl.Code, csrf); st != 200 || !strings.Contains(body, "confirmed") {
			t.Fatalf("first confirm: %d %s", st, body)
		}
		if st, body := confirm(sl.Code, csrf); st != http.StatusGone || !strings.Contains(body, "already used") {
			t.Fatalf("second confirm: %d %s", st, body)
		}
		if st, _ := open(sl.Code); st != http.StatusGone {
			t.Fatalf("reopening a used code: %d, want 410", st)
		}
		if _, ok := e.audit.find("oidc.ssh_login_refused", func(ev storage.Event) bool { return ev.Target == sl.Code }); !ok {
			t.Fatal("refusal of a used code not audited")
		}
	})

	t.Run("missing CSRF token", func(t *testing.T) {
		sl, _ := e.svc.StartSSHLogin(ctx, "SHA256:csrf", "192.0.2.7:40001")
		if st, _ := confirm(sl.Code, ""); st != http.StatusForbidden {
			t.Fatalf("confirm without CSRF: %d, want 403", st)
		}
		if _, err := e.store.LoginByKey(ctx, "SHA256:csrf", time.Now()); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("key bound without CSRF token: %v", err)
		}
	})

	t.Run("not signed in", func(t *testing.T) {
		sl, _ := e.svc.StartSSHLogin(ctx, "SHA256:anon", "192.0.2.7:40002")
		anon := &http.Client{CheckRedirect: noFollow}
		res, err := anon.Get(e.srv.URL + "/ssh-login/" + sl.Code)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, res)
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/oidc/login?next="+url.QueryEscape("/ssh-login/"+sl.Code) {
			t.Fatalf("anonymous open: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		sl, _ := e.svc.StartSSHLogin(ctx, "SHA256:cancel", "192.0.2.7:40003")
		_, body := open(sl.Code)
		csrf := csrfRe.FindStringSubmatch(body)[1]
		res, err := c.PostForm(e.srv.URL+"/ssh-login/"+sl.Code, url.Values{"csrf_token": {csrf}, "action": {"cancel"}})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, res)
		if _, err := e.svc.WaitSSHLogin(ctx, sl.Code); !errors.Is(err, ErrSSHLoginDenied) {
			t.Fatalf("wait after cancel: %v, want ErrSSHLoginDenied", err)
		}
	})

	// Last: it moves the clock.
	t.Run("expired", func(t *testing.T) {
		sl, _ := e.svc.StartSSHLogin(ctx, "SHA256:late", "192.0.2.7:40004")
		_, body := open(sl.Code)
		csrf := csrfRe.FindStringSubmatch(body)[1]
		waitErr := make(chan error, 1)
		go func() { _, err := e.svc.WaitSSHLogin(ctx, sl.Code); waitErr <- err }()
		e.waitPolled(t, "ssh-login-done:"+sl.Code)
		e.clock.Advance(sshLoginTTL + time.Second)
		if st, body := confirm(sl.Code, csrf); st != http.StatusGone || !strings.Contains(body, "expired") {
			t.Fatalf("confirm after expiry: %d %s", st, body)
		}
		if err := <-waitErr; !errors.Is(err, ErrSSHLoginExpired) {
			t.Fatalf("wait after expiry: %v, want ErrSSHLoginExpired", err)
		}
		if _, err := e.store.LoginByKey(ctx, "SHA256:late", e.clock.Now()); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("expired code bound the key: %v", err)
		}
	})
}

func TestWaitSSHLoginHonoursContext(t *testing.T) {
	e := newEnv(t)
	sl, err := e.svc.StartSSHLogin(context.Background(), "SHA256:ctx", "192.0.2.8:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.svc.WaitSSHLogin(ctx, sl.Code); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with cancelled context: %v", err)
	}
}

func TestLoginRevokedUnknownLogin(t *testing.T) {
	e := newEnv(t)
	revoked, err := e.svc.LoginRevoked(context.Background(), "no-such-login")
	if err != nil || !revoked {
		t.Fatalf("unknown login: revoked=%v err=%v, want revoked", revoked, err)
	}
}

func TestCodeFormat(t *testing.T) {
	for range 200 {
		c := newCode()
		if normalizeCode(c) != c || len(c) != 9 || c[4] != '-' {
			t.Fatalf("bad code %q", c)
		}
	}
	tests := []struct{ in, want string }{
		{"abcd-efgh", "ABCD-EFGH"},
		{"ABCDEFGH", "ABCD-EFGH"},
		{"ABCD-EFG0", ""}, // 0 is not in the alphabet
		{"ABC", ""},
		{"ABCD-EFGH-J", ""},
	}
	for _, tt := range tests {
		if got := normalizeCode(tt.in); got != tt.want {
			t.Errorf("normalizeCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	kept := []string{
		"/",
		"/ssh-login/ABCD-EFGH",
		"/cli-login?port=4711&pubkey=c3NoLWVk&challenge=abcdefghijklmnop",
		"/sessions/s-1?tab=replay#t=12",
		"/%2f%2fevil.example", // an encoded slash is a path byte to browsers, not an authority
		"/a/b/../c",
		"/@evil.example",
		"/:evil.example",
	}
	for _, in := range kept {
		if got := safeNext(in); got != in {
			t.Errorf("safeNext(%q) = %q, want it kept", in, got)
		}
	}
	refused := []string{
		"",
		"https://evil.example/",
		"http:evil.example",
		"HTTPS://evil.example",
		"//evil.example/",
		"///evil.example/",
		"/\\evil.example",
		"\\\\evil.example",
		"/\t/evil.example/", // the reported bypass: browsers drop the tab
		"/\t\t/evil.example",
		"\t//evil.example",
		"/\n/evil.example",
		"/\r/evil.example",
		"/\r\nSet-Cookie: x=1",
		" //evil.example",
		"/ /evil.example",
		"/\x00/evil.example",
		"/\x7f/evil.example",
		"//user:pass@evil.example/",
		"https://127.0.0.1:8080@evil.example/",
		"\uff0f\uff0fevil.example", // fullwidth solidus
		"/\uff0fevil.example",
		"/\u2215evil.example", // division slash
		"/\u2044evil.example", // fraction slash
		"%2f%2fevil.example",
		"javascript:alert(1)",
		"evil.example",
		"/bad%zzescape",
		"/" + strings.Repeat("a", 4096),
	}
	for _, in := range refused {
		if got := safeNext(in); got != "/" {
			t.Errorf("safeNext(%q) = %q, want /", in, got)
		}
	}
}

// FuzzSafeNext: whatever comes in, the result is a path on this site as a
// browser reads it (tabs and newlines removed, backslashes as slashes).
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/a?b#c", "//x", "/\t/x", "/\\x", "https://x", "/%2f%2fx", "\uff0f\uff0fx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		if out != "/" && out != in {
			t.Fatalf("safeNext(%q) = %q: neither kept nor /", in, out)
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(strings.TrimLeft(out, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("safeNext(%q) = %q, which a browser reads as %q: not a path on this site", in, out, browser)
		}
		base, _ := url.Parse("http://gatehouse.test/oidc/callback")
		ref, err := url.Parse(out)
		if err != nil {
			t.Fatalf("safeNext(%q) = %q, which does not parse: %v", in, out, err)
		}
		if got := base.ResolveReference(ref); got.Host != "gatehouse.test" || got.Scheme != "http" || got.User != nil {
			t.Fatalf("safeNext(%q) = %q resolves to %s", in, out, got)
		}
		for _, r := range out {
			if r <= ' ' || r >= 0x7f {
				t.Fatalf("safeNext(%q) = %q keeps %U", in, out, r)
			}
		}
	})
}

// cliCodeFor runs the browser half of `gatehouse login` for pub with a
// signed-in HTTP client and returns the one-time code sent to loopback.
func cliCodeFor(t *testing.T, e *env, c *http.Client, pub ssh.PublicKey) string {
	t.Helper()
	q := url.Values{
		"port":      {"9"},
		"pubkey":    {base64.RawURLEncoding.EncodeToString(ssh.MarshalAuthorizedKey(pub))},
		"challenge": {"challenge-challenge-1"},
	}
	res, err := c.Get(e.srv.URL + "/cli-login?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CLI confirm form: %d %s", res.StatusCode, body)
	}
	q.Set("csrf_token", m[1])
	q.Set("action", "confirm")
	res, err = c.PostForm(e.srv.URL+"/cli-login", q)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || res.StatusCode != http.StatusSeeOther || loc.Host != "127.0.0.1:9" || loc.Query().Get("challenge") != "challenge-challenge-1" {
		t.Fatalf("CLI confirm: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func postJSONTest(t *testing.T, u string, v any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(v)
	res, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, readAll(t, res)
}

func TestCLIExchangeAndRevokeRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, _ := e.httpLogin(t, "bob", "bob", "/whoami")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	keyA, keyB := sshtest.NewSigner(t), sshtest.NewSigner(t)
	authA := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keyA.PublicKey())))
	authB := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keyB.PublicKey())))

	// A code presented with another key is refused, and burnt.
	code := cliCodeFor(t, e, c, keyA.PublicKey())
	if st, body := postJSONTest(t, e.srv.URL+"/cli-login/exchange", cliExchangeRequest{Code: code, PublicKey: authB}); st != 403 || !strings.Contains(body, "different key") {
		t.Fatalf("exchange with another key: %d %s", st, body)
	}
	if st, _ := postJSONTest(t, e.srv.URL+"/cli-login/exchange", cliExchangeRequest{Code: code, PublicKey: authA}); st != 403 {
		t.Fatalf("exchange of a burnt code: %d, want 403", st)
	}

	// A good code works once.
	code = cliCodeFor(t, e, c, keyA.PublicKey())
	st, body := postJSONTest(t, e.srv.URL+"/cli-login/exchange", cliExchangeRequest{Code: code, PublicKey: authA})
	if st != 200 {
		t.Fatalf("exchange: %d %s", st, body)
	}
	var resp cliExchangeResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.User != "bob" || resp.SSHAddr != "127.0.0.1:2222" || !strings.HasPrefix(resp.KnownHosts, "@cert-authority [127.0.0.1]:2222 ") {
		t.Fatalf("exchange answer %+v", resp)
	}
	if st, _ := postJSONTest(t, e.srv.URL+"/cli-login/exchange", cliExchangeRequest{Code: code, PublicKey: authA}); st != 403 {
		t.Fatalf("second exchange of a code: %d, want 403", st)
	}
	if _, ok := e.audit.find("oidc.cli_login_refused", nil); !ok {
		t.Fatal("CLI refusals not audited")
	}

	nonce := func() string {
		_, b := postJSONTest(t, e.srv.URL+"/cli-login/nonce", struct{}{})
		var n struct{ Nonce string }
		json.Unmarshal([]byte(b), &n)
		return n.Nonce
	}
	revoke := func(signer ssh.Signer, n string) (int, string) {
		sig, err := signer.Sign(rand.Reader, RevokeMessage(n, resp.LoginID))
		if err != nil {
			t.Fatal(err)
		}
		return postJSONTest(t, e.srv.URL+"/cli-login/revoke", cliRevokeRequest{
			LoginID: resp.LoginID, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
			Nonce: n, Signature: base64.StdEncoding.EncodeToString(ssh.Marshal(sig)),
		})
	}
	// Someone without the key cannot log bob out.
	if st, body := revoke(keyB, nonce()); st != 403 || !strings.Contains(body, "does not belong") {
		t.Fatalf("revoke with another key: %d %s", st, body)
	}
	// A forged signature over the right key fails too.
	n := nonce()
	sig, _ := keyB.Sign(rand.Reader, RevokeMessage(n, resp.LoginID))
	if st, _ := postJSONTest(t, e.srv.URL+"/cli-login/revoke", cliRevokeRequest{LoginID: resp.LoginID, PublicKey: authA, Nonce: n,
		Signature: base64.StdEncoding.EncodeToString(ssh.Marshal(sig))}); st != 403 {
		t.Fatalf("revoke with a signature by another key: %d", st)
	}
	if revoked, _ := e.svc.LoginRevoked(ctx, resp.LoginID); revoked {
		t.Fatal("login revoked by a stranger")
	}
	// bob's API tokens (minted over SSH) end with his logout; alice's stay.
	for _, l := range []storage.Login{
		{ID: "api-bob", User: "bob", Kind: "api", Created: time.Now(), Expires: time.Now().Add(time.Hour)},
		{ID: "api-alice", User: "alice", Kind: "api", Created: time.Now(), Expires: time.Now().Add(time.Hour)},
	} {
		if err := e.store.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	n = nonce()
	if st, body := revoke(keyA, n); st != 200 {
		t.Fatalf("revoke by the key holder: %d %s", st, body)
	}
	for id, want := range map[string]bool{"api-bob": true, "api-alice": false} {
		if l, err := e.store.GetLogin(ctx, id); err != nil || l.Revoked != want {
			t.Errorf("after bob's logout, API token %s revoked=%v (%v), want %v", id, l.Revoked, err, want)
		}
	}
	if st, _ := revoke(keyA, n); st != 403 {
		t.Fatalf("replayed nonce: %d, want 403", st)
	}
	if revoked, err := e.svc.LoginRevoked(ctx, resp.LoginID); err != nil || !revoked {
		t.Fatalf("after revoke: %v %v", revoked, err)
	}
}
