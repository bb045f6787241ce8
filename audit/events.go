package audit

// The event vocabulary: every type the code writes, and nothing else. The
// string values are what operators filter on (`gatehouse audit ls --type`)
// and what the README's "Audit log" table documents, so they never change
// once released. Write events with these constants, never a string literal:
// TestEveryWrittenTypeIsInTheVocabulary fails on one, and
// TestREADMEListsEveryType keeps this list and the README table the same.
//
// Each comment names who writes the event, its actor and target; Fields,
// below, names the fields each type carries. A field called "session"
// always holds a session id, "login" the login on the node (or the login
// record for oidc.*), "remote" the client's address.

// SSH authentication at the bastion (proxy).
const (
	// TypeAuthSuccess: a key or certificate authenticated. Actor the user,
	// target "bastion".
	TypeAuthSuccess = "ssh.auth.success"
	// TypeAuthFailure: an offered key was refused, once per key. Actor the
	// SSH user name, target "bastion".
	TypeAuthFailure = "ssh.auth.failure"
	// TypePreAuthPenalty: a source is refused for a while. Target
	// "bastion".
	TypePreAuthPenalty = "ssh.preauth.penalty"
	// TypePreAuthDropped: the summary of unauthenticated connections
	// refused in one report period. Target "bastion".
	TypePreAuthDropped = "ssh.preauth.dropped"
)

// Sessions through the bastion (proxy) and views of them (web).
const (
	// TypeSessionStart: a session reached a node. Actor the user, target
	// the node.
	TypeSessionStart = "session.start"
	// TypeSessionEnd: a session ended. Actor the user, target the node.
	TypeSessionEnd = "session.end"
	// TypeSessionDenied: a jump or session was refused (outcome denied) or
	// its node could not be reached (outcome error).
	TypeSessionDenied = "session.denied"
	// TypeSessionTerminated: a session was closed by a person (actor them)
	// or by a re-check (actor "gatehouse").
	TypeSessionTerminated = "session.terminated"
	// TypeSessionJoin: someone started watching a live session.
	TypeSessionJoin = "session.join"
	// TypeSessionPlay: someone replayed a recording in the web UI.
	TypeSessionPlay = "session.play"
	// TypeExec: a command, on a node or a bastion command (target
	// "bastion").
	TypeExec = "exec"
	// TypePortForward: a tunnel opened, closed or was refused.
	TypePortForward = "port_forward"
	// TypeFileTransfer: scp/sftp/rsync, or binary output of any command.
	TypeFileTransfer = "file_transfer"
	// TypeSFTPOp: one SFTP operation.
	TypeSFTPOp = "sftp.op"
	// TypeRecordingFailure: a recording could not be opened or written, or
	// a best-effort session could not be indexed (store "index").
	TypeRecordingFailure = "recording.failure"
	// TypeRecordingCapReached: a session's raw store reached
	// recording.max_raw_bytes.
	TypeRecordingCapReached = "recording.cap_reached"
)

// OIDC sign-in (identity). Actor and target are the signed-in user where
// known; "login" is the login record's id.
const (
	// TypeOIDCLogin: a web, CLI or SSH-key sign-in completed.
	TypeOIDCLogin = "oidc.login"
	// TypeOIDCLoginFailed: a browser sign-in was refused.
	TypeOIDCLoginFailed = "oidc.login_failed"
	// TypeOIDCLogout: a web or CLI sign-out.
	TypeOIDCLogout = "oidc.logout"
	// TypeOIDCLogoutRefused: a sign-out named an unknown login.
	TypeOIDCLogoutRefused = "oidc.logout_refused"
	// TypeOIDCCLILoginRefused: `gatehouse login` was refused or cancelled.
	TypeOIDCCLILoginRefused = "oidc.cli_login_refused"
	// TypeOIDCSSHLoginStarted: `ssh login@bastion` printed a sign-in
	// link. Target the key fingerprint.
	TypeOIDCSSHLoginStarted = "oidc.ssh_login_started"
	// TypeOIDCSSHLoginRefused: an SSH-key sign-in was refused or
	// cancelled.
	TypeOIDCSSHLoginRefused = "oidc.ssh_login_refused"
)

// Access requests, locks and bots (access). Request events' target is the
// request id.
const (
	// TypeRequestCreate: an access request was made. Actor the
	// requester.
	TypeRequestCreate = "request.create"
	// TypeRequestReview: one review, outcome approve or deny.
	TypeRequestReview = "request.review"
	// TypeRequestApprove: the review that approved it.
	TypeRequestApprove = "request.approve"
	// TypeRequestDeny: the review that denied it.
	TypeRequestDeny = "request.deny"
	// TypeRequestExpire: a pending request expired unreviewed. Actor
	// "gatehouse".
	TypeRequestExpire = "request.expire"
	// TypeRequestCancel: the requester cancelled it, or a lock did.
	TypeRequestCancel = "request.cancel"
	// TypeRequestRevoke: a grant was revoked, by hand or by a lock.
	TypeRequestRevoke = "request.revoke"
	// TypeRequestSessionEnd: a --for-session grant ended with the session
	// it was bound to. Actor "gatehouse".
	TypeRequestSessionEnd = "request.session_end"
	// TypeUserLock: target the locked user.
	TypeUserLock = "user.lock"
	// TypeUserUnlock: target the user.
	TypeUserUnlock = "user.unlock"
	// TypeBotAdd: target bot:NAME.
	TypeBotAdd = "bot.add"
	// TypeBotRemove: target bot:NAME.
	TypeBotRemove = "bot.rm"
	// TypeUserAPIToken: a user API token was issued over the person's SSH
	// connection (`ssh bastion api-token`, what `gatehouse request` does).
	// Actor and target the person.
	TypeUserAPIToken = "user.api_token"
)

