package devidp

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"
	"gopkg.in/yaml.v3"
)

// Config describes the provider: where it lives, who may use it as a
// relying party, and who may sign in.
type Config struct {
	// Issuer is the provider's public base URL, e.g. http://127.0.0.1:5556.
	// ID tokens carry it and relying parties fetch discovery from it.
	Issuer  string
	Clients []Client
	Users   []User
	Logger  *slog.Logger // nil: slog.Default()
}

// Client is a registered relying party.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
	// FatIDTokens puts profile, email, groups and the users' extra claims
	// into the ID token as well. Off by default, like Okta: the ID token of
	// the code flow carries only sub, iss, aud and the other base claims,
	// and everything else comes from the UserInfo endpoint.
	FatIDTokens bool
}

// User is one account of the dev provider.
type User struct {
	Username      string         `yaml:"username"`
	Password      string         `yaml:"password"`
	Email         string         `yaml:"email"`
	EmailVerified bool           `yaml:"email_verified"`
	Name          string         `yaml:"name"`
	Groups        []string       `yaml:"groups"`
	Claims        map[string]any `yaml:"claims"` // extra claims, always sent (in UserInfo; in the ID token too for FatIDTokens clients)
}

// Provider is a running dev OpenID provider.
type Provider struct {
	issuer  string
	store   *store
	op      *op.Provider
	handler http.Handler
	log     *slog.Logger
}

// LoadUsers reads a users file: a YAML document with a top-level `users:`
// list (see configs/dev-users.yaml).
func LoadUsers(path string) ([]User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dev users file: %w", err)
	}
	var doc struct {
		Users []User `yaml:"users"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse dev users file %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, u := range doc.Users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("dev users file %s: users[%d]: username and password are required", path, i)
		}
		if seen[u.Username] {
			return nil, fmt.Errorf("dev users file %s: duplicate user %q", path, u.Username)
		}
		seen[u.Username] = true
	}
	return doc.Users, nil
}

// New builds a provider. It generates a fresh RSA signing key, so tokens
// from a previous run never verify against a new one.
func New(cfg Config) (*Provider, error) {
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || (iss.Scheme != "http" && iss.Scheme != "https") || iss.Host == "" {
		return nil, fmt.Errorf("dev provider issuer %q: want an absolute http(s) URL", cfg.Issuer)
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("dev provider: at least one client is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	st := &store{
		clients:  map[string]*client{},
		users:    map[string]User{},
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		tokens:   map[string]accessToken{},
	}
	for _, c := range cfg.Clients {
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("dev provider client %q: id, secret and at least one redirect URI are required", c.ID)
		}
		st.clients[c.ID] = &client{id: c.ID, secret: c.Secret, redirectURIs: c.RedirectURIs, loginURL: issuer + "/login", fatIDTokens: c.FatIDTokens}
	}
	for _, u := range cfg.Users {
		st.users[u.Username] = u
	}
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	st.keys = []*signingKey{k}

	var opts []op.Option
	if iss.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	// The crypto key only protects opaque access tokens, which live in this
	// process's memory anyway; deriving it from a fresh random id keeps
	// New free of extra configuration.
	cryptoKey := sha256.Sum256([]byte(randomID()))
	provider, err := op.NewOpenIDProvider(issuer, &op.Config{
		CryptoKey:       cryptoKey,
		CodeMethodS256:  true,
		SupportedScopes: []string{"openid", "profile", "email", "groups"},
		SupportedClaims: []string{"sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name", "preferred_username", "groups"},
	}, st, opts...)
	if err != nil {
		return nil, fmt.Errorf("build dev OpenID provider: %w", err)
	}
	p := &Provider{issuer: issuer, store: st, op: provider, log: logger}
	mux := http.NewServeMux()
	issuerCtx := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	mux.Handle("/login", issuerCtx.HandlerFunc(p.serveLogin))
	mux.Handle("/", provider)
	p.handler = mux
	return p, nil
}

// Handler serves discovery, JWKS, the authorization and token endpoints,
// userinfo, and the login form.
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer is the provider's issuer URL as it appears in tokens.
func (p *Provider) Issuer() string { return p.issuer }

// RotateKey starts signing with a new key. Older keys stay in JWKS so
// tokens already issued keep verifying; relying parties must pick up the
// new key by its kid.
func (p *Provider) RotateKey() error { return p.store.rotate() }
