// Package proxy is Gatehouse's SSH front door. It authenticates users on the
// bastion's listener, terminates `ssh -J` jumps with an SSH server of its own
// (presenting a host certificate for the requested node name), asks its
// Authorizer (in the bastion, access.Service.Authorize) once per jump
// whether the authenticated user may use the requested login on that node,
// after registering the connection for re-checks so no change is missed
// between the decision and the session, dials the node with a freshly minted short-lived certificate,
// and relays every channel both ways through composable taps (recording,
// byte counting, live viewing). It also answers the bastion's own commands
// (`ssh bob@bastion whoami`) and ends live sessions when the same question,
// asked again by the re-check, no longer allows them. A terminal session refused for want of a
// role the user may request is held open instead: the bastion asks for an
// access request on the user's terminal and, once it is approved, replays
// the session to the node on the same connection (jitrequest.go,
// jitprompt.go). Before a connection authenticates, package
// preauth decides whether it is taken on at all (per-source caps, random
// early drop, penalties), so no one source can lock everyone else out.
//
// Identity is derived only from what the final, successful authentication
// proved: the public-key callback returns fresh Permissions per key and the
// handlers read ServerConn.Permissions, never state left over from earlier
// callback invocations (see CVE-2024-45337).
//
// # Session stages
//
// A session channel's three streams (stdin, stdout, stderr) pass through
// stages, small io.Writers with one job and their own state each
// (stages.go): byteCounter, binaryDetector, castStage (the asciicast
// recording), rawStage (the raw store), liveStage (watchers who join) and
// sftpStage (SFTP operations into the audit log). Once a session's start
// request says what it is, sessionStages.compose chains them for that
// session:
//
//	stdin:  sftp, count, raw, [binary detector ->] cast
//	stdout: sftp, count, raw, [binary detector ->] cast, live
//	stderr: count, raw, cast, live
//
// Which stages a session gets depends only on protocol facts (classify:
// the request type, the exact command line, whether a pty was asked
// for), never on anything the user can shape; a binary detector only
// decides whether bytes that are in the raw store anyway also go into
// the cast. sessionTap (relay.go) owns the lifecycle: it opens the stages
// and puts the start on record before the command reaches the node, and
// closes them and records the end.
//
// # Refusals and endings
//
// What a user is told is a UserError: the one line they see and, apart,
// the cause for the log. A live connection is ended by cancelling its
// context with a UserError as the cause (liveConn.terminate); each
// session channel's relay, which owns the channel, writes the line and the
// exit status, and the connection is closed once they are out (or after
// noticeTimeout, for a client that stopped reading). A channel the proxy
// will not open is rejected with a UserError's line as the message
// (rejectChannel), which OpenSSH prints.
//
// The proxy reads nothing from gatehouse.yaml itself: Options carries the
// inventory, the bastion's names, the recording mode, the timeouts and the
// pre-authentication limits, and package server fills them from the file.
//
// # Testing without root
//
// `go test -race ./proxy/...` runs as any user, with no sshd and no local
// accounts. The tests start a bastion in the test process with a node
// from package internal/sshtest (an x/crypto SSH server on a loopback port
// that checks the certificate the proxy presents like sshd's
// TrustedUserCAKeys, records the login, and runs built-in commands such as
// `echo`, `id -un`, `cat` and `sleep`), an Authorizer from
// proxy/internal/proxytest whose table of verdicts a test changes while a
// session runs (revocation, a lock, a store that fails), and an in-memory
// audit log from the same package. jump_test.go shows the pattern. The
// relay benchmark alone uses a real sshd (root); the end-to-end suite in
// internal/e2e runs the real binary against real OpenSSH nodes and
// clients.
package proxy
