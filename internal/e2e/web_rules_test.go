package e2e_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// webRulesRoles: bob may request dba and web; alice (dba-lead) and sam
// (manager) review both under the AND-rule.
const webRulesRoles = `
users:
  - {name: bob, roles: [dev]}
  - {name: alice, roles: [security, dba-lead]}
  - {name: sam, roles: [security, manager]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
      request: {roles: [dba, web], max_duration: 4h}
  - name: dba
    allow:
      logins: [root]
      node_labels: {team: data}
  - name: web
    allow:
      logins: [root]
      node_labels: {team: web}
  - name: security
    allow:
      review_requests:
        roles: [dba, web]
        approvals: [{roles: [dba-lead], count: 1}, {roles: [manager], count: 1}]
  - {name: dba-lead}
  - {name: manager}
`

// TestWebApprovalRules: in Chromium, the review queue shows the AND-rule's
// progress and lets a reviewer approve some of the requested roles; the
// requester's page follows, and the grant holds only the approved role.
func TestWebApprovalRules(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "root")
	bin := builder.BuildGatehouse(t)
	idpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	const secret = "e2e-web-secret"
	startDevIDP(t, bin, idpAddr, webURL, secret)
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  webRulesRoles,
		Nodes: []e2e.NodeSpec{
			{Name: "db-1", Labels: map[string]string{"env": "prod", "team": "data"}},
			{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}},
		},
		Config: map[string]any{
			"web":  map[string]any{"listen": webAddr, "public_url": webURL},
			"oidc": map[string]any{"issuer": "http://" + idpAddr, "client_id": "gatehouse", "client_secret": secret},
		},
	})
	shots := browser.ArtifactsDir(t)
	root := browser.New(t)
	bobB, aliceB, samB := newContext(t, root), newContext(t, root), newContext(t, root)

	signIn(t, bobB, webURL, "/requests", "bob")
	run(t, bobB, "request dba and web",
		chromedp.WaitVisible(chromedp.CSS("#request-form")),
		chromedp.Click(chromedp.CSS("#role-dba")),
		chromedp.Click(chromedp.CSS("#role-web")),
		chromedp.SetValue(chromedp.CSS("#duration"), "1h"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "INC-21: deploy with a migration"),
		chromedp.Click(chromedp.CSS("#submit-request")),
	)
	waitText(t, bobB, "#flash", "Requested dba, web for 1h", 15*time.Second)
	waitText(t, bobB, "#my-requests", "needs 1 more approval from dba-lead and 1 more approval from manager", 5*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "rules-01-bob-pending")

	signIn(t, aliceB, webURL, "/review", "alice")
	waitText(t, aliceB, "#queue", "INC-21", 20*time.Second)
	waitText(t, aliceB, "#queue", "Rule: 1 approval from dba-lead and 1 approval from manager; 1 denial denies.", 5*time.Second)
	browser.ScreenshotAtWidths(t, aliceB, shots, "rules-02-alice-queue")
	run(t, aliceB, "approve dba only",
		chromedp.Click(chromedp.CSS(`#queue article.req input[name="roles"][value="web"]`)),
		chromedp.SendKeys(chromedp.CSS(`#queue article.req input[name="reason"]`), "db part only"),
		chromedp.Click(chromedp.CSS(`#queue article.req button.approve`)),
	)
	waitText(t, aliceB, "#flash", "Approved dba of request", 15*time.Second)

	run(t, bobB, "reload requests", chromedp.Navigate(webURL+"/requests"))
	waitText(t, bobB, "#my-requests", "dba: needs 1 more approval from manager; web: needs 1 more approval from dba-lead and 1 more approval from manager", 10*time.Second)
	waitText(t, bobB, "#my-requests", "approved dba", 5*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "rules-03-bob-progress")

	signIn(t, samB, webURL, "/review", "sam")
	waitText(t, samB, "#queue", "dba: needs 1 more approval from manager", 20*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "rules-04-sam-queue")
	run(t, samB, "approve all", chromedp.Click(chromedp.CSS(`#queue article.req button.approve`)))
	waitText(t, samB, "#flash", "(approved)", 15*time.Second)

	run(t, bobB, "reload requests", chromedp.Navigate(webURL+"/requests"))
	waitText(t, bobB, "#my-requests", "of dba, web", 10*time.Second)
	// The decision says which rule it met for which role, and what the
	// role left out still lacks.
	waitText(t, bobB, "#my-requests", "dba: rule met: 1 from dba-lead (alice), 1 from manager (sam); web: needs 1 more approval from dba-lead", 5*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "rules-05-bob-granted")
	id, err := chromedp.Run(bobB, chromedp.Evaluate[string](`document.querySelector("#my-requests tr.req code").textContent`))
	if err != nil || id == "" {
		t.Fatalf("read the request's id: %q %v", id, err)
	}
	// The decision notice's link shows a reviewer the decided request, which
	// has left her queue, with the same line.
	run(t, aliceB, "open the decided request", chromedp.Navigate(webURL+"/requests/"+id))
	waitText(t, aliceB, "#req-"+id, "approved", 10*time.Second)
	waitText(t, aliceB, "#req-"+id, "dba: rule met: 1 from dba-lead (alice), 1 from manager (sam)", 5*time.Second)
	browser.ScreenshotAtWidths(t, aliceB, shots, "rules-05b-alice-decided")

	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	allowedJump(t, bob, "root@db-1", "root")
	refusedJump(t, bob, "root@web-1")

	// One login on one node, for one session, from the form.
	run(t, bobB, "request root on web-1",
		chromedp.Navigate(webURL+"/requests"),
		chromedp.WaitVisible(chromedp.CSS("#request-form")),
		chromedp.Click(chromedp.CSS("#request-form summary")),
		chromedp.SendKeys(chromedp.CSS("#node"), "web-1"),
		chromedp.SendKeys(chromedp.CSS("#login"), "root"),
		chromedp.Click(chromedp.CSS("#for-session")),
		chromedp.SendKeys(chromedp.CSS("#reason"), "INC-22: restart nginx"),
		chromedp.Click(chromedp.CSS("#submit-request")),
	)
	waitText(t, bobB, "#flash", "Requested login root on web-1 (role web) for 1h", 15*time.Second)
	waitText(t, bobB, "#my-requests", "login root on web-1 (web)", 5*time.Second)
	for _, rev := range []context.Context{aliceB, samB} {
		run(t, rev, "open the queue", chromedp.Navigate(webURL+"/review"))
		waitText(t, rev, "#queue", "asks for login root on web-1 through web for 1h one session", 20*time.Second)
		run(t, rev, "approve", chromedp.Click(chromedp.CSS(`#queue article.req button.approve`)))
		waitText(t, rev, "#flash", "Approved request", 15*time.Second)
	}
	run(t, bobB, "home", chromedp.Navigate(webURL+"/"))
	waitText(t, bobB, "main", "login root on web-1 through web for one session granted by request", 10*time.Second)
	browser.ScreenshotAtWidths(t, bobB, shots, "rules-06-bob-resource-grant")
	allowedJump(t, bob, "root@web-1", "root")
	// That session used the one-session grant, and ended; so did the grant.
	refusedJump(t, bob, "root@web-1")
}
