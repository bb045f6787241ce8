package e2e_test

import (
	"bufio"
	"context"
	"html"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// The three ways in against an OpenID provider nobody here wrote: the
// zitadel/oidc example server, driven through its own login form. Its ID
// tokens carry no email and no profile (they come from its UserInfo
// endpoint), and it knows no groups, so bob's role comes from his email
// claim, which only UserInfo gives.

const exampleOPRoles = `
claims_to_roles:
  - {claim: email, value: bob@example.com, roles: [dev]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
`

const exampleBobPassword = "correct-horse-7"

func startWithExampleOP(t *testing.T) (*e2e.Gatehouse, *e2e.ExampleOP) {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	opBin := e2e.FindExampleOP(t)
	bin := builder.BuildGatehouse(t)
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	op := e2e.StartExampleOP(t, opBin, webURL, []e2e.ExampleOPUser{
		{ID: "u-1001", Username: "bob", Password: exampleBobPassword, FirstName: "Bob", LastName: "Engineer",
			Email: "bob@example.com", EmailVerified: true},
		{ID: "u-1002", Username: "eve", Password: "eve-pass-1", FirstName: "Eve", LastName: "Unverified",
			Email: "eve@example.com", EmailVerified: false},
	})
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  exampleOPRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
		Config: map[string]any{
			"web":  map[string]any{"listen": webAddr, "public_url": webURL},
			"oidc": op.OIDCConfig(),
		},
	})
	return gh, op
}

// jarClient is a fresh "browser" for HTTP-form sign-ins.
func jarClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

var (
	csrfField   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	pageTitle   = regexp.MustCompile(`<h1 id="title">([^<]*)</h1>`)
)

// confirmForm presses Confirm on an identity confirm page (body, at u) with
// plain form posts and returns the next response.
func confirmForm(t *testing.T, c *http.Client, u *url.URL, body string) *http.Response {
	t.Helper()
	if m := pageTitle.FindStringSubmatch(body); m == nil || !strings.HasPrefix(m[1], "Confirm") {
		t.Fatalf("expected a confirm page at %s, got: %.800s", u, body)
	}
	if !strings.Contains(body, "You are signing in as <strong>bob</strong>") {
		t.Fatalf("the confirm page should name bob: %.800s", body)
	}
	form := url.Values{"action": {"confirm"}}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("csrf_token") == "" {
		t.Fatalf("no CSRF token on the confirm page: %.800s", body)
	}
	res, err := c.PostForm(u.String(), form)
	if err != nil {
		t.Fatalf("confirm at %s: %v", u, err)
	}
	return res
}

