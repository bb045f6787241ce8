package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Result is how a client command ended.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int // -1 if the command could not run or was killed
}

// String shows the whole result, for failure messages.
func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s", r.ExitCode, r.Stdout, r.Stderr)
}

// ClientOptions describe an OpenSSH client setup.
type ClientOptions struct {
	KeyPath  string // private key (IdentityFile)
	CertPath string // certificate (CertificateFile), optional
	// KnownHosts are the known_hosts lines the client trusts.
	KnownHosts []string
	// Jump, if set, is the ProxyJump destination ("bob@127.0.0.1:2222")
	// used by SSH, SCP, SFTP and Rsync, and by Hosts.
	Jump string
	// Hosts get a `Host` entry with ProxyJump Jump, so plain `ssh db-1`
	// style commands also go through the bastion.
	Hosts []string
	// Extra ssh_config lines for the `Host *` section ("Port 2200").
	Extra []string
}

// Client runs the OpenSSH clients with a private ssh config file: its own
// key, certificate and known_hosts, batch mode, no agent, no multiplexing,
// nothing read from ~/.ssh or /etc/ssh.
type Client struct {
	Dir        string
	ConfigPath string
	KnownHosts string // file
	KeyPath    string
	CertPath   string
	Jump       string
	// Timeout bounds every command (default 2 minutes) so a hang fails
	// the test instead of stalling the run.
	Timeout time.Duration

	t testing.TB
}

// NewClient writes the client's ssh config and known_hosts.
func NewClient(t testing.TB, opts ClientOptions) *Client {
	t.Helper()
	dir := t.TempDir()
	c := &Client{
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "ssh_config"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		KeyPath:    opts.KeyPath,
		CertPath:   opts.CertPath,
		Jump:       opts.Jump,
		Timeout:    2 * time.Minute,
		t:          t,
	}
	writeFile(t, c.KnownHosts, strings.Join(opts.KnownHosts, "\n")+"\n", 0o644)
	var cfg []string
	if len(opts.Hosts) > 0 && opts.Jump != "" {
		// Specific entries first: ssh takes the first value it finds.
		cfg = append(cfg, "Host "+strings.Join(opts.Hosts, " "), "  ProxyJump "+opts.Jump, "")
	}
	// Under "Host *" because with -J the jump ssh reads this same file and
	// must authenticate to the bastion with the same identity.
	cfg = append(cfg, "Host *",
		"  IdentityFile "+c.KeyPath,
		"  IdentitiesOnly yes",
		"  IdentityAgent none",
		"  PubkeyAuthentication yes",
		"  PasswordAuthentication no",
		"  KbdInteractiveAuthentication no",
		"  StrictHostKeyChecking yes",
		"  UserKnownHostsFile "+c.KnownHosts,
		"  GlobalKnownHostsFile /dev/null",
		"  UpdateHostKeys no",
		"  BatchMode yes",
		"  ControlMaster no",
		"  ControlPath none",
		"  ConnectTimeout 30",
		"  ServerAliveInterval 0",
	)
	if c.CertPath != "" {
		cfg = append(cfg, "  CertificateFile "+c.CertPath)
	}
	for _, l := range opts.Extra {
		cfg = append(cfg, "  "+l)
	}
	writeFile(t, c.ConfigPath, strings.Join(cfg, "\n")+"\n", 0o644)
	return c
}

// AddOptions appends ssh_config lines to the client's "Host *" section
// (the last one in its file), e.g. "BindAddress 127.0.0.2". ssh takes the
// first value it reads, so these cannot override an option already set.
func (c *Client) AddOptions(lines ...string) {
	c.t.Helper()
	f, err := os.OpenFile(c.ConfigPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		c.t.Fatalf("open ssh config: %v", err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := fmt.Fprintf(f, "  %s\n", l); err != nil {
			c.t.Fatalf("append to ssh config: %v", err)
		}
	}
}

// SSHArgs is the start of every ssh command line: the config file and, if
// the client has one, the jump.
func (c *Client) SSHArgs() []string {
	args := []string{"-F", c.ConfigPath}
	if c.Jump != "" {
		args = append(args, "-J", c.Jump)
	}
	return args
}

// Command builds (but does not start) a client program with the client's
// options in front of args: prog is "ssh", "scp" or "sftp". The process
// runs in its own process group, killed as a whole when ctx ends or the
// test ends, so the jump ssh it spawns cannot outlive it.
func (c *Client) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	full := append(c.SSHArgs(), args...)
	cmd := exec.CommandContext(ctx, prog, full...)
	c.own(cmd)
	return cmd
}

// own puts cmd in its own process group and arranges for the group to be
// killed on cancel and at test end.
func (c *Client) own(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { killGroup(cmd.Process); return nil }
	// A grandchild holding our pipes must not hang Wait forever.
	cmd.WaitDelay = 5 * time.Second
	c.t.Cleanup(func() { killGroup(cmd.Process) })
}

// Run runs prog (ssh, scp, sftp) with the client's options and args to
// completion, feeding it stdin (nil: empty input).
func (c *Client) Run(stdin io.Reader, prog string, args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	return c.run(c.Command(ctx, prog, args...), stdin)
}

func (c *Client) run(cmd *exec.Cmd, stdin io.Reader) Result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: exitCode(err)}
	if r.ExitCode == -1 {
		c.t.Logf("%s: %v (stderr: %s)", strings.Join(cmd.Args, " "), err, r.Stderr)
	}
	return r
}

