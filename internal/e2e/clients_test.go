package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// SSH client stacks nobody here wrote, each jumping through the real
// bastion to a real sshd node and running a command whose output and exit
// status must come back unchanged. They differ in the first method they try
// on the inner hop (OpenSSH, x/crypto and AsyncSSH "none"; Paramiko, and so
// Fabric and Ansible's paramiko connection, its public key), and the audit
// log records what the inner hop saw. Each client signs in as its own
// bastion user so its events can be told apart.

// clientUsers are the bastion users of TestJumpClients, one per client.
var clientUsers = []string{
	"openssh", "gocrypto", "asyncssh",
	"paramiko", "paramiko-none", "paramiko-password", "paramiko-kbd",
	"ansible-ssh", "ansible-paramiko",
}

// jumpCommand is what every client runs on the node: the output names the
// login, and the exit status is one no transport produces by accident.
const (
	jumpCommand = "id -un; exit 3"
	jumpOutput  = "ubuntu\n"
	jumpStatus  = 3
)

func startClients(t *testing.T) *e2e.Gatehouse {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	var roles strings.Builder
	roles.WriteString("users:\n")
	for _, u := range clientUsers {
		fmt.Fprintf(&roles, "  - {name: %s, roles: [dev]}\n", u)
	}
	roles.WriteString(`roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
`)
	return e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  roles.String(),
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
	})
}

// clientCreds are a bastion user's key, certificate and known_hosts files.
type clientCreds struct {
	*e2e.User
	KeyFP string // SHA256 fingerprint of the user's public key
	// PinnedHosts is a known_hosts file without @cert-authority lines for
	// clients that do not verify host certificates (Paramiko takes the key
	// inside the certificate and compares it with known_hosts): it pins
	// the bastion's host key for its address and for web-1.
	PinnedHosts string
}

