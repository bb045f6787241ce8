package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// LiveSessions is the running-session control of this bastion;
// *proxy.Server satisfies it.
type LiveSessions interface {
	Live() []proxy.LiveSession
	Terminate(ctx context.Context, id, by string) bool
	Join(ctx context.Context, id, by string) (<-chan []byte, func(), bool)
}

// RemoteSessions reaches live sessions held by other bastions sharing the
// database; *server.RemoteSessions satisfies it.
type RemoteSessions interface {
	// Terminate asks the holding bastion to end s in by's name.
	Terminate(ctx context.Context, s storage.Session, by string) error
	// Locate returns the holding bastion's web.public_url.
	Locate(ctx context.Context, s storage.Session) (string, error)
}

// Auditor appends to the audit chain; *audit.Log satisfies it.
type Auditor interface {
	Append(ctx context.Context, ev storage.Event) error
}

// Options are what the web UI reads and acts through. All are required
// except Live (nil: no live sessions are shown), Logger and Identity: without
// Identity (no oidc: in the config) there are no pages and no browser
// sessions, and the API takes bot tokens only.
type Options struct {
	Identity *identity.Service
	Access   *access.Service
	Policy   *policy.Engine
	Store    storage.Store
	Audit    Auditor
	Live     LiveSessions
	// Remote reaches other bastions' live sessions; nil: only this
	// bastion's can be watched or ended here.
	Remote RemoteSessions
	// Recordings finds recordings wherever they rest (the spool, the
	// bucket); nil reads Config.Recording.Dir.
	Recordings func(ctx context.Context) fs.FS
	Config     *config.Config
	Logger     *slog.Logger
	// WatchPoll is how often GET /api/watch reads the shared store for
	// request events made on other bastions [500ms]; changes made on this
	// bastion wake it at once.
	WatchPoll time.Duration
	// WatchKeepAlive is how often an idle watch stream gets a comment line,
	// so proxies and clients can tell it is alive [15s].
	WatchKeepAlive time.Duration
}

// Handler serves the web UI, its JSON API and its static assets.
type Handler struct {
	opt   Options
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template

	mu         sync.Mutex
	lastVerify *verifyResult // the last audit chain verification run here

	apiRoutes []string // patterns of every /api/ route, for the OpenAPI check
}

// verifyResult is one on-demand run of audit.Verify.
type verifyResult struct {
	Report audit.Report `json:"report"`
	Time   time.Time    `json:"time"`
	By     string       `json:"by"`
	Error  string       `json:"error,omitempty"`
}

// contentSecurityPolicy allows only our own files. 'wasm-unsafe-eval' lets
// asciinema-player compile its bundled terminal emulator (WebAssembly, no
// JavaScript eval); inline styles are allowed because xterm.js and the
// player size their cells with style elements, while scripts stay
// file-only so injected markup can never run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// flashCookie carries a one-line result across a form's redirect.
const flashCookie = "gatehouse_flash"

