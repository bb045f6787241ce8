package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// codeAlphabet leaves out 0/O, 1/I/L and U so a code read aloud or copied
// off a terminal is hard to get wrong.
const codeAlphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"

// SSHLogin is a pending login URL handed to an SSH client.
type SSHLogin struct {
	Code    string    // XXXX-XXXX
	URL     string    // <public_url>/ssh-login/XXXX-XXXX
	Expires time.Time // the code is refused after this
}

// Message is the text the proxy shows in its keyboard-interactive prompt.
func (l *SSHLogin) Message() string {
	return fmt.Sprintf("To sign in, open this URL in your browser and confirm code %s:\n  %s\n(it expires at %s)\n",
		l.Code, l.URL, l.Expires.UTC().Format("15:04:05 MST"))
}

// sshPending is stored under ssh-login:<code> until it is confirmed.
type sshPending struct {
	KeyFP      string    `json:"key_fp"`
	RemoteAddr string    `json:"remote_addr"`
	Expires    time.Time `json:"expires"`
}

// sshDone is stored under ssh-login-done:<code> for the waiting SSH side.
type sshDone struct {
	LoginID string `json:"login_id,omitempty"`
	Denied  bool   `json:"denied,omitempty"`
	By      string `json:"by"`
}

func newCode() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		// 256 is not a multiple of 30; the slight bias is irrelevant for a
		// five-minute, single-use code that also needs a browser sign-in.
		out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return string(out)
}

// normalizeCode accepts what a person might type (lower case, no dash) and
// returns the canonical XXXX-XXXX, or "" if it cannot be a code.
func normalizeCode(s string) string {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if len(s) != 8 {
		return ""
	}
	for _, c := range s {
		if !strings.ContainsRune(codeAlphabet, c) {
			return ""
		}
	}
	return s[:4] + "-" + s[4:]
}

// StartSSHLogin creates a login URL for an SSH client presenting the key
// with fingerprint keyFP from remoteAddr. The pending code lives in the
// store, so the browser may reach any bastion.
func (s *Service) StartSSHLogin(ctx context.Context, keyFP, remoteAddr string) (*SSHLogin, error) {
	code := newCode()
	exp := s.now().Add(sshLoginTTL)
	val, err := json.Marshal(sshPending{KeyFP: keyFP, RemoteAddr: remoteAddr, Expires: exp})
	if err != nil {
		return nil, fmt.Errorf("encode SSH login: %w", err)
	}
	if err := s.opt.Store.PutOneTime(ctx, "ssh-login:"+code, val, exp); err != nil {
		return nil, fmt.Errorf("store SSH login code: %w", err)
	}
	_ = s.audit(ctx, audit.TypeOIDCSSHLoginStarted, "", keyFP, "pending", map[string]any{"code": code, "key_fp": keyFP, "remote_addr": remoteAddr})
	return &SSHLogin{Code: code, URL: s.opt.PublicURL + "/ssh-login/" + code, Expires: exp}, nil
}

