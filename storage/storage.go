// Package storage defines what Gatehouse keeps between requests and across
// bastions: the audit chain, the session index, access requests, grants,
// locks and login identities. Backends (sqlite, postgres) implement Store and
// must pass the one conformance suite in storage/conformance.
package storage

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// Errors every backend returns (wrapped) so callers can branch on them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict") // compare-and-set lost, duplicate id
)

// Store is everything a bastion persists. Small interfaces below let callers
// ask only for what they use.
type Store interface {
	AuditStore
	SessionStore
	AccessStore
	LockStore
	IdentityStore
	BotStore
	Close() error
}

// Event is one audit log entry. Seq, PrevHash and Hash are assigned by
// AuditStore.AppendEvents under the backend's append lock.
type Event struct {
	Seq      int64          `json:"seq"`
	Time     time.Time      `json:"time"`
	Type     string         `json:"type"`
	Actor    string         `json:"actor"`
	Target   string         `json:"target"`
	Outcome  string         `json:"outcome"`
	Fields   map[string]any `json:"fields,omitempty"`
	PrevHash []byte         `json:"prev_hash"`
	Hash     []byte         `json:"hash"`
}

// EventFilter selects audit events; zero values mean "any".
type EventFilter struct {
	Type string
	// TypePrefix matches every type that starts with it, e.g. "request.".
	TypePrefix string
	User       string // matches Actor or Target
	Since      time.Time
	Until      time.Time
	After      int64 // Seq > After (paging)
	Before     int64 // Seq < Before (paging newest first); 0 = no bound
	Limit      int   // 0 = no limit
	Newest     bool  // order by Seq descending
}

// Anchor records where the stored chain starts after retention pruned a prefix.
type Anchor struct {
	Seq  int64  // last pruned sequence number (0 when nothing was pruned)
	Hash []byte // hash of that event; the first stored event's PrevHash
}

// AuditStore is the append-only chain.
type AuditStore interface {
	// AppendEvents appends evs atomically and in order. Under the backend's
	// serialising lock it reads the last (Seq, Hash), assigns Seq = last+1...,
	// sets PrevHash, and calls seal for each event to compute its Hash. Appends
	// from concurrent goroutines or bastions form one gapless chain.
	AppendEvents(ctx context.Context, evs []Event, seal func(ev *Event) []byte) ([]Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// WalkEvents calls fn for every stored event in Seq order.
	WalkEvents(ctx context.Context, fn func(Event) error) error
	AuditAnchor(ctx context.Context) (Anchor, error)
	// PruneEvents deletes every event with Time < before, keeping the chain
	// verifiable by moving the anchor to the last deleted event.
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
}

// Session is the index entry of one relayed SSH channel (shell, exec,
// subsystem) or transfer.
type Session struct {
	ID         string     `json:"id"`
	User       string     `json:"user"`
	Login      string     `json:"login"`
	Node       string     `json:"node"`
	Kind       string     `json:"kind"` // shell, exec, sftp, scp, rsync, subsystem
	Command    string     `json:"command,omitempty"`
	Roles      []string   `json:"roles,omitempty"`
	RequestIDs []string   `json:"request_ids,omitempty"`
	ClientAddr string     `json:"client_addr,omitempty"`
	Bastion    string     `json:"bastion,omitempty"` // which bastion holds the recording
	Recording  string     `json:"recording,omitempty"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end,omitempty"`
	Status     string     `json:"status"` // live, ended, interrupted, terminated
	ExitStatus *int       `json:"exit_status,omitempty"`
	BytesIn    int64      `json:"bytes_in"`
	BytesOut   int64      `json:"bytes_out"`
}

// SessionFilter selects sessions; zero values mean "any".
type SessionFilter struct {
	User   string
	Node   string
	Since  time.Time
	Status string
	Limit  int
}

// SessionStore is the session index.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	// EndSession records the end of a session.
	EndSession(ctx context.Context, id string, end time.Time, status string, exit *int, bytesIn, bytesOut int64) error
	GetSession(ctx context.Context, id string) (Session, error)
	ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) // newest first
	// MarkInterrupted ends every session of bastion still "live" (after a crash).
	MarkInterrupted(ctx context.Context, bastion string, at time.Time) (int, error)
}

