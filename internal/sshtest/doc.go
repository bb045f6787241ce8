// Package sshtest gives tests an SSH node in the test process: an
// x/crypto/ssh server on a loopback port that stands where an OpenSSH node
// stands behind the bastion, so the jump path can be tested without root,
// sshd or local accounts.
//
// The node checks what sshd with TrustedUserCAKeys checks: a user
// certificate signed by the trusted CA, currently valid, with the login
// among its principals (a certificate without principals is refused), its
// source-address honoured and no critical option it does not know. It
// honours the certificate's permit-pty and permit-port-forwarding
// extensions, and keeps every accepted login (principals, key id,
// extensions) for the test to inspect.
//
// It serves exec with a handful of built-in commands instead of a shell
// (see Node.Run), a shell on a pty that echoes its input back, the sftp
// subsystem (pkg/sftp over the test process's file system), direct-tcpip
// and tcpip-forward (remote forwarding on loopback; the forwarded-tcpip
// channels its client refuses are kept for the test), and can limit the
// session channels of a connection as sshd's MaxSessions. It is a
// stand-in for unit tests: the end-to-end suite (internal/e2e) runs real
// sshd nodes.
//
// NewSigner and Loopback are the pieces tests of SSH code share besides
// a node: a fresh key (a CA, host or user key) and the two ends of a
// loopback connection for an SSH client and server in one test.
package sshtest
