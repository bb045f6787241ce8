package access

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// AdminName is the actor name recorded for the server-side CLI, which holds
// the config file and therefore acts with full authority.
const AdminName = "admin"

// ErrRefused marks errors that refuse what a user asked for; their message
// is one line meant for that user. Anything else is an internal failure.
var ErrRefused = errors.New("refused")

// errNoChange aborts an UpdateRequest whose work another writer already did.
var errNoChange = errors.New("no change")

// Refusal is a user-facing refusal. errors.Is(err, ErrRefused) holds for it,
// and it unwraps to its cause (e.g. storage.ErrNotFound) when it has one.
type Refusal struct {
	Msg   string
	Cause error
}

func (r *Refusal) Error() string        { return r.Msg }
func (r *Refusal) Unwrap() error        { return r.Cause }
func (r *Refusal) Is(target error) bool { return target == ErrRefused }

func refuse(format string, args ...any) error {
	return &Refusal{Msg: fmt.Sprintf(format, args...)}
}

// ErrNoSuchRequest is the one answer for a request id that does not exist
// and for one the asker may neither see nor act on: if the two differed,
// anyone could test whether an id they found (in a link, a log, a
// screenshot) is real. It is a storage.ErrNotFound, so every channel that
// maps "not found" (404, exit 1) maps both the same way, with the same
// message from noSuchRequest.
var ErrNoSuchRequest = fmt.Errorf("no such request: %w", storage.ErrNotFound)

// noSuchRequest is the refusal for ErrNoSuchRequest. It depends only on
// what the asker typed and what they tried, never on the request.
func noSuchRequest(id, verb string) error {
	return &Refusal{Msg: fmt.Sprintf("no request %s that you may %s", termsafe.String(id), verb), Cause: ErrNoSuchRequest}
}

// Store is what the service persists; storage.Store satisfies it.
type Store interface {
	storage.AccessStore
	storage.LockStore
	storage.BotStore
	// Logins hold user API tokens (IssueUserToken).
	storage.IdentityStore
}

// PolicySource yields the policy in force; *policy.Engine satisfies it.
type PolicySource interface {
	Current() *policy.Policy
}

// Auditor appends to the audit chain; *audit.Log satisfies it.
type Auditor interface {
	Append(ctx context.Context, ev storage.Event) error
}

// Options tune the service. Zero values take the defaults in brackets.
type Options struct {
	PendingTTL time.Duration    // how long a request waits for reviews [24h]
	Clock      func() time.Time // [time.Now]
	PublicURL  string           // base of links in notifications, e.g. https://bastion.example.com
	Logger     *slog.Logger     // [slog.Default()]
	// Interval is how often Run scans the store and Wait polls it [250ms].
	Interval time.Duration
	// Skew widens Run's scan window so grants ended by a bastion whose clock
	// runs a little behind are still noticed [10s].
	Skew time.Duration
	// MaxGrant caps every grant's duration whatever the roles file says
	// [7 days]. It bounds how far back Run must look for grants that may
	// still end, so a scan reads recent requests rather than all history.
	MaxGrant time.Duration
	// OnChange, if set, is called after every change this process makes
	// (kind is the audit event type, e.g. user.lock or request.approve;
	// user is whose access changed), once it is stored. Other bastions
	// sharing the store only see such changes at their next scan; the hook
	// lets the server tell them at once. It runs on the caller's goroutine
	// with a context that outlives the caller's, so keep it short.
	OnChange func(ctx context.Context, kind, user string)
	// Claims, if set, gives a person's claims from their latest login, so a
	// review submitted on their behalf (ReviewOnBehalf) sees the roles
	// claims_to_roles maps them to. Without it such a review sees the
	// person's users: roles and grants only.
	Claims ClaimsSource
}

// ClaimsSource yields the identity-provider claims of a user's latest login.
type ClaimsSource interface {
	LatestClaims(ctx context.Context, user string) (map[string][]string, error)
}

// Service is the access-request workflow, lock management and the watch
// that reports access changes. It is safe for concurrent use.
type Service struct {
	store Store
	pol   PolicySource
	aud   Auditor
	note  notify.Notifier
	opts  Options
	log   *slog.Logger

	kick chan struct{} // wakes Run after an in-process change
	// generation counts access changes stored by this process or noticed
	// by Scan; see Generation.
	generation atomic.Uint64

	mu      sync.Mutex
	updated chan struct{} // closed (and replaced) on every in-process change, wakes Wait
	subs    map[*subscription]struct{}

	scanMu sync.Mutex // serialises Scan and owns watch
	watch  watchState
}

