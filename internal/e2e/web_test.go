package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
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

// The web UI end to end: real `gatehouse serve`, real `gatehouse dev-idp`,
// real sshd nodes and OpenSSH clients, and headless Chromium for bob, alice
// and sam, each in their own browser context (their own cookies).

// startDevIDP runs `gatehouse dev-idp` on addr with the demo users,
// accepting redirects to webURL, and waits until it answers.
func startDevIDP(t *testing.T, bin, addr, webURL, secret string) {
	t.Helper()
	users, err := filepath.Abs(filepath.Join("..", "..", "configs", "dev-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "dev-idp.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev-idp", "--users", users, "--listen", addr, "--client-id", "gatehouse",
		"--client-secret", secret, "--redirect", webURL+"/oidc/callback")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gatehouse dev-idp: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("dev-idp log:\n%s", data)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev-idp did not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run fails the test when a browser step fails, naming the step.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		url, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("browser: %s on %s: %v", what, url, err)
	}
}

// waitText polls until the visible text of sel contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	expr := fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel)
	var got string
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err == nil {
			got = v
			if strings.Contains(got, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	t.Fatalf("on %s, %s never showed %q; last text: %.600q", url, sel, want, got)
}

// signIn opens path, which sends the browser to the dev provider, and signs
// in there as user (password = user name for the demo accounts).
func signIn(t *testing.T, ctx context.Context, webURL, path, user string) {
	t.Helper()
	run(t, ctx, "open "+path+" and reach the provider",
		chromedp.Navigate(webURL+path),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), user),
		chromedp.Click(chromedp.CSS("#submit")),
	)
	waitText(t, ctx, "#signed-in-as", user, 30*time.Second)
}

func newContext(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return ctx
}

