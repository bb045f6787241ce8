package sshtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Options configure a Node.
type Options struct {
	// UserCA is the CA whose user certificates the node trusts, as sshd's
	// TrustedUserCAKeys. Required.
	UserCA ssh.PublicKey
	// Logins are the accounts that exist on the node; empty: every login
	// exists.
	Logins []string
	// HostCA, when set, signs a host certificate over the node's key for
	// HostNames (default localhost and 127.0.0.1), presented beside the
	// plain key, as sshd's HostCertificate.
	HostCA    ssh.Signer
	HostNames []string
	// MaxSessions, when above zero, is how many session channels one
	// connection may have open, as sshd's MaxSessions: one more is
	// refused as sshd refuses it (administratively prohibited, "open
	// failed").
	MaxSessions int
}

// Login is one authentication the node accepted: the login asked for and
// the certificate that proved it.
type Login struct {
	User        string
	Principals  []string
	KeyID       string
	Extensions  map[string]string
	ValidAfter  time.Time
	ValidBefore time.Time
}

// Node is an SSH server on a loopback port standing in for a node.
type Node struct {
	// Addr is the host:port the node listens on.
	Addr string
	// HostKey is the node's plain host key; HostKeyLine is the same in
	// authorized_keys form (what gatehouse.yaml pins as host_key).
	HostKey     ssh.PublicKey
	HostKeyLine string

	opt    Options
	cfg    *ssh.ServerConfig
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]bool
	logins  []Login
	refused []error
}

// extLogin carries the accepted Login from authentication to the
// connection, in the Permissions x/crypto keeps for the key that
// completed it.
const extLogin = "sshtest-login@gatehouse"

// Start runs a node until the test ends.
func Start(t testing.TB, opt Options) *Node {
	t.Helper()
	if opt.UserCA == nil {
		t.Fatal("sshtest.Start: Options.UserCA is required")
	}
	signer := NewSigner(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Addr: ln.Addr().String(), HostKey: signer.PublicKey(), opt: opt, ln: ln, ctx: ctx, cancel: cancel, conns: map[net.Conn]bool{}}
	n.HostKeyLine = string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	n.cfg = &ssh.ServerConfig{PublicKeyCallback: n.authenticate, ServerVersion: "SSH-2.0-sshtest"}
	n.cfg.AddHostKey(signer)
	if opt.HostCA != nil {
		names := opt.HostNames
		if len(names) == 0 {
			names = []string{"localhost", "127.0.0.1"}
		}
		cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.HostCert, KeyId: "sshtest node", ValidPrincipals: names,
			ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: ssh.CertTimeInfinity}
		if err := cert.SignCert(rand.Reader, opt.HostCA); err != nil {
			t.Fatal(err)
		}
		cs, err := ssh.NewCertSigner(cert, signer)
		if err != nil {
			t.Fatal(err)
		}
		n.cfg.AddHostKey(cs)
	}
	n.wg.Add(1)
	go n.accept()
	t.Cleanup(n.Close)
	return n
}

// Close stops the node and ends every connection.
func (n *Node) Close() {
	n.cancel()
	n.ln.Close()
	n.mu.Lock()
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// Logins are the authentications the node accepted, oldest first.
func (n *Node) Logins() []Login {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.logins)
}

// Refused are the errors of the forwarded-tcpip channels the node asked
// its client to open and was refused (an *ssh.OpenChannelError each),
// oldest first.
func (n *Node) Refused() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.refused)
}

func (n *Node) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		n.conns[c] = true
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serveConn(c)
			n.mu.Lock()
			delete(n.conns, c)
			n.mu.Unlock()
		}()
	}
}

// authenticate is sshd's TrustedUserCAKeys check.
func (n *Node) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("sshtest: only certificates are accepted")
	}
	if len(n.opt.Logins) > 0 && !slices.Contains(n.opt.Logins, meta.User()) {
		return nil, fmt.Errorf("sshtest: no account %q", meta.User())
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, errors.New("sshtest: certificate lacks a principal list")
	}
	ca := n.opt.UserCA.Marshal()
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), ca) }}
	perms, err := checker.Authenticate(meta, key)
	if err != nil {
		return nil, err
	}
	l := Login{User: meta.User(), Principals: cert.ValidPrincipals, KeyID: cert.KeyId, Extensions: maps.Clone(cert.Extensions),
		ValidAfter: time.Unix(int64(cert.ValidAfter), 0), ValidBefore: time.Unix(int64(min(cert.ValidBefore, 1<<62)), 0)}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	// Fresh Permissions: the critical options stay, so x/crypto enforces
	// source-address as sshd does.
	p := &ssh.Permissions{CriticalOptions: maps.Clone(perms.CriticalOptions), Extensions: maps.Clone(perms.Extensions)}
	if p.Extensions == nil {
		p.Extensions = map[string]string{}
	}
	p.Extensions[extLogin] = string(b)
	return p, nil
}

