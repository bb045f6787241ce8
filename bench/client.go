package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// System is one of the two jump hosts under test, or no jump host at all.
type System int

const (
	// Gatehouse is `gatehouse serve` as the jump host.
	Gatehouse System = iota
	// Baseline is a stock OpenSSH sshd as the jump host.
	Baseline
	// Direct is no jump host: the client connects to the node sshd itself.
	// It is the ceiling neither jump host can beat, since both end in the
	// same node sshd; only the connection-rate case runs it.
	Direct
)

func (s System) String() string {
	switch s {
	case Gatehouse:
		return "gatehouse"
	case Direct:
		return "direct"
	}
	return "openssh"
}

// Systems returns every system, Gatehouse first, in the order cases run
// them (a function, not a variable: package state stays immutable).
func Systems() []System { return []System{Gatehouse, Baseline} }

// SSHConfig writes an OpenSSH client config for sys with the given cipher
// ("" for OpenSSH's default order). The jump ssh that -J spawns reads the
// same file, so both hops use the same identity and cipher.
func (e *Env) SSHConfig(sys System, user, cipher string) (string, error) {
	cert := e.BaseCert
	if sys == Gatehouse {
		cert = e.GHCert[user]
	}
	lines := []string{"Host *",
		"  IdentityFile " + e.KeyPath,
		"  CertificateFile " + cert,
		"  IdentitiesOnly yes",
		"  IdentityAgent none",
		"  PasswordAuthentication no",
		"  KbdInteractiveAuthentication no",
		"  StrictHostKeyChecking yes",
		"  UserKnownHostsFile " + e.KnownHosts,
		"  GlobalKnownHostsFile /dev/null",
		"  UpdateHostKeys no",
		"  BatchMode yes",
		"  ControlMaster no",
		"  ControlPath none",
		"  Compression no",
		"  ConnectTimeout 60",
		"  LogLevel ERROR",
	}
	name := sys.String() + "-" + user
	if cipher != "" {
		lines = append(lines, "  Ciphers "+cipher)
		name += "-" + strings.SplitN(cipher, "@", 2)[0]
	}
	path := filepath.Join(e.Dir, "ssh_config-"+name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write ssh config: %w", err)
	}
	return path, nil
}

// SSHArgs is the OpenSSH command line, up to the remote command, that
// reaches Login on the node through sys as user.
func (e *Env) SSHArgs(sys System, user, cipher string) ([]string, error) {
	cfg, err := e.SSHConfig(sys, user, cipher)
	if err != nil {
		return nil, err
	}
	if sys == Gatehouse {
		return []string{"-F", cfg, "-J", user + "@" + e.GHAddr, Login + "@" + NodeName}, nil
	}
	host, port, _ := net.SplitHostPort(e.NodeAddr)
	return []string{"-F", cfg, "-J", "root@" + e.JumpAddr, "-p", port, Login + "@" + host}, nil
}

// Jumper opens SSH connections to the node through a jump host the way
// `ssh -J` does: an SSH connection to the jump host, a direct-tcpip channel
// to the node, and a second SSH connection over that channel with its own
// host key verification.
type Jumper struct {
	Sys       System
	outerAddr string
	outer     *ssh.ClientConfig
	innerAddr string
	inner     *ssh.ClientConfig
}

// Conn is one jumped connection. Outer is nil for Direct.
type Conn struct {
	Outer, Inner *ssh.Client
}

// Close closes both connections.
func (c *Conn) Close() error {
	err := c.Inner.Close()
	if c.Outer != nil {
		_ = c.Outer.Close()
	}
	return err
}

