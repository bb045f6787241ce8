// Package doctor checks a Gatehouse deployment from its config, the way
// users will meet it: the config and roles parse, the store answers,
// recordings can be written, the OIDC issuer publishes its discovery
// document, and every node is reachable, proves the host key Gatehouse
// pins (or a certificate from its host CA), and accepts a certificate from
// Gatehouse's user CA for each fixed login the roles allow there. That last
// check is a real login, so "TrustedUserCAKeys missing" or "no such user"
// shows up here instead of in a user's terminal; no channel is opened.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/health"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/server"
)

// Options tune a run. The zero value is usable.
type Options struct {
	// HTTPClient fetches the OIDC discovery document; default a client
	// with a 10 s timeout.
	HTTPClient *http.Client
	// NodeTimeout bounds each node probe; default ssh.node_dial_timeout.
	NodeTimeout time.Duration
}

// Run checks the deployment described by the config file at path, writes
// one line per check to w and reports whether every check passed.
func Run(ctx context.Context, path string, w io.Writer, opts Options) bool {
	d := &run{w: w, ok: true, opts: opts}
	if d.opts.HTTPClient == nil {
		d.opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	cfg, err := config.Load(path)
	if err != nil {
		d.report("config", err) // the error names the file
		return false
	}
	d.report("config "+path, nil)
	if d.opts.NodeTimeout == 0 {
		d.opts.NodeTimeout = cfg.SSH.NodeDialTimeout.D()
	}
	pol, err := policy.Load(cfg.RolesFile)
	if err == nil {
		d.report(fmt.Sprintf("roles %s (%d roles)", cfg.RolesFile, len(pol.RoleNames())), nil)
	} else {
		d.report("roles "+cfg.RolesFile, err)
	}
	// serve creates data_dir (with its CAs) before it opens the store,
	// and the default SQLite file lives there: without this a fresh
	// deployment fails a store check that serve would pass. If it cannot
	// be created, the store and CA checks below say so.
	_ = os.MkdirAll(cfg.DataDir, 0o700)
	d.store(ctx, cfg)
	recErr := os.MkdirAll(cfg.Recording.Dir, 0o700)
	if recErr == nil {
		recErr = health.Writable(cfg.Recording.Dir)
	}
	d.report("recording storage "+cfg.Recording.Dir, recErr)
	if cfg.Recording.S3 != nil {
		bucket, err := server.OpenRecordingBucket(cfg.Recording)
		if err == nil {
			// The client retries a server that does not answer; a
			// doctor says so within seconds.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = bucket.Check(cctx)
			cancel()
		}
		d.report("recording bucket "+cfg.Recording.S3.Endpoint+"/"+cfg.Recording.S3.Bucket, err)
	}
	if cfg.OIDC != nil {
		d.report("oidc issuer "+cfg.OIDC.Issuer, d.discovery(ctx, cfg.OIDC.Issuer))
	}
	authority, err := ca.Load(cfg.DataDir)
	d.report("certificate authorities in "+cfg.DataDir, err)
	if err != nil {
		return false
	}
	for _, n := range cfg.Nodes {
		d.node(ctx, authority, pol, n)
	}
	return d.ok
}

type run struct {
	w    io.Writer
	ok   bool
	opts Options
}

func (d *run) report(name string, err error) {
	if err != nil {
		d.ok = false
	}
	fmt.Fprintln(d.w, health.Result{Name: name, Err: err})
}

func (d *run) store(ctx context.Context, cfg *config.Config) {
	name := "store " + cfg.Storage.Driver
	if cfg.Storage.Driver == "sqlite" {
		name += " " + cfg.Storage.DSN
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := server.OpenStore(ctx, cfg)
	if err != nil {
		d.report(name, err)
		return
	}
	defer st.Close()
	d.report(name, health.Store(ctx, st))
}

// discovery fetches the issuer's OpenID discovery document and checks
// that it names the same issuer and the endpoints a login needs.
func (d *run) discovery(ctx context.Context, issuer string) error {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("discovery URL %s: %w", u, err)
	}
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch discovery document: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch discovery document %s: HTTP %d", u, resp.StatusCode)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		JWKS          string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("decode discovery document %s: %w", u, err)
	}
	if doc.Issuer != issuer {
		return fmt.Errorf("discovery document names issuer %q, config says %q (they must match exactly)", doc.Issuer, issuer)
	}
	if doc.Authorization == "" || doc.Token == "" || doc.JWKS == "" {
		return fmt.Errorf("discovery document lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	return nil
}

// node probes one node once per login the roles allow on it. The first
// login's probe also answers reachability and the host key.
func (d *run) node(ctx context.Context, authority *ca.Authority, pol *policy.Policy, n config.Node) {
	var logins []string
	if pol != nil {
		logins = Logins(pol, n)
	}
	prefix := "node " + n.Name + " (" + n.Address + ")"
	if len(logins) == 0 {
		// Still worth knowing it answers and is who we think it is;
		// "root" is only a name to authenticate as, and its refusal is
		// not reported.
		err := proxy.ProbeNode(ctx, authority, n, "root", d.opts.NodeTimeout)
		d.stages(prefix, err)
		if pol == nil {
			d.report(prefix+" logins", errors.New("not checked: the roles did not load"))
		} else {
			// Template logins may be allowed here; saying "no login"
			// would be false for them.
			d.report(prefix+" logins: no role allows a fixed login here; nothing to check (logins from templates are not tried)", nil)
		}
		return
	}
	for i, login := range logins {
		err := proxy.ProbeNode(ctx, authority, n, login, d.opts.NodeTimeout)
		if i == 0 {
			if !d.stages(prefix, err) {
				return
			}
		}
		d.report(fmt.Sprintf("%s accepts a Gatehouse certificate for login %s", prefix, login), loginErr(err))
	}
}

// stages reports reachability and the host key from a probe's result; it
// reports whether both passed.
func (d *run) stages(prefix string, err error) bool {
	pe, _ := err.(*proxy.ProbeError)
	if err != nil && pe == nil {
		d.report(prefix, err)
		return false
	}
	if pe != nil && pe.Stage == proxy.ProbeReach {
		d.report(prefix+" reachable", pe.Err)
		return false
	}
	d.report(prefix+" reachable", nil)
	if pe != nil && pe.Stage == proxy.ProbeHostKey {
		d.report(prefix+" host key matches", fmt.Errorf("%w (if the node was reinstalled, update its host_key; otherwise something else answers at its address)", pe.Err))
		return false
	}
	d.report(prefix+" host key matches", nil)
	return true
}

func loginErr(err error) error {
	if err == nil {
		return nil
	}
	if pe, ok := err.(*proxy.ProbeError); ok && pe.Stage == proxy.ProbeLogin {
		return fmt.Errorf("%w; on the node, check that TrustedUserCAKeys holds `gatehouse ca export user` and that the account exists", pe.Err)
	}
	return err
}

// Logins returns every fixed login some role allows on n, each role
// judged on its own (a deny in one role does not hide another role's
// allow, since a user may hold either alone). Logins from templates
// ({{username}}, {{claims.NAME}}, {{email.local(...)}}) name whoever logs
// in, so no probe could stand for them: the subject has no user and no
// claims, which makes every template yield nothing.
func Logins(pol *policy.Policy, n config.Node) []string {
	node := policy.Node{Name: n.Name, Labels: n.Labels}
	var out []string
	for _, r := range pol.RoleNames() {
		out = append(out, pol.Logins(policy.Subject{Roles: []string{r}}, node)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
