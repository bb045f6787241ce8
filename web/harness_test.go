package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/identity/devidp"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// fakeLive stands in for the proxy's live-session control: the proxy needs
// real SSH traffic to have live sessions, which the browser end-to-end test
// in internal/e2e provides; here we check what the web layer does with it.
type fakeLive struct {
	mu         sync.Mutex
	sessions   []proxy.LiveSession
	out        chan []byte
	terminated []string
	// onTerminate, when set, runs after a Terminate (as the proxy's close
	// would, a moment later, end the session's record).
	onTerminate func(id string)
}

func (f *fakeLive) Live() []proxy.LiveSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proxy.LiveSession(nil), f.sessions...)
}

func (f *fakeLive) Terminate(_ context.Context, id, by string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.sessions {
		if s.ID == id {
			f.terminated = append(f.terminated, id+" by "+by)
			if f.onTerminate != nil {
				f.sessions = append(f.sessions[:i:i], f.sessions[i+1:]...)
				go f.onTerminate(id)
			}
			return true
		}
	}
	return false
}

func (f *fakeLive) Join(_ context.Context, id, _ string) (<-chan []byte, func(), bool) {
	for _, s := range f.Live() {
		if s.ID == id {
			return f.out, func() {}, true
		}
	}
	return nil, nil, false
}

// env is the dev OIDC provider and the web UI (with identity's routes) on
// loopback servers over one real SQLite store, with the demo roles.
type env struct {
	srv   *httptest.Server
	store *sqlite.Store
	audit *audit.Log
	live  *fakeLive
	cfg   *config.Config
	idp   string // the provider's base URL
	acc   *access.Service
	pol   *policy.Engine
	h     *Handler
}

func loopback(t testing.TB) (*httptest.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	srv.Listener = ln
	return srv, "http://" + ln.Addr().String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvRoles(t, "")
}

// newEnvRoles is newEnv with extra roles appended to the demo roles file
// (indented as items of its roles: list).
func newEnvRoles(t testing.TB, extraRoles string) *env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	users, err := devidp.LoadUsers(filepath.Join("..", "configs", "dev-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{live: &fakeLive{out: make(chan []byte, 16)}}
	var rpURL, idpURL string
	e.srv, rpURL = loopback(t)
	idpSrv, idpURL := loopback(t)
	idp, err := devidp.New(devidp.Config{Issuer: idpURL, Users: users, Logger: log,
		Clients: []devidp.Client{{ID: "gatehouse", Secret: "s3cret", RedirectURIs: []string{rpURL + "/oidc/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	e.idp = idpURL
	t.Cleanup(idpSrv.Close)

	e.store, err = sqlite.Open(ctx, filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.audit = audit.New(e.store, audit.Options{Logger: log})
	t.Cleanup(func() { e.audit.Close() })
	roles, err := os.ReadFile(filepath.Join("..", "configs", "roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles = append(roles, extraRoles...)
	rolesPath := filepath.Join(dir, "roles.yaml")
	if err := os.WriteFile(rolesPath, roles, 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.NewEngine(rolesPath, log)
	if err != nil {
		t.Fatal(err)
	}
	acc := access.New(e.store, pol, e.audit, nil, access.Options{Logger: log})
	e.acc, e.pol = acc, pol
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	e.cfg, err = config.Parse(cfgPath, []byte(fmt.Sprintf(`
data_dir: %s
ssh: {listen: "0.0.0.0:2222"}
web: {listen: "127.0.0.1:0", public_url: %q}
roles_file: %s
nodes:
  - {name: db-1, address: "127.0.0.1:1", labels: {env: prod, team: data}, host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb1EHf4bwFVsrXd3jG9eUp2Gl9ZJQq5ONqHgo6O5m2P"}
  - {name: web-1, address: "127.0.0.1:2", labels: {env: staging, team: web}, host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb1EHf4bwFVsrXd3jG9eUp2Gl9ZJQq5ONqHgo6O5m2P"}
`, dir, rpURL, rolesPath)))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.New(ctx, identity.Options{Issuer: idpURL, ClientID: "gatehouse", ClientSecret: "s3cret",
		PublicURL: rpURL, Store: e.store, Auditor: e.audit, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Identity: ids, Access: acc, Policy: pol, Store: e.store, Audit: e.audit, Live: e.live, Config: e.cfg, Logger: log,
		WatchPoll: 20 * time.Millisecond, WatchKeepAlive: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	mux := http.NewServeMux()
	ids.Routes(mux)
	mux.Handle("/", h)
	e.srv.Config.Handler = mux
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

var (
	authRequestIDRe = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)
	csrfMetaRe      = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
)

// browser is a signed-in user: a cookie jar and the session's CSRF token.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

// login signs user in through the dev provider's real form with a plain
// HTTP client, exactly the redirects a browser follows.
func (e *env) login(t testing.TB, user string) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: e.srv.URL, c: &http.Client{Jar: jar}}
	_, body := b.get("/")
	m := authRequestIDRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("expected the provider's login form, got %s", body)
	}
	res, err := b.c.PostForm(e.idp+"/login", url.Values{"authRequestID": {m[1]}, "username": {user}, "password": {user}})
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, res)
	cm := csrfMetaRe.FindStringSubmatch(page)
	if cm == nil {
		t.Fatalf("after signing in as %s, expected the home page, got %d: %s", user, res.StatusCode, page)
	}
	b.csrf = cm[1]
	return b
}

func readBody(t testing.TB, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, readBody(b.t, res)
}

// post sends a JSON body (nil for none) with the given CSRF header value.
func (b *browser) postJSON(path, csrf string, body any) (int, string) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = strings.NewReader(string(data))
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, readBody(b.t, res)
}

// api posts with the right token and decodes the JSON answer into out.
func (b *browser) api(path string, body, out any) int {
	b.t.Helper()
	code, text := b.postJSON(path, b.csrf, body)
	if out != nil && code < 300 {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			b.t.Fatalf("POST %s: decode %q: %v", path, text, err)
		}
	}
	return code
}

func (b *browser) getJSON(path string, out any) int {
	b.t.Helper()
	res, text := b.get(path)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			b.t.Fatalf("GET %s: decode %q: %v", path, text, err)
		}
	}
	return res.StatusCode
}

// addSession indexes a finished session of user with a real recording
// whose output is text.
func (e *env) addSession(t *testing.T, id, user, node, text string) {
	t.Helper()
	e.addRecordedSession(t, id, user, node, text, session.RecorderOptions{})
}

// addRecordedSession is addSession with the recorder's options.
func (e *env) addRecordedSession(t *testing.T, id, user, node, text string, opts session.RecorderOptions) {
	t.Helper()
	now := time.Now().UTC()
	rec, err := session.NewRecorder(e.cfg.Recording.Dir, id, session.Header{Width: 80, Height: 24, Timestamp: now.Unix()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte(text))
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	end := now.Add(time.Second)
	zero := 0
	ctx := context.Background()
	if err := e.store.CreateSession(ctx, storage.Session{ID: id, User: user, Login: "root", Node: node, Kind: "shell",
		Recording: id, Start: now, Status: "live"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EndSession(ctx, id, end, "ended", &zero, 10, int64(len(text))); err != nil {
		t.Fatal(err)
	}
}
