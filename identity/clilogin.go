package identity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"golang.org/x/crypto/ssh"
)

// cliCode is stored under cli-code:<code> between the browser confirm and
// the CLI's exchange.
type cliCode struct {
	User     string              `json:"user"`
	Claims   map[string][]string `json:"claims"`
	KeyFP    string              `json:"key_fp"`
	WebLogin string              `json:"web_login"`
}

// Wire types of the CLI endpoints; identity/cli has its own copies so the
// client does not link the server.
type cliExchangeRequest struct {
	Code      string `json:"code"`
	PublicKey string `json:"public_key"` // authorized_keys format
}

type cliExchangeResponse struct {
	User        string    `json:"user"`
	LoginID     string    `json:"login_id"`
	Certificate string    `json:"certificate"` // authorized_keys format
	Expires     time.Time `json:"expires"`
	SSHAddr     string    `json:"ssh_addr,omitempty"`
	KnownHosts  string    `json:"known_hosts,omitempty"` // @cert-authority line
}

type cliRevokeRequest struct {
	LoginID   string `json:"login_id"`
	PublicKey string `json:"public_key"`
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"` // base64 of ssh wire-format signature
}

// RevokeMessage is what `gatehouse logout` signs to prove it holds the
// certificate's key. The prefix keeps the signature from being valid for
// any other protocol.
func RevokeMessage(nonce, loginID string) []byte {
	return []byte("gatehouse-cli-revoke-v1\x00" + nonce + "\x00" + loginID)
}

// cliParams are the query parameters of /cli-login.
type cliParams struct {
	port      int
	pub       ssh.PublicKey
	pubRaw    string
	challenge string
}

func parseCLIParams(get func(string) string) (cliParams, error) {
	port, err := strconv.Atoi(get("port"))
	if err != nil || port < 1 || port > 65535 {
		return cliParams{}, errors.New("port must be a TCP port number")
	}
	raw := get("pubkey")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return cliParams{}, errors.New("pubkey must be base64url of an authorized_keys line")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return cliParams{}, errors.New("pubkey is not an SSH public key")
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return cliParams{}, errors.New("pubkey must be a plain key, not a certificate")
	}
	ch := get("challenge")
	if len(ch) < 16 || len(ch) > 128 || strings.ContainsAny(ch, "&?#/ ") {
		return cliParams{}, errors.New("challenge must be 16 to 128 URL-safe characters")
	}
	return cliParams{port: port, pub: pub, pubRaw: raw, challenge: ch}, nil
}

func (s *Service) handleCLILoginPage(w http.ResponseWriter, r *http.Request) {
	web, _ := LoginFromContext(r.Context())
	p, err := parseCLIParams(r.URL.Query().Get)
	if err != nil {
		s.page(w, http.StatusBadRequest, "Command-line sign-in not valid", "This link is malformed ("+err.Error()+"). Run gatehouse login again.", nil)
		return
	}
	s.pageAs(w, http.StatusOK, "Confirm command-line sign-in",
		"The gatehouse command on this computer asks for a certificate for the key below. Confirm only if you just ran gatehouse login.",
		web.User, &confirmForm{
			Action: "/cli-login",
			CSRF:   web.CSRFToken,
			Facts:  []fact{{"Key fingerprint", ssh.FingerprintSHA256(p.pub)}, {"Signed in as", web.User}},
			Hidden: []fact{{"port", strconv.Itoa(p.port)}, {"pubkey", p.pubRaw}, {"challenge", p.challenge}},
		})
}

func (s *Service) handleCLILoginConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web, _ := LoginFromContext(ctx)
	if !s.CheckCSRF(r) {
		http.Error(w, "gatehouse: confirmation refused: the form is stale or came from another site; run gatehouse login again", http.StatusForbidden)
		return
	}
	p, err := parseCLIParams(r.PostFormValue)
	if err != nil {
		s.page(w, http.StatusBadRequest, "Command-line sign-in not valid", "This request is malformed ("+err.Error()+"). Run gatehouse login again.", nil)
		return
	}
	if r.PostFormValue("action") == "cancel" {
		_ = s.audit(ctx, audit.TypeOIDCCLILoginRefused, web.User, web.User, "cancelled", map[string]any{"key_fp": ssh.FingerprintSHA256(p.pub)})
		s.page(w, http.StatusOK, "Sign-in cancelled", "The command-line sign-in was cancelled.", nil)
		return
	}
	code := randomToken(32)
	val, _ := json.Marshal(cliCode{User: web.User, Claims: web.Claims, KeyFP: ssh.FingerprintSHA256(p.pub), WebLogin: web.ID})
	if err := s.opt.Store.PutOneTime(ctx, "cli-code:"+code, val, s.now().Add(cliCodeTTL)); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "sign-in failed: storage unavailable", "store CLI code", err)
		return
	}
	// Always loopback by IP: "localhost" may resolve elsewhere, and the
	// code must only ever reach this machine.
	dest := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) + "/callback?" +
		url.Values{"code": {code}, "challenge": {p.challenge}}.Encode()
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

