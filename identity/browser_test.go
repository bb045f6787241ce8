package identity

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gatehouse-dev/gatehouse/identity/cli"
	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/storage"
	"golang.org/x/crypto/ssh"
)

// signInAtProvider fills the dev provider's form the way a person does.
func signInAtProvider(t *testing.T, ctx context.Context, dir, user, pass string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
	)
	if err != nil {
		t.Fatalf("fill provider login form: %v", err)
	}
	banner, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#banner")))
	if err != nil || !strings.Contains(banner, "not for production") {
		t.Fatalf("dev provider banner %q (%v) must say it is not for production", banner, err)
	}
	browser.Screenshot(t, ctx, dir, "provider-login-"+user)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#submit"))); err != nil {
		t.Fatalf("submit provider login form: %v", err)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("wait for %s on %s: %v", sel, loc, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// waitTitle waits until the page's #title reads want: after a click the
// old page stays readable until the next one has loaded.
func waitTitle(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("title")||{}).textContent||""`))
		if got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("page title %q, want %q", got, want)
}

func TestBrowserLoginAndLogout(t *testing.T) {
	e := newEnv(t)
	ctx := browser.New(t)
	dir := browser.ArtifactsDir(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/whoami")); err != nil {
		t.Fatal(err)
	}
	signInAtProvider(t, ctx, dir, "bob", "bob")
	if got := textOf(t, ctx, "#user"); got != "bob" {
		t.Fatalf("signed in as %q, want bob (local part of bob@example.com)", got)
	}
	if got := textOf(t, ctx, "#groups"); got != "engineers" {
		t.Fatalf("groups %q, want engineers", got)
	}
	browser.Screenshot(t, ctx, dir, "whoami")

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	waitTitle(t, ctx, "Signed out")
	// Back to the protected page: the browser is sent to sign in again.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/whoami"), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
		t.Fatalf("protected page after sign-out did not lead to the provider: %v", err)
	}
	if _, ok := e.audit.find("oidc.logout", nil); !ok {
		t.Fatal("sign-out not audited")
	}
}

// TestBrowserSSHLoginURLConfirmerIsBound: bob's SSH client shows a URL,
// alice opens and confirms it. The page tells alice who she signs in as,
// and the key is bound to alice, not to bob.
func TestBrowserSSHLoginURLConfirmerIsBound(t *testing.T) {
	e := newEnv(t)
	ctx := browser.New(t)
	dir := browser.ArtifactsDir(t)
	bg := context.Background()
	const fp = "SHA256:bobsLaptopKey"
	sl, err := e.svc.StartSSHLogin(bg, fp, "203.0.113.5:50022")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sl.URL, e.srv.URL+"/ssh-login/") || !strings.Contains(sl.Message(), sl.URL) {
		t.Fatalf("login URL %q / message %q", sl.URL, sl.Message())
	}
	type result struct {
		user, kind, fp string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		l, err := e.svc.WaitSSHLogin(bg, sl.Code)
		done <- result{l.User, l.Kind, l.KeyFP, err}
	}()

	if err := chromedp.Do(ctx, chromedp.Navigate(sl.URL)); err != nil {
		t.Fatal(err)
	}
	signInAtProvider(t, ctx, dir, "alice", "alice")
	who := textOf(t, ctx, "#whoami")
	if who != "You are signing in as alice." {
		t.Fatalf("confirm page says %q, want it to name alice", who)
	}
	body := textOf(t, ctx, "body")
	for _, want := range []string{fp, "203.0.113.5:50022", sl.Code} {
		if !strings.Contains(body, want) {
			t.Fatalf("confirm page lacks %q:\n%s", want, body)
		}
	}
	browser.ScreenshotAtWidths(t, ctx, dir, "ssh-login-confirm")
	select {
	case r := <-done:
		t.Fatalf("SSH side finished before anyone confirmed: %+v", r)
	default:
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm"))); err != nil {
		t.Fatal(err)
	}
	waitTitle(t, ctx, "SSH sign-in confirmed")
	browser.ScreenshotAtWidths(t, ctx, dir, "ssh-login-done")

	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("WaitSSHLogin did not return after confirmation")
	}
	if r.err != nil || r.user != "alice" || r.kind != "sshkey" || r.fp != fp {
		t.Fatalf("SSH side got %+v, want alice's sshkey login for %s", r, fp)
	}
	l, err := e.store.LoginByKey(bg, fp, time.Now())
	if err != nil || l.User != "alice" {
		t.Fatalf("LoginByKey: %+v %v, want alice", l, err)
	}
	if want := time.Now().Add(12 * time.Hour); l.Expires.After(want.Add(time.Minute)) || l.Expires.Before(want.Add(-time.Minute)) {
		t.Fatalf("binding expires %v, want about 12h from now", l.Expires)
	}
	if _, ok := e.audit.find("oidc.login", func(ev storage.Event) bool { return ev.Fields["kind"] == "sshkey" && ev.Actor == "alice" }); !ok {
		t.Fatal("SSH key binding not audited as oidc.login")
	}

	// The same URL again is refused.
	if err := chromedp.Do(ctx, chromedp.Navigate(sl.URL)); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#message"); !strings.Contains(got, "expired or was already used") {
		t.Fatalf("reused URL page: %q", got)
	}
}

// TestBrowserCLILoginHeadless runs `gatehouse login` in headless mode; the
// test plays the person who opens the printed URL.
func TestBrowserCLILoginHeadless(t *testing.T) {
	e := newEnv(t)
	ctx := browser.New(t)
	dir := browser.ArtifactsDir(t)
	home := filepath.Join(t.TempDir(), ".gatehouse")
	t.Setenv("SSH_AUTH_SOCK", "") // keep the developer's agent out of it

	pr, pw := io.Pipe()
	var out strings.Builder
	loginErr := make(chan error, 1)
	go func() {
		err := cli.Login(context.Background(), e.srv.URL, cli.CLIOptions{Home: home, Headless: true, Stdout: pw})
		pw.Close()
		loginErr <- err
	}()
	sc := bufio.NewScanner(pr)
	var loginURL string
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if strings.HasPrefix(strings.TrimSpace(line), e.srv.URL+"/cli-login?") {
			loginURL = strings.TrimSpace(line)
			break
		}
	}
	if loginURL == "" {
		t.Fatalf("no login URL printed:\n%s", out.String())
	}
	readerDone := make(chan struct{})
	go func() { // keep reading so Login never blocks on output
		defer close(readerDone)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
		}
	}()

	if err := chromedp.Do(ctx, chromedp.Navigate(loginURL)); err != nil {
		t.Fatal(err)
	}
	signInAtProvider(t, ctx, dir, "bob", "bob")
	if got := textOf(t, ctx, "#whoami"); got != "You are signing in as bob." {
		t.Fatalf("CLI confirm page: %q", got)
	}
	browser.ScreenshotAtWidths(t, ctx, dir, "cli-login-confirm")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm"))); err != nil {
		t.Fatal(err)
	}
	waitTitle(t, ctx, "Signed in")
	browser.ScreenshotAtWidths(t, ctx, dir, "cli-login-done")
	select {
	case err := <-loginErr:
		if err != nil {
			t.Fatalf("cli.Login: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cli.Login did not finish")
	}

	certData, err := os.ReadFile(filepath.Join(home, "id_ed25519-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certData)
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*ssh.Certificate)
	if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "bob" {
		t.Fatalf("principals %v, want [bob]", cert.ValidPrincipals)
	}
	loginID := ""
	for _, f := range strings.Fields(cert.KeyId) {
		if v, ok := strings.CutPrefix(f, "login="); ok {
			loginID = v
		}
	}
	if loginID == "" {
		t.Fatalf("KeyId %q has no login=", cert.KeyId)
	}
	keyData, err := os.ReadFile(filepath.Join(home, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(keyData)
	if err != nil {
		t.Fatal(err)
	}
	if string(signer.PublicKey().Marshal()) != string(cert.Key.Marshal()) {
		t.Fatal("certificate is not for the key written next to it")
	}
	if fi, _ := os.Stat(filepath.Join(home, "id_ed25519")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	kh, _ := os.ReadFile(filepath.Join(home, "known_hosts"))
	if want := "@cert-authority [127.0.0.1]:2222 " + e.hostKey; strings.TrimSpace(string(kh)) != want {
		t.Fatalf("known_hosts %q, want %q", kh, want)
	}
	if revoked, err := e.svc.LoginRevoked(context.Background(), loginID); err != nil || revoked {
		t.Fatalf("fresh login revoked=%v err=%v", revoked, err)
	}
	<-readerDone // Login closed the pipe when it returned
	stdout := out.String()
	for _, want := range []string{"Signed in as bob", "Host gatehouse", "CertificateFile " + filepath.Join(home, "id_ed25519-cert.pub"), "@cert-authority"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("CLI output lacks %q:\n%s", want, stdout)
		}
	}

	// gatehouse logout revokes the login by proving possession of the key.
	if err := cli.Logout(context.Background(), "", home); err != nil {
		t.Fatalf("cli.Logout: %v", err)
	}
	if revoked, err := e.svc.LoginRevoked(context.Background(), loginID); err != nil || !revoked {
		t.Fatalf("after logout revoked=%v err=%v, want revoked", revoked, err)
	}
	if _, err := os.Stat(filepath.Join(home, "id_ed25519")); !os.IsNotExist(err) {
		t.Fatalf("key still on disk after logout: %v", err)
	}
}
