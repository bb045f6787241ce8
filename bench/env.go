package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Names every case relies on.
const (
	// NodeName is the node as Gatehouse knows it.
	NodeName = "bench-1"
	// Login is the account used on the node through both jump hosts.
	Login = "ubuntu"
	// BenchUser is the Gatehouse user of every case except revocation.
	BenchUser = "bench"
	sshdPath  = "/usr/sbin/sshd"
)

// EnvOptions say what to start.
type EnvOptions struct {
	// Gatehouse is the `gatehouse` binary (make build writes bin/gatehouse).
	Gatehouse string
	// Dir holds everything; it must be reachable by the Login account,
	// which reads the transfer file.
	Dir string
	// VictimUsers are extra Gatehouse users, each with its own certificate,
	// for cases that lock a user.
	VictimUsers []string
	Logger      *slog.Logger
}

// Env is one node sshd, reached through two jump hosts: `gatehouse serve`
// and a stock sshd (the baseline).
type Env struct {
	Dir string
	Bin string
	Log *slog.Logger

	ConfigPath string // gatehouse.yaml
	GHAddr     string // gatehouse SSH listener
	JumpAddr   string // baseline sshd jump host
	NodeAddr   string // the node sshd both reach

	HostCA      string // gatehouse host CA, authorized_keys format
	NodeHostKey string
	JumpHostKey string

	KeyPath    string // the client's private key
	GHCert     map[string]string
	BaseCert   string // test-CA certificate for root@jump and ubuntu@node
	KnownHosts string

	gh, jump, node *process
}

// GHPid is the `gatehouse serve` process id.
func (e *Env) GHPid() int { return e.gh.pid() }

// JumpPid is the baseline jump sshd's master process id.
func (e *Env) JumpPid() int { return e.jump.pid() }

// NodePid is the node sshd's master process id.
func (e *Env) NodePid() int { return e.node.pid() }

// Close stops every process the Env started.
func (e *Env) Close() {
	e.gh.stop()
	e.jump.stop()
	e.node.stop()
}