// New builds the handler. Mount it at "/" next to identity's routes.
func New(o Options) (*Handler, error) {
	if o.Access == nil || o.Policy == nil || o.Store == nil || o.Audit == nil || o.Config == nil {
		return nil, errors.New("web: Access, Policy, Store, Audit and Config are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WatchPoll <= 0 {
		o.WatchPoll = 500 * time.Millisecond
	}
	if o.WatchKeepAlive <= 0 {
		o.WatchKeepAlive = heartbeat
	}
	h := &Handler{opt: o, log: o.Logger, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	for _, name := range []string{"home", "requests", "request", "review", "sessions", "player", "live", "audit", "locks", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse %s page: %w", name, err)
		}
		h.pages[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	h.routes(http.StripPrefix("/static/", http.FileServerFS(static)))
	return h, nil
}

func (h *Handler) routes(static http.Handler) {
	m := h.mux
	api := func(pattern string, fn func(http.ResponseWriter, *http.Request, *viewer)) {
		h.apiRoutes = append(h.apiRoutes, pattern)
		m.Handle(pattern, h.apiAuth(fn))
	}
	// The API's description is public: tools fetch it before they hold a token.
	h.apiRoutes = append(h.apiRoutes, "GET /api/openapi.yaml")
	m.HandleFunc("GET /api/openapi.yaml", h.apiOpenAPI)
	api("GET /api/me", h.apiMe)
	api("GET /api/requests", h.apiRequests)
	api("POST /api/requests", h.apiCreateRequest)
	api("GET /api/requests/{id}", h.apiRequest)
	for _, action := range []string{"approve", "deny", "cancel", "drop"} {
		api("POST /api/requests/{id}/"+action, func(w http.ResponseWriter, r *http.Request, v *viewer) {
			h.apiRequestAction(w, r, v, action)
		})
	}
	api("GET /api/watch", h.apiWatch)
	api("GET /api/review", h.apiReview)
	api("GET /api/sessions", h.apiSessions)
	api("GET /api/sessions/{id}/recording", h.apiRecording)
	api("GET /api/sessions/{id}/live", h.apiLive)
	api("POST /api/sessions/{id}/terminate", h.apiTerminate)
	api("GET /api/audit", h.apiAudit)
	api("POST /api/audit/verify", h.apiVerify)
	api("GET /api/locks", h.apiLocks)
	api("POST /api/locks", h.apiLock)
	api("POST /api/locks/{user}/unlock", h.apiUnlock)
	m.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such API route: " + r.Method + " " + r.URL.Path})
	}))

	if h.opt.Identity == nil {
		// No browser sign-in without oidc:, so no pages.
		return
	}
	m.Handle("GET /static/", cacheStatic(static))
	// Browsers ask for /favicon.ico on pages that name no icon (the
	// identity provider's, a JSON answer opened in a tab).
	m.Handle("GET /favicon.ico", cacheStatic(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		http.ServeFileFS(w, r, staticFS, "static/favicon.svg")
	})))
	page := func(pattern string, fn func(http.ResponseWriter, *http.Request, *viewer)) {
		m.Handle(pattern, h.opt.Identity.RequireLogin(h.withViewer(fn, false)))
	}
	page("GET /{$}", h.homePage)
	page("GET /requests", h.requestsPage)
	page("GET /requests/{id}", h.requestLink)
	page("POST /requests", h.formCreateRequest)
	page("POST /requests/{id}/{action}", h.formRequestAction)
	page("GET /review", h.reviewPage)
	page("GET /sessions", h.sessionsPage)
	page("GET /sessions/{id}", h.playerPage)
	page("GET /sessions/{id}/live", h.livePage)
	page("POST /sessions/{id}/terminate", h.formTerminate)
	page("GET /audit", h.auditPage)
	page("POST /audit/verify", h.formVerify)
	page("GET /locks", h.locksPage)
	page("POST /locks", h.formLock)
	page("POST /locks/{user}/unlock", h.formUnlock)
}

// APIRoutes lists the pattern of every /api/ route ("GET /api/me", ...).
func (h *Handler) APIRoutes() []string { return slices.Clone(h.apiRoutes) }

// ServeHTTP sets the security headers every response carries, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		// Pages show roles and sessions: never let a shared cache keep them.
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// viewer is the signed-in user (or the bot of an API token) as this request
// sees them: their login, the roles they hold right now and what those roles
// let them do here.
type viewer struct {
	Login  storage.Login
	Eff    access.Effective
	Pol    *policy.Policy
	API    bool
	Bot    bool // authenticated by a bot's bearer token
	CSRF   string
	Flash  string
	FlashE bool

	CanList, CanPlay, CanJoin, CanTerminate, CanAudit, CanLocks, CanReview, CanRequest bool

	// Waiting is how many requests wait for this reviewer (the nav badge).
	Waiting int

	// reauth reads the viewer's standing again (long-lived streams re-check
	// it, so a removed bot or a signed-out browser stops receiving).
	reauth func(ctx context.Context) (access.Effective, error)
}

// User is the viewer's name.
func (v *viewer) User() string { return v.Eff.User() }

