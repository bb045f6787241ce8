package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/config"
)

// NodeSpec is one node in the bastion's inventory.
type NodeSpec struct {
	Name   string
	Labels map[string]string
	// Options for the node's sshd; TrustedUserCAKeys defaults to the
	// gatehouse user CA.
	Options NodeOptions
	// PinnedKey, if set, is written as the node's host_key instead of the
	// key the node really has (to test host key mismatches).
	PinnedKey string
	// Down lists the node in gatehouse.yaml at a loopback address where
	// nothing listens, without starting sshd.
	Down bool
	// Running lists a node that is already running (another bastion's)
	// instead of starting one: bastions of one HA deployment share their
	// nodes. Name and Labels still come from this spec.
	Running *Node
}

// GatehouseOptions describe a bastion to start.
type GatehouseOptions struct {
	// Binary is the gatehouse executable (Builder.BuildGatehouse).
	Binary string
	// Nodes are started (unless Down) and listed in gatehouse.yaml, in order.
	Nodes []NodeSpec
	// Roles is the content of roles.yaml.
	Roles string
	// Config holds extra top-level gatehouse.yaml keys (recording, oidc,
	// audit, ...); they replace the harness's value for the same key.
	Config map[string]any
	// ExtraArgs are appended to `gatehouse serve --config FILE`.
	ExtraArgs []string
	// Env is added to the server's environment.
	Env []string
	// DataFiles are written into data_dir (mode 0600) before any command
	// runs, by name. Bastions of one HA deployment must share their CAs
	// and host key: pass ca.UserCAFile, ca.HostCAFile and ca.HostKeyFile
	// read from the first bastion's DataDir.
	DataFiles map[string][]byte
}

// Gatehouse is a running `gatehouse serve` with its nodes.
type Gatehouse struct {
	Binary     string
	Dir        string // everything of this bastion lives here
	DataDir    string
	ConfigPath string
	RolesPath  string
	LogPath    string // server stdout+stderr
	SSHAddr    string // 127.0.0.1:PORT of the bastion's SSH listener
	WebAddr    string // 127.0.0.1:PORT of the web/API listener
	WebURL     string // http://WebAddr
	// UserCAFile holds `gatehouse ca export user` (the nodes'
	// TrustedUserCAKeys); HostCA is `gatehouse ca export host`.
	UserCAFile string
	UserCA     string
	HostCA     string
	Nodes      map[string]*Node // running nodes by name

	t    testing.TB
	opts GatehouseOptions
	cfg  map[string]any
	proc *Process

	scanOnce sync.Once
	scanned  string
}

