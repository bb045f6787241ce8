// Package devidp is a small OpenID Connect provider for development, demos
// and tests: it lets a Gatehouse bastion run the real authorization-code flow
// (PKCE, nonce, signed ID tokens published through discovery and JWKS)
// without a company identity provider. Users and their passwords come from a
// YAML file (see configs/dev-users.yaml) and are held in memory, as are
// authorization requests and tokens, so a restart logs everybody out.
//
// By default it behaves like Okta's code flow: the ID token is thin (sub,
// iss, aud, nonce and the other base claims), and email, email_verified,
// preferred_username, name, groups and the users' extra claims are only
// given by the UserInfo endpoint. A client with FatIDTokens (`gatehouse
// dev-idp --fat-id-tokens`) gets them in the ID token as well.
//
// The protocol work is done by github.com/zitadel/oidc/v3/pkg/op, a certified
// OP library; this package only supplies its storage, a signing key and a
// plain HTML login form that says on every page it is not for production.
// Passwords are compared in constant time but are stored in clear text in the
// users file, which is one of the reasons it must never face real users.
package devidp
