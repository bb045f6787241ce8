package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// User API tokens let a person's own tools (the `gatehouse request` CLI) use
// the HTTP API as that person. One is minted over the person's authenticated
// SSH connection, so it proves no more than the certificate or key did: it
// carries the same user and claims, never outlives that credential, and its
// rights are the person's current ones at every call (roles, grants, locks),
// exactly as in the web UI. It is kept as a login of kind "api" whose id is
// a hash of the token, so the secret itself is stored nowhere.
const (
	// UserTokenMaxTTL bounds a user token: tools mint a fresh one per run.
	UserTokenMaxTTL = time.Hour
	// userTokenPrefix marks user tokens, as tokenPrefix marks bot tokens.
	userTokenPrefix = "ghusr_"
	// LoginKindAPI is the storage.Login kind of user API tokens.
	LoginKindAPI = "api"
)

// TokenSubject is who a user token is for: what the SSH connection that
// asks for it proved.
type TokenSubject struct {
	User    string
	Claims  map[string][]string
	LoginID string // OIDC login behind the certificate or key; "" for an admin-issued certificate
	KeyFP   string
	// NotAfter is when that credential ends; the token ends no later.
	// Zero means the credential has no end of its own.
	NotAfter time.Time
}

// userTokenID is the login id a user token is stored under.
func userTokenID(token string) string { return "api-" + HashToken(token) }

// IssueUserToken mints a user API token for sub, valid for ttl (at most
// UserTokenMaxTTL, and never past sub.NotAfter), and returns it with its
// expiry. A locked person gets none. The token exists nowhere else: only its
// hash is stored, and the audit log records that it was issued.
func (s *Service) IssueUserToken(ctx context.Context, sub TokenSubject, ttl time.Duration) (string, time.Time, error) {
	user := sub.User
	if user == "" || IsBot(user) || user == AdminName || strings.HasPrefix(user, AdminName+":") {
		return "", time.Time{}, refuse("API tokens are issued to people only")
	}
	if ttl <= 0 || ttl > UserTokenMaxTTL {
		ttl = UserTokenMaxTTL
	}
	now := s.now()
	exp := now.Add(ttl)
	if !sub.NotAfter.IsZero() && sub.NotAfter.Before(exp) {
		exp = sub.NotAfter
	}
	if !now.Before(exp) {
		return "", time.Time{}, refuse("your credential has expired; run gatehouse login again")
	}
	switch _, err := s.store.ActiveLock(ctx, user, now); {
	case err == nil:
		return "", time.Time{}, refuse("you are locked and may not use the API")
	case !errors.Is(err, storage.ErrNotFound):
		return "", time.Time{}, fmt.Errorf("issue API token for %s: look up lock: %w", user, err)
	}
	tok, err := newToken(userTokenPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	id := userTokenID(tok)
	l := storage.Login{ID: id, User: user, Claims: sub.Claims, Kind: LoginKindAPI, KeyFP: sub.KeyFP, Created: now, Expires: exp}
	if err := s.store.PutLogin(ctx, l); err != nil {
		return "", time.Time{}, fmt.Errorf("issue API token for %s: %w", user, err)
	}
	// Every run of the command line mints one; those long expired go. A
	// day's worth stays to look at (the audit log keeps every issue anyway).
	if err := s.store.DeleteExpiredLogins(ctx, LoginKindAPI, now.Add(-24*time.Hour)); err != nil {
		s.log.WarnContext(ctx, "delete expired API tokens", "err", err)
	}
	ev := storage.Event{Time: now, Type: audit.TypeUserAPIToken, Actor: user, Target: user, Outcome: audit.OutcomeSuccess,
		Fields: map[string]any{"expires": exp, "token_sha256": HashToken(tok)[:16], "login_id": sub.LoginID, "key_fp": sub.KeyFP}}
	if err := audit.Append(ctx, s.aud, s.log, ev); err != nil {
		// A credential off the record must not work.
		if rerr := s.store.RevokeLogin(context.WithoutCancel(ctx), id); rerr != nil {
			s.log.ErrorContext(ctx, "API token issued but neither audited nor revoked", "user", user, "err", rerr)
		}
		return "", time.Time{}, fmt.Errorf("issue API token for %s: audit: %w", user, err)
	}
	return tok, exp, nil
}

// authenticateUser is Authenticate for a user token: the person's standing
// now, from the token's stored user and claims. A token that is unknown,
// expired or revoked (by logout or a lock) is ErrBadToken; so is one whose
// person is locked, in case the lock's revocation did not land.
func (s *Service) authenticateUser(ctx context.Context, token string) (Effective, error) {
	l, err := s.store.GetLogin(ctx, userTokenID(token))
	if errors.Is(err, storage.ErrNotFound) {
		return Effective{}, ErrBadToken
	}
	if err != nil {
		return Effective{}, fmt.Errorf("check API token: %w", err)
	}
	if l.Kind != LoginKindAPI || l.Revoked || !s.now().Before(l.Expires) {
		return Effective{}, ErrBadToken
	}
	eff, err := s.Effective(ctx, l.User, l.Claims)
	if err != nil {
		return Effective{}, err
	}
	if eff.Lock != nil {
		return Effective{}, ErrBadToken
	}
	eff.userToken = true
	return eff, nil
}

// revokeUserTokens ends every API token of user (a lock, a logout).
func (s *Service) revokeUserTokens(ctx context.Context, user string) {
	if err := s.store.RevokeLogins(ctx, user, LoginKindAPI); err != nil {
		// Still refused while the lock holds: authenticateUser checks it.
		s.log.ErrorContext(ctx, "revoke API tokens", "user", user, "err", err)
	}
}
