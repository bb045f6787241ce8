package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// fakeIssuer serves discovery and a JWKS holding one key, so tests can mint
// ID tokens with every kind of defect. Only token verification is under
// test here; the full flow runs against the real dev provider elsewhere.
type fakeIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	// userinfo answers the UserInfo endpoint by access token; unknown
	// tokens get 401. Nil: discovery publishes no UserInfo endpoint.
	userinfo map[string]userinfoAnswer
}

// userinfoAnswer is one UserInfo response: JSON claims, or a JWT signed by
// the issuer's key when jwt is set.
type userinfoAnswer struct {
	claims map[string]any
	jwt    bool
}

func newFakeIssuer(t testing.TB) *fakeIssuer { return newFakeIssuerWith(t, nil) }

func newFakeIssuerWith(t testing.TB, userinfo map[string]userinfoAnswer) *fakeIssuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{key: k, userinfo: userinfo}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{
			"issuer":                                f.srv.URL,
			"authorization_endpoint":                f.srv.URL + "/authorize",
			"token_endpoint":                        f.srv.URL + "/token",
			"jwks_uri":                              f.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		if f.userinfo != nil {
			doc["userinfo_endpoint"] = f.srv.URL + "/userinfo"
		}
		json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		a, ok := f.userinfo[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		if a.jwt {
			w.Header().Set("Content-Type", "application/jwt")
			io.WriteString(w, mint(t, k, "k1", a.claims))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.claims)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func mint(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyIDToken(t *testing.T) {
	ctx := context.Background()
	f := newFakeIssuer(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	svc, err := New(ctx, Options{Issuer: f.srv.URL, ClientID: "gatehouse", ClientSecret: "x", PublicURL: "http://127.0.0.1:8080", Store: st, Clock: func() time.Time { return now }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	good := func() map[string]any {
		return map[string]any{
			"iss": f.srv.URL, "aud": "gatehouse", "sub": "bob", "nonce": "n1",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"email": "bob@example.com", "email_verified": true, "groups": []string{"engineers"},
		}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name    string
		key     *rsa.PrivateKey
		kid     string
		claims  map[string]any
		nonce   string
		wantErr string // "" means accepted
	}{
		{"valid", f.key, "k1", good(), "n1", ""},
		{"wrong issuer", f.key, "k1", with("iss", "https://evil.example"), "n1", "different provider"},
		{"wrong audience", f.key, "k1", with("aud", "someone-else"), "n1", "audience"},
		{"expired", f.key, "k1", with("exp", now.Add(-10*time.Minute).Unix()), "n1", "expired"},
		{"not yet valid", f.key, "k1", with("nbf", now.Add(time.Hour).Unix()), "n1", "nbf"},
		{"bad signature, known kid", other, "k1", good(), "n1", "signature"},
		{"bad signature, unknown kid", other, "k2", good(), "n1", "verify"},
		{"missing nonce", f.key, "k1", with("nonce", nil), "n1", "nonce"},
		{"wrong nonce", f.key, "k1", good(), "n2", "nonce"},
		{"email not verified", f.key, "k1", with("email_verified", false), "n1", "not verified"},
		{"email_verified absent", f.key, "k1", with("email_verified", nil), "n1", "not verified"},
		{"no username claim", f.key, "k1", with("email", nil), "n1", "has a string claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mint(t, tt.key, tt.kid, tt.claims)
			user, claims, err := svc.signInClaims(ctx, (&oauth2.Token{AccessToken: "at"}).WithExtra(map[string]any{"id_token": raw}), tt.nonce)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				if user != "bob" || !reflect.DeepEqual(claims["groups"], []string{"engineers"}) {
					t.Fatalf("got user %q claims %v", user, claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("want refusal mentioning %q, got user %q accepted", tt.wantErr, user)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestIdentityFromClaims(t *testing.T) {
	tests := []struct {
		name       string
		claim      string
		raw        map[string]any
		wantUser   string
		wantClaims map[string][]string
		wantErr    string
	}{
		{
			name: "email local part", claim: "email",
			raw:      map[string]any{"email": "bob@example.com", "email_verified": true, "groups": []any{"engineers", "oncall"}},
			wantUser: "bob",
			wantClaims: map[string][]string{
				"email": {"bob@example.com"}, "email_verified": {"true"}, "groups": {"engineers", "oncall"},
			},
		},
		{name: "unverified email", claim: "email", raw: map[string]any{"email": "bob@example.com", "email_verified": false}, wantErr: "not verified"},
		{name: "not an address", claim: "email", raw: map[string]any{"email": "@example.com", "email_verified": true}, wantErr: "not an email"},
		{
			name: "other claim used as is, email_verified not needed", claim: "preferred_username",
			raw:        map[string]any{"preferred_username": "bob.smith", "groups": []any{"dba"}},
			wantUser:   "bob.smith",
			wantClaims: map[string][]string{"preferred_username": {"bob.smith"}, "groups": {"dba"}},
		},
		{name: "unsafe principal", claim: "preferred_username", raw: map[string]any{"preferred_username": "bob,root"}, wantErr: "not usable"},
		{name: "non-string username", claim: "uid", raw: map[string]any{"uid": 1000.0}, wantErr: "has a string claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{opt: Options{UsernameClaim: tt.claim, GroupsClaim: "groups"}}
			user, claims, err := s.identityFromClaims(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error mentioning %q, got user %q err %v", tt.wantErr, user, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if user != tt.wantUser || !reflect.DeepEqual(claims, tt.wantClaims) {
				t.Fatalf("got %q %v, want %q %v", user, claims, tt.wantUser, tt.wantClaims)
			}
		})
	}
}

// TestSignInClaimsFromIDTokenAndUserInfo: thin ID tokens (Okta's default in
// the code flow) carry only base claims and the rest comes from UserInfo;
// fat ones carry everything. The ID token wins where both speak, UserInfo
// must be about the same subject, and groups may be a list or one string.
func TestSignInClaimsFromIDTokenAndUserInfo(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	base := func(extra map[string]any) map[string]any {
		c := map[string]any{"aud": "gatehouse", "sub": "00u1bob", "nonce": "n1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	bobUI := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "00u1bob", "email": "bob@example.com", "email_verified": true, "preferred_username": "bob.smith", "groups": []string{"engineers", "oncall"}}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	tests := []struct {
		name       string
		usernameBy string
		id         map[string]any // ID token claims besides the base ones
		ui         *userinfoAnswer
		wantUser   string
		wantGroups []string // nil: no groups claim stored
		wantErr    string
	}{
		{name: "thin token, profile and groups from UserInfo", id: nil, ui: &userinfoAnswer{claims: bobUI(nil)},
			wantUser: "bob", wantGroups: []string{"engineers", "oncall"}},
		{name: "thin token, preferred_username from UserInfo", usernameBy: "preferred_username", ui: &userinfoAnswer{claims: bobUI(nil)},
			wantUser: "bob.smith", wantGroups: []string{"engineers", "oncall"}},
		{name: "UserInfo as a signed JWT", ui: &userinfoAnswer{claims: bobUI(nil), jwt: true},
			wantUser: "bob", wantGroups: []string{"engineers", "oncall"}},
		{name: "fat token, UserInfo with sub only", id: map[string]any{"email": "bob@example.com", "email_verified": true, "groups": []string{"dba"}},
			ui: &userinfoAnswer{claims: map[string]any{"sub": "00u1bob"}}, wantUser: "bob", wantGroups: []string{"dba"}},
		{name: "ID token wins over UserInfo", id: map[string]any{"email": "bob@example.com", "email_verified": true, "groups": []string{"dba"}},
			ui: &userinfoAnswer{claims: bobUI(map[string]any{"email": "mallory@example.com", "groups": []string{"admins"}})}, wantUser: "bob", wantGroups: []string{"dba"}},
		{name: "groups as one string", ui: &userinfoAnswer{claims: bobUI(map[string]any{"groups": "engineers"})},
			wantUser: "bob", wantGroups: []string{"engineers"}},
		{name: "no groups claim means no groups", ui: &userinfoAnswer{claims: bobUI(map[string]any{"groups": nil})}, wantUser: "bob"},
		{name: "null groups in the ID token, UserInfo's count", id: map[string]any{"groups": nil}, ui: &userinfoAnswer{claims: bobUI(nil)},
			wantUser: "bob", wantGroups: []string{"engineers", "oncall"}},
		{name: "email_verified as the string true", ui: &userinfoAnswer{claims: bobUI(map[string]any{"email_verified": "true"})},
			wantUser: "bob", wantGroups: []string{"engineers", "oncall"}},
		{name: "UserInfo about another subject", ui: &userinfoAnswer{claims: bobUI(map[string]any{"sub": "00u2alice"})}, wantErr: "UserInfo is about subject"},
		{name: "UserInfo without a subject", ui: &userinfoAnswer{claims: bobUI(map[string]any{"sub": nil})}, wantErr: "UserInfo is about subject"},
		{name: "UserInfo refuses the access token", ui: nil, wantErr: "UserInfo endpoint refused"},
		{name: "email unverified in UserInfo", ui: &userinfoAnswer{claims: bobUI(map[string]any{"email_verified": false})}, wantErr: "not verified"},
		// UserInfo vouches for mallory's address, not for the one the ID
		// token names; that must not make bob@ verified.
		{name: "UserInfo's email_verified is about another address", id: map[string]any{"email": "bob@example.com"},
			ui: &userinfoAnswer{claims: bobUI(map[string]any{"email": "mallory@example.com"})}, wantErr: "not verified"},
		{name: "no username anywhere", ui: &userinfoAnswer{claims: bobUI(map[string]any{"email": nil})}, wantErr: `string claim "email"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := map[string]userinfoAnswer{}
			if tt.ui != nil {
				answers["at-1"] = *tt.ui
			}
			f := newFakeIssuerWith(t, answers)
			svc := newVerifySvc(t, f.srv.URL, tt.usernameBy, now)
			claims := base(tt.id)
			claims["iss"] = f.srv.URL
			tok := (&oauth2.Token{AccessToken: "at-1", TokenType: "Bearer"}).WithExtra(map[string]any{"id_token": mint(t, f.key, "k1", claims)})
			user, got, err := svc.signInClaims(ctx, tok, "n1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want refusal mentioning %q, got user %q err %v", tt.wantErr, user, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if user != tt.wantUser || !reflect.DeepEqual(got["groups"], tt.wantGroups) {
				t.Fatalf("got user %q groups %#v, want %q %#v", user, got["groups"], tt.wantUser, tt.wantGroups)
			}
			// The stored claims are the merged ones, ID token and UserInfo.
			if got["sub"][0] != "00u1bob" || got["iss"][0] != f.srv.URL {
				t.Fatalf("merged claims lack the ID token's: %v", got)
			}
		})
	}

	t.Run("provider without a UserInfo endpoint", func(t *testing.T) {
		f := newFakeIssuer(t)
		svc := newVerifySvc(t, f.srv.URL, "", now)
		claims := base(map[string]any{"iss": f.srv.URL, "email": "bob@example.com", "email_verified": true, "groups": "dba"})
		tok := (&oauth2.Token{AccessToken: "at-1"}).WithExtra(map[string]any{"id_token": mint(t, f.key, "k1", claims)})
		user, got, err := svc.signInClaims(ctx, tok, "n1")
		if err != nil || user != "bob" || !reflect.DeepEqual(got["groups"], []string{"dba"}) {
			t.Fatalf("ID token only: %q %v %v", user, got, err)
		}
	})
}

func newVerifySvc(t *testing.T, issuer, usernameClaim string, now time.Time) *Service {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := New(ctx, Options{Issuer: issuer, ClientID: "gatehouse", ClientSecret: "x", PublicURL: "http://127.0.0.1:8080",
		UsernameClaim: usernameClaim, Store: st, Clock: func() time.Time { return now }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
