package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SSHD is where the node's sshd binary lives; sshd insists on an absolute
// path because it re-executes itself for every connection.
const SSHD = "/usr/sbin/sshd"

// RequireSystem skips the test, loudly, unless it can start real sshd
// nodes: that needs root (sshd switches to the login user) and an installed
// OpenSSH server. .ci/run provides both, so CI never skips.
func RequireSystem(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING END-TO-END TEST: it must run as root to start real sshd nodes (run .ci/run, or go test as root)")
	}
	if _, err := os.Stat(SSHD); err != nil {
		t.Skipf("SKIPPING END-TO-END TEST: %s is missing (apt-get install openssh-server, or run .ci/run): %v", SSHD, err)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}
}

// RequireAccount fails the test unless the local Unix account exists.
func RequireAccount(t testing.TB, login string) *user.User {
	t.Helper()
	u, err := user.Lookup(login)
	if err != nil {
		t.Fatalf("local account %q is missing; create it with `useradd -m -s /bin/bash %s && usermod -p '*' %s` (.ci/run does this): %v", login, login, login, err)
	}
	return u
}

// NodeOptions configure one sshd node.
type NodeOptions struct {
	// TrustedUserCAKeys is the file of CA keys the node trusts for user
	// certificates (normally `gatehouse ca export user`). Required.
	TrustedUserCAKeys string
	// AuthorizedPrincipalsFile, if set, is written into sshd_config as is
	// (sshd expands %u etc.), replacing the default "principal == login".
	AuthorizedPrincipalsFile string
	// HostKey, if set, is the private host key file to use instead of a
	// freshly generated one (its .pub must sit next to it).
	HostKey string
	// HostCertificate, if set, is presented with the host key.
	HostCertificate string
	// Extra lines appended to sshd_config.
	Extra []string
}

// Node is a running OpenSSH sshd on a loopback port.
type Node struct {
	Name string
	Addr string // 127.0.0.1:PORT
	// HostKeyLine is the node's public host key, "ssh-ed25519 AAAA...",
	// ready to pin in gatehouse.yaml's host_key.
	HostKeyLine string
	HostKeyPath string // private key file
	ConfigPath  string // sshd_config
	LogPath     string // sshd's stderr (LogLevel VERBOSE)
	Dir         string

	proc *Process
	t    testing.TB
}

// StartNode writes a complete sshd_config for a node called name, starts
// `sshd -D -e` on a free loopback port and waits until it accepts
// connections. The node is stopped when the test ends.
func StartNode(t testing.TB, name string, opts NodeOptions) *Node {
	t.Helper()
	RequireSystem(t)
	if opts.TrustedUserCAKeys == "" {
		t.Fatalf("StartNode %s: NodeOptions.TrustedUserCAKeys is required", name)
	}
	dir, err := os.MkdirTemp(t.TempDir(), "node-"+name+"-")
	if err != nil {
		t.Fatalf("StartNode %s: %v", name, err)
	}
	n := &Node{Name: name, Dir: dir, t: t,
		ConfigPath: filepath.Join(dir, "sshd_config"),
		LogPath:    filepath.Join(dir, "sshd.log"),
	}
	n.HostKeyPath = opts.HostKey
	if n.HostKeyPath == "" {
		n.HostKeyPath, _ = GenerateKey(t, dir, "ssh_host_ed25519_key")
	}
	pub, err := os.ReadFile(n.HostKeyPath + ".pub")
	if err != nil {
		t.Fatalf("StartNode %s: read host public key: %v", name, err)
	}
	n.HostKeyLine = keyOnly(string(pub))

	port := FreePort(t)
	n.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	lines := []string{
		"# sshd for e2e node " + name,
		"ListenAddress " + n.Addr,
		"HostKey " + n.HostKeyPath,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"TrustedUserCAKeys " + opts.TrustedUserCAKeys,
		"AuthorizedKeysFile none",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"Subsystem sftp internal-sftp",
		"StrictModes no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"X11Forwarding no",
		"LogLevel VERBOSE",
		// Tests start many connections at once from one address.
		"MaxStartups 100:30:200",
		"MaxSessions 50",
	}
	if opts.HostCertificate != "" {
		lines = append(lines, "HostCertificate "+opts.HostCertificate)
	}
	if opts.AuthorizedPrincipalsFile != "" {
		lines = append(lines, "AuthorizedPrincipalsFile "+opts.AuthorizedPrincipalsFile)
	}
	lines = append(lines, opts.Extra...)
	// Newer OpenSSH (9.8+) penalises source addresses after failed logins,
	// which would make refusal tests poison later ones from 127.0.0.1.
	if sshdSupports(t, dir, "PerSourcePenalties no") {
		lines = append(lines, "PerSourcePenalties no")
	}
	writeFile(t, n.ConfigPath, strings.Join(lines, "\n")+"\n", 0o644)

	cmd := exec.Command(SSHD, "-D", "-e", "-f", n.ConfigPath)
	n.proc = startProcess(t, "sshd "+name, n.LogPath, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitForPort(ctx, n.Addr, n.proc); err != nil {
		t.Fatalf("StartNode %s: %v", name, err)
	}
	return n
}

// Stop stops the node's sshd (and the sessions it serves). The address
// stays reserved for nobody: connections to it are refused afterwards.
func (n *Node) Stop() { n.proc.Stop(n.t) }

// Process is the sshd master process.
func (n *Node) Process() *Process { return n.proc }

// sshdSupports reports whether this sshd accepts the config line, by
// testing a minimal config with it.
func sshdSupports(t testing.TB, dir, line string) bool {
	t.Helper()
	probe := filepath.Join(dir, "probe_config")
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if _, err := os.Stat(hostKey); err != nil {
		hostKey, _ = GenerateKey(t, dir, "probe_host_key")
	}
	writeFile(t, probe, "HostKey "+hostKey+"\n"+line+"\n", 0o644)
	defer os.Remove(probe)
	return exec.Command(SSHD, "-t", "-f", probe).Run() == nil
}

// keyOnly trims an authorized_keys line to "type base64", dropping the
// comment, which is how host keys are pinned in gatehouse.yaml.
func keyOnly(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return strings.TrimSpace(line)
	}
	return f[0] + " " + f[1]
}

