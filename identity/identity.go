package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"golang.org/x/crypto/ssh"
	"golang.org/x/oauth2"
)

// CertSigner signs user certificates for `gatehouse login`. The principal
// is user; the KeyId must contain "login=<loginID>" so the proxy can ask
// LoginRevoked about it. Roles are never written into the certificate: they
// are evaluated live by policy.
type CertSigner interface {
	SignUser(pub ssh.PublicKey, user, loginID string, ttl time.Duration) (*ssh.Certificate, error)
}

// Auditor receives one event per decision (sign-in, refusal, logout).
type Auditor interface {
	Append(ctx context.Context, ev storage.Event) error
}

// Options configure a Service. Issuer, ClientID, ClientSecret, PublicURL and
// Store are required.
type Options struct {
	Issuer        string
	ClientID      string
	ClientSecret  string
	RedirectURL   string   // default <PublicURL>/oidc/callback
	UsernameClaim string   // default "email" (username = local part; email_verified required)
	GroupsClaim   string   // default "groups"
	Scopes        []string // default openid, email, profile, groups
	Store         storage.IdentityStore
	Auditor       Auditor    // nil: decisions are only logged
	Signer        CertSigner // nil: CLI login is refused
	PublicURL     string     // the bastion's web address as users see it
	Clock         func() time.Time
	Logger        *slog.Logger
	KeyBindingTTL time.Duration // SSH keys bound through the login URL; default 12h
	WebSessionTTL time.Duration // browser sessions; default 8h
	CLICertTTL    time.Duration // `gatehouse login` certificates; default 8h
	SSHAddr       string        // the bastion's SSH address as clients dial it (host:port)
	HostCALine    string        // host CA public key, authorized_keys format, for known_hosts
	HTTPClient    *http.Client  // talks to the provider; default http.DefaultClient
}

// Service is the relying party plus the login flows built on it.
type Service struct {
	opt      Options
	oauth    oauth2.Config
	provider *oidc.Provider // for UserInfo
	verifier *oidc.IDTokenVerifier
	public   *url.URL
	secure   bool // cookies get Secure when the public URL is https
	log      *slog.Logger
	http     *http.Client
}

// Lifetimes of one-time values.
const (
	sshLoginTTL = 5 * time.Minute
	stateTTL    = 10 * time.Minute
	cliCodeTTL  = 2 * time.Minute
	nonceTTL    = 2 * time.Minute
)

// Cookie names.
const (
	sessionCookie  = "gatehouse_session"
	preLoginCookie = "gatehouse_prelogin"
)

// Errors callers branch on.
var (
	ErrSSHLoginExpired = errors.New("login URL expired before it was confirmed")
	ErrSSHLoginDenied  = errors.New("login URL was cancelled in the browser")
)

// New discovers the provider (so it must be reachable) and builds the
// service.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Issuer == "" || o.ClientID == "" || o.PublicURL == "" || o.Store == nil {
		return nil, errors.New("identity: Issuer, ClientID, PublicURL and Store are required")
	}
	pub, err := url.Parse(strings.TrimSuffix(o.PublicURL, "/"))
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return nil, fmt.Errorf("identity: public URL %q: want an absolute http(s) URL", o.PublicURL)
	}
	o.PublicURL = pub.String()
	if o.RedirectURL == "" {
		o.RedirectURL = o.PublicURL + "/oidc/callback"
	}
	if o.UsernameClaim == "" {
		o.UsernameClaim = "email"
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = "groups"
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{oidc.ScopeOpenID, "email", "profile", o.GroupsClaim}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.KeyBindingTTL == 0 {
		o.KeyBindingTTL = 12 * time.Hour
	}
	if o.WebSessionTTL == 0 {
		o.WebSessionTTL = 8 * time.Hour
	}
	if o.CLICertTTL == 0 {
		o.CLICertTTL = 8 * time.Hour
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	s := &Service{opt: o, public: pub, secure: pub.Scheme == "https", log: o.Logger, http: o.HTTPClient}
	provider, err := oidc.NewProvider(s.clientCtx(ctx), o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC provider %s: %w", o.Issuer, err)
	}
	s.provider = provider
	s.verifier = provider.VerifierContext(s.clientCtx(ctx), &oidc.Config{ClientID: o.ClientID, Now: o.Clock})
	s.oauth = oauth2.Config{
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		Endpoint:     provider.Endpoint(),
		RedirectURL:  o.RedirectURL,
		Scopes:       o.Scopes,
	}
	return s, nil
}

// clientCtx makes go-oidc and oauth2 use our HTTP client.
func (s *Service) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.http)
}

