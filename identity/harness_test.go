package identity

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
	"golang.org/x/crypto/ssh"
)

// testClock is a settable clock; zero offset means real time.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// recordingAuditor keeps events in memory; the audit package has its own
// tests, here we only check which decisions were reported.
type recordingAuditor struct {
	mu  sync.Mutex
	evs []storage.Event
}

func (a *recordingAuditor) Append(_ context.Context, ev storage.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

func (a *recordingAuditor) find(typ string, match func(storage.Event) bool) (storage.Event, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ev := range a.evs {
		if ev.Type == typ && (match == nil || match(ev)) {
			return ev, true
		}
	}
	return storage.Event{}, false
}

// testCA signs user certificates the way the ca package is expected to.
type testCA struct{ signer ssh.Signer }

func newTestCA(t *testing.T) *testCA {
	return &testCA{signer: sshtest.NewSigner(t)}
}

func (c *testCA) SignUser(pub ssh.PublicKey, user, loginID string, ttl time.Duration) (*ssh.Certificate, error) {
	now := time.Now()
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.UserCert, KeyId: "user=" + user + " login=" + loginID,
		ValidPrincipals: []string{user}, ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(ttl).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, c.signer); err != nil {
		return nil, fmt.Errorf("sign test certificate: %w", err)
	}
	return cert, nil
}

// observedStore is the real store with a tap on TakeOneTime, so a test
// can tell when WaitSSHLogin has started polling before it moves the clock.
type observedStore struct {
	storage.IdentityStore
	takes chan string
}

func (o observedStore) TakeOneTime(ctx context.Context, key string, now time.Time) ([]byte, error) {
	select {
	case o.takes <- key:
	default:
	}
	return o.IdentityStore.TakeOneTime(ctx, key, now)
}

// waitPolled blocks until something took key from the store.
func (e *env) waitPolled(t *testing.T, key string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case k := <-e.takes:
			if k == key {
				return
			}
		case <-timeout:
			t.Fatalf("nobody polled %s", key)
		}
	}
}

// env is a dev provider and a Gatehouse identity service on two loopback
// HTTP servers, sharing a real SQLite store.
type env struct {
	idp     *devidp.Provider
	idpSrv  *httptest.Server
	svc     *Service
	srv     *httptest.Server
	store   *sqlite.Store
	audit   *recordingAuditor
	clock   *testClock
	ca      *testCA
	hostKey string
	takes   chan string
}

func loopbackServer(t *testing.T) (*httptest.Server, string) {
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

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	users, err := devidp.LoadUsers(filepath.Join("..", "configs", "dev-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// An account whose email the provider has not verified, to test the
	// email_verified rule end to end.
	users = append(users, devidp.User{Username: "eve", Password: "eve", Email: "eve@example.com", EmailVerified: false, Groups: []string{"engineers"}})

	e := &env{audit: &recordingAuditor{}, clock: &testClock{}, ca: newTestCA(t), takes: make(chan string, 64)}
	var rpURL, idpURL string
	e.srv, rpURL = loopbackServer(t)
	e.idpSrv, idpURL = loopbackServer(t)
	e.idp, err = devidp.New(devidp.Config{
		Issuer:  idpURL,
		Clients: []devidp.Client{{ID: "gatehouse", Secret: "s3cret", RedirectURIs: []string{rpURL + "/oidc/callback"}}},
		Users:   users,
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.idpSrv.Config.Handler = e.idp.Handler()
	e.idpSrv.Start()
	t.Cleanup(e.idpSrv.Close)

	e.store, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	hk := sshtest.NewSigner(t).PublicKey()
	e.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hk)))
	e.svc, err = New(ctx, Options{
		Issuer: idpURL, ClientID: "gatehouse", ClientSecret: "s3cret",
		PublicURL: rpURL, Store: observedStore{e.store, e.takes}, Auditor: e.audit, Signer: e.ca,
		Clock: e.clock.Now, Logger: testLogger(t),
		SSHAddr: "127.0.0.1:2222", HostCALine: e.hostKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.svc.Routes(mux)
	// A protected page like the web UI's, with a sign-out form.
	mux.Handle("GET /whoami", e.svc.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ := LoginFromContext(r.Context())
		fmt.Fprintf(w, `<!doctype html><p id="user">%s</p><p id="groups">%s</p>
<form method="post" action="/oidc/logout"><input type="hidden" name="csrf_token" value="%s"><button id="logout">Sign out</button></form>`,
			l.User, strings.Join(l.Claims["groups"], ","), l.CSRFToken)
	})))
	e.srv.Config.Handler = mux
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

var authRequestIDRe = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)

// httpLogin signs user in through the real provider's form with a plain
// HTTP client (no JavaScript is needed), starting at path on the bastion,
// and returns the client holding the session cookie and the final response
// body.
func (e *env) httpLogin(t *testing.T, user, pass, path string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	m := authRequestIDRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("expected the provider's login form, got %d: %s", res.StatusCode, body)
	}
	res, err = c.PostForm(e.idpSrv.URL+"/login", url.Values{"authRequestID": {m[1]}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	return c, readAll(t, res)
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func loginFixture(id string, now time.Time) storage.Login {
	return storage.Login{ID: id, User: "bob", Kind: "web", Claims: map[string][]string{"groups": {"engineers"}},
		Created: now, Expires: now.Add(time.Hour)}
}