func TestWebRequestApproveReplayTerminate(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	bin := builder.BuildGatehouse(t)
	roles, err := os.ReadFile(filepath.Join("..", "..", "configs", "roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	idpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	const secret = "e2e-web-secret"
	startDevIDP(t, bin, idpAddr, webURL, secret)
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  string(roles),
		Nodes: []e2e.NodeSpec{
			{Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}},
			{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
		},
		Config: map[string]any{
			// Our own web address, because the provider must know the
			// redirect URL before the bastion starts.
			"web":  map[string]any{"listen": webAddr, "public_url": webURL},
			"oidc": map[string]any{"issuer": "http://" + idpAddr, "client_id": "gatehouse", "client_secret": secret},
		},
	})
	shots := browser.ArtifactsDir(t)
	t.Logf("screenshots of every page: %s", shots)
	fmt.Fprintf(os.Stderr, "web e2e screenshots: %s\n", shots)

	root := browser.New(t)
	bobB := newContext(t, root)
	aliceB := newContext(t, root)
	samB := newContext(t, root)

	// alice opens her review queue first: bob's request must appear on it
	// without a reload.
	signIn(t, aliceB, webURL, "/review", "alice")
	waitText(t, aliceB, "#queue", "Nothing waits for your review", 10*time.Second)
	browser.ScreenshotAtWidths(t, aliceB, shots, "01-review-empty-alice")

	signIn(t, bobB, webURL, "/", "bob")
	waitText(t, bobB, "#nodes", "ubuntu@web-1", 10*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "02-home-bob-before")
	run(t, bobB, "request dba",
		chromedp.Navigate(webURL+"/requests"),
		chromedp.WaitVisible(chromedp.CSS("#request-form")),
		chromedp.Click(chromedp.CSS("#role-dba")),
		chromedp.SetValue(chromedp.CSS("#duration"), "2h"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "INC-7: replica lag on db-1"),
		chromedp.Click(chromedp.CSS("#submit-request")),
	)
	waitText(t, bobB, "#flash", "Requested dba for 2h", 15*time.Second)
	// A refused form comes back with the error and what was typed.
	run(t, bobB, "request with a bad duration",
		chromedp.Navigate(webURL+"/requests"),
		chromedp.WaitVisible(chromedp.CSS("#request-form")),
		chromedp.Click(chromedp.CSS("#role-dba")),
		chromedp.SetValue(chromedp.CSS("#duration"), "999h"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "INC-8: typed once"),
		chromedp.Click(chromedp.CSS("#submit-request")),
	)
	run(t, bobB, "see the refusal", chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if v, err := chromedp.Run(bobB, chromedp.Evaluate[string](`document.querySelector("#reason").value + "|" + document.querySelector("#duration").value + "|" + document.querySelector("#role-dba").checked`)); err != nil || v != "INC-8: typed once|999h|true" {
		t.Fatalf("the refused form lost what was typed: %q, %v", v, err)
	}
	browser.ScreenshotAtWidths(t, bobB, shots, "03a-requests-bob-refused")
	waitText(t, bobB, "#my-requests", "pending", 5*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "03-requests-bob-pending")

	waitText(t, aliceB, "#queue", "INC-7: replica lag on db-1", 20*time.Second)
	run(t, aliceB, "reload the queue", chromedp.Navigate(webURL+"/review"))
	waitText(t, aliceB, "#review-count", "1", 10*time.Second)
	browser.ScreenshotAtWidths(t, aliceB, shots, "04-review-alice-incoming")
	run(t, aliceB, "approve",
		chromedp.SendKeys(chromedp.CSS(`#queue article.req input[name="reason"]`), "ok for INC-7"),
		chromedp.Click(chromedp.CSS(`#queue article.req button.approve`)),
	)
	waitText(t, aliceB, "#flash", "Approved request", 15*time.Second)
	waitText(t, aliceB, "#queue", "Nothing waits for your review", 10*time.Second)

	jump := "ssh -J bob@" + gh.SSHAddr + " root@db-1"
	run(t, bobB, "reload home", chromedp.Navigate(webURL+"/"))
	waitText(t, bobB, "#roles", "dba", 10*time.Second)
	waitText(t, bobB, "#nodes", jump, 10*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "05-home-bob-granted")

	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	r := bob.SSH("root@db-1", "id -un; echo web-e2e-$((6*7))")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "root\nweb-e2e-42") {
		t.Fatalf("bob's ssh -J as root on db-1 after the web approval: %s", r)
	}

	// sam finds that session and replays it: the output, not just the
	// command line, must be drawn by the player.
	signIn(t, samB, webURL, "/sessions?user=bob&node=db-1", "sam")
	waitText(t, samB, "#sessions", "root@db-1", 10*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "06-sessions-sam")
	run(t, samB, "open the player", chromedp.Click(chromedp.CSS(`#sessions a.button[href^="/sessions/"]`)))
	run(t, samB, "wait for the player", chromedp.WaitVisible(chromedp.CSS("#player .ap-player")))
	run(t, samB, "press play", chromedp.Click(chromedp.CSS("#player .ap-player")))
	waitText(t, samB, "#player", "web-e2e-42", 30*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "07-player-sam")

	// A live session: sam watches it and terminates it; bob's ssh ends.
	term := bob.Interactive("root@db-1")
	term.Send("echo live-$((5*5))\n")
	term.Expect(regexp.MustCompile(`live-25`), 60*time.Second)
	run(t, samB, "list live sessions", chromedp.Navigate(webURL+"/sessions?user=bob"))
	waitText(t, samB, "#sessions", "live", 10*time.Second)
	run(t, samB, "watch", chromedp.Click(chromedp.CSS(`#sessions tr.live a.button[href$="/live"]`)))
	waitText(t, samB, "#live-status", "live", 15*time.Second)
	// What bob saw before sam joined is on sam's screen at once.
	waitText(t, samB, "#term", "live-25", 15*time.Second)
	term.Send("echo watched-$((3*3))\n")
	waitText(t, samB, "#term", "watched-9", 30*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "08-live-sam")
	run(t, samB, "terminate", chromedp.Click(chromedp.CSS("#terminate")))
	waitText(t, samB, "#flash", "Terminated session", 15*time.Second)
	if code := term.Wait(30 * time.Second); code == 0 {
		t.Fatalf("terminated session exited 0; output %q", term.Output())
	}
	if out := term.Output(); !strings.Contains(out, "terminated by sam") {
		t.Fatalf("bob's terminal should say who ended the session, got %q", out)
	}
	waitText(t, samB, "#sessions", "terminated", 10*time.Second)
	if n, err := chromedp.Run(samB, chromedp.Evaluate[int](`document.querySelectorAll("#sessions tr.live").length`)); err != nil || n != 0 {
		t.Fatalf("after Terminate, %d sessions still shown live (%v)", n, err)
	}
	browser.ScreenshotAtWidths(t, samB, shots, "09-sessions-after-terminate")

	// The audit log holds all of it, and its chain verifies.
	run(t, samB, "audit", chromedp.Navigate(webURL+"/audit"),
		chromedp.WaitVisible(chromedp.CSS("#verify-now")), chromedp.Click(chromedp.CSS("#verify-now")))
	waitText(t, samB, "#verify-result", "Chain intact", 30*time.Second)
	waitText(t, samB, "#events", "session.terminated", 5*time.Second)
	if first, err := chromedp.Run(samB, chromedp.Evaluate[string](`document.querySelector("#events tbody tr td:nth-child(3)").innerText`)); err != nil || first != "audit.verify" {
		t.Fatalf("the audit page's first row is %q (%v); want the newest event, the verification just run", first, err)
	}
	browser.ScreenshotAtWidths(t, samB, shots, "10-audit-sam")
	run(t, samB, "a bad audit filter", chromedp.Navigate(webURL+"/audit?since=yesterday"))
	waitText(t, samB, "#filter-error", "yesterday", 10*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "10a-audit-bad-filter")
	run(t, samB, "locks", chromedp.Navigate(webURL+"/locks"))
	waitText(t, samB, "main", "Nobody is locked", 10*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "11-locks-sam")

	// The error page (web/templates/error.html): a refusal and a session
	// that does not exist.
	run(t, bobB, "a page bob may not see", chromedp.Navigate(webURL+"/audit"))
	waitText(t, bobB, "#error", "you may not read the audit log", 10*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "12-error-403-bob")
	run(t, samB, "a session that does not exist", chromedp.Navigate(webURL+"/sessions/0123456789abcdef01234567"))
	waitText(t, samB, "#error", "gatehouse: ", 10*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "13-error-404-sam")
}