func newClientCreds(t *testing.T, gh *e2e.Gatehouse, name string) clientCreds {
	t.Helper()
	u := e2e.NewUser(t, gh, name, time.Hour)
	pub, err := os.ReadFile(u.KeyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatalf("parse %s.pub: %v", u.KeyPath, err)
	}
	host, port, _ := net.SplitHostPort(gh.SSHAddr)
	key := gh.PlainHostKey()
	pinned := filepath.Join(u.Dir, "known_hosts_pinned")
	lines := fmt.Sprintf("[%s]:%s %s\nweb-1 %s\n", host, port, key, key)
	if err := os.WriteFile(pinned, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	return clientCreds{User: u, KeyFP: ssh.FingerprintSHA256(k), PinnedHosts: pinned}
}

// checkRun fails unless r is jumpCommand's output and exit status.
func checkRun(t *testing.T, r e2e.Result) {
	t.Helper()
	if r.ExitCode != jumpStatus || r.Stdout != jumpOutput {
		t.Fatalf("want stdout %q and exit %d, got %s", jumpOutput, jumpStatus, r)
	}
}

// checkInnerAuth fails unless user has at least one session.start event and
// each one records the inner method want (and, for publickey, keyFP).
func checkInnerAuth(t *testing.T, gh *e2e.Gatehouse, user, want, keyFP string) {
	t.Helper()
	evs := auditLs(t, gh, "--type", "session.start", "--user", user)
	if len(evs) == 0 {
		t.Fatalf("no session.start event for %s", user)
	}
	for _, ev := range evs {
		if got := ev.Fields["inner_auth"]; got != want {
			t.Errorf("session.start of %s: inner_auth %v, want %q (fields %v)", user, got, want, ev.Fields)
		}
		got, _ := ev.Fields["inner_key_fp"].(string)
		if got != keyFP {
			t.Errorf("session.start of %s: inner_key_fp %q, want %q", user, got, keyFP)
		}
	}
}

func TestJumpClients(t *testing.T) {
	gh := startClients(t)

	t.Run("OpenSSH", func(t *testing.T) {
		u := newClientCreds(t, gh, "openssh")
		checkRun(t, u.SSH("ubuntu@web-1", jumpCommand))
		checkInnerAuth(t, gh, "openssh", "none", "")
	})

	t.Run("Go x/crypto", func(t *testing.T) {
		u := newClientCreds(t, gh, "gocrypto")
		checkRun(t, goCryptoJump(t, gh, u))
		checkInnerAuth(t, gh, "gocrypto", "none", "")
	})

	t.Run("AsyncSSH tunnel", func(t *testing.T) {
		e2e.RequirePython(t, "asyncssh")
		u := newClientCreds(t, gh, "asyncssh")
		// The @cert-authority known_hosts: AsyncSSH checks host
		// certificates itself.
		r := u.Exec([]string{"HOME=" + u.Dir, "PYTHONWARNINGS=ignore"}, e2e.SystemPython, testdata(t, "asyncssh_jump.py"),
			"--bastion", gh.SSHAddr, "--user", "asyncssh", "--key", u.KeyPath, "--cert", u.CertPath,
			"--known-hosts", u.KnownHosts, "--node", "web-1", "--login", "ubuntu", jumpCommand)
		checkRun(t, r)
		checkInnerAuth(t, gh, "asyncssh", "none", "")
	})

	for _, tc := range []struct{ user, method, want string }{
		// SSHClient.connect(sock=channel) is how Fabric's gateway= jumps:
		// the public key comes first.
		{"paramiko", "connect", "publickey"},
		{"paramiko-none", "none", "none"},
		{"paramiko-password", "password", "password"},
		{"paramiko-kbd", "keyboard-interactive", "keyboard-interactive"},
	} {
		t.Run("Paramiko "+tc.method, func(t *testing.T) {
			e2e.RequirePython(t, "paramiko")
			u := newClientCreds(t, gh, tc.user)
			r := u.Exec([]string{"HOME=" + u.Dir, "PYTHONWARNINGS=ignore"}, e2e.SystemPython, testdata(t, "paramiko_jump.py"),
				"--bastion", gh.SSHAddr, "--user", tc.user, "--key", u.KeyPath, "--cert", u.CertPath,
				"--known-hosts", u.PinnedHosts, "--node", "web-1", "--login", "ubuntu", "--method", tc.method, jumpCommand)
			checkRun(t, r)
			fp := ""
			if tc.want == "publickey" {
				fp = u.KeyFP
			}
			checkInnerAuth(t, gh, tc.user, tc.want, fp)
		})
	}

	// A refusal reaches a Paramiko user as the one line on stderr and exit
	// status 1, and the denial records the inner method too.
	t.Run("Paramiko refused login", func(t *testing.T) {
		e2e.RequirePython(t, "paramiko")
		u := newClientCreds(t, gh, "paramiko")
		r := u.Exec([]string{"HOME=" + u.Dir, "PYTHONWARNINGS=ignore"}, e2e.SystemPython, testdata(t, "paramiko_jump.py"),
			"--bastion", gh.SSHAddr, "--user", "paramiko", "--key", u.KeyPath, "--cert", u.CertPath,
			"--known-hosts", u.PinnedHosts, "--node", "web-1", "--login", "root", jumpCommand)
		if r.ExitCode != 1 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "gatehouse: paramiko may not log in as root on web-1") {
			t.Fatalf("want the one-line refusal and exit 1, got %s", r)
		}
		evs := auditLs(t, gh, "--type", "session.denied", "--user", "paramiko")
		if len(evs) != 1 || evs[0].Fields["inner_auth"] != "publickey" || evs[0].Fields["inner_key_fp"] != u.KeyFP {
			t.Fatalf("want one session.denied with inner_auth publickey and the key's fingerprint, got %+v", evs)
		}
	})

	// The pinned known_hosts is what makes the Paramiko runs above check
	// the host: with another key pinned for web-1, the jump must fail.
	t.Run("Paramiko refuses another host key", func(t *testing.T) {
		e2e.RequirePython(t, "paramiko")
		u := newClientCreds(t, gh, "paramiko")
		_, otherPub := e2e.GenerateKey(t, u.Dir, "not_the_host_key")
		host, port, _ := net.SplitHostPort(gh.SSHAddr)
		wrong := filepath.Join(u.Dir, "known_hosts_wrong")
		lines := fmt.Sprintf("[%s]:%s %s\nweb-1 %s\n", host, port, gh.PlainHostKey(), e2e.ReadKeyLine(t, otherPub))
		if err := os.WriteFile(wrong, []byte(lines), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{"connect", "none"} {
			r := u.Exec([]string{"HOME=" + u.Dir, "PYTHONWARNINGS=ignore"}, e2e.SystemPython, testdata(t, "paramiko_jump.py"),
				"--bastion", gh.SSHAddr, "--user", "paramiko", "--key", u.KeyPath, "--cert", u.CertPath,
				"--known-hosts", wrong, "--node", "web-1", "--login", "ubuntu", "--method", method, jumpCommand)
			if r.ExitCode == 0 || r.ExitCode == jumpStatus || r.Stdout != "" {
				t.Fatalf("%s with another host key pinned for web-1: want a failure before the command, got %s", method, r)
			}
			t.Logf("%s refused: %s", method, lastLine(r.Stderr))
		}
	})

	t.Run("Ansible ssh ProxyJump", func(t *testing.T) {
		ansible := e2e.RequireProgram(t, "ansible")
		u := newClientCreds(t, gh, "ansible-ssh")
		inv := writeInventory(t, u.Dir, fmt.Sprintf("ansible_ssh_common_args='-o ProxyJump=%s'", gh.Jump("ansible-ssh")))
		// ANSIBLE_SSH_ARGS replaces Ansible's defaults (ControlPersist
		// would leave a master ssh behind) with the client's ssh config:
		// key, certificate, and the @cert-authority known_hosts.
		env := append(ansibleEnv(u.Dir), "ANSIBLE_SSH_ARGS=-F "+u.ConfigPath)
		r := u.Exec(env, ansible, "all", "-i", inv, "-m", "ping")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "web-1 | SUCCESS") || !strings.Contains(r.Stdout, `"ping": "pong"`) {
			t.Fatalf("ansible -m ping: want SUCCESS and pong, got %s", r)
		}
		checkAnsibleShell(t, u.Exec(env, ansible, "all", "-i", inv, "-m", "shell", "-a", jumpCommand))
		checkInnerAuth(t, gh, "ansible-ssh", "none", "")
	})

	t.Run("Ansible paramiko ProxyCommand", func(t *testing.T) {
		ansible := e2e.RequireProgram(t, "ansible")
		e2e.RequirePython(t, "paramiko")
		u := newClientCreds(t, gh, "ansible-paramiko")
		inv := writeInventory(t, u.Dir, "")
		// The paramiko connection does not verify host certificates: it
		// compares the key inside with ~/.ssh/known_hosts, which pins the
		// bastion's host key for web-1, and would prompt (and so fail) on
		// any other.
		if err := os.MkdirAll(filepath.Join(u.Dir, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		pinned, err := os.ReadFile(u.PinnedHosts)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(u.Dir, ".ssh", "known_hosts"), pinned, 0o600); err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(gh.SSHAddr)
		env := append(ansibleEnv(u.Dir),
			"ANSIBLE_PARAMIKO_PROXY_COMMAND=ssh -F "+u.ConfigPath+" -W %h:%p -p "+port+" ansible-paramiko@"+host,
			"ANSIBLE_PARAMIKO_LOOK_FOR_KEYS=False")
		args := []string{"all", "-i", inv, "-c", "paramiko", "--private-key", u.KeyPath}
		r := u.Exec(env, ansible, append(args, "-m", "ping")...)
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "web-1 | SUCCESS") || !strings.Contains(r.Stdout, `"ping": "pong"`) {
			t.Fatalf("ansible -c paramiko -m ping: want SUCCESS and pong, got %s", r)
		}
		checkAnsibleShell(t, u.Exec(env, ansible, append(args, "-m", "shell", "-a", jumpCommand)...))
		checkInnerAuth(t, gh, "ansible-paramiko", "publickey", u.KeyFP)
	})
}