// SSH runs `ssh -F cfg [-J jump] args...` with empty stdin.
func (c *Client) SSH(args ...string) Result {
	c.t.Helper()
	return c.Run(nil, "ssh", args...)
}

// SSHInput runs ssh with stdin as its input.
func (c *Client) SSHInput(stdin io.Reader, args ...string) Result {
	c.t.Helper()
	return c.Run(stdin, "ssh", args...)
}

// SCP runs `scp -F cfg [-J jump] args...`.
func (c *Client) SCP(args ...string) Result {
	c.t.Helper()
	return c.Run(nil, "scp", args...)
}

// SFTP runs `sftp -F cfg [-J jump] -b BATCHFILE dest` with the given batch
// commands, one per line.
func (c *Client) SFTP(dest string, batch ...string) Result {
	c.t.Helper()
	f := filepath.Join(c.Dir, fmt.Sprintf("sftp-batch-%d", time.Now().UnixNano()))
	writeFile(c.t, f, strings.Join(batch, "\n")+"\n", 0o644)
	return c.Run(nil, "sftp", "-b", f, dest)
}

// Rsync runs rsync with `-e "ssh -F cfg [-J jump]"` followed by args.
func (c *Client) Rsync(args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	shell := "ssh " + strings.Join(c.SSHArgs(), " ")
	cmd := exec.CommandContext(ctx, "rsync", append([]string{"-e", shell}, args...)...)
	c.own(cmd)
	return c.run(cmd, nil)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode()
	}
	return -1
}

// User is a bastion user: a key, a certificate from `gatehouse cert issue`,
// and a client that trusts the bastion's host CA and jumps through it as
// Name.
type User struct {
	*Client
	Name string
	GH   *Gatehouse
}

// NewUser generates an ed25519 key for name, has gatehouse issue a
// certificate for it valid for ttl, and sets up a client that jumps through
// gh as name to any of gh's nodes.
func NewUser(t testing.TB, gh *Gatehouse, name string, ttl time.Duration) *User {
	t.Helper()
	dir := t.TempDir()
	key, pub := GenerateKey(t, dir, "id_ed25519")
	cert := gh.IssueCert(name, pub, ttl)
	return NewUserWithCert(t, gh, name, key, cert)
}

// NewUserWithCert is NewUser with a key and certificate the caller made
// (for instance one signed by another CA, or already expired).
func NewUserWithCert(t testing.TB, gh *Gatehouse, name, keyPath, certPath string) *User {
	t.Helper()
	known := []string{"@cert-authority * " + gh.HostCA}
	if k := gh.plainHostKey(); k != "" {
		known = append(known, k)
	}
	var hosts []string
	for _, spec := range gh.opts.Nodes {
		hosts = append(hosts, spec.Name)
	}
	c := NewClient(t, ClientOptions{
		KeyPath:    keyPath,
		CertPath:   certPath,
		KnownHosts: known,
		Jump:       gh.Jump(name),
		Hosts:      hosts,
	})
	return &User{Client: c, Name: name, GH: gh}
}

// Bastion runs `ssh -p PORT NAME@127.0.0.1 args...`: a command on the
// bastion itself (whoami, nodes, request ...), not through it.
func (u *User) Bastion(args ...string) Result {
	u.t.Helper()
	host, port, _ := strings.Cut(u.GH.SSHAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), u.Timeout)
	defer cancel()
	full := append([]string{"-F", u.ConfigPath, "-p", port, u.Name + "@" + host}, args...)
	cmd := exec.CommandContext(ctx, "ssh", full...)
	u.own(cmd)
	return u.run(cmd, nil)
}

// scanHostKey returns a known_hosts line for the plain ed25519 host key
// served at addr, or "" if the server offers none.
func scanHostKey(t testing.TB, addr string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh-keyscan", "-T", "10", "-t", "ed25519", "-p", port, host).Output()
	if err != nil {
		// Expected when the bastion presents only its host certificate.
		t.Logf("ssh-keyscan %s found no plain host key (%v); clients trust the bastion through its host certificate only", addr, err)
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// RemoteDir creates a fresh directory owned by the local account login
// (nodes run on this machine, so files "on the node" are local files) and
// removes it when the test ends.
func RemoteDir(t testing.TB, login string) string {
	t.Helper()
	u := RequireAccount(t, login)
	// Not under t.TempDir(): its parents are private to root, and the login
	// user must be able to reach it.
	dir, err := os.MkdirTemp("", "gatehouse-e2e-"+login+"-")
	if err != nil {
		t.Fatalf("create remote dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var uid, gid int
	fmt.Sscan(u.Uid, &uid)
	fmt.Sscan(u.Gid, &gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("chown remote dir: %v", err)
	}
	return dir
}

// killGroup kills the process group led by p if p is still running.
func killGroup(p *os.Process) { signalGroup(p, syscall.SIGKILL) }

// signalGroup signals the process group led by p if p has not been reaped.
// Until then its PID, and so the group ID, cannot be reused; afterwards a
// signal by number could hit an unrelated program (PIDs recycle quickly on
// a busy machine). os.Process.Signal is safe alongside a concurrent Wait
// and reports a finished process rather than signalling a recycled PID.
func signalGroup(p *os.Process, sig syscall.Signal) {
	if p == nil {
		return
	}
	if err := p.Signal(syscall.Signal(0)); err != nil {
		return
	}
	_ = syscall.Kill(-p.Pid, sig)
}