// GenerateKey creates an unencrypted ed25519 key pair dir/name and
// dir/name.pub with ssh-keygen, returning both paths.
func GenerateKey(t testing.TB, dir, name string) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", priv).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", priv, err, out)
	}
	return priv, priv + ".pub"
}

// ReadKeyLine returns the "type base64" part of a public key file.
func ReadKeyLine(t testing.TB, pubPath string) string {
	t.Helper()
	data, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatalf("read public key: %v", err)
	}
	return keyOnly(string(data))
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// TestCA is a throwaway OpenSSH certificate authority made with ssh-keygen,
// for tests that need certificates gatehouse did not sign.
type TestCA struct {
	Key    string // private key
	PubKey string // public key file, usable as TrustedUserCAKeys
	dir    string
}

// NewTestCA creates a CA key pair in a temp dir.
func NewTestCA(t testing.TB) *TestCA {
	t.Helper()
	dir := t.TempDir()
	priv, pub := GenerateKey(t, dir, "test_ca")
	return &TestCA{Key: priv, PubKey: pub, dir: dir}
}

// SignUser signs pubPath as a user certificate for principals, valid for
// validity (ssh-keygen -V syntax, e.g. "-5m:+1h"), and returns the
// certificate path (next to the key, as ssh-keygen writes it).
func (ca *TestCA) SignUser(t testing.TB, pubPath string, principals []string, validity string) string {
	t.Helper()
	args := []string{"-q", "-s", ca.Key, "-I", "e2e-" + strings.Join(principals, ","),
		"-n", strings.Join(principals, ","), "-V", validity, pubPath}
	out, err := exec.Command("ssh-keygen", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSuffix(pubPath, ".pub") + "-cert.pub"
}

// KnownHostsLine pins this node's host key under the name clients use to
// reach it directly ("[127.0.0.1]:PORT").
func (n *Node) KnownHostsLine() string {
	host, port, _ := net.SplitHostPort(n.Addr)
	return fmt.Sprintf("[%s]:%s %s", host, port, n.HostKeyLine)
}

// Target is the ssh arguments that reach this node directly as login,
// bypassing any bastion: "-p PORT login@127.0.0.1".
func (n *Node) Target(login string) []string {
	host, port, _ := net.SplitHostPort(n.Addr)
	return []string{"-p", port, login + "@" + host}
}
