package proxy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
)

// Probe stages, in the order a connection to a node passes them.
const (
	ProbeReach   = "reachable"
	ProbeHostKey = "host key"
	ProbeLogin   = "login"
)

// ProbeError says at which stage a probe of a node failed.
type ProbeError struct {
	Stage string // ProbeReach, ProbeHostKey or ProbeLogin
	Err   error
}

func (e *ProbeError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *ProbeError) Unwrap() error { return e.Err }

// ProbeNode connects to node the way a session would, verifying the node
// by its pinned key or host CA and logging in as login with a fresh
// one-minute certificate from authority, then disconnects without opening
// a channel. It answers "would a session to this node work" before a user
// finds out (gatehouse doctor). A failure is a *ProbeError.
func ProbeNode(ctx context.Context, authority *ca.Authority, node config.Node, login string, timeout time.Duration) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate probe key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return fmt.Errorf("probe key signer: %w", err)
	}
	cert, err := authority.SignUser(ca.UserCert{
		Key:        signer.PublicKey(),
		Principals: []string{login},
		KeyID:      fmt.Sprintf("gatehouse doctor node=%s", node.Name),
		TTL:        time.Minute,
	})
	if err != nil {
		return fmt.Errorf("sign probe certificate: %w", err)
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return fmt.Errorf("probe certificate signer: %w", err)
	}
	check, algos, err := hostKeyCheck(node)
	if err != nil {
		return &ProbeError{Stage: ProbeHostKey, Err: err}
	}
	var hostKeyOK bool
	var hostKeyErr error
	cc := &ssh.ClientConfig{
		Config: modernConfig(),
		User:   login,
		Auth:   []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := check(host, remote, key); err != nil {
				hostKeyErr = err
				return err
			}
			hostKeyOK = true
			return nil
		},
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-Gatehouse",
		Timeout:           timeout,
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	tcp, err := d.DialContext(dctx, "tcp", node.Address)
	if err != nil {
		return &ProbeError{Stage: ProbeReach, Err: fmt.Errorf("dial %s: %w", node.Address, err)}
	}
	defer tcp.Close()
	if dl, ok := dctx.Deadline(); ok {
		_ = tcp.SetDeadline(dl)
	}
	conn, chans, reqs, err := ssh.NewClientConn(tcp, node.Address, cc)
	if err != nil {
		switch {
		case hostKeyErr != nil:
			return &ProbeError{Stage: ProbeHostKey, Err: hostKeyErr}
		case !hostKeyOK:
			// The handshake broke before the node proved itself: not an
			// SSH server, or one that hung up on us.
			return &ProbeError{Stage: ProbeReach, Err: fmt.Errorf("ssh handshake with %s: %w", node.Address, err)}
		default:
			return &ProbeError{Stage: ProbeLogin, Err: fmt.Errorf("the node refused a certificate from the Gatehouse user CA for login %q: %w", login, err)}
		}
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "probe")
		}
	}()
	return conn.Close()
}
