package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Lifetimes of what the provider hands out. Short on purpose: nothing here
// is meant to outlive a demo, and the relying party keeps its own sessions.
const (
	authRequestTTL = 10 * time.Minute
	accessTokenTTL = 10 * time.Minute
	idTokenTTL     = 10 * time.Minute
)

var errNotFound = errors.New("not found")

// authRequest is one pending authorization request and, once the user has
// signed in through the form, the subject it was completed for.
type authRequest struct {
	id       string
	req      oidc.AuthRequest
	created  time.Time
	subject  string
	authTime time.Time
	done     bool
}

func (a *authRequest) GetID() string          { return a.id }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string  { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.authTime }
func (a *authRequest) GetClientID() string    { return a.req.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }

// client is a registered relying party: a confidential web application
// using the authorization-code flow with client_secret_basic.
type client struct {
	id           string
	secret       string
	redirectURIs []string
	loginURL     string
	fatIDTokens  bool
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return c.loginURL + "?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenTTL }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return c.fatIDTokens }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// signingKey is the private half used to sign ID tokens.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is what JWKS publishes for one signing key.
type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

type accessToken struct {
	subject  string
	clientID string
	scopes   []string
	expires  time.Time
}

// store implements op.Storage in memory. One mutex guards everything: the
// dev provider serves a handful of logins, not a fleet.
type store struct {
	clients map[string]*client
	users   map[string]User

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code -> auth request id
	tokens   map[string]accessToken
	keys     []*signingKey // last one signs; all are published
}

var _ op.Storage = (*store)(nil)
var _ op.CanSetUserinfoFromRequest = (*store)(nil)

func randomID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func newSigningKey() (*signingKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA signing key: %w", err)
	}
	return &signingKey{id: randomID()[:16], key: k}, nil
}

func (s *store) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	a := &authRequest{id: randomID(), req: *req, created: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	s.requests[a.id] = a
	return a, nil
}

// expireLocked drops abandoned requests and tokens so a long-running dev
// provider does not grow without bound.
func (s *store) expireLocked() {
	now := time.Now()
	for id, a := range s.requests {
		if now.Sub(a.created) > authRequestTTL {
			delete(s.requests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.requests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, id)
		}
	}
}

func (s *store) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok || time.Since(a.created) > authRequestTTL {
		return nil, fmt.Errorf("auth request %s: %w", id, errNotFound)
	}
	return a, nil
}

func (s *store) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("authorization code: %w", errNotFound)
	}
	a, ok := s.requests[id]
	if !ok || time.Since(a.created) > authRequestTTL {
		return nil, fmt.Errorf("authorization code: %w", errNotFound)
	}
	return a, nil
}

func (s *store) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[id]; !ok {
		return fmt.Errorf("save code for auth request %s: %w", id, errNotFound)
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code has been exchanged; removing
// the request and its code makes codes single-use.
func (s *store) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin marks an auth request as done for username.
func (s *store) completeLogin(id, username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok || time.Since(a.created) > authRequestTTL {
		return fmt.Errorf("auth request %s: %w", id, errNotFound)
	}
	a.subject = username
	a.authTime = time.Now()
	a.done = true
	return nil
}

func (s *store) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	var clientID string
	if a, ok := req.(op.AuthRequest); ok {
		clientID = a.GetClientID()
	}
	id := randomID()
	exp := time.Now().Add(accessTokenTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = accessToken{subject: req.GetSubject(), clientID: clientID, scopes: req.GetScopes(), expires: exp}
	return id, exp, nil
}

func (s *store) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("refresh tokens are not supported by the dev provider")
}

func (s *store) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *store) TerminateSession(context.Context, string, string) error { return nil }

func (s *store) RevokeToken(_ context.Context, tokenOrTokenID, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tokenOrTokenID)
	return nil
}

func (s *store) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1], nil
}

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

// rotate adds a new signing key; the old ones stay published so tokens
// already issued still verify, which is how real providers rotate.
func (s *store) rotate() error {
	k, err := newSigningKey()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	return nil
}

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q: %w", id, errNotFound)
	}
	return c, nil
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return errors.New("invalid client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in the library; the work is done in
// SetUserinfoFromRequest.
func (s *store) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token. The op library already drops
// the profile and email scopes here for clients without
// IDTokenUserinfoClaimsAssertion, but not groups or custom claims, so a thin
// client gets the subject and nothing else.
func (s *store) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if c, ok := s.clients[req.GetClientID()]; !ok || !c.fatIDTokens {
		ui.Subject = req.GetSubject()
		return nil
	}
	return s.fillUserinfo(ui, req.GetSubject(), scopes)
}

func (s *store) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) || t.subject != subject {
		return fmt.Errorf("access token: %w", errNotFound)
	}
	return s.fillUserinfo(ui, subject, t.scopes)
}

func (s *store) fillUserinfo(ui *oidc.UserInfo, subject string, scopes []string) error {
	u, ok := s.users[subject]
	if !ok {
		return fmt.Errorf("user %q: %w", subject, errNotFound)
	}
	ui.Subject = u.Username
	// Custom claims first so the standard ones below cannot be overridden
	// by a typo in the users file.
	for k, v := range u.Claims {
		ui.AppendClaims(k, v)
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		ui.Email = u.Email
		ui.EmailVerified = oidc.Bool(u.EmailVerified)
	}
	if slices.Contains(scopes, oidc.ScopeProfile) {
		ui.Name = u.Name
		ui.PreferredUsername = u.Username
	}
	if slices.Contains(scopes, "groups") {
		ui.AppendClaims("groups", append([]string{}, u.Groups...))
	}
	return nil
}

func (s *store) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("token introspection is not supported by the dev provider")
}

func (s *store) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *store) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile is not supported by the dev provider")
}

func (s *store) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile is not supported by the dev provider")
}

func (s *store) Health(context.Context) error { return nil }