// ReviewReasonRequired reports whether reviewing a request for roles needs a
// reason (the review page marks the field required; access enforces it).
func (v *viewer) ReviewReasonRequired(roles []string) bool {
	if v.Pol == nil {
		return false
	}
	_, ok := v.Pol.ReviewReasonRequired(roles)
	return ok
}

// errSignedOut is what reauth returns once a browser session has ended.
var errSignedOut = errors.New("the browser session has ended")

// apiAuth authenticates an API call: by bearer token when an Authorization
// header is sent (no CSRF token needed: browsers never add one on their
// own), by the browser session cookie otherwise.
func (h *Handler) apiAuth(fn func(http.ResponseWriter, *http.Request, *viewer)) http.Handler {
	var cookie http.Handler
	if h.opt.Identity != nil {
		cookie = h.opt.Identity.RequireLogin(h.withViewer(fn, true))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); auth != "" {
			h.withBearer(w, r, auth, fn)
			return
		}
		if cookie == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "send Authorization: Bearer TOKEN (a token from gatehouse bot add)"})
			return
		}
		if _, ok := h.opt.Identity.Session(r); !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "sign in first (your browser session is missing or has ended), or send Authorization: Bearer TOKEN"})
			return
		}
		cookie.ServeHTTP(w, r)
	})
}

// withBearer serves fn for the bot, or the person, whose token the
// Authorization header carries; the token is checked against the store on
// every request.
func (h *Handler) withBearer(w http.ResponseWriter, r *http.Request, auth string, fn func(http.ResponseWriter, *http.Request, *viewer)) {
	scheme, token, _ := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "the Authorization header must be: Bearer TOKEN"})
		return
	}
	eff, err := h.opt.Access.Authenticate(r.Context(), token)
	if errors.Is(err, access.ErrBadToken) {
		h.log.WarnContext(r.Context(), "web: API token refused", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "web: check API token", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the API token could not be checked right now; try again"})
		return
	}
	kind := "bot"
	if !access.IsBot(eff.User()) {
		kind = access.LoginKindAPI // a person's own API token
	}
	v := &viewer{Login: storage.Login{User: eff.User(), Kind: kind}, API: true, Bot: kind == "bot"}
	v.reauth = func(ctx context.Context) (access.Effective, error) { return h.opt.Access.Authenticate(ctx, token) }
	h.serveViewer(w, r, v, eff, fn)
}

// withViewer computes the viewer of a browser session and enforces CSRF on
// every state change before fn runs, so no handler can forget either.
func (h *Handler) withViewer(fn func(http.ResponseWriter, *http.Request, *viewer), api bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login, ok := identity.LoginFromContext(r.Context())
		if !ok {
			http.Error(w, "gatehouse: sign in first", http.StatusUnauthorized)
			return
		}
		v := &viewer{Login: login, API: api, CSRF: login.CSRFToken}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !h.opt.Identity.CheckCSRF(r) {
			h.fail(w, r, v, http.StatusForbidden, "request refused: missing or wrong CSRF token (reload the page and try again)")
			return
		}
		eff, err := h.opt.Access.Effective(r.Context(), login.User, login.Claims)
		if err != nil {
			h.internal(w, r, v, "compute roles", err)
			return
		}
		v.reauth = func(ctx context.Context) (access.Effective, error) {
			l, ok := h.opt.Identity.Session(r.WithContext(ctx))
			if !ok {
				return access.Effective{}, errSignedOut
			}
			return h.opt.Access.Effective(ctx, l.User, l.Claims)
		}
		h.serveViewer(w, r, v, eff, fn)
	})
}