// StartGatehouse prepares a bastion's data directory, exports its user CA
// for the nodes, starts the nodes, writes the final gatehouse.yaml (with the
// nodes' pinned host keys) and roles.yaml, then starts `gatehouse serve` and
// waits until its SSH listener accepts. Everything stops when the test ends.
func StartGatehouse(t testing.TB, opts GatehouseOptions) *Gatehouse {
	t.Helper()
	RequireSystem(t)
	if opts.Binary == "" {
		t.Fatal("StartGatehouse: GatehouseOptions.Binary is required (Builder.BuildGatehouse)")
	}
	dir := t.TempDir()
	g := &Gatehouse{
		Binary:     opts.Binary,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "gatehouse.yaml"),
		RolesPath:  filepath.Join(dir, "roles.yaml"),
		LogPath:    filepath.Join(dir, "gatehouse.log"),
		UserCAFile: filepath.Join(dir, "user_ca.pub"),
		SSHAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		WebAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		Nodes:      map[string]*Node{},
		t:          t,
		opts:       opts,
	}
	g.WebURL = "http://" + g.WebAddr
	g.cfg = map[string]any{
		"data_dir": g.DataDir,
		"ssh":      map[string]any{"listen": g.SSHAddr},
		"web":      map[string]any{"listen": g.WebAddr, "public_url": g.WebURL},
		"recording": map[string]any{
			"mode": "strict",
		},
		"roles_file": g.RolesPath,
	}
	for k, v := range opts.Config {
		g.cfg[k] = v
	}
	// A test that replaces ssh: or web: (to know the web address before
	// the bastion starts, for an OIDC provider's redirect URL) gets the
	// addresses it chose in SSHAddr, WebAddr and WebURL.
	if ssh, ok := g.cfg["ssh"].(map[string]any); ok {
		if l, ok := ssh["listen"].(string); ok && l != "" {
			g.SSHAddr = l
		}
		// Every test client connects from loopback, and many tests fail
		// logins on purpose: per-source penalties would refuse the next
		// test step. A test of the penalties sets penalty_exempt itself.
		if _, set := ssh["penalty_exempt"]; !set {
			withExempt := map[string]any{"penalty_exempt": []string{"127.0.0.0/8", "::1"}}
			for k, v := range ssh {
				withExempt[k] = v
			}
			g.cfg["ssh"] = withExempt
		}
	}
	if web, ok := g.cfg["web"].(map[string]any); ok {
		if l, ok := web["listen"].(string); ok && l != "" {
			g.WebAddr = l
			g.WebURL = "http://" + l
		}
		if u, ok := web["public_url"].(string); ok && u != "" {
			g.WebURL = u
		}
	}
	g.WriteRoles(opts.Roles)
	if len(opts.DataFiles) > 0 {
		if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
			t.Fatalf("create data_dir: %v", err)
		}
		for name, data := range opts.DataFiles {
			writeFile(t, filepath.Join(g.DataDir, name), string(data), 0o600)
		}
	}

	// The CAs are created by the first command that needs them, so export
	// them from a config without nodes: the nodes cannot start before they
	// know the user CA, and the final config needs the nodes' host keys.
	g.writeConfig(nil)
	g.UserCA = strings.TrimSpace(g.MustRun("ca", "export", "user").Stdout)
	g.HostCA = strings.TrimSpace(g.MustRun("ca", "export", "host").Stdout)
	if g.UserCA == "" || g.HostCA == "" {
		t.Fatalf("gatehouse ca export printed nothing (user %q, host %q)", g.UserCA, g.HostCA)
	}
	writeFile(t, g.UserCAFile, g.UserCA+"\n", 0o644)

	var inventory []map[string]any
	for _, spec := range opts.Nodes {
		entry := map[string]any{"name": spec.Name}
		if len(spec.Labels) > 0 {
			entry["labels"] = spec.Labels
		}
		if spec.Running != nil {
			g.Nodes[spec.Name] = spec.Running
			entry["address"] = spec.Running.Addr
			entry["host_key"] = spec.Running.HostKeyLine
		} else if spec.Down {
			entry["address"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
			entry["host_key"] = spec.PinnedKey
			if spec.PinnedKey == "" {
				_, pub := GenerateKey(t, dir, "down-"+spec.Name)
				entry["host_key"] = ReadKeyLine(t, pub)
			}
		} else {
			no := spec.Options
			if no.TrustedUserCAKeys == "" {
				no.TrustedUserCAKeys = g.UserCAFile
			}
			n := StartNode(t, spec.Name, no)
			g.Nodes[spec.Name] = n
			entry["address"] = n.Addr
			entry["host_key"] = n.HostKeyLine
			if spec.PinnedKey != "" {
				entry["host_key"] = spec.PinnedKey
			}
		}
		inventory = append(inventory, entry)
	}
	g.writeConfig(inventory)

	args := append([]string{"serve", "--config", g.ConfigPath}, opts.ExtraArgs...)
	cmd := exec.Command(g.Binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), opts.Env...)
	g.proc = startProcess(t, "gatehouse", g.LogPath, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitForPort(ctx, g.SSHAddr, g.proc); err != nil {
		t.Fatalf("StartGatehouse: %v", err)
	}
	return g
}