// goCryptoJump jumps with golang.org/x/crypto/ssh the way a Go program
// would: an outer client with the certificate, a direct-tcpip connection
// through it, an inner client over that.
func goCryptoJump(t *testing.T, gh *e2e.Gatehouse, u clientCreds) e2e.Result {
	t.Helper()
	signer := certSigner(t, u.KeyPath, u.CertPath)
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(gh.HostCA))
	if err != nil {
		t.Fatalf("parse host CA: %v", err)
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return bytes.Equal(k.Marshal(), hostCA.Marshal())
	}}
	cfg := func(user string) *ssh.ClientConfig {
		return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01}, Timeout: 30 * time.Second}
	}
	outer, err := ssh.Dial("tcp", gh.SSHAddr, cfg(u.Name))
	if err != nil {
		t.Fatalf("x/crypto: bastion: %v", err)
	}
	defer outer.Close()
	tunnel, err := outer.Dial("tcp", "web-1:22")
	if err != nil {
		t.Fatalf("x/crypto: direct-tcpip to web-1: %v", err)
	}
	c, chans, reqs, err := ssh.NewClientConn(tunnel, "web-1:22", cfg("ubuntu"))
	if err != nil {
		t.Fatalf("x/crypto: inner connection: %v", err)
	}
	inner := ssh.NewClient(c, chans, reqs)
	defer inner.Close()
	sess, err := inner.NewSession()
	if err != nil {
		t.Fatalf("x/crypto: session: %v", err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	r := e2e.Result{ExitCode: 0}
	if err := sess.Run(jumpCommand); err != nil {
		var ee *ssh.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("x/crypto: run: %v", err)
		}
		r.ExitCode = ee.ExitStatus()
	}
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	return r
}

