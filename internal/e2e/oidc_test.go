package e2e_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// The OIDC ways in (issue 4), end to end: a real `gatehouse serve` pointed
// at a real `gatehouse dev-idp`, headless Chromium as the person's browser,
// and the OpenSSH client. Nobody here has a `users:` entry: every role comes
// from the provider's groups claim through claims_to_roles. dev-idp issues
// thin ID tokens, as Okta does, so every sign-in here goes through UserInfo
// and the groups claim exists only there.

const oidcRoles = `
claims_to_roles:
  - {claim: groups, value: engineers, roles: [dev]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
`

// startOIDC starts a dev provider and a bastion that trusts it, with one
// staging node, web-1.
func startOIDC(t *testing.T) *e2e.Gatehouse {
	t.Helper()
	return startOIDCWith(t, nil)
}

// startOIDCWith is startOIDC with extra ssh: keys (listen is filled in).
func startOIDCWith(t *testing.T, sshCfg map[string]any) *e2e.Gatehouse {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	bin := builder.BuildGatehouse(t)
	// The provider must know the bastion's redirect URL before either
	// starts, so the web address is chosen here.
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	idp := e2e.StartDevIDP(t, webURL, e2e.DevIDPOptions{Binary: bin})
	cfg := map[string]any{
		"web":  map[string]any{"listen": webAddr, "public_url": webURL},
		"oidc": idp.OIDCConfig(),
	}
	if sshCfg != nil {
		sshCfg["listen"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
		cfg["ssh"] = sshCfg
	}
	return e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  oidcRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
		Config: cfg,
	})
}

// loginURLPrompt matches the bastion's keyboard-interactive message and
// captures the link.
func loginURLPrompt(gh *e2e.Gatehouse) *regexp.Regexp {
	return regexp.MustCompile(`To sign in, open this URL[^\n]*\n\s*(` + regexp.QuoteMeta(gh.WebURL) + `/ssh-login/[A-Z0-9]{4}-[A-Z0-9]{4})`)
}

// browserStep runs chromedp actions, failing the test with the page it was
// on.
func browserStep(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		url, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("browser: %s (on %s): %v", what, url, err)
	}
}

// waitPageTitle polls until the identity page's #title reads want: after a
// click the old page stays readable until the next has loaded.
func waitPageTitle(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	var got string
	if !poll(30*time.Second, func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("title")||{}).textContent||""`))
		return got == want
	}) {
		url, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("on %s the page title is %q, want %q; page text: %.800q", url, got, want, body)
	}
}

// confirmAs opens a sign-in link, signs in at the dev provider as user
// (password = user name) and presses Confirm on the page that names user.
func confirmAs(t *testing.T, ctx context.Context, link, user, wantTitle string) {
	t.Helper()
	confirmAsShot(t, ctx, link, user, wantTitle, nil)
}

// confirmShots asks confirmAsShot to save the confirm page as
// NAME-confirm and the page after it as NAME-confirmed into dir; the
// confirm page's message must contain message.
type confirmShots struct{ dir, name, message string }

// confirmAsShot is confirmAs that, when shots is set, also saves the
// confirm page and the page after it at both widths (failing if either
// scrolls sideways).
func confirmAsShot(t *testing.T, ctx context.Context, link, user, wantTitle string, shots *confirmShots) {
	t.Helper()
	browserStep(t, ctx, "open the link and reach the provider",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), user),
		chromedp.Click(chromedp.CSS("#submit")),
	)
	browserStep(t, ctx, "wait for the confirm page", chromedp.WaitVisible(chromedp.CSS("#confirm")))
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#whoami")))
	if err != nil || !strings.Contains(who, "signing in as "+user) {
		t.Fatalf("confirm page should say who signs in (%s): %q (%v)", user, who, err)
	}
	if shots != nil {
		// The site's stylesheet is applied (its header bar is dark) and the
		// message reads as a person would say it (the key's lifetime too).
		// The stylesheet may still be on its way when #confirm is already
		// visible on a loaded machine, so this waits for it.
		var got string
		var err error
		styled := poll(30*time.Second, func() bool {
			got, err = chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header.top")).backgroundColor + "|" + document.getElementById("message").textContent`))
			return err == nil && strings.HasPrefix(got, "rgb(29, 35, 48)|")
		})
		if !styled || !strings.Contains(got, shots.message) {
			t.Fatalf("the confirm page is unstyled or its message lacks %q: %q (%v)", shots.message, got, err)
		}
		browser.ScreenshotAtWidths(t, ctx, shots.dir, shots.name+"-confirm")
	}
	browserStep(t, ctx, "press Confirm", chromedp.Click(chromedp.CSS("#confirm")))
	waitPageTitle(t, ctx, wantTitle)
	if shots != nil {
		browser.ScreenshotAtWidths(t, ctx, shots.dir, shots.name+"-confirmed")
	}
}