func (n *Node) serveConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, n.cfg)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	var l Login
	_ = json.Unmarshal([]byte(sc.Permissions.Extensions[extLogin]), &l)
	n.mu.Lock()
	n.logins = append(n.logins, l)
	n.mu.Unlock()
	// connCtx ends with the connection: what a channel waits on
	// outside the connection (a forwarded socket) is let go then.
	connCtx, cancel := context.WithCancel(n.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); n.globalRequests(connCtx, sc, reqs, &wg) }()
	var sessions atomic.Int32 // open session channels
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			if n.opt.MaxSessions > 0 && int(sessions.Load()) >= n.opt.MaxSessions {
				_ = nc.Reject(ssh.Prohibited, "open failed")
				continue
			}
			sessions.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); defer sessions.Add(-1); n.session(sc, nc) }()
		case "direct-tcpip":
			if _, ok := sc.Permissions.Extensions["permit-port-forwarding"]; !ok {
				_ = nc.Reject(ssh.Prohibited, "port forwarding not permitted by the certificate")
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); n.directTCPIP(connCtx, nc) }()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "sshtest: unsupported channel type")
		}
	}
}

// session serves one session channel: pty-req (if the certificate permits
// a pty), env, then one of exec, shell or the sftp subsystem.
func (n *Node) session(sc *ssh.ServerConn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel() // before the wait: ends a sleep when the channel goes away
	started, pty := false, false
	start := func(run func() int) {
		started = true
		running.Add(1)
		go func() {
			defer running.Done()
			code := run()
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			_ = ch.CloseWrite()
			_ = ch.Close()
		}()
	}
	for r := range reqs {
		ok := false
		var run func() int
		switch r.Type {
		case "pty-req":
			_, ok = sc.Permissions.Extensions["permit-pty"]
			pty = pty || ok
		case "env", "window-change":
			ok = true
		case "exec":
			var p struct{ Command string }
			if !started && ssh.Unmarshal(r.Payload, &p) == nil {
				run = func() int { return Run(ctx, sc.User(), p.Command, ch, ch, ch.Stderr()) }
			}
		case "shell":
			if !started {
				run = func() int { return echo(ch, pty) }
			}
		case "subsystem":
			var p struct{ Name string }
			if !started && ssh.Unmarshal(r.Payload, &p) == nil && p.Name == "sftp" {
				run = func() int { return serveSFTP(ch) }
			}
		}
		// The reply goes first: a client that saw the exit status
		// before it would take the request as failed.
		if r.WantReply {
			_ = r.Reply(ok || run != nil, nil)
		}
		if run != nil {
			start(run)
		}
	}
}

// echo is the node's shell: what the client types comes back, until
// end of input or a Ctrl-D.
func echo(ch ssh.Channel, pty bool) int {
	buf := make([]byte, 4096)
	for {
		k, err := ch.Read(buf)
		if k > 0 {
			eot := bytes.IndexByte(buf[:k], 0x04)
			if eot >= 0 {
				k = eot
			}
			out := buf[:k]
			if pty {
				out = bytes.ReplaceAll(out, []byte("\r"), []byte("\r\n"))
			}
			if _, werr := ch.Write(out); werr != nil {
				return 1
			}
			if eot >= 0 {
				return 0
			}
		}
		if err != nil {
			return 0
		}
	}
}

func serveSFTP(ch ssh.Channel) int {
	srv, err := sftp.NewServer(ch)
	if err != nil {
		return 1
	}
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return 1
	}
	return 0
}

// directTCPIP connects a forwarded channel to its target.
func (n *Node) directTCPIP(ctx context.Context, nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer c.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	splice(ctx, c, ch, reqs)
}

// splice copies between c and ch both ways until both directions end or
// ctx does, then closes both.
func splice(ctx context.Context, c net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, ch)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(ch, c)
	_ = ch.CloseWrite()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// globalRequests answers tcpip-forward (ssh -R) as sshd does when the
// certificate permits port forwarding: the node listens (on loopback,
// whatever address was asked for) and opens a forwarded-tcpip channel
// to its client for every connection there. Anything else is refused.
func (n *Node) globalRequests(ctx context.Context, sc *ssh.ServerConn, reqs <-chan *ssh.Request, wg *sync.WaitGroup) {
	for r := range reqs {
		var p struct {
			Addr string
			Port uint32
		}
		_, permitted := sc.Permissions.Extensions["permit-port-forwarding"]
		var ln net.Listener
		err := errors.New("sshtest: refused")
		if r.Type == "tcpip-forward" && permitted && ssh.Unmarshal(r.Payload, &p) == nil {
			ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.Port))))
		}
		if err != nil {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
			continue
		}
		port := uint32(ln.Addr().(*net.TCPAddr).Port)
		var reply []byte
		if p.Port == 0 {
			reply = ssh.Marshal(struct{ Port uint32 }{port})
		}
		if r.WantReply {
			_ = r.Reply(true, reply)
		}
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stop()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() { defer wg.Done(); n.forwarded(ctx, sc, c, p.Addr, port) }()
			}
		}()
	}
}

// forwarded hands c, accepted on a remote-forwarded port, to the client
// in a forwarded-tcpip channel; a refusal is kept for Refused.
func (n *Node) forwarded(ctx context.Context, sc *ssh.ServerConn, c net.Conn, addr string, port uint32) {
	orig, _ := c.RemoteAddr().(*net.TCPAddr)
	ch, reqs, err := sc.OpenChannel("forwarded-tcpip", ssh.Marshal(struct {
		Addr     string
		Port     uint32
		OrigAddr string
		OrigPort uint32
	}{addr, port, orig.IP.String(), uint32(orig.Port)}))
	if err != nil {
		n.mu.Lock()
		n.refused = append(n.refused, err)
		n.mu.Unlock()
		c.Close()
		return
	}
	splice(ctx, c, ch, reqs)
}