func certSigner(t *testing.T, keyPath, certPath string) ssh.Signer {
	t.Helper()
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("parse %s: %v", keyPath, err)
	}
	certLine, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certLine)
	if err != nil {
		t.Fatalf("parse %s: %v", certPath, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s holds no certificate", certPath)
	}
	s, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The inner hop's leniency must not leak to the bastion's own listener:
// there a password, keyboard-interactive or a key without a Gatehouse
// certificate is still refused.
func TestBastionStillRequiresACertificate(t *testing.T) {
	gh := startClients(t)
	priv, _ := e2e.GenerateKey(t, t.TempDir(), "uncertified")
	pem, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	kbd := ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })
	for name, auth := range map[string][]ssh.AuthMethod{
		"none":                 nil,
		"password":             {ssh.Password("x")},
		"keyboard-interactive": {kbd},
		"uncertified key":      {ssh.PublicKeys(key)},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ssh.Dial("tcp", gh.SSHAddr, &ssh.ClientConfig{User: "openssh", Auth: auth,
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
			if err == nil {
				c.Close()
				t.Fatal("the bastion let the client in")
			}
			// x/crypto words it "unable to authenticate", or, for a
			// keyboard-interactive attempt the server fails at once,
			// "unexpected message type 51" (USERAUTH_FAILURE).
			t.Logf("refused: %v", err)
		})
	}
}

func writeInventory(t *testing.T, dir, vars string) string {
	t.Helper()
	inv := filepath.Join(dir, "inventory")
	line := "web-1 ansible_user=ubuntu ansible_python_interpreter=/usr/bin/python3 " + vars + "\n"
	if err := os.WriteFile(inv, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return inv
}

// ansibleEnv keeps Ansible's files in dir and its output plain.
func ansibleEnv(dir string) []string {
	return []string{"HOME=" + dir, "ANSIBLE_LOCAL_TEMP=" + filepath.Join(dir, "ansible-tmp"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_TIMEOUT=30", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"PYTHONWARNINGS=ignore"}
}

// checkAnsibleShell fails unless `ansible -m shell -a jumpCommand` reported
// the command's output and exit status (Ansible exits 2 for a failed host,
// and prints the output without its final newline).
func checkAnsibleShell(t *testing.T, r e2e.Result) {
	t.Helper()
	want := fmt.Sprintf("web-1 | FAILED | rc=%d >>\n%s", jumpStatus, strings.TrimSuffix(jumpOutput, "\n"))
	if r.ExitCode != 2 || !strings.Contains(r.Stdout, want) {
		t.Fatalf("ansible -m shell: want exit 2 and %q, got %s", want, r)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