// Operations.
const (
	// TypePolicyReload: roles.yaml reloaded, or rejected (outcome
	// failure).
	TypePolicyReload = "policy.reload"
	// TypeNotifyFailure: a notification was not delivered after its
	// retries. Actor "gatehouse", target the request.
	TypeNotifyFailure = "notify.failure"
	// TypeNotifyDropped: a notification queue was full.
	TypeNotifyDropped = "notify.dropped"
	// TypeAuditVerify: the chain was verified, from the CLI or the web UI.
	TypeAuditVerify = "audit.verify"
)

// Outcomes most events carry; Append writes OutcomeSuccess when an event
// has none.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Fields is, for each event type, the names of the fields it may carry
// (an event carries those that apply to it): the one list of them.
// TestEveryWrittenFieldIsInTheVocabulary fails on code that writes any
// other, or a type's field no code writes; TestREADMEListsEveryField keeps
// the README's "Audit log" table the same. Each call returns a fresh map.
func Fields() map[string][]string {
	notify := []string{"target", "event", "user", "attempts", "error"}
	return map[string][]string{
		TypeAuthSuccess:    {"method", "key_fp", "login_id", "remote", "client"},
		TypeAuthFailure:    {"method", "key_fp", "key_type", "remote", "reason"},
		TypePreAuthPenalty: {"source", "reason", "until"},
		TypePreAuthDropped: {"dropped", "by_reason", "sources", "other_sources", "penalties_imposed",
			"penalties_unaudited", "penalty_overflow", "period_seconds"},

		TypeSessionStart: {"session", "login", "kind", "remote", "roles", "requests", "conn", "inner_auth", "inner_key_fp"},
		TypeSessionEnd: {"session", "login", "kind", "status", "bytes_in", "bytes_out", "exit_status",
			"binary_output_bytes", "binary_output_sha256",
			"stdin_bytes", "stdin_sha256", "stdout_bytes", "stdout_sha256", "stderr_bytes", "stderr_sha256",
			"raw_stored_bytes", "raw_capped"},
		TypeSessionDenied: {"login", "rule", "reason", "error", "remote", "inner_auth", "inner_key_fp"},
		TypeSessionTerminated: {"session", "user", "login", "conn",
			"reason", "rule", "notice"}, // these three from a re-check
		TypeSessionJoin: {"session", "user"},
		TypeSessionPlay: {"session", "user", "via"},
		TypeExec:        {"session", "login", "command"}, // a bastion command: command only
		TypePortForward: {"direction", "login", "host", "port", "origin", "client", "state",
			"bytes_in", "bytes_out", "duration_ms"},
		TypeFileTransfer: {"session", "login", "kind", "command", "direction", "bytes_to_node", "bytes_from_node",
			"sha256_to_node", "sha256_from_node", "binary_output_bytes", "sha256"},
		TypeSFTPOp:              {"session", "login", "op", "path", "ok", "target", "mode", "bytes_read", "bytes_written", "status"},
		TypeRecordingFailure:    {"session", "error", "mode", "store"},
		TypeRecordingCapReached: {"session", "login", "stored_bytes", "max_raw_bytes"},

		TypeOIDCLogin:           {"kind", "login", "key_fp", "cert_serial", "remote_addr", "code", "web_login"}, // kind: web, cli, sshkey
		TypeOIDCLoginFailed:     {"reason", "error"},
		TypeOIDCLogout:          {"kind", "login", "key_fp"},
		TypeOIDCLogoutRefused:   {"kind", "reason"},
		TypeOIDCCLILoginRefused: {"reason", "key_fp", "bound_key_fp"},
		TypeOIDCSSHLoginStarted: {"code", "key_fp", "remote_addr"},
		TypeOIDCSSHLoginRefused: {"reason", "code", "key_fp", "remote_addr"},

		TypeRequestCreate: {"roles", "duration", "reason", "expires",
			"node", "login", // a one-login request
			"for_session", // a one-session grant
			"labels"},
		TypeRequestReview:     {"requester", "roles", "reason", "via", "approved_roles"}, // approved_roles: an approval of some of the roles
		TypeRequestApprove:    {"requester", "roles", "grant_start", "grant_end", "via"},
		TypeRequestDeny:       {"requester", "roles", "reason", "via"},
		TypeRequestExpire:     {"requester", "roles", "reviews"},
		TypeRequestCancel:     {"roles", "reason", "lock"},
		TypeRequestRevoke:     {"requester", "roles", "reason", "admin", "lock", "error"},
		TypeRequestSessionEnd: {"requester", "roles", "session", "grant_end"},
		TypeUserLock:          {"reason", "admin", "expires"},
		TypeUserUnlock:        {"admin"},
		TypeBotAdd:            {"roles", "token_expires", "token_sha256"},
		TypeBotRemove:         {},
		TypeUserAPIToken:      {"expires", "token_sha256", "login_id", "key_fp"}, // token_sha256: its first 16 hex digits

		TypePolicyReload:  {"digest", "error", "trigger"}, // rejected: error and trigger
		TypeNotifyFailure: notify,
		TypeNotifyDropped: notify,
		TypeAuditVerify: {"events", "bad_seq",
			"first_seq", "last_seq", "problem", // from the CLI
			"ok", "outcome", "via"}, // from the web UI
	}
}