func (s *Service) now() time.Time { return s.opt.Clock() }

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(prefix, secret string) string {
	h := sha256.Sum256([]byte(prefix + "\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// audit records an event of type typ (an audit.Type constant); an error is
// returned so callers granting access can fail closed when the audit log
// cannot take the event.
func (s *Service) audit(ctx context.Context, typ, actor, target, outcome string, fields map[string]any) error {
	s.log.Info("identity: "+typ, "actor", actor, "target", target, "outcome", outcome, "fields", fields)
	ev := storage.Event{Time: s.now(), Type: typ, Actor: actor, Target: target, Outcome: outcome, Fields: fields}
	if err := audit.Append(ctx, s.opt.Auditor, s.log, ev); err != nil {
		return fmt.Errorf("audit %s: %w", typ, err)
	}
	return nil
}

// validUsername is what may appear as an SSH principal and in role files.
var validUsername = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// identityFromClaims applies the username rules to the merged claims of a
// sign-in (see signInClaims) and flattens them for storage.
func (s *Service) identityFromClaims(raw map[string]any) (string, map[string][]string, error) {
	claims := map[string][]string{}
	for k, v := range raw {
		if vals, ok := claimStrings(v); ok {
			claims[k] = vals
		}
	}
	uc := s.opt.UsernameClaim
	v, ok := raw[uc].(string)
	if !ok || v == "" {
		return "", nil, fmt.Errorf("neither the ID token nor UserInfo has a string claim %q to name the user", uc)
	}
	user := v
	if uc == "email" {
		if !claimTrue(raw["email_verified"]) {
			return "", nil, fmt.Errorf("email %s is not verified by the identity provider", v)
		}
		at := strings.LastIndexByte(v, '@')
		if at <= 0 {
			return "", nil, fmt.Errorf("claim email %q is not an email address", v)
		}
		user = v[:at]
	}
	if !validUsername.MatchString(user) {
		return "", nil, fmt.Errorf("username %q from claim %s is not usable as an SSH principal", user, uc)
	}
	return user, claims, nil
}

// claimTrue accepts JSON true and, as go-oidc does for UserInfo, the string
// "true" that some providers (AWS Cognito) send instead.
func claimTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// claimStrings flattens a JSON claim into strings: strings become a
// one-element list, lists of scalars keep their order, scalars are printed.
// A groups claim therefore works whether the provider sends a list or a
// single string; an absent (or null) claim means no groups.
func claimStrings(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return []string{x}, true
	case bool, float64:
		return []string{fmt.Sprint(x)}, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			switch e := e.(type) {
			case string:
				out = append(out, e)
			case bool, float64:
				out = append(out, fmt.Sprint(e))
			}
		}
		return out, true
	}
	return nil, false
}

// verifyIDToken checks signature, issuer, audience and expiry (go-oidc) and
// that the token answers our nonce, and returns the token with its claims.
func (s *Service) verifyIDToken(ctx context.Context, raw, nonce string) (*oidc.IDToken, map[string]any, error) {
	if raw == "" {
		return nil, nil, errors.New("the provider's token response has no ID token")
	}
	tok, err := s.verifier.Verify(s.clientCtx(ctx), raw)
	if err != nil {
		return nil, nil, fmt.Errorf("verify ID token: %w", err)
	}
	if tok.Nonce == "" || nonce == "" || tok.Nonce != nonce {
		return nil, nil, errors.New("verify ID token: nonce missing or does not match this sign-in")
	}
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		return nil, nil, fmt.Errorf("decode ID token claims: %w", err)
	}
	return tok, m, nil
}

