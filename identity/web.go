package identity

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"golang.org/x/oauth2"
)

// preLogin is what /oidc/login remembers, under the state value, for the
// callback.
type preLogin struct {
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE code verifier
	Next     string `json:"next"`
	BindHash string `json:"bind"` // hash of the pre-login cookie
}

type ctxKey struct{}

// LoginFromContext returns the web login RequireLogin attached to the
// request context.
func LoginFromContext(ctx context.Context) (storage.Login, bool) {
	l, ok := ctx.Value(ctxKey{}).(storage.Login)
	return l, ok
}

// safeNext keeps post-login redirects on this site. Browsers do not read a
// Location the way Go does: they drop tabs and newlines anywhere, strip
// leading control characters and spaces, treat '\' as '/', and map look-alike
// slashes in host names, so "/\t/evil.example/" leads off-site. Only a
// path-absolute reference made of printable ASCII is accepted, one whose
// second character cannot start an authority ('/' or '\'), and which Go's
// URL parser reads as a bare path and writes back unchanged. Anything else
// becomes "/".
func safeNext(next string) string {
	if len(next) == 0 || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.String() != next {
		return "/"
	}
	return next
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	next := safeNext(r.URL.Query().Get("next"))
	state := randomToken(32)
	bind := randomToken(32)
	pl := preLogin{
		Nonce:    randomToken(32),
		Verifier: oauth2.GenerateVerifier(),
		Next:     next,
		BindHash: hashToken("prelogin", bind),
	}
	val, err := json.Marshal(pl)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "sign-in could not start: internal error", "marshal pre-login", err)
		return
	}
	if err := s.opt.Store.PutOneTime(ctx, "oidc-state:"+state, val, s.now().Add(stateTTL)); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "sign-in could not start: storage unavailable", "store OIDC state", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: preLoginCookie, Value: bind, Path: "/oidc/", MaxAge: int(stateTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	u := s.oauth.AuthCodeURL(state, oidc.Nonce(pl.Nonce), oauth2.S256ChallengeOption(pl.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

func (s *Service) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		_ = s.audit(ctx, audit.TypeOIDCLoginFailed, "", "", "refused", map[string]any{"reason": "provider error", "error": e})
		s.page(w, http.StatusUnauthorized, "Sign-in failed", "The identity provider refused the sign-in ("+e+"). Start again from the page you wanted.", nil)
		return
	}
	state := q.Get("state")
	val, err := s.opt.Store.TakeOneTime(ctx, "oidc-state:"+state, s.now())
	if err != nil || state == "" {
		_ = s.audit(ctx, audit.TypeOIDCLoginFailed, "", "", "refused", map[string]any{"reason": "unknown, expired or replayed state"})
		s.page(w, http.StatusBadRequest, "Sign-in failed", "This sign-in has expired or was already used. Start again.", nil)
		return
	}
	var pl preLogin
	if err := json.Unmarshal(val, &pl); err != nil {
		s.fail(w, http.StatusInternalServerError, "sign-in failed: internal error", "decode pre-login", err)
		return
	}
	c, err := r.Cookie(preLoginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(hashToken("prelogin", c.Value)), []byte(pl.BindHash)) != 1 {
		_ = s.audit(ctx, audit.TypeOIDCLoginFailed, "", "", "refused", map[string]any{"reason": "state not bound to this browser"})
		s.page(w, http.StatusBadRequest, "Sign-in failed", "This sign-in was started in another browser. Start again here.", nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: preLoginCookie, Value: "", Path: "/oidc/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})

	tok, err := s.oauth.Exchange(s.clientCtx(ctx), q.Get("code"), oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		s.log.Warn("identity: code exchange failed", "err", err)
		_ = s.audit(ctx, audit.TypeOIDCLoginFailed, "", "", "refused", map[string]any{"reason": "code exchange failed"})
		s.page(w, http.StatusBadGateway, "Sign-in failed", "The identity provider did not accept the sign-in code. Start again.", nil)
		return
	}
	user, claims, err := s.signInClaims(ctx, tok, pl.Nonce)
	if err != nil {
		s.log.Warn("identity: sign-in refused", "err", err)
		_ = s.audit(ctx, audit.TypeOIDCLoginFailed, "", "", "refused", map[string]any{"reason": err.Error()})
		s.page(w, http.StatusUnauthorized, "Sign-in failed", "Sign-in refused: "+err.Error()+".", nil)
		return
	}
	secret := randomToken(32)
	now := s.now()
	l := storage.Login{
		ID: hashToken("session", secret), User: user, Claims: claims, Kind: "web",
		Created: now, Expires: now.Add(s.opt.WebSessionTTL), CSRFToken: hashToken("csrf", secret),
	}
	if err := s.opt.Store.PutLogin(ctx, l); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "sign-in failed: storage unavailable", "store web login", err)
		return
	}
	if err := s.audit(ctx, audit.TypeOIDCLogin, user, user, "success", map[string]any{"kind": "web", "login": l.ID}); err != nil {
		_ = s.opt.Store.RevokeLogin(ctx, l.ID)
		s.fail(w, http.StatusServiceUnavailable, "sign-in failed: audit log unavailable", "audit web login", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/", Expires: l.Expires,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, pl.Next, http.StatusFound)
}

// Session returns the web login of the request's session cookie, if it is
// current (known, not revoked, not expired). Its CSRFToken is filled in.
func (s *Service) Session(r *http.Request) (storage.Login, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return storage.Login{}, false
	}
	l, err := s.opt.Store.GetLogin(r.Context(), hashToken("session", c.Value))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("identity: look up web session", "err", err)
		}
		return storage.Login{}, false
	}
	if l.Kind != "web" || l.Revoked || !s.now().Before(l.Expires) {
		return storage.Login{}, false
	}
	// Derived rather than read back so the token works whether or not a
	// backend persists it.
	l.CSRFToken = hashToken("csrf", c.Value)
	return l, true
}

// CheckCSRF reports whether a state-changing request carries the CSRF token
// of its own, current session (form field csrf_token or header
// X-CSRF-Token).
func (s *Service) CheckCSRF(r *http.Request) bool {
	l, ok := s.Session(r)
	if !ok {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(l.CSRFToken)) == 1
}

// RequireLogin lets requests with a current web session through (the login
// is in the context, see LoginFromContext). Others are sent to sign in when
// they are page loads, and refused with 401 otherwise.
func (s *Service) RequireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, ok := s.Session(r)
		if ok {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, l)))
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, "/oidc/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		http.Error(w, "gatehouse: sign in first (your browser session is missing or has ended)", http.StatusUnauthorized)
	})
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if l, ok := s.Session(r); ok {
		if !s.CheckCSRF(r) {
			http.Error(w, "gatehouse: sign-out refused: the form is stale or came from another site; reload and try again", http.StatusForbidden)
			return
		}
		if err := s.opt.Store.RevokeLogin(ctx, l.ID); err != nil {
			s.fail(w, http.StatusServiceUnavailable, "sign-out failed: storage unavailable", "revoke web login", err)
			return
		}
		_ = s.audit(ctx, audit.TypeOIDCLogout, l.User, l.User, "success", map[string]any{"kind": "web", "login": l.ID})
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	s.page(w, http.StatusOK, "Signed out", "You are signed out of Gatehouse.", nil)
}

// fail logs the internal detail and shows the user one line.
func (s *Service) fail(w http.ResponseWriter, status int, userMsg, what string, err error) {
	s.log.Error("identity: "+what, "err", err)
	http.Error(w, "gatehouse: "+userMsg, status)
}
