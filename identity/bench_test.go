package identity

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// BenchmarkVerifyIDToken measures the per-sign-in cost of checking an ID
// token (RS256 signature with a cached JWKS, claims, username rules).
func BenchmarkVerifyIDToken(b *testing.B) {
	ctx := context.Background()
	t := b
	f := newFakeIssuer(t)
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, Options{Issuer: f.srv.URL, ClientID: "gatehouse", PublicURL: "http://127.0.0.1:8080", Store: st})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	raw := mint(t, f.key, "k1", map[string]any{"iss": f.srv.URL, "aud": "gatehouse", "sub": "bob", "nonce": "n",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "email": "bob@example.com", "email_verified": true, "groups": []string{"engineers"}})
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := svc.verifyIDToken(ctx, raw, "n"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionLookup measures what every authenticated web request
// pays: cookie hash plus one SQLite read.
func BenchmarkSessionLookup(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := &Service{opt: Options{Store: st, Clock: time.Now}}
	secret := randomToken(32)
	now := time.Now()
	if err := st.PutLogin(ctx, loginFixture(hashToken("session", secret), now)); err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
	b.ResetTimer()
	for b.Loop() {
		if _, ok := svc.Session(req); !ok {
			b.Fatal("session not found")
		}
	}
}

// BenchmarkStartSSHLogin measures issuing a login URL (one durable write).
func BenchmarkStartSSHLogin(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	pub, _ := url.Parse("http://127.0.0.1:8080")
	svc := &Service{opt: Options{Store: st, Clock: time.Now, PublicURL: pub.String(), Logger: discardLogger()}, log: discardLogger()}
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.StartSSHLogin(ctx, "SHA256:bench", "192.0.2.1:1"); err != nil {
			b.Fatal(err)
		}
	}
}
