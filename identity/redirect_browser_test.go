package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gatehouse-dev/gatehouse/internal/browser"
)

// TestBrowserNextStaysOnSite signs in through Chromium with hostile next=
// values and follows the redirect the callback answers. Whatever next said,
// the browser must end on the bastion's own origin and never ask the
// attacker's server for anything. A string check of safeNext is not enough:
// what counts is how a browser reads the Location header (it drops tabs and
// newlines, treats '\' as '/').
func TestBrowserNextStaysOnSite(t *testing.T) {
	e := newEnv(t)
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		fmt.Fprint(w, `<!doctype html><p id="evil">attacker's page</p>`)
	}))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	ours, _ := url.Parse(e.srv.URL)
	q := url.QueryEscape

	tests := []struct {
		name string
		next string // raw query value, as an attacker would put it in a link
	}{
		{"tab", "/%09/" + evilHost + "/"},
		{"tabs everywhere", "%09/%09/%09" + evilHost},
		{"newline", "/%0A/" + evilHost + "/"},
		{"carriage return", "/%0D/" + evilHost + "/"},
		{"slash backslash", "/%5C" + evilHost + "/"},
		{"two backslashes", "%5C%5C" + evilHost + "/"},
		{"encoded slashes", "%2f%2f" + evilHost + "/"},
		{"double-encoded slashes", "%252f%252f" + evilHost + "/"},
		{"protocol-relative", "//" + evilHost + "/"},
		{"three slashes", "///" + evilHost + "/"},
		{"https scheme", q("https://" + evilHost + "/")},
		{"http scheme", q("http://" + evilHost + "/")},
		{"scheme without slashes", q("http:" + evilHost)},
		{"scheme with backslashes", q(`http:\\` + evilHost + "/")},
		{"userinfo", q("//" + ours.Host + "@" + evilHost + "/")},
		{"userinfo with scheme", q("http://" + ours.Host + "@" + evilHost + "/")},
		{"fullwidth slashes", q("\uff0f\uff0f" + evilHost + "/")},
		{"slash then fullwidth slash", q("/\uff0f" + evilHost + "/")},
		{"division slashes", q("\u2215\u2215" + evilHost + "/")},
		{"leading space", "%20//" + evilHost + "/"},
		{"javascript", q("javascript:location='http://" + evilHost + "/'")},
	}
	ctx := browser.New(t)
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evilHits.Store(0)
			final := signInWithNext(t, ctx, e, dir, tt.next)
			if final.Scheme != ours.Scheme || final.Host != ours.Host {
				t.Fatalf("next=%s: the browser ended on %s, not on %s", tt.next, final, e.srv.URL)
			}
			if n := evilHits.Load(); n != 0 {
				t.Fatalf("next=%s: the attacker's server was asked %d times", tt.next, n)
			}
		})
	}

	// A legitimate target still works, so the cases above did not pass
	// only because every redirect had broken.
	t.Run("own page kept", func(t *testing.T) {
		final := signInWithNext(t, ctx, e, dir, q("/whoami?from=test#top"))
		if final.Host != ours.Host || final.Path != "/whoami" || final.RawQuery != "from=test" {
			t.Fatalf("ended on %s, want %s/whoami?from=test", final, e.srv.URL)
		}
		if got := textOf(t, ctx, "#user"); got != "bob" {
			t.Fatalf("whoami says %q", got)
		}
	})
}

// signInWithNext starts a sign-in at /oidc/login?next=<rawNext>, fills in
// the provider's form as bob, and returns where the browser has come to
// rest once it has left the provider and the callback.
func signInWithNext(t *testing.T, ctx context.Context, e *env, dir, rawNext string) *url.URL {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/oidc/login?next="+rawNext)); err != nil {
		t.Fatalf("open sign-in: %v", err)
	}
	signInAtProvider(t, ctx, dir, "bob", "bob")
	idp, _ := url.Parse(e.idpSrv.URL)
	var loc string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		ready, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
		u, err := url.Parse(loc)
		if err == nil && ready == "complete" && u.Host != idp.Host && u.Path != "/oidc/callback" && u.Scheme != "about" {
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the browser did not come back from the provider; last at %q", loc)
	return nil
}
