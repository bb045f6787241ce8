package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
	jose "github.com/go-jose/go-jose/v4"
)

// fakeIssuer serves discovery and a JWKS holding one key, so tests can mint
// ID tokens with every kind of defect. Only token verification is under
// test here; the full flow runs against the real dev provider elsewhere.
type fakeIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newFakeIssuer(t testing.TB) *fakeIssuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{key: k}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                f.srv.URL,
			"authorization_endpoint":                f.srv.URL + "/authorize",
			"token_endpoint":                        f.srv.URL + "/token",
			"jwks_uri":                              f.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
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
		{"no username claim", f.key, "k1", with("email", nil), "n1", "no string claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mint(t, tt.key, tt.kid, tt.claims)
			user, claims, err := svc.verifyIDToken(ctx, raw, tt.nonce)
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
		{name: "non-string username", claim: "uid", raw: map[string]any{"uid": 1000.0}, wantErr: "no string claim"},
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