func TestExampleOPBrowserSignIn(t *testing.T) {
	gh, op := startWithExampleOP(t)
	ctx := browser.New(t)
	shots := browser.ArtifactsDir(t)
	run(t, ctx, "open the web UI and reach the example provider's form",
		chromedp.Navigate(gh.WebURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, op.Issuer+"login/username") {
		t.Fatalf("the web UI sent the browser to %s, not to %s's login form", loc, op)
	}
	run(t, ctx, "sign in at the example provider",
		chromedp.SendKeys(chromedp.CSS("#username"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#password"), exampleBobPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	waitText(t, ctx, "#signed-in-as", "bob", 30*time.Second)
	// dev comes from the email claim, which only UserInfo carries.
	waitText(t, ctx, "#roles", "dev", 10*time.Second)
	browser.ScreenshotAtWidths(t, ctx, shots, "example-op-home-bob")
	ev := waitAudit(t, gh, "oidc.login", "bob's web sign-in", func(ev auditLine) bool {
		return ev.Actor == "bob" && ev.Fields["kind"] == "web"
	})
	if ev.Outcome != "success" {
		t.Fatalf("oidc.login: %+v", ev)
	}

	t.Run("unverified email refused", func(t *testing.T) {
		c := jarClient(t)
		_, body := op.SignIn(t, c, gh.WebURL+"/", "eve", "eve-pass-1")
		if !strings.Contains(body, "email eve@example.com is not verified") {
			t.Fatalf("eve's email_verified=false (from UserInfo) must refuse her: %.800s", body)
		}
	})
}

func TestExampleOPLoginURLThroughJump(t *testing.T) {
	gh, op := startWithExampleOP(t)
	key, _ := e2e.GenerateKey(t, t.TempDir(), "id_ed25519")
	bob := e2e.NewUserWithCert(t, gh, "bob", key, "")
	cmd := exec.Command("ssh", "-F", kbdConfig(t, key, bob.KnownHosts), "-J", gh.Jump("bob"), "ubuntu@web-1", "echo via-example-op")
	term := e2e.StartTerm(t, cmd, 24, 80)
	link := term.Expect(loginURLPrompt(gh), 60*time.Second)[1]

	c := jarClient(t)
	at, body := op.SignIn(t, c, link, "bob", exampleBobPassword)
	if at.String() != link {
		t.Fatalf("after signing in the browser is at %s, want back at %s", at, link)
	}
	res := confirmForm(t, c, at, body)
	body = readAllBody(t, res)
	if m := pageTitle.FindStringSubmatch(body); m == nil || m[1] != "SSH sign-in confirmed" {
		t.Fatalf("after Confirm: %d %.800s", res.StatusCode, body)
	}
	term.Expect(regexp.MustCompile(`via-example-op\r?\n`), 60*time.Second)
	if code := term.Wait(60 * time.Second); code != 0 {
		t.Fatalf("ssh -J exited %d; output %q", code, term.Output())
	}
	if r := bob.SSH("ubuntu@web-1", "echo bound"); r.ExitCode != 0 || r.Stdout != "bound\n" {
		t.Fatalf("the bound key in batch mode: %s", r)
	}
	ev := waitAudit(t, gh, "oidc.login", "bob's key", func(ev auditLine) bool {
		return ev.Actor == "bob" && ev.Fields["kind"] == "sshkey"
	})
	if ev.Outcome != "success" {
		t.Fatalf("oidc.login: %+v", ev)
	}
}

func TestExampleOPCLILoginHeadless(t *testing.T) {
	gh, op := startWithExampleOP(t)
	home := filepath.Join(t.TempDir(), "gatehouse-home")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gh.Binary, "login", "--proxy", gh.WebURL, "--headless", "--home", home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gatehouse login: %v", err)
	}
	var lines lockedLines
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines.add(sc.Text())
		}
	}()
	var waitErr error
	exited := make(chan struct{})
	go func() { <-readDone; waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })

	urlRE := regexp.MustCompile(`^\s*(` + regexp.QuoteMeta(gh.WebURL) + `/\S+)$`)
	var link string
	if !poll(60*time.Second, func() bool {
		for _, l := range lines.all() {
			if m := urlRE.FindStringSubmatch(l); m != nil {
				link = m[1]
				return true
			}
		}
		return false
	}) {
		t.Fatalf("gatehouse login --headless printed no URL of %s: %q (stderr %q)", gh.WebURL, lines.all(), stderr.String())
	}

	c := jarClient(t)
	at, body := op.SignIn(t, c, link, "bob", exampleBobPassword)
	// Confirm sends the browser to the CLI's loopback listener, whose page
	// the client follows to.
	res := confirmForm(t, c, at, body)
	if b := readAllBody(t, res); res.Request.URL.Hostname() != "127.0.0.1" || res.Request.URL.Path != "/callback" {
		t.Fatalf("after Confirm the browser is at %s (%d): %.500s", res.Request.URL, res.StatusCode, b)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("gatehouse login: %v\nstdout: %q\nstderr: %s", waitErr, lines.all(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("gatehouse login did not finish after the confirm; stdout %q", lines.all())
	}
	if got := strings.Join(lines.all(), "\n"); !strings.Contains(got, "Signed in as bob") {
		t.Errorf("gatehouse login should say who is signed in: %q", got)
	}
	bob := e2e.NewUserWithCert(t, gh, "bob", filepath.Join(home, "id_ed25519"), filepath.Join(home, "id_ed25519-cert.pub"))
	if r := bob.SSH("ubuntu@web-1", "id -un"); r.ExitCode != 0 || r.Stdout != "ubuntu\n" {
		t.Fatalf("ssh -J with the certificate from gatehouse login: %s", r)
	}
}

func readAllBody(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}