// Request states.
const (
	StatePending   = "PENDING"
	StateApproved  = "APPROVED"
	StateDenied    = "DENIED"
	StateExpired   = "EXPIRED"
	StateCancelled = "CANCELLED"
	StateRevoked   = "REVOKED"
)

// Request is an access request; once APPROVED it is also the grant, valid
// from GrantStart to GrantEnd unless revoked.
type Request struct {
	ID          string        `json:"id"`
	User        string        `json:"user"`
	Roles       []string      `json:"roles"`
	Reason      string        `json:"reason"`
	Duration    time.Duration `json:"duration"`
	State       string        `json:"state"`
	Created     time.Time     `json:"created"`
	Expires     time.Time     `json:"expires"` // pending requests expire unreviewed at this time
	GrantStart  *time.Time    `json:"grant_start,omitempty"`
	GrantEnd    *time.Time    `json:"grant_end,omitempty"`
	Reviews     []Review      `json:"reviews,omitempty"`
	StateReason string        `json:"state_reason,omitempty"`
	StateBy     string        `json:"state_by,omitempty"`
	Updated     time.Time     `json:"updated"`
	// Requested are the roles asked for when reviewers approved only some
	// of them; Roles then holds what was granted. Empty otherwise.
	Requested []string `json:"requested,omitempty"`
	// Node and Login make a resource request: the grant allows only this
	// login on this node, through the allow rules of Roles[0]. Labels,
	// instead of Node, make it a request for that login on every node whose
	// labels hold all these pairs.
	Node   string            `json:"node,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Login  string            `json:"login,omitempty"`
	// ForSession makes the grant session-bound: the first session that
	// uses it is recorded in Session, and the grant ends when it ends.
	ForSession bool   `json:"for_session,omitempty"`
	Session    string `json:"session,omitempty"`
}

// IsResource reports whether r is a resource request: one login on one
// node, or on the nodes a label selector matches.
func (r Request) IsResource() bool { return r.Node != "" || len(r.Labels) > 0 }

// Where names the nodes of a resource request as people read them: "db-1",
// or "nodes labelled env=staging,team=db"; "" for a request of whole roles.
func (r Request) Where() string {
	if r.Node != "" || len(r.Labels) == 0 {
		return r.Node
	}
	return "nodes labelled " + FormatLabels(r.Labels)
}

// FormatLabels writes a label selector as KEY=VALUE pairs, keys sorted, the
// syntax `request --labels` takes (policy.ParseLabels reads it).
func FormatLabels(sel map[string]string) string {
	pairs := make([]string, 0, len(sel))
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		pairs = append(pairs, k+"="+sel[k])
	}
	return strings.Join(pairs, ",")
}

// Review is one reviewer's verdict on a request.
type Review struct {
	Reviewer string `json:"reviewer"`
	// Via names the bot that submitted the review on the reviewer's
	// behalf (e.g. "bot:slack"); empty when the reviewer acted directly.
	Via     string    `json:"via,omitempty"`
	Approve bool      `json:"approve"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	// Roles, on an approval, are the requested roles it approves; empty
	// means all of them.
	Roles []string `json:"roles,omitempty"`
	// As are the reviewer's roles, when they reviewed, that the request's
	// approval rule names: which AND-rule groups the approval may count in.
	As []string `json:"as,omitempty"`
}

// RequestFilter selects requests; zero values mean "any".
type RequestFilter struct {
	User   string
	States []string
	Limit  int
}

// AccessStore keeps access requests, their reviews and grants.
type AccessStore interface {
	CreateRequest(ctx context.Context, r Request) error
	GetRequest(ctx context.Context, id string) (Request, error)
	ListRequests(ctx context.Context, f RequestFilter) ([]Request, error) // newest first
	// UpdateRequest loads the request inside a transaction that excludes
	// concurrent updates of the same request, calls fn, and stores what fn
	// returns. fn's error aborts and is returned as is.
	UpdateRequest(ctx context.Context, id string, fn func(r *Request) error) (Request, error)
	// ActiveGrants returns APPROVED requests of user with GrantStart <= now < GrantEnd.
	ActiveGrants(ctx context.Context, user string, now time.Time) ([]Request, error)
}