// userInfoClaims asks the provider's UserInfo endpoint, with the access
// token of this sign-in, about the user. Providers such as Okta put only
// sub, iss, aud and the like into the ID token of the code flow; profile,
// email and groups are only given here. The answer must be about the ID
// token's subject (OpenID Connect Core 5.3.2), or the sign-in is refused.
// A provider that publishes no UserInfo endpoint gives nil: the ID token is
// all there is.
func (s *Service) userInfoClaims(ctx context.Context, tok *oauth2.Token, subject string) (map[string]any, error) {
	if s.provider.UserInfoEndpoint() == "" {
		return nil, nil
	}
	ui, err := s.provider.UserInfo(s.clientCtx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil {
		// The provider's answer may be long and is not for the user's eyes.
		s.log.Warn("identity: UserInfo request failed", "endpoint", s.provider.UserInfoEndpoint(), "err", err)
		return nil, errors.New("the identity provider's UserInfo endpoint refused or failed this sign-in")
	}
	if ui.Subject != subject {
		return nil, fmt.Errorf("UserInfo is about subject %q but the ID token about %q", ui.Subject, subject)
	}
	var m map[string]any
	if err := ui.Claims(&m); err != nil {
		return nil, fmt.Errorf("decode UserInfo claims: %w", err)
	}
	return m, nil
}

// mergeClaims combines the two sources of a sign-in. A claim present (not
// null) in the ID token is taken from there, otherwise from UserInfo; that
// is the order for username_claim, groups_claim and email_verified alike,
// and the merged set is what the login stores for claims_to_roles.
// email_verified speaks about one address, so UserInfo's verdict only
// counts when UserInfo names the same address the merged claims use.
func mergeClaims(id, ui map[string]any) map[string]any {
	m := make(map[string]any, len(id)+len(ui))
	for k, v := range ui {
		if v != nil {
			m[k] = v
		}
	}
	for k, v := range id {
		if v != nil {
			m[k] = v
		}
	}
	if id["email_verified"] == nil && ui["email_verified"] != nil && ui["email"] != m["email"] {
		delete(m, "email_verified")
	}
	return m
}

// signInClaims turns the token response of a code exchange into the user
// name and the claims to store: ID token verified, UserInfo fetched and
// checked against it, both merged (mergeClaims), username rules applied.
func (s *Service) signInClaims(ctx context.Context, tok *oauth2.Token, nonce string) (string, map[string][]string, error) {
	raw, _ := tok.Extra("id_token").(string)
	idt, idClaims, err := s.verifyIDToken(ctx, raw, nonce)
	if err != nil {
		return "", nil, err
	}
	uiClaims, err := s.userInfoClaims(ctx, tok, idt.Subject)
	if err != nil {
		return "", nil, err
	}
	return s.identityFromClaims(mergeClaims(idClaims, uiClaims))
}

// LoginRevoked reports whether the login a certificate names may no longer
// be used: revoked, expired, or unknown to the store (a forged or pruned id
// must not keep working).
func (s *Service) LoginRevoked(ctx context.Context, loginID string) (bool, error) {
	l, err := s.opt.Store.GetLogin(ctx, loginID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up login %s: %w", loginID, err)
	}
	return l.Revoked || !s.now().Before(l.Expires), nil
}

// Routes registers every identity endpoint on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /oidc/login", s.handleLogin)
	mux.HandleFunc("GET /oidc/callback", s.handleCallback)
	mux.HandleFunc("POST /oidc/logout", s.handleLogout)
	mux.Handle("GET /ssh-login/{code}", s.RequireLogin(http.HandlerFunc(s.handleSSHLoginPage)))
	mux.Handle("POST /ssh-login/{code}", s.RequireLogin(http.HandlerFunc(s.handleSSHLoginConfirm)))
	mux.Handle("GET /cli-login", s.RequireLogin(http.HandlerFunc(s.handleCLILoginPage)))
	mux.Handle("POST /cli-login", s.RequireLogin(http.HandlerFunc(s.handleCLILoginConfirm)))
	mux.HandleFunc("POST /cli-login/exchange", s.handleCLIExchange)
	mux.HandleFunc("POST /cli-login/nonce", s.handleCLINonce)
	mux.HandleFunc("POST /cli-login/revoke", s.handleCLIRevoke)
}