// WaitSSHLogin blocks until the code is confirmed in a browser and returns
// the sshkey login it created, whose User is whoever confirmed. It returns
// ErrSSHLoginDenied when the browser cancelled, ErrSSHLoginExpired once the
// code's lifetime has passed, or ctx's error.
func (s *Service) WaitSSHLogin(ctx context.Context, code string) (storage.Login, error) {
	code = normalizeCode(code)
	if code == "" {
		return storage.Login{}, errors.New("wait for SSH login: malformed code")
	}
	// The waiter starts right after StartSSHLogin, so waiting one code
	// lifetime from now covers the code's own expiry; confirmation itself
	// re-checks expiry in the store.
	deadline := s.now().Add(sshLoginTTL)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		val, err := s.opt.Store.TakeOneTime(ctx, "ssh-login-done:"+code, s.now())
		switch {
		case err == nil:
			var d sshDone
			if err := json.Unmarshal(val, &d); err != nil {
				return storage.Login{}, fmt.Errorf("decode SSH login result: %w", err)
			}
			if d.Denied {
				return storage.Login{}, ErrSSHLoginDenied
			}
			l, err := s.opt.Store.GetLogin(ctx, d.LoginID)
			if err != nil {
				return storage.Login{}, fmt.Errorf("load SSH key login %s: %w", d.LoginID, err)
			}
			return l, nil
		case !errors.Is(err, storage.ErrNotFound):
			return storage.Login{}, fmt.Errorf("poll SSH login %s: %w", code, err)
		}
		if !s.now().Before(deadline) {
			return storage.Login{}, ErrSSHLoginExpired
		}
		select {
		case <-ctx.Done():
			return storage.Login{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// peekPending reads a pending code without consuming it. The store only
// offers take-and-delete, so the value is put back with its own expiry; a
// concurrent confirm during that instant at worst sees "already used" and
// the person retries.
func (s *Service) peekPending(ctx context.Context, code string) (sshPending, error) {
	val, err := s.opt.Store.TakeOneTime(ctx, "ssh-login:"+code, s.now())
	if err != nil {
		return sshPending{}, err
	}
	var p sshPending
	if err := json.Unmarshal(val, &p); err != nil {
		return sshPending{}, fmt.Errorf("decode SSH login: %w", err)
	}
	if err := s.opt.Store.PutOneTime(ctx, "ssh-login:"+code, val, p.Expires); err != nil {
		return sshPending{}, fmt.Errorf("restore SSH login code: %w", err)
	}
	return p, nil
}

const sshGone = "This login link has expired or was already used. Connect with ssh again to get a new one."

func (s *Service) handleSSHLoginPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web, _ := LoginFromContext(ctx)
	code := normalizeCode(r.PathValue("code"))
	p, err := s.peekPending(ctx, code)
	if code == "" || err != nil {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("identity: read SSH login code", "err", err)
		}
		_ = s.audit(ctx, audit.TypeOIDCSSHLoginRefused, web.User, code, "refused", map[string]any{"reason": "unknown, used or expired code", "code": code})
		s.page(w, http.StatusGone, "Login link not valid", sshGone, nil)
		return
	}
	s.pageAs(w, http.StatusOK, "Confirm SSH sign-in",
		"An SSH client wants to sign in with the key below. Confirm only if you started it and the code matches your terminal; the key will act as you for "+humanDuration(s.opt.KeyBindingTTL)+".",
		web.User, &confirmForm{
			Action: "/ssh-login/" + code,
			CSRF:   web.CSRFToken,
			Facts:  []fact{{"Code", code}, {"Key fingerprint", p.KeyFP}, {"From address", p.RemoteAddr}, {"Signed in as", web.User}},
		})
}

func (s *Service) handleSSHLoginConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web, _ := LoginFromContext(ctx)
	if !s.CheckCSRF(r) {
		_ = s.audit(ctx, audit.TypeOIDCSSHLoginRefused, web.User, "", "refused", map[string]any{"reason": "CSRF token missing or wrong"})
		http.Error(w, "gatehouse: confirmation refused: the form is stale or came from another site; reload the login link", http.StatusForbidden)
		return
	}
	code := normalizeCode(r.PathValue("code"))
	val, err := s.opt.Store.TakeOneTime(ctx, "ssh-login:"+code, s.now())
	if code == "" || err != nil {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("identity: take SSH login code", "err", err)
		}
		_ = s.audit(ctx, audit.TypeOIDCSSHLoginRefused, web.User, code, "refused", map[string]any{"reason": "unknown, used or expired code", "code": code})
		s.page(w, http.StatusGone, "Login link not valid", sshGone, nil)
		return
	}
	var p sshPending
	if err := json.Unmarshal(val, &p); err != nil {
		s.fail(w, http.StatusInternalServerError, "confirmation failed: internal error", "decode SSH login", err)
		return
	}
	now := s.now()
	if r.PostFormValue("action") == "cancel" {
		s.putDone(ctx, code, sshDone{Denied: true, By: web.User})
		_ = s.audit(ctx, audit.TypeOIDCSSHLoginRefused, web.User, p.KeyFP, "cancelled", map[string]any{"code": code, "key_fp": p.KeyFP, "remote_addr": p.RemoteAddr})
		s.page(w, http.StatusOK, "Sign-in cancelled", "The SSH sign-in was cancelled; the key was not bound.", nil)
		return
	}
	l := storage.Login{
		ID: randomToken(18), User: web.User, Claims: web.Claims, Kind: "sshkey", KeyFP: p.KeyFP,
		Created: now, Expires: now.Add(s.opt.KeyBindingTTL),
	}
	if err := s.audit(ctx, audit.TypeOIDCLogin, web.User, web.User, "success", map[string]any{
		"kind": "sshkey", "login": l.ID, "key_fp": p.KeyFP, "remote_addr": p.RemoteAddr, "code": code, "web_login": web.ID,
	}); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "confirmation failed: audit log unavailable", "audit SSH login", err)
		return
	}
	if err := s.opt.Store.PutLogin(ctx, l); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "confirmation failed: storage unavailable", "store SSH key login", err)
		return
	}
	s.putDone(ctx, code, sshDone{LoginID: l.ID, By: web.User})
	s.pageAs(w, http.StatusOK, "SSH sign-in confirmed",
		"Your SSH key is now signed in as "+web.User+" until "+l.Expires.UTC().Format(time.RFC1123)+". Return to your terminal.", web.User, nil)
}

func (s *Service) putDone(ctx context.Context, code string, d sshDone) {
	val, _ := json.Marshal(d) // plain struct of strings and bools
	if err := s.opt.Store.PutOneTime(ctx, "ssh-login-done:"+code, val, s.now().Add(sshLoginTTL)); err != nil {
		// The binding itself is stored; a waiter that misses this result
		// times out and the next connection is let in by LoginByKey.
		s.log.Error("identity: store SSH login result", "code", code, "err", err)
	}
}
