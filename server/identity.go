package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// buildIdentity connects to the OIDC provider, retrying for a while: the
// provider may start after the bastion (as in `make run`).
func (b *Bastion) buildIdentity(ctx context.Context) (*identity.Service, error) {
	o := b.Config.OIDC
	opts := identity.Options{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim, Scopes: o.Scopes,
		Store: b.Store, Auditor: b.Audit, Signer: certSigner{b.CA}, PublicURL: b.Config.Web.PublicURL,
		Logger: b.Log, KeyBindingTTL: b.Config.SSH.KeyBindingTTL.D(),
		SSHAddr: b.Config.SSH.Listen,
		// "*": the bastion presents host certificates for every node name too.
		HostCALine: "@cert-authority * " + ca.AuthorizedLine(b.CA.HostCAKey(), "gatehouse-host-ca"),
	}
	deadline := time.Now().Add(30 * time.Second)
	delay := 250 * time.Millisecond
	for {
		svc, err := identity.New(ctx, opts)
		if err == nil {
			return svc, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("oidc: %w", err)
		}
		b.Log.Warn("OIDC provider not reachable yet; retrying", "issuer", o.Issuer, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 4*time.Second {
			delay *= 2
		}
	}
}

// certSigner lets `gatehouse login` certificates be signed by the user CA.
type certSigner struct{ ca *ca.Authority }

func (c certSigner) SignUser(pub ssh.PublicKey, user, loginID string, ttl time.Duration) (*ssh.Certificate, error) {
	return c.ca.SignUser(ca.UserCert{Key: pub, Principals: []string{user}, TTL: ttl,
		KeyID:      fmt.Sprintf("gatehouse user=%s login=%s", user, loginID),
		Extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": ""}})
}

// keyLogins resolves plain keys and login certificates through the OIDC
// logins in the store.
type keyLogins struct {
	id    *identity.Service
	store storage.IdentityStore
}

func loginIdentity(l storage.Login) proxy.Identity {
	return proxy.Identity{User: l.User, Claims: l.Claims, LoginID: l.ID, Expires: l.Expires}
}

func (k keyLogins) LoginByKey(ctx context.Context, fp string) (proxy.Identity, bool, error) {
	l, err := k.store.LoginByKey(ctx, fp, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return proxy.Identity{}, false, nil
	}
	if err != nil {
		return proxy.Identity{}, false, err
	}
	return loginIdentity(l), true, nil
}

func (k keyLogins) StartLogin(ctx context.Context, fp, remote string) (string, func(context.Context) (proxy.Identity, error), error) {
	l, err := k.id.StartSSHLogin(ctx, fp, remote)
	if err != nil {
		return "", nil, err
	}
	wait := func(ctx context.Context) (proxy.Identity, error) {
		ctx, cancel := context.WithDeadline(ctx, l.Expires)
		defer cancel()
		login, err := k.id.WaitSSHLogin(ctx, l.Code)
		if err != nil {
			return proxy.Identity{}, err
		}
		return loginIdentity(login), nil
	}
	return strings.TrimRight(l.Message(), "\n"), wait, nil
}

func (k keyLogins) CertLogin(ctx context.Context, loginID string) (proxy.Identity, bool, error) {
	l, err := k.store.GetLogin(ctx, loginID)
	if errors.Is(err, storage.ErrNotFound) {
		return proxy.Identity{}, false, nil
	}
	if err != nil {
		return proxy.Identity{}, false, err
	}
	if l.Revoked || time.Now().After(l.Expires) {
		return proxy.Identity{}, false, nil
	}
	return loginIdentity(l), true, nil
}

// latestClaims gives package access a person's claims from their latest
// stored login (access.ClaimsSource), so a review on their behalf sees the
// roles claims_to_roles maps them to, as `gatehouse policy check` does.
type latestClaims struct{ store storage.IdentityStore }

func (c latestClaims) LatestClaims(ctx context.Context, user string) (map[string][]string, error) {
	l, err := c.store.LatestLogin(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return l.Claims, nil
}
