package audit

// The event vocabulary: every type the code writes, and nothing else. The
// string values are what operators filter on (`gatehouse audit ls --type`)
// and what the README's "Audit log" table documents, so they never change
// once released. Write events with these constants, never a string literal:
// TestEveryWrittenTypeIsInTheVocabulary fails on one, and
// TestREADMEListsEveryType keeps this list and the README table the same.
//
// Each comment names who writes the event, its actor and target, and the
// fields it carries. A field called "session" always holds a session id,
// "login" the login on the node (or the login record for oidc.*), "remote"
// the client's address.

// SSH authentication at the bastion (proxy).
const (
	// TypeAuthSuccess: a key or certificate authenticated. Actor the user,
	// target "bastion"; fields: method, key_fp, login_id, remote, client.
	TypeAuthSuccess = "ssh.auth.success"
	// TypeAuthFailure: an offered key was refused, once per key. Actor the
	// SSH user name, target "bastion"; fields: method, key_fp, key_type,
	// remote, reason.
	TypeAuthFailure = "ssh.auth.failure"
	// TypePreAuthPenalty: a source is refused for a while. Target
	// "bastion"; fields: source, reason, until.
	TypePreAuthPenalty = "ssh.preauth.penalty"
	// TypePreAuthDropped: the summary of unauthenticated connections
	// refused in one report period. Target "bastion"; fields: dropped,
	// by_reason, sources, other_sources, penalties_imposed,
	// penalties_unaudited, penalty_overflow, period_seconds.
	TypePreAuthDropped = "ssh.preauth.dropped"
)

// Sessions through the bastion (proxy) and views of them (web).
const (
	// TypeSessionStart: a session reached a node. Actor the user, target
	// the node; fields: session, login, kind, remote, roles, requests,
	// conn, inner_auth, inner_key_fp.
	TypeSessionStart = "session.start"
	// TypeSessionEnd: fields: session, login, kind, status, bytes_in,
	// bytes_out, exit_status, binary_output_bytes, binary_output_sha256,
	// stdin/stdout/stderr_bytes and _sha256, raw_stored_bytes, raw_capped.
	TypeSessionEnd = "session.end"
	// TypeSessionDenied: a jump or session was refused (outcome denied) or
	// its node could not be reached (outcome error). Fields: login, rule,
	// reason, error, remote, inner_auth, inner_key_fp.
	TypeSessionDenied = "session.denied"
	// TypeSessionTerminated: a session was closed by a person (actor them;
	// fields: session, user, login, conn) or by a re-check (actor
	// "gatehouse"; fields: user, login, conn, reason, rule, notice).
	TypeSessionTerminated = "session.terminated"
	// TypeSessionJoin: someone started watching a live session. Fields:
	// session, user.
	TypeSessionJoin = "session.join"
	// TypeSessionPlay: someone replayed a recording in the web UI. Fields:
	// session, user, via.
	TypeSessionPlay = "session.play"
	// TypeExec: a command, on a node (fields: session, login, command) or
	// a bastion command (target "bastion"; fields: command).
	TypeExec = "exec"
	// TypePortForward: a tunnel opened, closed or was refused. Fields:
	// direction, login, host, port, origin, client, state, bytes_in,
	// bytes_out, duration_ms.
	TypePortForward = "port_forward"
	// TypeFileTransfer: scp/sftp/rsync, or binary output of any command.
	// Fields: session, login, kind, command, direction, bytes_to_node,
	// bytes_from_node, sha256_to_node, sha256_from_node,
	// binary_output_bytes, sha256.
	TypeFileTransfer = "file_transfer"
	// TypeSFTPOp: one SFTP operation. Fields: session, login, op, path,
	// ok, target, mode, bytes_read, bytes_written, status.
	TypeSFTPOp = "sftp.op"
	// TypeRecordingFailure: a recording could not be opened or written, or
	// a best-effort session could not be indexed (store "index").
	// Fields: session, error, mode, store.
	TypeRecordingFailure = "recording.failure"
	// TypeRecordingCapReached: a session's raw store reached
	// recording.max_raw_bytes. Fields: session, login, stored_bytes,
	// max_raw_bytes.
	TypeRecordingCapReached = "recording.cap_reached"
)

