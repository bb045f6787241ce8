package policy

import (
	"slices"
	"time"
)

// Node is the target of an SSH login as the policy sees it: a name and the
// labels from the inventory.
type Node struct {
	Name   string
	Labels map[string]string
}

// Subject is who is asking. Roles are the effective roles at this moment
// (static and claim-mapped roles plus approved grants, nothing if locked),
// computed by the caller; Claims feed login traits such as
// {{claims.unix_login}}.
type Subject struct {
	User   string
	Claims map[string][]string
	Roles  []string
	// Resources are resource grants: one login on one node each (see
	// ResourceAllows). Empty when the subject is locked.
	Resources []Resource
}

// Decision is the answer to "may s log in as login on n".
type Decision struct {
	Allowed bool
	// Rule is the one-line reason, safe to show to the subject: it names only
	// the subject's own deciding role, the login and node labels.
	Rule string
	// Roles are the subject's roles that allow this access, sorted. A session
	// depends on these grants: when all of them are gone it must end.
	Roles []string
	// Grants are the IDs of the subject's resource grants that allow this
	// access, in the subject's order; their roles are in Roles too.
	Grants []string
	// Options are the merged options of Roles, most restrictive wins.
	Options Options
}

// Options are the session options in force for an allowed login.
type Options struct {
	MaxSessionTTL   time.Duration // 0 = unlimited
	PortForwarding  bool
	AgentForwarding bool
}

// Policy is a compiled roles file. It is immutable after Parse, so it can be
// shared by any number of goroutines without locking.
type Policy struct {
	source string
	digest string
	roles  map[string]*role
	names  []string            // sorted role names
	users  map[string][]string // username -> roles, sorted
	claims []claimMapping
}

// Permission areas and verbs for Can.
const (
	AreaSessions = "sessions"
	AreaAudit    = "audit"
	AreaLocks    = "locks"

	VerbList      = "list"
	VerbPlay      = "play"
	VerbJoin      = "join"
	VerbTerminate = "terminate"
	VerbRead      = "read"
	VerbManage    = "manage"
)

// perm is one area/verb pair as a bit so a role's permissions are one word
// and Can never allocates.
type perm uint32

const (
	permSessionsList perm = 1 << iota
	permSessionsPlay
	permSessionsJoin
	permSessionsTerminate
	permAuditRead
	permLocksManage
	// permReviewOnBehalf is allow.review_on_behalf: submit a review
	// attributed to a named person, whose own rights are then checked.
	permReviewOnBehalf
)

// permOf maps an area/verb pair to its bit; 0 means no such permission.
func permOf(area, verb string) perm {
	switch area {
	case AreaSessions:
		switch verb {
		case VerbList:
			return permSessionsList
		case VerbPlay:
			return permSessionsPlay
		case VerbJoin:
			return permSessionsJoin
		case VerbTerminate:
			return permSessionsTerminate
		}
	case AreaAudit:
		if verb == VerbRead {
			return permAuditRead
		}
	case AreaLocks:
		if verb == VerbManage {
			return permLocksManage
		}
	}
	return 0
}

// Defaults for keys left unset.
const (
	// DefaultMaxRequestDuration applies when a role allows requesting roles
	// but sets no max_duration: short, because an unbounded default would
	// make every forgotten key a standing grant.
	DefaultMaxRequestDuration = time.Hour
	// DefaultRequestDuration is the grant a request gets when it names no
	// duration and the role that allows requesting sets no
	// default_duration (or that role's max_duration, when shorter).
	DefaultRequestDuration = time.Hour
)

// role is one compiled role.
type role struct {
	name  string
	allow rules
	deny  rules
	opts  roleOptions

	// Precomputed pieces of Rule strings so decisions only concatenate.
	allowPrefix string // "role dev allows login "
	allowSuffix string // " on {env: staging}"
	denyPrefix  string // "role dba denies login " or "role dba denies "
	denySuffix  string // " on {env: pci}" or "{env: pci}"
	selKeys     []string
}

// rules is the body of an allow or a deny block.
type rules struct {
	logins    []loginPattern
	hasLogins bool      // the logins key was given
	nodes     *selector // nil when node_labels was not given
	request   map[string]bool
	maxReq    time.Duration
	// defReq is request.default_duration, or what DefaultRequestDuration
	// leaves under maxReq when unset.
	defReq    time.Duration
	reasonReq bool
	// sessionReq is request.for_session_required: grants of these roles
	// must be asked for with --for-session.
	sessionReq bool
	review     map[string]bool
	approvals  int // approvals: N; 0 when groups are given instead
	groups     []ApprovalGroup
	denials    int
	perms      perm
}

// sshDeny reports whether a deny block says anything about logins at all; a
// deny block that only lists, say, sessions permissions must not deny SSH.
func (r *rules) sshDeny() bool { return r.hasLogins || r.nodes != nil }

// roleOptions keeps unset apart from false so merging can tell them apart.
type roleOptions struct {
	maxTTL     time.Duration // 0 = unset
	portFwd    tristate
	agentFwd   tristate
	hasOptions bool
	// reviewReason is options.review_reason_required: a review of a
	// request for this role (approve or deny) must give a reason. It is
	// a property of the role asked for, not of a session, so it takes no
	// part in merging session options.
	reviewReason bool
}

type tristate int8

const (
	unset tristate = iota
	setTrue
	setFalse
)

// claimMapping is one claims_to_roles entry.
type claimMapping struct {
	claim string
	value string // exact value or glob
	roles []string
}

// RoleNames returns every role defined, sorted.
func (p *Policy) RoleNames() []string { return slices.Clone(p.names) }

// HasRole reports whether name is a defined role.
func (p *Policy) HasRole(name string) bool { _, ok := p.roles[name]; return ok }

// HasUser reports whether the roles file's users: lists name.
func (p *Policy) HasUser(name string) bool { _, ok := p.users[name]; return ok }

// Source is the file name the policy was parsed from.
func (p *Policy) Source() string { return p.source }

// Digest is the hex SHA-256 of the source bytes, for logs and audit events
// that record which policy made a decision.
func (p *Policy) Digest() string { return p.digest }