func (s *Service) handleCLIExchange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req cliExchangeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
		http.Error(w, "gatehouse: bad exchange request", http.StatusBadRequest)
		return
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		http.Error(w, "gatehouse: bad exchange request: public_key is not an SSH public key", http.StatusBadRequest)
		return
	}
	fp := ssh.FingerprintSHA256(pub)
	val, err := s.opt.Store.TakeOneTime(ctx, "cli-code:"+req.Code, s.now())
	if err != nil || req.Code == "" {
		_ = s.audit(ctx, audit.TypeOIDCCLILoginRefused, "", fp, "refused", map[string]any{"reason": "unknown, used or expired code", "key_fp": fp})
		http.Error(w, "gatehouse: sign-in code expired or already used; run gatehouse login again", http.StatusForbidden)
		return
	}
	var c cliCode
	if err := json.Unmarshal(val, &c); err != nil {
		s.fail(w, http.StatusInternalServerError, "sign-in failed: internal error", "decode CLI code", err)
		return
	}
	if c.KeyFP != fp {
		_ = s.audit(ctx, audit.TypeOIDCCLILoginRefused, c.User, fp, "refused", map[string]any{"reason": "code bound to another key", "key_fp": fp, "bound_key_fp": c.KeyFP})
		http.Error(w, "gatehouse: sign-in code was issued for a different key; run gatehouse login again", http.StatusForbidden)
		return
	}
	if s.opt.Signer == nil {
		http.Error(w, "gatehouse: this bastion does not issue certificates", http.StatusServiceUnavailable)
		return
	}
	now := s.now()
	l := storage.Login{
		ID: randomToken(18), User: c.User, Claims: c.Claims, Kind: "cli", KeyFP: fp,
		Created: now, Expires: now.Add(s.opt.CLICertTTL),
	}
	cert, err := s.opt.Signer.SignUser(pub, c.User, l.ID, s.opt.CLICertTTL)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "sign-in failed: could not sign a certificate", "sign CLI certificate", err)
		return
	}
	if err := s.opt.Store.PutLogin(ctx, l); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "sign-in failed: storage unavailable", "store CLI login", err)
		return
	}
	if err := s.audit(ctx, audit.TypeOIDCLogin, c.User, c.User, "success", map[string]any{
		"kind": "cli", "login": l.ID, "key_fp": fp, "cert_serial": cert.Serial, "web_login": c.WebLogin,
	}); err != nil {
		_ = s.opt.Store.RevokeLogin(ctx, l.ID)
		s.fail(w, http.StatusServiceUnavailable, "sign-in failed: audit log unavailable", "audit CLI login", err)
		return
	}
	resp := cliExchangeResponse{
		User: c.User, LoginID: l.ID, Expires: l.Expires,
		Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
		SSHAddr:     s.opt.SSHAddr,
		KnownHosts:  knownHostsLine(s.opt.SSHAddr, s.opt.HostCALine),
	}
	writeJSON(w, http.StatusOK, resp)
}

// knownHostsLine builds the @cert-authority line that makes ssh trust the
// bastion's host certificate.
func knownHostsLine(addr, hostCA string) string {
	hostCA = strings.TrimSpace(hostCA)
	if hostCA == "" {
		return ""
	}
	if strings.HasPrefix(hostCA, "@cert-authority") {
		return hostCA
	}
	pattern := "*"
	if host, port, err := net.SplitHostPort(addr); err == nil {
		pattern = host
		if port != "22" {
			pattern = "[" + host + "]:" + port
		}
	}
	return "@cert-authority " + pattern + " " + hostCA
}

func (s *Service) handleCLINonce(w http.ResponseWriter, r *http.Request) {
	n := randomToken(32)
	if err := s.opt.Store.PutOneTime(r.Context(), "cli-nonce:"+n, []byte{1}, s.now().Add(nonceTTL)); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "storage unavailable", "store revoke nonce", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"nonce": n})
}

func (s *Service) handleCLIRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req cliRevokeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
		http.Error(w, "gatehouse: bad revoke request", http.StatusBadRequest)
		return
	}
	if err := s.checkRevoke(r, req); err != nil {
		s.log.Warn("identity: CLI revoke refused", "login", req.LoginID, "err", err)
		_ = s.audit(ctx, audit.TypeOIDCLogoutRefused, "", req.LoginID, "refused", map[string]any{"kind": "cli", "reason": err.Error()})
		http.Error(w, "gatehouse: logout refused: "+err.Error(), http.StatusForbidden)
		return
	}
	l, _ := s.opt.Store.GetLogin(ctx, req.LoginID)
	if err := s.opt.Store.RevokeLogin(ctx, req.LoginID); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "logout failed: storage unavailable", "revoke CLI login", err)
		return
	}
	// The person's API tokens (kind "api", minted over SSH for their
	// command line) end with the login: after logout nothing they held
	// keeps working. All of them, not only this login's: a token does not
	// record which credential minted it, and failing wide is the safe side.
	if l.User != "" {
		if err := s.opt.Store.RevokeLogins(ctx, l.User, "api"); err != nil {
			s.fail(w, http.StatusServiceUnavailable, "logout failed: storage unavailable", "revoke API tokens", err)
			return
		}
	}
	_ = s.audit(ctx, audit.TypeOIDCLogout, l.User, l.User, "success", map[string]any{"kind": "cli", "login": l.ID, "key_fp": l.KeyFP})
	writeJSON(w, http.StatusOK, map[string]string{"revoked": req.LoginID})
}

// checkRevoke accepts a revoke only from the holder of the login's key,
// over a fresh single-use nonce.
func (s *Service) checkRevoke(r *http.Request, req cliRevokeRequest) error {
	ctx := r.Context()
	if _, err := s.opt.Store.TakeOneTime(ctx, "cli-nonce:"+req.Nonce, s.now()); err != nil || req.Nonce == "" {
		return errors.New("nonce unknown, used or expired")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		return errors.New("public_key is not an SSH public key")
	}
	l, err := s.opt.Store.GetLogin(ctx, req.LoginID)
	if err != nil {
		return errors.New("unknown login")
	}
	if l.Kind != "cli" || l.KeyFP != ssh.FingerprintSHA256(pub) {
		return errors.New("key does not belong to this login")
	}
	sigBytes, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBytes, &sig); err != nil {
		return errors.New("signature is malformed")
	}
	if err := pub.Verify(RevokeMessage(req.Nonce, req.LoginID), &sig); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