// Lock bars a user from every new and live session until it ends.
type Lock struct {
	User    string     `json:"user"`
	Reason  string     `json:"reason"`
	By      string     `json:"by"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// LockStore keeps user locks.
type LockStore interface {
	PutLock(ctx context.Context, l Lock) error
	DeleteLock(ctx context.Context, user string) error
	// ActiveLock returns the lock of user in force at now, or ErrNotFound.
	ActiveLock(ctx context.Context, user string, now time.Time) (Lock, error)
	ListLocks(ctx context.Context, now time.Time) ([]Lock, error)
}

// Login is one authenticated identity from OIDC: a browser session, a
// `gatehouse login` certificate, or an SSH key bound through the login URL.
type Login struct {
	ID        string              `json:"id"`
	User      string              `json:"user"`
	Claims    map[string][]string `json:"claims,omitempty"`
	Kind      string              `json:"kind"` // web, cli, sshkey, api
	KeyFP     string              `json:"key_fp,omitempty"`
	Created   time.Time           `json:"created"`
	Expires   time.Time           `json:"expires"`
	Revoked   bool                `json:"revoked"`
	CSRFToken string              `json:"-"`
}

// IdentityStore keeps logins and SSH key bindings.
type IdentityStore interface {
	PutLogin(ctx context.Context, l Login) error
	GetLogin(ctx context.Context, id string) (Login, error)
	// LoginByKey returns the unexpired, unrevoked sshkey login bound to fp.
	LoginByKey(ctx context.Context, fp string, now time.Time) (Login, error)
	RevokeLogin(ctx context.Context, id string) error
	// RevokeLogins revokes every login of user of kind (e.g. all of a
	// user's API tokens at a lock or logout); none is not an error.
	RevokeLogins(ctx context.Context, user, kind string) error
	// DeleteExpiredLogins removes the logins of kind that expired before
	// before (short-lived API tokens, one per command-line run, would
	// otherwise pile up).
	DeleteExpiredLogins(ctx context.Context, kind string, before time.Time) error
	// LatestLogin returns user's most recently created login of any kind
	// but api, expired and revoked ones included (its claims are the newest
	// the identity provider gave; an API token only copies claims);
	// ErrNotFound if the user never logged in.
	LatestLogin(ctx context.Context, user string) (Login, error)
	// Generic short-lived one-time values (login URL codes, CLI codes).
	PutOneTime(ctx context.Context, key string, value []byte, expires time.Time) error
	// TakeOneTime returns and deletes the value; ErrNotFound if absent or expired.
	TakeOneTime(ctx context.Context, key string, now time.Time) ([]byte, error)
}

// Bot is a non-human identity that uses the HTTP API with tokens. Its rights
// come from Roles, read against roles.yaml like a user's.
type Bot struct {
	Name    string    `json:"name"` // without the "bot:" prefix its actor name carries
	Roles   []string  `json:"roles"`
	Created time.Time `json:"created"`
	By      string    `json:"by"`
}

// Token is an API token of a bot. The secret itself is never stored: Hash is
// the hex SHA-256 of it, which suffices because tokens are 256 random bits.
type Token struct {
	Hash    string    `json:"-"`
	Bot     string    `json:"bot"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// BotStore keeps bots and their API tokens.
type BotStore interface {
	// CreateBot stores b with its first token, atomically; ErrConflict if
	// a bot of that name exists.
	CreateBot(ctx context.Context, b Bot, t Token) error
	ListBots(ctx context.Context) ([]Bot, error) // by name
	// DeleteBot removes the bot and every token of it; ErrNotFound if absent.
	DeleteBot(ctx context.Context, name string) error
	// BotByToken returns the bot whose token has hash, if that token has not
	// expired at now; ErrNotFound otherwise (unknown, expired, bot removed).
	BotByToken(ctx context.Context, hash string, now time.Time) (Bot, Token, error)
}

// PrefixEnd is the smallest string greater than every string starting
// with prefix, so a prefix match can be an index range [prefix, end). It
// returns "" when there is none (prefix empty or all 0xff).
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