// kbdConfig writes an ssh_config for a person at a terminal: the key
// without a certificate, keyboard-interactive allowed, no BatchMode. With
// -J the jump ssh reads this same file (command-line -o options are not
// passed to it), so everything is set here.
func kbdConfig(t *testing.T, key, knownHosts string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ssh_config_interactive")
	lines := []string{
		"Host *",
		"  IdentityFile " + key,
		"  IdentitiesOnly yes",
		"  IdentityAgent none",
		"  PreferredAuthentications publickey,keyboard-interactive",
		"  PubkeyAuthentication yes",
		"  KbdInteractiveAuthentication yes",
		"  PasswordAuthentication no",
		"  BatchMode no",
		"  StrictHostKeyChecking yes",
		"  UserKnownHostsFile " + knownHosts,
		"  GlobalKnownHostsFile /dev/null",
		"  UpdateHostKeys no",
		"  ControlMaster no",
		"  ControlPath none",
		"  ConnectTimeout 30",
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOIDCLoginURLThroughJump(t *testing.T) {
	gh := startOIDC(t)
	key, _ := e2e.GenerateKey(t, t.TempDir(), "id_ed25519")
	// bob's client in batch mode, for after the key is bound; its
	// known_hosts trusts the bastion.
	bob := e2e.NewUserWithCert(t, gh, "bob", key, "")

	// Before any sign-in the bare key gets nowhere without a person.
	if r := bob.SSH("ubuntu@web-1", "echo REACHED"); r.ExitCode == 0 || strings.Contains(r.Stdout, "REACHED") {
		t.Fatalf("an unbound key in batch mode must not get through: %s", r)
	}

	cfg := kbdConfig(t, key, bob.KnownHosts)
	cmd := exec.Command("ssh", "-F", cfg, "-J", gh.Jump("bob"), "ubuntu@web-1", "echo via-oidc")
	term := e2e.StartTerm(t, cmd, 24, 80)
	link := term.Expect(loginURLPrompt(gh), 60*time.Second)[1]

	ctx := browser.New(t)
	shots := browser.ArtifactsDir(t)
	confirmAsShot(t, ctx, link, "bob", "SSH sign-in confirmed", &confirmShots{shots, "ssh-login", "act as you for 12 hours."})

	// The ssh that was waiting on the prompt now completes.
	term.Expect(regexp.MustCompile(`via-oidc\r?\n`), 60*time.Second)
	if code := term.Wait(60 * time.Second); code != 0 {
		t.Fatalf("ssh -J after confirming in the browser exited %d; output %q", code, term.Output())
	}

	t.Run("bound key goes straight through", func(t *testing.T) {
		r := bob.SSH("ubuntu@web-1", "echo again-$((1+1))")
		if r.ExitCode != 0 || r.Stdout != "again-2\n" {
			t.Fatalf("second ssh -J with BatchMode=yes and the bound key: %s", r)
		}
	})

	t.Run("roles came from the groups claim, which only UserInfo carries", func(t *testing.T) {
		r := gh.MustRun("sessions", "ls", "--json", "--user", "bob")
		var found bool
		for _, l := range nonEmptyLines(r.Stdout) {
			if strings.Contains(l, `"node":"web-1"`) && strings.Contains(l, `"roles":["dev"]`) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no session of bob on web-1 with roles [dev] (from groups engineers): %s", r.Stdout)
		}
		ev := waitAudit(t, gh, "oidc.login", "bob's key", func(ev auditLine) bool {
			return ev.Actor == "bob" && ev.Fields["kind"] == "sshkey"
		})
		if ev.Outcome != "success" {
			t.Errorf("oidc.login event: %+v", ev)
		}
	})

	t.Run("link is single-use", func(t *testing.T) {
		browserStep(t, ctx, "open the used link again", chromedp.Navigate(link))
		waitPageTitle(t, ctx, "Login link not valid")
		present, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("confirm") !== null`))
		if err != nil || present {
			t.Fatalf("a used link must not offer a Confirm button (present %v, err %v)", present, err)
		}
	})
}

// lockedLines collects a process's output lines as they come.
type lockedLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *lockedLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func TestOIDCCLILoginAndLogout(t *testing.T) {
	gh := startOIDC(t)
	home := filepath.Join(t.TempDir(), "gatehouse-home")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cliLogin(t, gh, browser.New(t), "alice", home, true)
	keyPath, certPath := filepath.Join(home, "id_ed25519"), filepath.Join(home, "id_ed25519-cert.pub")
	for _, f := range []string{keyPath, certPath} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("gatehouse login did not write %s: %v", f, err)
		}
	}
	// logout deletes its files; keep a copy to show the bastion then
	// refuses the very same certificate.
	keep := t.TempDir()
	keptKey, keptCert := filepath.Join(keep, "id_ed25519"), filepath.Join(keep, "id_ed25519-cert.pub")
	copyFile(t, keyPath, keptKey, 0o600)
	copyFile(t, certPath, keptCert, 0o644)

	alice := e2e.NewUserWithCert(t, gh, "alice", keyPath, certPath)
	if r := alice.SSH("ubuntu@web-1", "id -un; echo cli-$((6*7))"); r.ExitCode != 0 || r.Stdout != "ubuntu\ncli-42\n" {
		t.Fatalf("ssh -J with the certificate from gatehouse login: %s", r)
	}

	lo := exec.CommandContext(ctx, gh.Binary, "logout", "--home", home)
	loOut, err := lo.CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse logout: %v\n%s", err, loOut)
	}
	if !strings.HasPrefix(string(loOut), "logged out of http") || !strings.Contains(string(loOut), "the certificate is revoked") {
		t.Errorf("gatehouse logout should say what it did: %q", loOut)
	}
	kept := e2e.NewUserWithCert(t, gh, "alice", keptKey, keptCert)
	if !poll(30*time.Second, func() bool {
		r := kept.SSH("ubuntu@web-1", "echo REACHED")
		return r.ExitCode == 255 && !strings.Contains(r.Stdout, "REACHED")
	}) {
		t.Fatalf("after gatehouse logout the bastion still accepts the certificate: %s", kept.SSH("ubuntu@web-1", "echo REACHED"))
	}
	// Refused for the right reason: the certificate's login was revoked,
	// not some unrelated failure.
	waitAudit(t, gh, "ssh.auth.failure", "alice's revoked certificate", func(ev auditLine) bool {
		reason, _ := ev.Fields["reason"].(string)
		return ev.Actor == "alice" && ev.Fields["key_type"] == "ssh-ed25519-cert-v01@openssh.com" && strings.Contains(reason, "revoked")
	})
}

// cliLogin runs `gatehouse login --headless --home home` against gh, signs
// in as user in the browser b and waits for the CLI to finish; shots saves
// the confirm page and the page the CLI's callback shows at both widths.
func cliLogin(t *testing.T, gh *e2e.Gatehouse, b context.Context, user, home string, shots bool) {
	t.Helper()
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
	// Cancelling kills a login still waiting for its browser.
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

	// The bastion hands the browser back to the CLI's loopback callback,
	// whose page says the CLI got its code.
	var cs *confirmShots
	if shots {
		cs = &confirmShots{browser.ArtifactsDir(t), "cli-login", "Confirm only if you just ran gatehouse login."}
	}
	confirmAsShot(t, b, link, user, "Signed in", cs)

	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("gatehouse login: %v\nstdout: %q\nstderr: %s", waitErr, lines.all(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("gatehouse login did not finish after the browser confirmed; stdout %q", lines.all())
	}
	if got := strings.Join(lines.all(), "\n"); !strings.Contains(got, "Signed in as "+user) {
		t.Errorf("gatehouse login should say who is signed in: %q", got)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestOIDCLoginURLOutlastsGraceTime: the link is valid for minutes and says
// so ("it expires at ..."), so a person who takes longer than the pre-auth
// grace time to sign in (SSO, MFA, finding the browser) must still get
// through. The grace time is shortened to keep the test quick.
func TestOIDCLoginURLOutlastsGraceTime(t *testing.T) {
	const grace = 3 * time.Second
	gh := startOIDCWith(t, map[string]any{"login_grace_time": grace.String()})
	key, _ := e2e.GenerateKey(t, t.TempDir(), "id_ed25519")
	bob := e2e.NewUserWithCert(t, gh, "bob", key, "")
	cmd := exec.Command("ssh", "-F", kbdConfig(t, key, bob.KnownHosts), "-J", gh.Jump("bob"), "ubuntu@web-1", "echo slow-but-in")
	term := e2e.StartTerm(t, cmd, 24, 80)
	link := term.Expect(loginURLPrompt(gh), 60*time.Second)[1]
	// A person reading the prompt and switching to the browser: longer
	// than the grace time, far shorter than the link's lifetime.
	time.Sleep(3 * grace)
	confirmAs(t, browser.New(t), link, "bob", "SSH sign-in confirmed")
	term.Expect(regexp.MustCompile(`slow-but-in\r?\n`), 60*time.Second)
	if code := term.Wait(60 * time.Second); code != 0 {
		t.Fatalf("ssh -J exited %d; output %q", code, term.Output())
	}
}
