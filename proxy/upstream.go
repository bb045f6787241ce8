package proxy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
)

// upstream is the bastion's own SSH connection to a node.
type upstream struct {
	conn  ssh.Conn
	chans <-chan ssh.NewChannel
}

// errHostKey marks a node whose host key did not verify.
var errHostKey = errors.New("host key verification failed")

// dialNode connects to node as login with a freshly minted certificate whose
// key id names the real user and the session, valid for minutes only.
func (s *Server) dialNode(ctx context.Context, id Identity, login string, node config.Node, sessID string, v Verdict) (*upstream, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate session key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("session key signer: %w", err)
	}
	ext := map[string]string{"permit-pty": ""}
	if v.PortForwarding {
		ext["permit-port-forwarding"] = ""
	}
	if v.AgentForwarding {
		ext["permit-agent-forwarding"] = ""
	}
	cert, err := s.opt.CA.SignUser(ca.UserCert{
		Key:        signer.PublicKey(),
		Principals: []string{login},
		KeyID:      fmt.Sprintf("gatehouse user=%s session=%s node=%s", id.User, sessID, node.Name),
		TTL:        s.opt.Timeouts.NodeCertTTL,
		Extensions: ext,
	})
	if err != nil {
		return nil, err
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, fmt.Errorf("certificate signer: %w", err)
	}
	hostKeyCB, algos, err := hostKeyCheck(node)
	if err != nil {
		return nil, err
	}
	cc := &ssh.ClientConfig{
		Config:            modernConfig(),
		User:              login,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback:   hostKeyCB,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-Gatehouse",
		Timeout:           s.opt.Timeouts.NodeDial,
	}
	dctx, cancel := context.WithTimeout(ctx, s.opt.Timeouts.NodeDial)
	defer cancel()
	var d net.Dialer
	tcp, err := d.DialContext(dctx, "tcp", node.Address)
	if err != nil {
		return nil, fmt.Errorf("dial node %s (%s): %w", node.Name, node.Address, err)
	}
	if tc, ok := tcp.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	// Bound the handshake by the same timeout; cleared once it completes.
	if dl, ok := dctx.Deadline(); ok {
		_ = tcp.SetDeadline(dl)
	}
	conn, chans, reqs, err := ssh.NewClientConn(newQueuedConn(tcp), node.Address, cc)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("ssh handshake with node %s (%s): %w", node.Name, node.Address, err)
	}
	_ = tcp.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	return &upstream{conn: conn, chans: chans}, nil
}

// hostKeyCheck verifies the node by its pinned key or its host CA. Nothing
// else is ever accepted.
func hostKeyCheck(node config.Node) (ssh.HostKeyCallback, []string, error) {
	if node.HostKey != "" {
		pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(node.HostKey))
		if err != nil {
			return nil, nil, fmt.Errorf("node %s: parse pinned host_key: %w", node.Name, err)
		}
		want := pinned.Marshal()
		cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), want) {
				return fmt.Errorf("%w: node %s presented %s, pinned %s", errHostKey, node.Name, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(pinned))
			}
			return nil
		}
		return cb, algorithmsFor(pinned.Type()), nil
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(node.NodeHostCA))
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: parse node_host_ca: %w", node.Name, err)
	}
	want := caKey.Marshal()
	host, _, _ := net.SplitHostPort(node.Address)
	checker := &ssh.CertChecker{
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), want) },
	}
	cb := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		cert, ok := key.(*ssh.Certificate)
		if !ok {
			return fmt.Errorf("%w: node %s presented a plain key, a host certificate was required", errHostKey, node.Name)
		}
		// The certificate must name the node by its inventory name or address.
		if err := checker.CheckHostKey(node.Name+":22", remote, cert); err == nil {
			return nil
		}
		if err := checker.CheckHostKey(net.JoinHostPort(host, "22"), remote, cert); err != nil {
			return fmt.Errorf("%w: node %s: %v", errHostKey, node.Name, err)
		}
		return nil
	}
	return cb, []string{ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01}, nil
}

func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	default:
		return []string{keyType}
	}
}
