// Package cli is the client side of `gatehouse login` and `gatehouse
// logout`. Login makes a fresh Ed25519 key, lets the user sign in through
// the bastion in a browser, and receives a short-lived SSH certificate for
// that key over a one-time code delivered to a loopback listener (the
// pattern of RFC 8252 for native apps). The key never leaves the machine;
// the code alone is useless because the bastion binds it to the key's
// fingerprint. Key, certificate and a known_hosts file go to ~/.gatehouse/;
// the key is also added to the running ssh-agent, limited to the
// certificate's lifetime. Logout proves possession of the key by signing a
// server nonce and asks the bastion to revoke the login.
package cli