func (g *Gatehouse) writeConfig(nodes []map[string]any) {
	g.t.Helper()
	cfg := map[string]any{}
	for k, v := range g.cfg {
		cfg[k] = v
	}
	if nodes != nil {
		cfg["nodes"] = nodes
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		g.t.Fatalf("encode gatehouse.yaml: %v", err)
	}
	// Validate with the real loader so a harness mistake shows up here
	// rather than as a server that will not start.
	if _, err := config.Parse(g.ConfigPath, data); err != nil {
		g.t.Fatalf("harness wrote an invalid gatehouse.yaml: %v\n%s", err, data)
	}
	writeFile(g.t, g.ConfigPath, string(data), 0o644)
}

// WriteRoles replaces roles.yaml atomically (gatehouse may reload it on
// change, and must never see half a file).
func (g *Gatehouse) WriteRoles(roles string) {
	g.t.Helper()
	tmp := g.RolesPath + ".tmp"
	writeFile(g.t, tmp, roles, 0o644)
	if err := os.Rename(tmp, g.RolesPath); err != nil {
		g.t.Fatalf("replace roles.yaml: %v", err)
	}
}

// Reload sends SIGHUP, which makes gatehouse re-read roles.yaml.
func (g *Gatehouse) Reload() {
	g.t.Helper()
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		g.t.Fatalf("reload gatehouse: %v", err)
	}
}

// Stop sends SIGTERM and waits for the server to exit.
func (g *Gatehouse) Stop() { g.proc.Stop(g.t) }

// Process is the `gatehouse serve` process.
func (g *Gatehouse) Process() *Process { return g.proc }

// Node returns the running node called name, failing the test if there is
// none.
func (g *Gatehouse) Node(name string) *Node {
	g.t.Helper()
	n, ok := g.Nodes[name]
	if !ok {
		g.t.Fatalf("no running node %q", name)
	}
	return n
}

// Jump is the -J argument for user: "user@127.0.0.1:PORT".
func (g *Gatehouse) Jump(user string) string { return user + "@" + g.SSHAddr }

// Log returns what the server has written so far.
func (g *Gatehouse) Log() string {
	data, _ := os.ReadFile(g.LogPath)
	return string(data)
}

// Run runs a gatehouse subcommand against this bastion's config, adding
// --config FILE after the subcommand words (args up to the first flag).
func (g *Gatehouse) Run(args ...string) Result {
	g.t.Helper()
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		i++
	}
	full := append(append(append([]string{}, args[:i]...), "--config", g.ConfigPath), args[i:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.Binary, full...)
	cmd.Dir = g.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: exitCode(err)}
	if r.ExitCode == -1 {
		g.t.Fatalf("gatehouse %s: %v", strings.Join(full, " "), err)
	}
	return r
}

// MustRun is Run that fails the test on a non-zero exit.
func (g *Gatehouse) MustRun(args ...string) Result {
	g.t.Helper()
	r := g.Run(args...)
	if r.ExitCode != 0 {
		g.t.Fatalf("gatehouse %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r
}

// IssueCert runs `gatehouse cert issue` for user's public key and returns
// the certificate path.
func (g *Gatehouse) IssueCert(user, pubPath string, ttl time.Duration) string {
	g.t.Helper()
	out := strings.TrimSuffix(pubPath, ".pub") + "-cert.pub"
	g.MustRun("cert", "issue", "--user", user, "--pubkey", pubPath, "--ttl", ttl.String(), "--out", out)
	if _, err := os.Stat(out); err != nil {
		g.t.Fatalf("gatehouse cert issue did not write %s: %v", out, err)
	}
	return out
}

// String describes the bastion for messages.
func (g *Gatehouse) String() string {
	return fmt.Sprintf("gatehouse ssh=%s web=%s", g.SSHAddr, g.WebAddr)
}

// plainHostKey is a known_hosts line for the bastion's plain ed25519 host
// key, or "" if it offers only its host certificate. Clients pin it next to
// the @cert-authority line so they accept the bastion whichever of the two
// it presents; scanned once per bastion.
func (g *Gatehouse) plainHostKey() string {
	g.scanOnce.Do(func() { g.scanned = scanHostKey(g.t, g.SSHAddr) })
	return g.scanned
}
