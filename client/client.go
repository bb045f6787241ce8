// Package client is the user side of Gatehouse's command line: it finds the
// user's Gatehouse credentials (from `gatehouse login`, or given explicitly)
// and reaches the bastion with them. `gatehouse request` talks to the
// bastion's HTTP API through apiclient, as the user, with a short-lived user
// API token that SSH (the certificate) obtains for each run: the same
// checks as the web UI, the same audit, no second secret kept on disk.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
)

// Profile is how the CLI reaches the bastion as the user: what
// `gatehouse login` left in ~/.gatehouse (login.json, id_ed25519,
// id_ed25519-cert.pub, known_hosts), or the same given by flags.
type Profile struct {
	Proxy      string `json:"proxy"`    // web URL of the bastion
	SSHAddr    string `json:"ssh_addr"` // host:port of the bastion's SSH listener
	User       string `json:"user"`     // certificate principal
	KeyFile    string `json:"-"`        // private key; certificate at KeyFile-cert.pub
	HostCALine string `json:"-"`        // host CA public key (authorized_keys format)
}

// LoadProfile reads what `gatehouse login` wrote into dir.
func LoadProfile(dir string) (Profile, error) {
	var p Profile
	b, err := os.ReadFile(filepath.Join(dir, "login.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return p, fmt.Errorf("not logged in (no %s): run `gatehouse login --proxy URL` first, or pass --bastion, --user, --identity and --host-ca", filepath.Join(dir, "login.json"))
		}
		return p, fmt.Errorf("read login: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("parse %s: %w", filepath.Join(dir, "login.json"), err)
	}
	p.KeyFile = filepath.Join(dir, "id_ed25519")
	kh, err := os.ReadFile(filepath.Join(dir, "known_hosts"))
	if err != nil {
		return p, fmt.Errorf("read known_hosts: %w", err)
	}
	for _, line := range strings.Split(string(kh), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "@cert-authority" {
			p.HostCALine = strings.Join(f[2:], " ")
			break
		}
	}
	return p, nil
}

// Run executes a bastion command (e.g. ["request", "dba", "--reason", "x"])
// with the profile's credentials, streaming its output. It returns the
// command's exit status.
func Run(ctx context.Context, p Profile, args []string, stdout, stderr io.Writer) (int, error) {
	signer, err := loadSigner(p.KeyFile)
	if err != nil {
		return 0, err
	}
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(p.HostCALine))
	if err != nil {
		return 0, fmt.Errorf("profile host CA: %w", err)
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return bytes.Equal(auth.Marshal(), hostCA.Marshal())
	}}
	cfg := &ssh.ClientConfig{
		User:              p.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   checker.CheckHostKey,
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		Timeout:           15 * time.Second,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.SSHAddr)
	if err != nil {
		return 0, fmt.Errorf("connect to bastion %s: %w", p.SSHAddr, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, p.SSHAddr, cfg)
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("log in to bastion %s as %s: %w", p.SSHAddr, p.User, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return 0, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	// The bastion escapes what it prints; escaping again here keeps a
	// reviewer's terminal safe from an older or misbehaving bastion too.
	// Only newlines pass.
	safeOut, safeErr := termsafe.NewWriter(stdout), termsafe.NewWriter(stderr)
	defer func() { _ = safeOut.Flush(); _ = safeErr.Flush() }()
	sess.Stdout, sess.Stderr = safeOut, safeErr
	go func() {
		<-ctx.Done()
		client.Close()
	}()
	if err := sess.Run(shellJoin(args)); err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return ee.ExitStatus(), nil
		}
		return 0, fmt.Errorf("run %s on bastion: %w", args[0], err)
	}
	return 0, nil
}

func loadSigner(keyFile string) (ssh.Signer, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	key, err := ssh.ParsePrivateKey(kb)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", keyFile, err)
	}
	cb, err := os.ReadFile(strings.TrimSuffix(keyFile, ".pub") + "-cert.pub")
	if err != nil {
		return nil, fmt.Errorf("read certificate for %s (run gatehouse login): %w", keyFile, err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(cb)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("certificate file holds a plain key")
	}
	if time.Now().Unix() >= int64(cert.ValidBefore) {
		return nil, errors.New("your Gatehouse certificate has expired: run gatehouse login again")
	}
	return ssh.NewCertSigner(cert, key)
}

// shellJoin quotes args so the bastion's command parser sees them as given.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>*?()[]{}!#~") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
