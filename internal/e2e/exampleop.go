package e2e

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
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
const (
	// ExampleOPModule is the example server's main package, as go install
	// and the binary's build information name it.
	ExampleOPModule = "github.com/zitadel/oidc/v3/example/server"
	// ExampleOPVersion is the version .ci/run installs.
	ExampleOPVersion = "v3.51.17"
	// ExampleOPEnv names the example server's binary. When it is set the
	// binary must be there (CI sets it); otherwise the tests look in
	// $(go env GOPATH)/bin/server and skip when it is not installed.
	ExampleOPEnv = "GATEHOUSE_EXAMPLE_OP"
)

// FindExampleOP returns the path of the installed example server. It skips
// the test, saying why and how to install it, when it is absent, and fails
// the test when ExampleOPEnv names a binary that is missing or is something
// else.
func FindExampleOP(t testing.TB) string {
	t.Helper()
	install := "go install " + ExampleOPModule + "@" + ExampleOPVersion + " (or run .ci/run)"
	path, required := os.LookupEnv(ExampleOPEnv)
	if !required {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		gopath := strings.TrimSpace(string(out))
		if err != nil || gopath == "" {
			t.Skipf("SKIPPING THIRD-PARTY OIDC TEST: cannot find GOPATH (go env GOPATH: %v) to look for the zitadel example OpenID provider; %s, or set %s", err, install, ExampleOPEnv)
		}
		path = filepath.Join(filepath.SplitList(gopath)[0], "bin", "server")
	}
	info, err := buildinfo.ReadFile(path)
	switch {
	case err != nil && required:
		t.Fatalf("%s=%s: the zitadel example OpenID provider is not usable there: %v; %s", ExampleOPEnv, path, err, install)
	case err != nil:
		t.Skipf("SKIPPING THIRD-PARTY OIDC TEST: the zitadel example OpenID provider is not installed at %s (%v); %s, or set %s", path, err, install, ExampleOPEnv)
	case info.Path != ExampleOPModule && required:
		t.Fatalf("%s=%s is %q, not the zitadel example OpenID provider (%s)", ExampleOPEnv, path, info.Path, ExampleOPModule)
	case info.Path != ExampleOPModule:
		t.Skipf("SKIPPING THIRD-PARTY OIDC TEST: %s is %q, not the zitadel example OpenID provider; %s, or set %s", path, info.Path, install, ExampleOPEnv)
	}
	t.Logf("zitadel example OpenID provider: %s (%s %s)", path, info.Main.Path, info.Main.Version)
	return path
}

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
