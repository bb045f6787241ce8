// Package ca holds Gatehouse's two certificate authorities and the bastion's
// own host key. The user CA signs the short-lived certificates the bastion
// presents to nodes (and that `gatehouse cert issue` and `gatehouse login`
// hand to users); the host CA signs the host certificates the bastion shows
// for itself and for every node name it terminates a jump for, so clients
// trust all of them with a single @cert-authority line.
package ca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// File names inside data_dir.
const (
	UserCAFile  = "user_ca"
	HostCAFile  = "host_ca"
	HostKeyFile = "host_key"
)

// Authority signs user and host certificates.
type Authority struct {
	userCA  ssh.Signer
	hostCA  ssh.Signer
	hostKey ssh.Signer

	mu        sync.Mutex
	hostCerts map[string]hostCert // node name -> host certificate signer
}

type hostCert struct {
	signer ssh.Signer
	until  time.Time
}

// Load reads the CAs and host key from dataDir, generating any that are
// missing (ed25519, mode 0600) so the first command that needs them works.
func Load(dataDir string) (*Authority, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	a := &Authority{hostCerts: map[string]hostCert{}}
	var err error
	if a.userCA, err = loadOrCreate(filepath.Join(dataDir, UserCAFile)); err != nil {
		return nil, err
	}
	if a.hostCA, err = loadOrCreate(filepath.Join(dataDir, HostCAFile)); err != nil {
		return nil, err
	}
	if a.hostKey, err = loadOrCreate(filepath.Join(dataDir, HostKeyFile)); err != nil {
		return nil, err
	}
	return a, nil
}

func loadOrCreate(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generate key %s: %w", path, gerr)
		}
		block, merr := ssh.MarshalPrivateKey(priv, "gatehouse")
		if merr != nil {
			return nil, fmt.Errorf("encode key %s: %w", path, merr)
		}
		data = pem.EncodeToMemory(block)
		// Two commands racing to create the same CA must not end up with
		// different keys: the key is written whole to a file of its own,
		// then linked into place, which fails if a key is already there;
		// the loser reads the winner's key, never a half-written file.
		won, werr := publishKey(path, data)
		if werr != nil {
			return nil, werr
		}
		if !won {
			return loadOrCreate(path)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	return s, nil
}

// publishKey writes data to path unless path exists; won is false when it
// did.
func publishKey(path string, data []byte) (won bool, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return false, fmt.Errorf("create key %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write key %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("create key %s: %w", path, err)
	}
	return true, nil
}

// UserCAKey is the user CA public key (for nodes' TrustedUserCAKeys).
func (a *Authority) UserCAKey() ssh.PublicKey { return a.userCA.PublicKey() }

// HostCAKey is the host CA public key (for clients' @cert-authority line).
func (a *Authority) HostCAKey() ssh.PublicKey { return a.hostCA.PublicKey() }

// AuthorizedLine formats a public key in OpenSSH authorized_keys form with a comment.
func AuthorizedLine(k ssh.PublicKey, comment string) string {
	line := bytes.TrimSpace(ssh.MarshalAuthorizedKey(k))
	if comment != "" {
		return string(line) + " " + comment
	}
	return string(line)
}

// UserCert describes a user certificate to sign.
type UserCert struct {
	Key        ssh.PublicKey
	Principals []string
	KeyID      string
	TTL        time.Duration
	Extensions map[string]string
	// Backdate allows for clock skew between the bastion and nodes.
	Backdate time.Duration
}

// SignUser signs a user certificate with the user CA.
func (a *Authority) SignUser(u UserCert) (*ssh.Certificate, error) {
	if len(u.Principals) == 0 {
		// A certificate without principals is valid for every login on
		// OpenSSH; never mint one.
		return nil, errors.New("sign user certificate: no principals")
	}
	if u.TTL <= 0 {
		return nil, errors.New("sign user certificate: ttl must be positive")
	}
	now := time.Now()
	if u.Backdate == 0 {
		u.Backdate = time.Minute
	}
	c := &ssh.Certificate{
		Key:             u.Key,
		Serial:          randSerial(),
		CertType:        ssh.UserCert,
		KeyId:           u.KeyID,
		ValidPrincipals: u.Principals,
		ValidAfter:      uint64(now.Add(-u.Backdate).Unix()),
		ValidBefore:     uint64(now.Add(u.TTL).Unix()),
		Permissions:     ssh.Permissions{Extensions: u.Extensions},
	}
	if err := c.SignCert(rand.Reader, a.userCA); err != nil {
		return nil, fmt.Errorf("sign user certificate for %v: %w", u.Principals, err)
	}
	return c, nil
}

