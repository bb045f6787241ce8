// Package identity turns an OpenID Connect sign-in into the identities the
// bastion trusts: browser sessions for the web UI, SSH keys bound through a
// login URL, and short-lived SSH certificates for `gatehouse login`.
//
// Gatehouse is the relying party of the company's provider. It runs the
// authorization-code flow with PKCE (S256); the `state` value is random,
// single-use, kept in the store (so any bastion behind a load balancer can
// finish the flow) and bound to a pre-login cookie so a callback started in
// one browser cannot be finished in another; the `nonce` travels inside the
// ID token. ID tokens are verified with go-oidc: issuer, audience, expiry and
// signature against the provider's JWKS, refetched when an unknown key id
// shows up so key rotation needs no restart.
//
// Claims: many providers (Okta by default) put only the base claims into
// the ID token of the code flow. After verifying it, the UserInfo endpoint
// is asked with the access token; its sub must equal the ID token's, and
// the two are merged with the ID token winning wherever it has the claim
// (mergeClaims). The merged set is what the username rules below read and
// what a login stores.
//
// Usernames: the claim named by UsernameClaim names the user. When that
// claim is `email` (the default) the provider must also say
// email_verified=true, and the username is the part before '@', so
// bob@example.com is the user `bob`. That name is what SSH certificates carry
// as principal and what roles are written against; the full claim set,
// string values as one-element lists, is kept with every login for
// claims_to_roles.
//
// Web sessions live server side as storage.Login{Kind: "web"}. The cookie
// `gatehouse_session` holds a random secret; the store keeps only its SHA-256
// as the login id, so reading the store or the audit log does not let anyone
// ride a session. Each session's CSRF token is derived from the same secret.
// Logging out revokes the stored login, which takes effect at once on every
// bastion.
//
// SSH login URL: a client whose key is unknown gets a code and a URL
// (StartSSHLogin). Whoever opens it must sign in to the browser, sees the key
// fingerprint, the source address and which user they are signed in as, and
// must press Confirm. The key is then bound to the confirming user, not to
// whatever name the SSH client asked for: if bob's terminal shows a URL and
// alice confirms it, that key becomes alice's for KeyBindingTTL, and the
// page and the SSH side both say so. Codes are single-use and expire after
// five minutes; both refusals are audited.
//
// CLI login: `gatehouse login` (package identity/cli) opens /cli-login with
// its fresh public key and a loopback port; after browser sign-in and an
// explicit confirm the bastion hands a one-time code to the loopback
// listener, and the CLI exchanges code plus public key for a certificate
// signed through CertSigner. The code is bound to that public key, so a code
// stolen off the loopback redirect is useless with another key. Revocation
// requires proving possession of the key by signing a server nonce.
package identity