// OIDC sign-in (identity). Actor and target are the signed-in user where
// known; "login" is the login record's id.
const (
	// TypeOIDCLogin: fields: kind (web, cli, sshkey), login, key_fp,
	// cert_serial, remote_addr, code, web_login.
	TypeOIDCLogin = "oidc.login"
	// TypeOIDCLoginFailed: a browser sign-in was refused. Fields: reason,
	// error.
	TypeOIDCLoginFailed = "oidc.login_failed"
	// TypeOIDCLogout: fields: kind, login, key_fp.
	TypeOIDCLogout = "oidc.logout"
	// TypeOIDCLogoutRefused: fields: kind, reason.
	TypeOIDCLogoutRefused = "oidc.logout_refused"
	// TypeOIDCCLILoginRefused: `gatehouse login` was refused or cancelled.
	// Fields: reason, key_fp, bound_key_fp.
	TypeOIDCCLILoginRefused = "oidc.cli_login_refused"
	// TypeOIDCSSHLoginStarted: `ssh login@bastion` printed a sign-in
	// link. Target the key fingerprint; fields: code, key_fp, remote_addr.
	TypeOIDCSSHLoginStarted = "oidc.ssh_login_started"
	// TypeOIDCSSHLoginRefused: fields: reason, code, key_fp, remote_addr.
	TypeOIDCSSHLoginRefused = "oidc.ssh_login_refused"
)

// Access requests, locks and bots (access). Request events' target is the
// request id.
const (
	// TypeRequestCreate: actor the requester; fields: roles, duration,
	// reason, expires, and for a one-login request node and login, for a
	// one-session grant for_session.
	TypeRequestCreate = "request.create"
	// TypeRequestReview: one review, outcome approve or deny. Fields:
	// requester, roles, reason, via, approved_roles (an approval of some
	// of the requested roles).
	TypeRequestReview = "request.review"
	// TypeRequestApprove: the review that decided it; fields as review.
	TypeRequestApprove = "request.approve"
	// TypeRequestDeny: the review that decided it; fields as review.
	TypeRequestDeny = "request.deny"
	// TypeRequestExpire: actor "gatehouse"; fields: requester, roles,
	// reviews.
	TypeRequestExpire = "request.expire"
	// TypeRequestCancel: fields: roles, reason, lock.
	TypeRequestCancel = "request.cancel"
	// TypeRequestRevoke: fields: requester, roles, reason, admin, lock,
	// error.
	TypeRequestRevoke = "request.revoke"
	// TypeRequestSessionEnd: a --for-session grant ended with the session
	// it was bound to. Actor "gatehouse"; fields: requester, roles,
	// session, grant_end.
	TypeRequestSessionEnd = "request.session_end"
	// TypeUserLock: target the locked user; fields: reason, admin,
	// expires.
	TypeUserLock = "user.lock"
	// TypeUserUnlock: target the user; fields: admin.
	TypeUserUnlock = "user.unlock"
	// TypeBotAdd: target bot:NAME; fields: roles, token_expires,
	// token_sha256.
	TypeBotAdd = "bot.add"
	// TypeBotRemove: target bot:NAME.
	TypeBotRemove = "bot.rm"
	// TypeUserAPIToken: a user API token was issued over the person's SSH
	// connection (`ssh bastion api-token`, what `gatehouse request` does).
	// Actor and target the person; fields: expires, token_sha256 (first
	// 16 hex digits), login_id, key_fp.
	TypeUserAPIToken = "user.api_token"
)

// Operations.
const (
	// TypePolicyReload: roles.yaml reloaded (fields: digest) or rejected
	// (outcome failure; fields: error, trigger).
	TypePolicyReload = "policy.reload"
	// TypeNotifyFailure: a notification was not delivered after its
	// retries. Actor "gatehouse", target the request; fields: target,
	// event, user, attempts, error.
	TypeNotifyFailure = "notify.failure"
	// TypeNotifyDropped: a notification queue was full; fields as
	// notify.failure.
	TypeNotifyDropped = "notify.dropped"
	// TypeAuditVerify: the chain was verified, from the CLI (fields:
	// events, first_seq, last_seq, bad_seq, problem) or the web UI
	// (fields: ok, events, bad_seq, outcome, via).
	TypeAuditVerify = "audit.verify"
)

// Outcomes most events carry; Append writes OutcomeSuccess when an event
// has none.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)