// Start prepares keys, CAs and configs and starts the three daemons.
func Start(ctx context.Context, opts EnvOptions) (env *Env, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("benchmarks must run as root: sshd switches to the %s account", Login)
	}
	if _, err := user.Lookup(Login); err != nil {
		return nil, fmt.Errorf("local account %s is required (useradd -m -s /bin/bash %s): %w", Login, Login, err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("create sshd privilege separation dir: %w", err)
	}
	// A private copy: other work may rebuild bin/gatehouse during a run,
	// and perf resolves symbols from the file on disk when it reports.
	bin := filepath.Join(opts.Dir, "gatehouse")
	if err := copyFile(opts.Gatehouse, bin, 0o755); err != nil {
		return nil, fmt.Errorf("copy gatehouse binary: %w", err)
	}
	opts.Gatehouse = bin
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Env{Dir: opts.Dir, Bin: opts.Gatehouse, Log: opts.Logger, GHCert: map[string]string{},
		ConfigPath: filepath.Join(opts.Dir, "gatehouse.yaml")}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if err := os.Chmod(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open up bench dir: %w", err)
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	e.GHAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	webAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	e.JumpAddr = "127.0.0.1:" + strconv.Itoa(ports[2])
	e.NodeAddr = "127.0.0.1:" + strconv.Itoa(ports[3])

	users := append([]string{BenchUser}, opts.VictimUsers...)
	rolesPath := filepath.Join(e.Dir, "roles.yaml")
	var roles strings.Builder
	roles.WriteString("users:\n")
	for _, u := range users {
		fmt.Fprintf(&roles, "  - {name: %s, roles: [ops]}\n", u)
	}
	fmt.Fprintf(&roles, "roles:\n  - name: ops\n    allow:\n      logins: [%s]\n      node_labels: {env: bench}\n", Login)
	if err := os.WriteFile(rolesPath, []byte(roles.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write roles.yaml: %w", err)
	}
	// Every benchmark client comes from 127.0.0.1 and opens up to -parallel
	// sessions at once: the per-source cap on handshakes in progress
	// (default 10) is lifted out of the way.
	cfg := map[string]any{
		"data_dir":   filepath.Join(e.Dir, "data"),
		"ssh":        map[string]any{"listen": e.GHAddr, "per_source_max_unauthenticated": 100},
		"web":        map[string]any{"listen": webAddr, "public_url": "http://" + webAddr},
		"recording":  map[string]any{"mode": "strict"},
		"roles_file": rolesPath,
	}
	// The CAs are created by the first command that needs them; the node
	// must trust the user CA before it starts, and the final config needs
	// the node's host key.
	if err := writeYAML(e.ConfigPath, cfg); err != nil {
		return nil, err
	}
	userCA, err := e.Gatehouse(ctx, "ca", "export", "user")
	if err != nil {
		return nil, err
	}
	if e.HostCA, err = e.Gatehouse(ctx, "ca", "export", "host"); err != nil {
		return nil, err
	}
	e.HostCA = strings.TrimSpace(e.HostCA)

	// The baseline's users authenticate with certificates from a CA of our
	// own, so both paths use certificate authentication at the node.
	testCA, err := keygen(ctx, e.Dir, "test_ca")
	if err != nil {
		return nil, err
	}
	testCAPub, err := os.ReadFile(testCA + ".pub")
	if err != nil {
		return nil, fmt.Errorf("read test CA: %w", err)
	}
	trusted := filepath.Join(e.Dir, "node_trusted_cas")
	if err := os.WriteFile(trusted, []byte(strings.TrimSpace(userCA)+"\n"+string(testCAPub)), 0o644); err != nil {
		return nil, fmt.Errorf("write node trusted CAs: %w", err)
	}
	jumpTrusted := filepath.Join(e.Dir, "jump_trusted_cas")
	if err := os.WriteFile(jumpTrusted, testCAPub, 0o644); err != nil {
		return nil, fmt.Errorf("write jump trusted CAs: %w", err)
	}

	if e.node, e.NodeHostKey, err = startSSHD(ctx, e.Dir, "node", e.NodeAddr, trusted); err != nil {
		return nil, err
	}
	// Empty until the revocation case lists the client key in it.
	if err := os.WriteFile(e.revokedKeysPath(), nil, 0o644); err != nil {
		return nil, fmt.Errorf("write jump RevokedKeys: %w", err)
	}
	if e.jump, e.JumpHostKey, err = startSSHD(ctx, e.Dir, "jump", e.JumpAddr, jumpTrusted, "RevokedKeys "+e.revokedKeysPath()); err != nil {
		return nil, err
	}

	cfg["nodes"] = []map[string]any{{
		"name": NodeName, "address": e.NodeAddr, "host_key": e.NodeHostKey,
		"labels": map[string]string{"env": "bench"},
	}}
	if err := writeYAML(e.ConfigPath, cfg); err != nil {
		return nil, err
	}
	cmd := exec.Command(e.Bin, "serve", "--config", e.ConfigPath)
	cmd.Dir = e.Dir
	if e.gh, err = startProcess("gatehouse", filepath.Join(e.Dir, "gatehouse.log"), cmd); err != nil {
		return nil, err
	}
	if err := waitListening(ctx, e.GHAddr, e.gh); err != nil {
		return nil, err
	}

	if e.KeyPath, err = keygen(ctx, e.Dir, "id_ed25519"); err != nil {
		return nil, err
	}
	for _, u := range users {
		out := filepath.Join(e.Dir, u+"-gh-cert.pub")
		if _, err := e.Gatehouse(ctx, "cert", "issue", "--user", u, "--pubkey", e.KeyPath+".pub", "--ttl", "6h", "--out", out); err != nil {
			return nil, err
		}
		e.GHCert[u] = out
	}
	// ssh-keygen writes NAME-cert.pub next to the key it signs.
	basePub := filepath.Join(e.Dir, "base.pub")
	pub, err := os.ReadFile(e.KeyPath + ".pub")
	if err != nil {
		return nil, fmt.Errorf("read client key: %w", err)
	}
	if err := os.WriteFile(basePub, pub, 0o644); err != nil {
		return nil, fmt.Errorf("copy client key: %w", err)
	}
	if _, err := run(ctx, "ssh-keygen", "-q", "-s", testCA, "-I", "bench-baseline", "-n", "root,"+Login, "-V", "-5m:+6h", basePub); err != nil {
		return nil, err
	}
	e.BaseCert = filepath.Join(e.Dir, "base-cert.pub")

	e.KnownHosts = filepath.Join(e.Dir, "known_hosts")
	known := []string{
		"@cert-authority * " + e.HostCA,
		hostPattern(e.JumpAddr) + " " + e.JumpHostKey,
		hostPattern(e.NodeAddr) + " " + e.NodeHostKey,
	}
	if err := os.WriteFile(e.KnownHosts, []byte(strings.Join(known, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	return e, nil
}

// Gatehouse runs a gatehouse admin command against the bench config,
// putting --config after the subcommand words.
func (e *Env) Gatehouse(ctx context.Context, args ...string) (string, error) {
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		i++
	}
	full := append(append(append([]string{}, args[:i]...), "--config", e.ConfigPath), args[i:]...)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return run(ctx, e.Bin, full...)
}

// startSSHD starts a stock sshd on addr trusting the user CAs in
// trustedCAs. Limits are raised so a thousand connections from one address
// are not throttled: the baseline must not lose for a reason Gatehouse does
// not share.
func startSSHD(ctx context.Context, dir, name, addr, trustedCAs string, extra ...string) (*process, string, error) {
	hostKey, err := keygen(ctx, dir, name+"_host_ed25519_key")
	if err != nil {
		return nil, "", err
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, "", fmt.Errorf("read %s host key: %w", name, err)
	}
	f := strings.Fields(string(pub))
	cfgPath := filepath.Join(dir, name+"_sshd_config")
	lines := []string{
		"ListenAddress " + addr,
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, name+"_sshd.pid"),
		"TrustedUserCAKeys " + trustedCAs,
		"AuthorizedKeysFile none",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"StrictModes no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"X11Forwarding no",
		"LogLevel ERROR",
		"MaxStartups 4000:100:8000",
		"MaxSessions 100",
	}
	lines = append(lines, extra...)
	if _, err := run(ctx, sshdPath, "-t", "-f", "/dev/null", "-o", "HostKey="+hostKey, "-o", "PerSourcePenalties=no"); err == nil {
		lines = append(lines, "PerSourcePenalties no")
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("write %s sshd_config: %w", name, err)
	}
	p, err := startProcess("sshd "+name, filepath.Join(dir, name+"_sshd.log"), exec.Command(sshdPath, "-D", "-e", "-f", cfgPath))
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, addr, p); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, f[0] + " " + f[1], nil
}

func keygen(ctx context.Context, dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	_, err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path)
	return path, err
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// hostPattern is how known_hosts names a host on a non-default port.
func hostPattern(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "[" + host + "]:" + port
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
