package proxy

import (
	"context"
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Identity is who a connection authenticated as.
type Identity struct {
	User    string
	Claims  map[string][]string
	LoginID string // OIDC login behind the key or certificate, "" for admin-issued certificates
	KeyFP   string
	Method  string // "certificate" or "oidc-key"
	// Expires is when the credential that authenticated stops being valid:
	// the certificate's end or its OIDC login's, whichever is first (zero:
	// unknown). What the bastion hands out on this connection (an API
	// token) must not outlive it.
	Expires time.Time
}

// RuleLock is the Rule of a verdict refusing a locked user; the
// Authorizer's implementation uses the same word.
const RuleLock = "lock"

// Verdict is the Authorizer's answer for one login on one node.
type Verdict struct {
	Allowed         bool
	Reason          string // user-facing, no other users' roles or nodes
	Rule            string // the rule that decided (RuleLock for a locked user)
	Notice          string // set on a refusal worded whole (a lock): the line after "gatehouse: "
	Hint            string // what the user can do about a refusal
	Roles           []string
	RequestIDs      []string // grants the access depends on
	PortForwarding  bool
	AgentForwarding bool
	MaxSessionTTL   time.Duration
}

// NodeAccess is one node a user may reach and with which logins.
type NodeAccess struct {
	Node   config.Node
	Logins []string
}

// Authorizer answers the proxy's access questions from the user's current
// standing, read afresh at every call. Implementations must fail closed: an
// error means "no" for anything new.
type Authorizer interface {
	// Admit gates the bastion's own commands (`ssh bob@bastion whoami`): a
	// locked user gets an error whose text is shown to them.
	Admit(ctx context.Context, id Identity) error
	// Authorize decides one login on one node: asked once for every jump,
	// after the connection is registered for re-checks, and again by every
	// re-check of a live session.
	Authorize(ctx context.Context, id Identity, login string, node config.Node) (Verdict, error)
	Nodes(ctx context.Context, id Identity, nodes []config.Node) ([]NodeAccess, error)
	// Describe is the "who am I" text: roles and grants.
	Describe(ctx context.Context, id Identity) (string, error)
}

// Auditor appends audit events.
type Auditor interface {
	Append(ctx context.Context, ev storage.Event) error
}

// Recorder receives a session's terminal stream.
type Recorder interface {
	Output(p []byte)
	Marker(label string)
	Input(p []byte)
	Resize(cols, rows int)
	Close() error
	Err() error
}

// RecordingHeader describes a recording being opened.
type RecordingHeader struct {
	Width, Height int
	Term          string
	PTY           bool // false: exec without a terminal; output is recorded with ONLCR applied
	Command       string
	Title         string
	Start         time.Time
}

// RecorderFactory opens a recorder for session id. onErr is called once if
// writing fails later.
type RecorderFactory func(id string, h RecordingHeader, onErr func(error)) (Recorder, string, error)

// RawStream is one direction of a session's bytes.
type RawStream int

// The streams of a session, numbered as the session package numbers them.
const (
	RawStdin RawStream = iota
	RawStdout
	RawStderr
)

// RawRecorder keeps the bytes of a session without a pty: every byte of
// stdin, stdout and stderr, compressed, up to a per-session cap past which
// the streams are only counted and hashed.
type RawRecorder interface {
	Write(s RawStream, p []byte)
	Close() (RawSummary, error)
}

// RawSummary is what a closed RawRecorder knows of each stream.
type RawSummary struct {
	Streams [3]struct {
		Bytes  int64
		SHA256 string
	}
	Stored int64 // bytes kept in the store
	Capped bool  // the cap was reached: the store holds a prefix
}

// RawRecorderFactory opens the raw store of session id. onCap is called
// once if the cap is reached (stored bytes kept), onErr once if writing
// fails later.
type RawRecorderFactory func(id string, onCap func(stored, max int64), onErr func(error)) (RawRecorder, error)

// KeyLogins resolves plain public keys through OIDC: a key bound by an
// earlier login-URL confirmation, or a new login URL flow.
type KeyLogins interface {
	// LoginByKey returns the identity bound to the key fingerprint, or ok=false.
	LoginByKey(ctx context.Context, fp string) (Identity, bool, error)
	// StartLogin begins a login-URL flow and returns the prompt text and a
	// wait function that blocks until the user confirmed in the browser.
	StartLogin(ctx context.Context, fp, remote string) (prompt string, wait func(context.Context) (Identity, error), err error)
	// CertLogin returns the identity (with its claims) of the OIDC login a
	// `gatehouse login` certificate names; ok=false once it is revoked,
	// expired or unknown.
	CertLogin(ctx context.Context, loginID string) (id Identity, ok bool, err error)
}

// Command runs a bastion command (`ssh bob@bastion request ...`) beyond the
// built-in whoami and nodes. It returns the exit status.
type Command func(ctx context.Context, id Identity, args []string, stdin io.Reader, stdout, stderr io.Writer) int
