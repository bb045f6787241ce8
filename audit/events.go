package audit

// Event types. The string values are what operators filter on
// (`gatehouse audit ls --type`), so they never change once released.
const (
	TypeAuthSuccess        = "ssh.auth.success" // fields: method, key_fp
	TypeAuthFailure        = "ssh.auth.failure" // fields: method, key_fp, reason
	TypeOIDCLogin          = "oidc.login"
	TypeOIDCLogout         = "oidc.logout"
	TypeSessionStart       = "session.start"
	TypeSessionEnd         = "session.end"
	TypeSessionDenied      = "session.denied"
	TypeSessionTerminated  = "session.terminated"
	TypeExec               = "exec"
	TypePortForward        = "port_forward"
	TypeFileTransfer       = "file_transfer"
	TypeSFTPOp             = "sftp.op"
	TypeRequestCreate      = "request.create"
	TypeRequestReview      = "request.review"
	TypeRequestApprove     = "request.approve"
	TypeRequestDeny        = "request.deny"
	TypeRequestExpire      = "request.expire"
	TypeRequestCancel      = "request.cancel"
	TypeRequestRevoke      = "request.revoke"
	TypeRequestSessionEnd  = "request.session_end" // a --for-session grant ended with its session; fields: requester, roles, session, grant_end
	TypeLock               = "lock"
	TypeUnlock             = "unlock"
	TypePolicyReload       = "policy.reload"
	TypeRecordingFailure   = "recording.failure"
	TypeNotifyFailure      = "notify.failure"
	TypeAuditVerify        = "audit.verify"
	TypeAuditPrune         = "audit.prune"
	TypeAuditCheckpoint    = "audit.checkpoint"
	TypeCertIssue          = "cert.issue"
	TypeLoginKeyBind       = "login.key_bind"
	TypeSessionInterrupted = "session.interrupted"
	TypePreAuthDropped     = "ssh.preauth.dropped" // fields: dropped, by_reason, sources, other_sources, penalties_imposed, penalties_unaudited, penalty_overflow, period_seconds
	TypePreAuthPenalty     = "ssh.preauth.penalty" // fields: source, reason, until
)

// TypeRecordingCapReached: a session's raw store reached
// recording.max_raw_bytes; fields: session, stored_bytes, max_raw_bytes.
const TypeRecordingCapReached = "recording.cap_reached"

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Field names shared by several event types, so filters and dashboards see
// one spelling.
const (
	FieldMethod  = "method"
	FieldKeyFP   = "key_fp"
	FieldReason  = "reason"
	FieldSession = "session_id"
	FieldRequest = "request_id"
	FieldLogin   = "login"
	FieldNode    = "node"
	FieldRoles   = "roles"
	FieldClient  = "client_addr"
	FieldError   = "error"
)