// serveViewer fills in what eff may do under the policy in force and runs fn.
func (h *Handler) serveViewer(w http.ResponseWriter, r *http.Request, v *viewer, eff access.Effective, fn func(http.ResponseWriter, *http.Request, *viewer)) {
	pol := h.opt.Policy.Current()
	if pol == nil {
		h.fail(w, r, v, http.StatusServiceUnavailable, "no roles policy is loaded; ask the operator")
		return
	}
	v.Eff, v.Pol = eff, pol
	s := eff.Subject
	v.CanList = pol.Can(s, policy.AreaSessions, policy.VerbList)
	v.CanPlay = pol.Can(s, policy.AreaSessions, policy.VerbPlay)
	v.CanJoin = pol.Can(s, policy.AreaSessions, policy.VerbJoin)
	v.CanTerminate = pol.Can(s, policy.AreaSessions, policy.VerbTerminate)
	v.CanAudit = pol.Can(s, policy.AreaAudit, policy.VerbRead)
	v.CanLocks = pol.Can(s, policy.AreaLocks, policy.VerbManage)
	v.CanReview = len(pol.Reviewable(s)) > 0 && !eff.Locked()
	roles, _, _ := pol.Requestable(s)
	v.CanRequest = len(roles) > 0 && !eff.Locked()
	if !v.API && v.CanReview {
		// A failed count only hides the badge: the page itself still works.
		if q, err := h.opt.Access.ReviewQueue(r.Context(), eff); err != nil {
			h.log.WarnContext(r.Context(), "web: count the review queue", "user", eff.User(), "err", err)
		} else {
			v.Waiting = len(q)
		}
	}
	if !v.API {
		if c, err := r.Cookie(flashCookie); err == nil {
			if msg, err := url.QueryUnescape(c.Value); err == nil && msg != "" {
				v.FlashE = strings.HasPrefix(msg, "!")
				v.Flash = strings.TrimPrefix(msg, "!")
			}
			http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	fn(w, r, v)
}

// errorPage is what the error template shows.
type errorPage struct {
	*viewer
	Title   string
	Message string
}

// fail refuses with one line: JSON for the API, a page otherwise.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	if v.API || strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	if r.Method == http.MethodPost && v.Eff.User() != "" {
		// Forms go back where they came from with the refusal on top.
		h.redirect(w, r, backTo(r), "!"+msg)
		return
	}
	h.render(w, r, status, "error", errorPage{viewer: v, Title: http.StatusText(status), Message: msg})
}

// internal logs err and tells the user only that something failed.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, v *viewer, what string, err error) {
	h.log.ErrorContext(r.Context(), "web: "+what, "user", v.Login.User, "path", r.URL.Path, "err", err)
	h.fail(w, r, v, http.StatusInternalServerError, what+" failed on the server; try again, and tell the operator if it persists")
}

// refused maps an access error to a response: a Refusal is the user's one
// line (404 when it stands for "no such thing"), anything else internal.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, v *viewer, what string, err error) {
	var away elsewhereError
	if errors.As(err, &away) {
		h.fail(w, r, v, http.StatusServiceUnavailable, away.msg)
		return
	}
	var ref *access.Refusal
	if errors.As(err, &ref) {
		status := http.StatusForbidden
		if errors.Is(err, storage.ErrNotFound) {
			status = http.StatusNotFound
		}
		h.fail(w, r, v, status, ref.Msg)
		return
	}
	h.internal(w, r, v, what, err)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	t := h.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", data); err != nil {
		h.log.ErrorContext(r.Context(), "web: render page", "page", name, "err", err)
		http.Error(w, "gatehouse: the page could not be drawn; tell the operator", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// redirect answers a form with 303 to path, carrying msg (prefix "!" for
// an error) in a short-lived cookie rather than the URL, so a crafted link
// cannot put words on our page.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, path, msg string) {
	if msg != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// backTo is the page a form was posted from (same-origin Referer path) or
// the form's own "back" field, falling back to home.
func backTo(r *http.Request) string {
	if b := r.PostFormValue("back"); strings.HasPrefix(b, "/") && !strings.HasPrefix(b, "//") && !strings.ContainsAny(b, "\\\r\n") {
		return b
	}
	return "/"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// sshTarget is the -J address users type: the SSH listener, with the
// public URL's host when the listener binds every interface, and without
// the port when it is 22.
func sshTarget(cfg *config.Config) string {
	host, port, err := net.SplitHostPort(cfg.SSH.Listen)
	if err != nil {
		return cfg.SSH.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if u, err := url.Parse(cfg.Web.PublicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
	}
	if port == "22" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// parseDuration reads a duration field: Go syntax or plain minutes.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Minute, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q: want something like 30m, 2h or 1h30m", s)
	}
	return d, nil
}