// New builds a Service. n may be nil (no notifications); aud must not be:
// an access workflow without an audit trail is not one we ship.
func New(store Store, pol PolicySource, aud Auditor, n notify.Notifier, opts Options) *Service {
	if store == nil || pol == nil || aud == nil {
		panic("access.New: store, policy and auditor are required")
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = 24 * time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.Skew <= 0 {
		opts.Skew = 10 * time.Second
	}
	if opts.MaxGrant <= 0 {
		opts.MaxGrant = 7 * 24 * time.Hour
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	return &Service{
		store:   store,
		pol:     pol,
		aud:     aud,
		note:    n,
		opts:    opts,
		log:     opts.Logger,
		kick:    make(chan struct{}, 1),
		updated: make(chan struct{}),
		subs:    map[*subscription]struct{}{},
	}
}

// now strips the monotonic reading so times compare the same way before
// and after a round trip through the store.
func (s *Service) now() time.Time { return s.opts.Clock().Round(0) }

func (s *Service) policy() (*policy.Policy, error) {
	p := s.pol.Current()
	if p == nil {
		return nil, errors.New("no roles policy loaded")
	}
	return p, nil
}

// Generation counts the access changes this service has stored or noticed
// so far: every lock, unlock and grant decision made in this process, and
// every change Scan found (locks placed and grants ended elsewhere
// included), counted before subscribers hear of it. An Effective read while
// Generation was g describes the user as well as a fresh read would for as
// long as Generation is still g and none of its grants or locks has run out;
// a change that lands in the store unseen is counted at the next scan.
func (s *Service) Generation() uint64 { return s.generation.Load() }

// Effective is a user's standing at one moment.
type Effective struct {
	// Subject is what to hand to the policy; Subject.Roles is empty when
	// the user is locked.
	Subject policy.Subject
	Base    []string          // roles from users: and claims_to_roles
	Grants  []storage.Request // active grants (APPROVED, within their window)
	Lock    *storage.Lock     // set when the user is locked
	admin   bool
	// userToken: authenticated by a user API token, which acts only as
	// its person (no review on behalf of others).
	userToken bool
	// pol is the policy Base was computed under; Decide answers from it,
	// so one answer never mixes two policies.
	pol *policy.Policy
}

// Admin is the server-side CLI's identity: it may lock, unlock, revoke and
// see every request, but it holds no roles and so never reviews.
func Admin() Effective {
	return Effective{Subject: policy.Subject{User: AdminName}, admin: true}
}

// AdminAs is Admin acting for a named operator: the audit log records the
// actor as admin:NAME, so it shows who at the console did it.
func AdminAs(operator string) Effective {
	e := Admin()
	if operator != "" {
		e.Subject.User = AdminName + ":" + operator
	}
	return e
}

// User is the subject's name.
func (e Effective) User() string { return e.Subject.User }

// IsAdmin reports whether e is the server-side CLI (see Admin).
func (e Effective) IsAdmin() bool { return e.admin }

// Locked reports whether the user is locked out.
func (e Effective) Locked() bool { return e.Lock != nil }

// GrantsFor returns the ids of the active grants that provide role, so a
// session can tell which grants it depends on.
func (e Effective) GrantsFor(role string) []string {
	var ids []string
	for _, g := range e.Grants {
		// A resource grant is never a whole role; Decision.Grants names it
		// when it allows an access.
		if !g.IsResource() && slices.Contains(g.Roles, role) {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// Effective computes user's roles now: base roles from the policy plus the
// roles of active grants, or none at all if the user is locked. A store
// error is returned rather than guessed around, so callers fail closed.
func (s *Service) Effective(ctx context.Context, user string, claims map[string][]string) (Effective, error) {
	p, err := s.policy()
	if err != nil {
		return Effective{}, fmt.Errorf("compute roles of %s: %w", user, err)
	}
	now := s.now()
	e := Effective{
		Subject: policy.Subject{User: user, Claims: claims},
		Base:    p.BaseRoles(user, claims),
		pol:     p,
	}
	l, err := s.store.ActiveLock(ctx, user, now)
	switch {
	case err == nil:
		e.Lock = &l
	case errors.Is(err, storage.ErrNotFound):
	default:
		return Effective{}, fmt.Errorf("look up lock of %s: %w", user, err)
	}
	e.Grants, err = s.store.ActiveGrants(ctx, user, now)
	if err != nil {
		return Effective{}, fmt.Errorf("look up grants of %s: %w", user, err)
	}
	if e.Lock != nil {
		return e, nil
	}
	e.Subject.Roles = withGranted(e.Base, e.Grants)
	e.Subject.Resources = resources(e.Grants)
	return e, nil
}

// IDLength is how many characters a new request id has: lowercase base32
// (a-z, 2-7), 5 random bits each, so 14 characters carry 70 bits. Still
// short enough to type from a Slack message; far too many to guess, even
// for someone who could try ids for years. Ids made before (10 characters,
// 50 bits) stay valid: ids are only ever looked up, never parsed.
const IDLength = 14

// newID returns a fresh request id of IDLength characters.
func newID() (string, error) {
	var b [(IDLength*5 + 7) / 8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate request id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:IDLength], nil
}

// link is where a person can look at request id in the web UI.
func (s *Service) link(id string) string {
	if s.opts.PublicURL == "" {
		return ""
	}
	return s.opts.PublicURL + "/requests/" + id
}

// audit appends one event of type typ (an audit.Type constant). The
// action it records has already happened, so a failure here is logged
// (by audit.Append) but not turned into a failed action the user would
// retry.
func (s *Service) audit(ctx context.Context, typ, actor, target, outcome string, fields map[string]any) {
	_ = audit.Append(ctx, s.aud, s.log, storage.Event{Time: s.now(), Type: typ, Actor: actor, Target: target, Outcome: outcome, Fields: fields})
}

func (s *Service) notify(ctx context.Context, event string, r storage.Request, actor string) {
	if s.note == nil {
		return
	}
	m := notify.Message{Event: event, Request: r, Actor: actor, Link: s.link(r.ID)}
	if event == notify.EventCreated {
		m.Reviewers = s.reviewers(ctx, r)
		m.Approval = s.Explain(r).Status
	}
	s.note.Notify(ctx, m)
}

// reviewers lists who roles.yaml says may review r, leaving out anyone
// locked: a locked user can review nothing.
func (s *Service) reviewers(ctx context.Context, r storage.Request) []string {
	p, err := s.policy()
	if err != nil {
		return nil
	}
	var out []string
	for _, u := range p.StaticReviewers(r.User, r.Roles) {
		_, err := s.store.ActiveLock(ctx, u, s.now())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			out = append(out, u)
		case err != nil:
			s.log.WarnContext(ctx, "check lock of reviewer for notification", "user", u, "err", err)
		}
	}
	return out
}

// changed wakes Wait callers and Run after an in-process change, so this
// bastion reacts at once instead of at the next poll, and passes the change
// to Options.OnChange for the other bastions.
func (s *Service) changed(ctx context.Context, kind, user string) {
	s.generation.Add(1)
	s.mu.Lock()
	close(s.updated)
	s.updated = make(chan struct{})
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if s.opts.OnChange != nil {
		// The change is stored; the caller hanging up must not keep the
		// other bastions from hearing of it.
		s.opts.OnChange(context.WithoutCancel(ctx), kind, user)
	}
}

// wake tells Wait callers and Updates watchers that something about
// requests changed in this process without changing anyone's access (a new
// request, a review that decided nothing).
func (s *Service) wake() {
	s.mu.Lock()
	close(s.updated)
	s.updated = make(chan struct{})
	s.mu.Unlock()
}

// Updates returns a channel that is closed at the next request change made
// in this process. Take it before reading the state it guards, so a change in
// between is not missed. Changes made on other bastions do not close it:
// poll as well.
func (s *Service) Updates() <-chan struct{} { return s.updates() }

func (s *Service) updates() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updated
}

// withGranted is base plus the roles of grants, each once, in order.
func withGranted(base []string, grants []storage.Request) []string {
	roles := slices.Clone(base)
	for _, g := range grants {
		if g.IsResource() {
			continue
		}
		for _, r := range g.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	return roles
}

// resources are the resource grants among grants, as the policy takes them.
func resources(grants []storage.Request) []policy.Resource {
	var out []policy.Resource
	for _, g := range grants {
		if g.IsResource() && len(g.Roles) > 0 {
			out = append(out, policy.Resource{ID: g.ID, Role: g.Roles[0], Login: g.Login, Node: g.Node, Labels: g.Labels})
		}
	}
	return out
}
