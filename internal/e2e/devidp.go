package e2e

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// DemoUsers is a dev-idp users file with the product's demo accounts
// (password = user name), the same people as configs/dev-users.yaml. Tests
// carry their own copy so an edit to the demo file cannot change what they
// assert.
const DemoUsers = `users:
  - {username: bob, password: bob, email: bob@example.com, email_verified: true, name: Bob Engineer, groups: [engineers]}
  - {username: alice, password: alice, email: alice@example.com, email_verified: true, name: Alice Approver, groups: [approvers, engineers]}
  - {username: sam, password: sam, email: sam@example.com, email_verified: true, name: Sam Security, groups: [security]}
`

// DevIDPOptions describe a `gatehouse dev-idp` to start.
type DevIDPOptions struct {
	// Binary is the gatehouse executable (Builder.BuildGatehouse).
	Binary string
	// Users is the content of the users file; empty means DemoUsers.
	Users string
	// ClientID defaults to "gatehouse"; ClientSecret to "e2e-secret".
	ClientID     string
	ClientSecret string
}

// DevIDP is a running development OIDC provider for one bastion.
type DevIDP struct {
	Issuer       string // http://127.0.0.1:PORT
	ClientID     string
	ClientSecret string
	LogPath      string
	proc         *Process
}

// StartDevIDP runs `gatehouse dev-idp` on a free loopback port, accepting
// redirects to webURL + "/oidc/callback", and waits until it listens. The
// provider must know the redirect URL before it starts, so a test picks the
// bastion's web address first (FreePort) and passes the same address in
// GatehouseOptions.Config (see OIDCConfig).
func StartDevIDP(t testing.TB, webURL string, opts DevIDPOptions) *DevIDP {
	t.Helper()
	if opts.Binary == "" {
		t.Fatal("StartDevIDP: DevIDPOptions.Binary is required (Builder.BuildGatehouse)")
	}
	if opts.Users == "" {
		opts.Users = DemoUsers
	}
	if opts.ClientID == "" {
		opts.ClientID = "gatehouse"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "e2e-secret"
	}
	dir := t.TempDir()
	users := filepath.Join(dir, "dev-users.yaml")
	writeFile(t, users, opts.Users, 0o600)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	d := &DevIDP{Issuer: "http://" + addr, ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
		LogPath: filepath.Join(dir, "dev-idp.log")}
	cmd := exec.Command(opts.Binary, "dev-idp", "--users", users, "--listen", addr,
		"--client-id", opts.ClientID, "--client-secret", opts.ClientSecret, "--redirect", webURL+"/oidc/callback")
	d.proc = startProcess(t, "dev-idp", d.LogPath, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitForPort(ctx, addr, d.proc); err != nil {
		t.Fatalf("StartDevIDP: %v", err)
	}
	return d
}

// OIDCConfig is the gatehouse.yaml `oidc:` section that points a bastion at
// this provider, for GatehouseOptions.Config["oidc"].
func (d *DevIDP) OIDCConfig() map[string]any {
	return map[string]any{
		"issuer":         d.Issuer,
		"client_id":      d.ClientID,
		"client_secret":  d.ClientSecret,
		"username_claim": "email",
		"groups_claim":   "groups",
	}
}