// Jumper returns a Go client for sys as user using cipher ("" for the
// library default).
func (e *Env) Jumper(sys System, user, cipher string) (*Jumper, error) {
	keyPEM, err := os.ReadFile(e.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("read client key: %w", err)
	}
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse client key: %w", err)
	}
	certPath := e.BaseCert
	if sys == Gatehouse {
		certPath = e.GHCert[user]
	}
	certLine, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certLine)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", certPath, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("%s is not a certificate", certPath)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, fmt.Errorf("certificate signer: %w", err)
	}
	var algos ssh.Config
	if cipher != "" {
		algos.Ciphers = []string{cipher}
	}
	auth := []ssh.AuthMethod{ssh.PublicKeys(signer)}
	j := &Jumper{Sys: sys}
	if sys == Gatehouse {
		hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(e.HostCA))
		if err != nil {
			return nil, fmt.Errorf("parse host CA: %w", err)
		}
		checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
			return bytes.Equal(auth.Marshal(), hostCA.Marshal())
		}}
		hostAlgos := []string{ssh.CertAlgoED25519v01}
		j.outerAddr, j.innerAddr = e.GHAddr, net.JoinHostPort(NodeName, "22")
		j.outer = &ssh.ClientConfig{Config: algos, User: user, Auth: auth, HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: hostAlgos}
		j.inner = &ssh.ClientConfig{Config: algos, User: Login, Auth: auth, HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: hostAlgos}
		return j, nil
	}
	jumpKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(e.JumpHostKey))
	if err != nil {
		return nil, fmt.Errorf("parse jump host key: %w", err)
	}
	nodeKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(e.NodeHostKey))
	if err != nil {
		return nil, fmt.Errorf("parse node host key: %w", err)
	}
	j.inner = &ssh.ClientConfig{Config: algos, User: Login, Auth: auth, HostKeyCallback: ssh.FixedHostKey(nodeKey)}
	j.innerAddr = e.NodeAddr
	if sys == Direct {
		return j, nil
	}
	j.outerAddr = e.JumpAddr
	j.outer = &ssh.ClientConfig{Config: algos, User: "root", Auth: auth, HostKeyCallback: ssh.FixedHostKey(jumpKey)}
	return j, nil
}

// Dial opens a jumped connection (for Direct, a connection straight to the
// node); ctx bounds the whole setup.
func (j *Jumper) Dial(ctx context.Context) (*Conn, error) {
	if j.Sys == Direct {
		c, stop, err := dialSSH(ctx, j.innerAddr, j.inner)
		if err != nil {
			return nil, fmt.Errorf("ssh to node directly: %w", err)
		}
		stop()
		return &Conn{Inner: c}, nil
	}
	outer, stop, err := dialSSH(ctx, j.outerAddr, j.outer)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s jump host: %w", j.Sys, err)
	}
	// The inner handshake runs over the outer socket: keep cutting it if
	// ctx ends until that is done too.
	defer stop()
	ch, err := outer.DialContext(ctx, "tcp", j.innerAddr)
	if err != nil {
		outer.Close()
		return nil, fmt.Errorf("open channel to %s through %s: %w", j.innerAddr, j.Sys, err)
	}
	ic, ichans, ireqs, err := ssh.NewClientConn(ch, j.innerAddr, j.inner)
	if err != nil {
		outer.Close()
		return nil, fmt.Errorf("ssh to node through %s: %w", j.Sys, err)
	}
	if ctx.Err() != nil {
		outer.Close()
		return nil, fmt.Errorf("dial through %s: %w", j.Sys, ctx.Err())
	}
	return &Conn{Outer: outer, Inner: ssh.NewClient(ic, ichans, ireqs)}, nil
}

// dialSSH opens an SSH connection to addr. The handshake takes no context,
// so until stop is called the socket is cut when ctx ends.
func dialSSH(ctx context.Context, addr string, cfg *ssh.ClientConfig) (c *ssh.Client, stop func(), err error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			tcp.Close()
		case <-done:
		}
	}()
	sc, chans, reqs, err := ssh.NewClientConn(tcp, addr, cfg)
	if err == nil && ctx.Err() != nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		close(done)
		tcp.Close()
		return nil, nil, err
	}
	return ssh.NewClient(sc, chans, reqs), sync.OnceFunc(func() { close(done) }), nil
}

// Exec runs cmd on a new session of c and returns its combined output.
func (c *Conn) Exec(cmd string) (string, error) {
	s, err := c.Inner.NewSession()
	if err != nil {
		return "", fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return string(out), fmt.Errorf("run %q: %w", cmd, err)
	}
	return string(out), nil
}

// tokenFor is the text typed for probe i of session s: a shell comment, so
// the shell does nothing with it, naming the probe uniquely.
func tokenFor(s, i int) string { return "#p" + strconv.Itoa(s) + "x" + strconv.Itoa(i) + "z" }
