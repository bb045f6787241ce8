package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gatehouse-dev/gatehouse/internal/testbin"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The zitadel/oidc example OpenID provider is a provider nobody here wrote:
// Gatehouse must sign people in through it as it does through its own
// dev-idp. Like Okta in the code flow it puts only the base claims into the
// ID token (its clients do not assert UserInfo claims there), so profile and
// email come from its UserInfo endpoint.
// exampleOPProgram is the zitadel example OpenID provider
// (GATEHOUSE_EXAMPLE_OP in CI).
func exampleOPProgram() testbin.Program {
	return testbin.Program{Name: "the zitadel example OpenID provider", Package: "github.com/zitadel/oidc/v3/example/server",
		Version: "v3.51.17", Binary: "server", Env: "GATEHOUSE_EXAMPLE_OP"}
}

// FindExampleOP returns the example server's path (see testbin.Program.Find).
func FindExampleOP(t testing.TB) string { t.Helper(); return exampleOPProgram().Find(t) }

// ExampleOPUser is one account in the example server's USERS_FILE (its
// storage.User, JSON-encoded by field name).
type ExampleOPUser struct {
	ID            string
	Username      string
	Password      string
	FirstName     string
	LastName      string
	Email         string
	EmailVerified bool
}

// ExampleOP is a running example server.
type ExampleOP struct {
	Issuer       string // http://localhost:PORT/ — the example's own form, trailing slash included
	ClientID     string
	ClientSecret string
	LogPath      string
	proc         *Process
}

// StartExampleOP runs the example server bin on a free port with users,
// accepting redirects to webURL + "/oidc/callback" for its confidential
// client "web" (secret "secret", as the example registers it).
func StartExampleOP(t testing.TB, bin, webURL string, users []ExampleOPUser) *ExampleOP {
	t.Helper()
	dir := t.TempDir()
	byID := make(map[string]ExampleOPUser, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	data, err := json.Marshal(byID)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	writeFile(t, usersFile, string(data), 0o600)
	port := strconv.Itoa(FreePort(t))
	op := &ExampleOP{Issuer: "http://localhost:" + port + "/", ClientID: "web", ClientSecret: "secret",
		LogPath: filepath.Join(dir, "example-op.log")}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port, "USERS_FILE="+usersFile, "REDIRECT_URI="+webURL+"/oidc/callback")
	op.proc = startProcess(t, "zitadel example OP", op.LogPath, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitForPort(ctx, net.JoinHostPort("127.0.0.1", port), op.proc); err != nil {
		t.Fatalf("StartExampleOP: %v", err)
	}
	return op
}

// OIDCConfig is the gatehouse.yaml `oidc:` section for this provider.
func (op *ExampleOP) OIDCConfig() map[string]any {
	return map[string]any{
		"issuer":         op.Issuer,
		"client_id":      op.ClientID,
		"client_secret":  op.ClientSecret,
		"username_claim": "email",
		"groups_claim":   "groups",
	}
}

var exampleLoginID = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]*)">`)

// SignIn opens start with c (which must keep cookies), which leads to the
// example server's login form, posts username and password to it the way
// the form does, and follows the redirects back. It returns the final
// response's URL and body.
func (op *ExampleOP) SignIn(t testing.TB, c *http.Client, start, username, password string) (*url.URL, string) {
	t.Helper()
	res, err := c.Get(start)
	if err != nil {
		t.Fatalf("open %s: %v", start, err)
	}
	body := readBody(t, res)
	m := exampleLoginID.FindStringSubmatch(body)
	if m == nil || !strings.HasPrefix(res.Request.URL.String(), op.Issuer+"login/username") {
		t.Fatalf("%s did not lead to the example provider's login form (at %s, status %d): %.500s", start, res.Request.URL, res.StatusCode, body)
	}
	res, err = c.PostForm(op.Issuer+"login/username", url.Values{
		"id": {html.UnescapeString(m[1])}, "username": {username}, "password": {password},
	})
	if err != nil {
		t.Fatalf("post the example provider's login form: %v", err)
	}
	body = readBody(t, res)
	if strings.HasPrefix(res.Request.URL.String(), op.Issuer) {
		t.Fatalf("still at the example provider after signing in as %s (%s, status %d): %.500s", username, res.Request.URL, res.StatusCode, body)
	}
	return res.Request.URL, body
}

func readBody(t testing.TB, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", res.Request.URL, err)
	}
	return string(b)
}

// String names the provider in messages.
func (op *ExampleOP) String() string { return fmt.Sprintf("zitadel example OP at %s", op.Issuer) }