// HostSigner returns a signer presenting a host certificate for name (a node
// name or the bastion's own address), signed by the host CA over the
// bastion's host key. Certificates are cached and renewed before expiry.
func (a *Authority) HostSigner(name string) (ssh.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if hc, ok := a.hostCerts[name]; ok && now.Before(hc.until) {
		return hc.signer, nil
	}
	const ttl = 24 * time.Hour
	c := &ssh.Certificate{
		Key:             a.hostKey.PublicKey(),
		Serial:          randSerial(),
		CertType:        ssh.HostCert,
		KeyId:           "gatehouse host " + name,
		ValidPrincipals: []string{name},
		ValidAfter:      uint64(now.Add(-5 * time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
	}
	if err := c.SignCert(rand.Reader, a.hostCA); err != nil {
		return nil, fmt.Errorf("sign host certificate for %s: %w", name, err)
	}
	s, err := ssh.NewCertSigner(c, a.hostKey)
	if err != nil {
		return nil, fmt.Errorf("host certificate signer for %s: %w", name, err)
	}
	a.hostCerts[name] = hostCert{signer: s, until: now.Add(ttl / 2)}
	return s, nil
}

// BastionSigner returns a host certificate signer for the bastion itself,
// valid for all the given names (host names and IP addresses it is reached
// by). OpenSSH matches the name the user typed, so list every one.
func (a *Authority) BastionSigner(names []string) (ssh.Signer, error) {
	now := time.Now()
	c := &ssh.Certificate{
		Key:             a.hostKey.PublicKey(),
		Serial:          randSerial(),
		CertType:        ssh.HostCert,
		KeyId:           "gatehouse bastion",
		ValidPrincipals: names,
		ValidAfter:      uint64(now.Add(-5 * time.Minute).Unix()),
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := c.SignCert(rand.Reader, a.hostCA); err != nil {
		return nil, fmt.Errorf("sign bastion host certificate: %w", err)
	}
	return ssh.NewCertSigner(c, a.hostKey)
}

// HostKey is the bastion's plain host key signer.
func (a *Authority) HostKey() ssh.Signer { return a.hostKey }

// CheckUserCert verifies that key is a user certificate signed by the user
// CA, currently valid, and naming user as a principal. It returns the
// certificate on success.
func (a *Authority) CheckUserCert(key ssh.PublicKey, user string) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("not a certificate")
	}
	if cert.CertType != ssh.UserCert {
		return nil, errors.New("not a user certificate")
	}
	caKey := a.userCA.PublicKey().Marshal()
	checker := ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			return bytes.Equal(auth.Marshal(), caKey)
		},
		SupportedCriticalOptions: []string{"source-address"},
	}
	if !checker.IsUserAuthority(cert.SignatureKey) {
		return nil, errors.New("certificate signed by an unknown authority")
	}
	if err := checker.CheckCert(user, cert); err != nil {
		return nil, fmt.Errorf("certificate rejected: %w", err)
	}
	return cert, nil
}

// CheckSourceAddress enforces a certificate's source-address critical option.
func CheckSourceAddress(cert *ssh.Certificate, remote net.Addr) error {
	opt, ok := cert.CriticalOptions["source-address"]
	if !ok {
		return nil
	}
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return errors.New("source-address: remote is not TCP")
	}
	for _, s := range bytes.Split([]byte(opt), []byte(",")) {
		_, n, err := net.ParseCIDR(string(s))
		if err != nil {
			if ip := net.ParseIP(string(s)); ip != nil && ip.Equal(tcp.IP) {
				return nil
			}
			continue
		}
		if n.Contains(tcp.IP) {
			return nil
		}
	}
	return fmt.Errorf("source-address %s does not allow %s", opt, tcp.IP)
}

func randSerial() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
