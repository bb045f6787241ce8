package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// CLIOptions tune Login.
type CLIOptions struct {
	Home       string       // default ~/.gatehouse
	Headless   bool         // print the URL instead of running xdg-open
	Stdout     io.Writer    // default os.Stdout
	HTTPClient *http.Client // default: 30s timeout
}

// File names inside Home.
const (
	keyFile        = "id_ed25519"
	certFile       = "id_ed25519-cert.pub"
	pubFile        = "id_ed25519.pub"
	knownHostsFile = "known_hosts"
	loginFile      = "login.json"
)

// exchangeResponse mirrors the bastion's /cli-login/exchange answer.
type exchangeResponse struct {
	User        string    `json:"user"`
	LoginID     string    `json:"login_id"`
	Certificate string    `json:"certificate"`
	Expires     time.Time `json:"expires"`
	SSHAddr     string    `json:"ssh_addr"`
	KnownHosts  string    `json:"known_hosts"`
}

// loginRecord is what logout needs later.
type loginRecord struct {
	Proxy   string    `json:"proxy"`
	User    string    `json:"user"`
	LoginID string    `json:"login_id"`
	Expires time.Time `json:"expires"`
	SSHAddr string    `json:"ssh_addr"`
}

func (o *CLIOptions) fill() error {
	if o.Home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("find home directory: %w", err)
		}
		o.Home = filepath.Join(h, ".gatehouse")
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Login runs `gatehouse login --proxy proxyURL`.
func Login(ctx context.Context, proxyURL string, opts CLIOptions) error {
	if err := opts.fill(); err != nil {
		return err
	}
	proxy := strings.TrimSuffix(proxyURL, "/")
	if u, err := url.Parse(proxy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("proxy %q: want the bastion's web address, e.g. https://bastion.example.com", proxyURL)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on loopback for the browser redirect: %w", err)
	}
	challenge := randomString()
	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: callbackHandler(challenge, codes)}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	port := ln.Addr().(*net.TCPAddr).Port
	loginURL := proxy + "/cli-login?" + url.Values{
		"port":      {fmt.Sprint(port)},
		"pubkey":    {base64.RawURLEncoding.EncodeToString([]byte(authorized))},
		"challenge": {challenge},
	}.Encode()
	if opts.Headless || exec.Command("xdg-open", loginURL).Start() != nil {
		fmt.Fprintf(opts.Stdout, "Open this URL in a browser to sign in:\n  %s\n", loginURL)
	} else {
		fmt.Fprintf(opts.Stdout, "Opened a browser to sign in. If nothing appeared, open:\n  %s\n", loginURL)
	}

	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return fmt.Errorf("wait for browser sign-in: %w", ctx.Err())
	}

	body, _ := json.Marshal(map[string]string{"code": code, "public_key": authorized})
	var resp exchangeResponse
	if err := postJSON(ctx, opts.HTTPClient, proxy+"/cli-login/exchange", body, &resp); err != nil {
		return fmt.Errorf("exchange sign-in code for a certificate: %w", err)
	}
	certPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.Certificate))
	if err != nil {
		return fmt.Errorf("bastion sent a certificate that does not parse: %w", err)
	}
	cert, ok := certPub.(*ssh.Certificate)
	if !ok || !bytesEqual(cert.Key.Marshal(), sshPub.Marshal()) {
		return errors.New("bastion sent a certificate for another key")
	}
	if err := writeFiles(opts.Home, priv, authorized, resp, proxy); err != nil {
		return err
	}
	agentMsg := addToAgent(priv, cert)
	printConfig(opts.Stdout, opts.Home, resp, agentMsg)
	return nil
}

func bytesEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// callbackHandler takes exactly one code whose challenge matches ours;
// anything else on the loopback port is ignored.
func callbackHandler(challenge string, codes chan<- string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("challenge")), []byte(challenge)) != 1 || q.Get("code") == "" {
			http.Error(w, "gatehouse: this sign-in does not belong to the waiting gatehouse login", http.StatusBadRequest)
			return
		}
		select {
		case codes <- q.Get("code"):
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Gatehouse</title><h1 id="title">Signed in</h1><p id="message">You can close this window and return to your terminal.</p>`)
	})
	return mux
}

func postJSON(ctx context.Context, c *http.Client, u string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func writeFiles(home string, priv ed25519.PrivateKey, authorized string, resp exchangeResponse, proxy string) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", home, err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "gatehouse "+resp.User)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	rec, _ := json.MarshalIndent(loginRecord{Proxy: proxy, User: resp.User, LoginID: resp.LoginID, Expires: resp.Expires, SSHAddr: resp.SSHAddr}, "", "  ")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, pem.EncodeToMemory(block), 0o600},
		{pubFile, []byte(authorized + "\n"), 0o644},
		{certFile, []byte(resp.Certificate + "\n"), 0o644},
		{knownHostsFile, []byte(resp.KnownHosts + "\n"), 0o644},
		{loginFile, append(rec, '\n'), 0o600},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(home, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic replaces path so ssh never reads a half-written key.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// addToAgent adds key+certificate to the agent at SSH_AUTH_SOCK, if any,
// and says what happened; failing to reach the agent is not fatal because
// the files are written.
func addToAgent(priv ed25519.PrivateKey, cert *ssh.Certificate) string {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return ""
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Sprintf("could not reach ssh-agent (%v); use the files above", err)
	}
	defer conn.Close()
	life := time.Until(time.Unix(int64(cert.ValidBefore), 0))
	if life < time.Second {
		life = time.Second
	}
	err = agent.NewClient(conn).Add(agent.AddedKey{
		PrivateKey: priv, Certificate: cert, LifetimeSecs: uint32(life / time.Second),
		Comment: "gatehouse " + cert.KeyId,
	})
	if err != nil {
		return fmt.Sprintf("could not add the certificate to ssh-agent (%v); use the files above", err)
	}
	return "Added the certificate to your ssh-agent until it expires."
}

func printConfig(w io.Writer, home string, resp exchangeResponse, agentMsg string) {
	fmt.Fprintf(w, "Signed in as %s until %s.\n", resp.User, resp.Expires.Local().Format(time.RFC1123))
	fmt.Fprintf(w, "Certificate: %s\n", filepath.Join(home, certFile))
	if agentMsg != "" {
		fmt.Fprintln(w, agentMsg)
	}
	host, port := "BASTION", "22"
	if h, p, err := net.SplitHostPort(resp.SSHAddr); err == nil {
		host, port = h, p
	}
	fmt.Fprintf(w, "\nAdd to ~/.ssh/config:\n")
	fmt.Fprintf(w, "Host gatehouse\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n  CertificateFile %s\n  UserKnownHostsFile %s\n",
		host, port, resp.User, filepath.Join(home, keyFile), filepath.Join(home, certFile), filepath.Join(home, knownHostsFile))
	if resp.KnownHosts != "" {
		fmt.Fprintf(w, "\nAdd to ~/.ssh/known_hosts (already in %s):\n%s\n", filepath.Join(home, knownHostsFile), resp.KnownHosts)
	}
	fmt.Fprintf(w, "\nThen: ssh -J gatehouse LOGIN@NODE\n")
}

// Logout runs `gatehouse logout`: it revokes the login of the certificate
// in home at the bastion, removes it from the agent and deletes the files.
// proxyURL may be empty to use the bastion recorded at login.
func Logout(ctx context.Context, proxyURL, home string) error {
	o := CLIOptions{Home: home}
	if err := o.fill(); err != nil {
		return err
	}
	home = o.Home
	recData, err := os.ReadFile(filepath.Join(home, loginFile))
	if err != nil {
		return fmt.Errorf("read login record (were you logged in?): %w", err)
	}
	var rec loginRecord
	if err := json.Unmarshal(recData, &rec); err != nil {
		return fmt.Errorf("decode %s: %w", filepath.Join(home, loginFile), err)
	}
	proxy := strings.TrimSuffix(proxyURL, "/")
	if proxy == "" {
		proxy = rec.Proxy
	}
	keyPEM, err := os.ReadFile(filepath.Join(home, keyFile))
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("parse key %s: %w", filepath.Join(home, keyFile), err)
	}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := postJSON(ctx, o.HTTPClient, proxy+"/cli-login/nonce", []byte("{}"), &nonce); err != nil {
		return fmt.Errorf("get logout nonce: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, revokeMessage(nonce.Nonce, rec.LoginID))
	if err != nil {
		return fmt.Errorf("sign logout nonce: %w", err)
	}
	body, _ := json.Marshal(map[string]string{
		"login_id":   rec.LoginID,
		"public_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		"nonce":      nonce.Nonce,
		"signature":  base64.StdEncoding.EncodeToString(ssh.Marshal(sig)),
	})
	var out map[string]string
	if err := postJSON(ctx, o.HTTPClient, proxy+"/cli-login/revoke", body, &out); err != nil {
		return fmt.Errorf("revoke login: %w", err)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			ag := agent.NewClient(conn)
			// The agent may hold the key plain, as a certificate, or both.
			_ = ag.Remove(signer.PublicKey())
			if b, err := os.ReadFile(filepath.Join(home, certFile)); err == nil {
				if c, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
					_ = ag.Remove(c)
				}
			}
			conn.Close()
		}
	}
	for _, f := range []string{keyFile, pubFile, certFile, knownHostsFile, loginFile} {
		if err := os.Remove(filepath.Join(home, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return nil
}

// revokeMessage must match identity.RevokeMessage.
func revokeMessage(nonce, loginID string) []byte {
	return []byte("gatehouse-cli-revoke-v1\x00" + nonce + "\x00" + loginID)
}
