package devidp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const redirect = "http://127.0.0.1:9/cb" // never dialled: the test stops at the redirect

func startProvider(t *testing.T) (*Provider, *httptest.Server) {
	t.Helper()
	return startProviderWith(t, false)
}

func startProviderWith(t *testing.T, fat bool) (*Provider, *httptest.Server) {
	t.Helper()
	users, err := LoadUsers(filepath.Join("..", "..", "configs", "dev-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	srv.Listener = ln
	p, err := New(Config{
		Issuer:  "http://" + ln.Addr().String(),
		Clients: []Client{{ID: "gatehouse", Secret: "s3cret", RedirectURIs: []string{redirect}, FatIDTokens: fat}},
		Users:   users,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = p.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv
}

var idRe = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)

// authorize runs the browser half of the flow with a plain HTTP client
// and returns the authorization code (or the login page on failure).
func authorize(t *testing.T, srv *httptest.Server, cfg *oauth2.Config, user, pass, state string, opts ...oauth2.AuthCodeOption) (string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			if req.URL.Query().Get("state") != state {
				t.Errorf("state %q came back as %q", state, req.URL.Query().Get("state"))
			}
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := c.Get(cfg.AuthCodeURL(state, opts...))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := idRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no login form: %d %s", res.StatusCode, page)
	}
	if !bytes.Contains(page, []byte("Gatehouse development identity provider — not for production")) {
		t.Fatal("login page lacks the not-for-production label")
	}
	res, err = c.PostForm(srv.URL+"/login", url.Values{"authRequestID": {string(m[1])}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return code, string(body)
}

func oauthConfig(t *testing.T, ctx context.Context, srv *httptest.Server) (*oauth2.Config, *oidc.IDTokenVerifier) {
	t.Helper()
	prov, err := oidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{ClientID: "gatehouse", ClientSecret: "s3cret", Endpoint: prov.Endpoint(), RedirectURL: redirect,
		Scopes: []string{"openid", "email", "profile", "groups"}}, prov.Verifier(&oidc.Config{ClientID: "gatehouse"})
}

// profileClaims are the claims a thin ID token must not carry.
type profileClaims struct {
	Email             string   `json:"email"`
	EmailVerified     bool     `json:"email_verified"`
	Groups            []string `json:"groups"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	Dept              string   `json:"dept"`
}

// TestThinIDTokensByDefault: like Okta, the ID token carries only the base
// claims; profile, email and groups come from UserInfo. A fat client gets
// them in both.
func TestThinIDTokensByDefault(t *testing.T) {
	for _, fat := range []bool{false, true} {
		t.Run(map[bool]string{false: "thin (default)", true: "fat"}[fat], func(t *testing.T) {
			ctx := context.Background()
			_, srv := startProviderWith(t, fat)
			cfg, verifier := oauthConfig(t, ctx, srv)
			code, body := authorize(t, srv, cfg, "alice", "alice", "st", oidc.Nonce("n"))
			if code == "" {
				t.Fatalf("no code: %s", body)
			}
			tok, err := cfg.Exchange(ctx, code)
			if err != nil {
				t.Fatal(err)
			}
			idt, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var inToken profileClaims
			if err := idt.Claims(&inToken); err != nil {
				t.Fatal(err)
			}
			want := profileClaims{Email: "alice@example.com", EmailVerified: true, Groups: []string{"approvers", "engineers"},
				Name: "Alice Approver", PreferredUsername: "alice"}
			if fat && !reflect.DeepEqual(inToken, want) || !fat && !reflect.DeepEqual(inToken, profileClaims{}) {
				t.Fatalf("ID token claims %+v (fat %v)", inToken, fat)
			}
			prov, err := oidc.NewProvider(ctx, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			var fromUI profileClaims
			if err := ui.Claims(&fromUI); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != idt.Subject || !reflect.DeepEqual(fromUI, want) {
				t.Fatalf("UserInfo sub %q (ID token %q) claims %+v, want %+v", ui.Subject, idt.Subject, fromUI, want)
			}
		})
	}
}

func TestCodeFlowWithPKCEAndNonce(t *testing.T) {
	ctx := context.Background()
	_, srv := startProviderWith(t, true)
	cfg, verifier := oauthConfig(t, ctx, srv)
	v := oauth2.GenerateVerifier()
	code, body := authorize(t, srv, cfg, "alice", "alice", "st1", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(v))
	if code == "" {
		t.Fatalf("no code: %s", body)
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		Groups        []string `json:"groups"`
		Name          string   `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != "n-1" || idt.Subject != "alice" || claims.Email != "alice@example.com" || !claims.EmailVerified ||
		!reflect.DeepEqual(claims.Groups, []string{"approvers", "engineers"}) {
		t.Fatalf("ID token: nonce %q sub %q claims %+v", idt.Nonce, idt.Subject, claims)
	}
	// Codes are single-use.
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v)); err == nil {
		t.Fatal("second exchange of the same code succeeded")
	}
}

func TestPKCEVerifierMismatchRefused(t *testing.T) {
	ctx := context.Background()
	_, srv := startProvider(t)
	cfg, _ := oauthConfig(t, ctx, srv)
	code, _ := authorize(t, srv, cfg, "bob", "bob", "st2", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("exchange with the wrong PKCE verifier: %v, want invalid_grant", err)
	}
	code, _ = authorize(t, srv, cfg, "bob", "bob", "st3", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if _, err := cfg.Exchange(ctx, code); err == nil {
		t.Fatal("exchange without the PKCE verifier succeeded")
	}
}

func TestWrongPasswordAndClientSecret(t *testing.T) {
	ctx := context.Background()
	_, srv := startProvider(t)
	cfg, _ := oauthConfig(t, ctx, srv)
	code, body := authorize(t, srv, cfg, "bob", "alice", "st4")
	if code != "" || !strings.Contains(body, "Wrong username or password") {
		t.Fatalf("wrong password: code %q body %s", code, body)
	}
	code, _ = authorize(t, srv, cfg, "nobody", "x", "st5")
	if code != "" {
		t.Fatal("unknown user got a code")
	}
	code, _ = authorize(t, srv, cfg, "bob", "bob", "st6")
	bad := *cfg
	bad.ClientSecret = "wrong"
	if _, err := bad.Exchange(ctx, code); err == nil {
		t.Fatal("exchange with the wrong client secret succeeded")
	}
}

func TestKeyRotationKeepsOldTokensValid(t *testing.T) {
	ctx := context.Background()
	p, srv := startProvider(t)
	cfg, verifier := oauthConfig(t, ctx, srv)
	login := func(state string) string {
		code, _ := authorize(t, srv, cfg, "sam", "sam", state, oidc.Nonce("n"))
		tok, err := cfg.Exchange(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}
	before := login("a")
	if _, err := verifier.Verify(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := p.RotateKey(); err != nil {
		t.Fatal(err)
	}
	after := login("b")
	// The verifier has cached the old JWKS; it must refetch for the new kid.
	if _, err := verifier.Verify(ctx, after); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if _, err := verifier.Verify(ctx, before); err != nil {
		t.Fatalf("token signed with the previous key: %v", err)
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body, wantErr string
		wantUsers           int
	}{
		{"ok", "users:\n  - {username: a, password: p, claims: {dept: ops}}\n", "", 1},
		{"no password", "users:\n  - {username: a}\n", "username and password are required", 0},
		{"duplicate", "users:\n  - {username: a, password: p}\n  - {username: a, password: q}\n", "duplicate user", 0},
		{"unknown key", "users:\n  - {username: a, password: p, passwd: q}\n", "passwd", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			us, err := LoadUsers(write(tt.name+".yaml", tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error with %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || len(us) != tt.wantUsers {
				t.Fatalf("got %v, %v", us, err)
			}
		})
	}
	demo, err := LoadUsers(filepath.Join("..", "..", "configs", "dev-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"bob": {"engineers"}, "alice": {"approvers", "engineers"}, "sam": {"security"}}
	for _, u := range demo {
		if !reflect.DeepEqual(want[u.Username], u.Groups) || u.Email != u.Username+"@example.com" || !u.EmailVerified {
			t.Errorf("demo user %+v", u)
		}
		delete(want, u.Username)
	}
	if len(want) != 0 {
		t.Errorf("demo users missing: %v", want)
	}
}

func TestMainFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Main(context.Background(), Options{Listen: "127.0.0.1:0"}, &out, &errb); !errors.Is(err, ErrRequired) {
		t.Fatalf("missing flags: %v, want ErrRequired", err)
	}
	// With valid flags Main serves until the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := Options{Users: filepath.Join("..", "..", "configs", "dev-users.yaml"), Listen: "127.0.0.1:0",
		ClientID: "gatehouse", ClientSecret: "x", Redirects: []string{"http://127.0.0.1:8080/oidc/callback"}}
	if err := Main(ctx, o, &out, &errb); err != nil || !strings.Contains(out.String(), "not for production") {
		t.Fatalf("Main: %v stdout %q stderr %q", err, out.String(), errb.String())
	}
}

func TestFatIDTokensFlag(t *testing.T) {
	users := filepath.Join("..", "..", "configs", "dev-users.yaml")
	for _, tt := range []struct {
		args []string
		fat  bool
	}{
		{nil, false},
		{[]string{"--fat-id-tokens"}, true},
	} {
		args := append([]string{"--users", users, "--client-secret", "x", "--redirect", "http://127.0.0.1:8080/oidc/callback"}, tt.args...)
		fs := flag.NewFlagSet("dev-idp", flag.ContinueOnError)
		var o Options
		o.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.Config()
		if err != nil || len(cfg.Clients) != 1 || cfg.Clients[0].FatIDTokens != tt.fat {
			t.Fatalf("%v: %v, clients %+v", tt.args, err, cfg.Clients)
		}
	}
}
