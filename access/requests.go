package access

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Ask is what a requester asks for. Roles name whole roles; or Node and
// Login name one login on one node (a resource request), through a role the
// requester may request that allows it; or Labels and Login name that login
// on every node whose labels hold all of Labels' pairs, through a role that
// allows it on every such node among Nodes (the inventory now).
// ForSession binds the grant to the first session that uses it.
type Ask struct {
	Roles      []string
	Reason     string
	Duration   time.Duration
	Node       *policy.Node
	Labels     map[string]string
	Nodes      []policy.Node
	Login      string
	ForSession bool
}

// Create files a request by requester for roles. The policy decides whether
// the requester may ask for these roles, for this long, with this reason.
func (s *Service) Create(ctx context.Context, requester Effective, roles []string, reason string, d time.Duration) (storage.Request, error) {
	return s.Ask(ctx, requester, Ask{Roles: roles, Reason: reason, Duration: d})
}

// Ask files the request a describes; see Create.
func (s *Service) Ask(ctx context.Context, requester Effective, a Ask) (storage.Request, error) {
	if requester.admin {
		return storage.Request{}, refuse("the admin identity cannot request roles; request as yourself")
	}
	if requester.Lock != nil {
		return storage.Request{}, refuse("you are locked and may not request roles")
	}
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("create request: %w", err)
	}
	roles := cleanRoles(a.Roles)
	login := strings.TrimSpace(a.Login)
	if a.Node != nil || len(a.Labels) > 0 {
		via, err := s.resourceRoles(ctx, p, requester, a, login)
		if err != nil {
			return storage.Request{}, err
		}
		if len(roles) > 0 {
			via = slices.DeleteFunc(via, func(r string) bool { return !slices.Contains(roles, r) })
		}
		if len(via) == 0 {
			if a.Node != nil {
				return storage.Request{}, refuse("no role you may request allows login %s on %s", termsafe.String(login), a.Node.Name)
			}
			// The same line whether the selector matches no node or a node
			// no requestable role opens: which labelled nodes exist is not
			// the requester's to probe.
			return storage.Request{}, refuse("no role you may request allows login %s on every node labelled %s, or no node is labelled so",
				termsafe.String(login), storage.FormatLabels(a.Labels))
		}
		// One role, so reviewers see exactly which rules the grant borrows.
		roles = via[:1]
	} else if login != "" {
		return storage.Request{}, refuse("--login needs --node or --labels: a resource request names one login on one node or on labelled nodes")
	}
	if len(roles) == 0 {
		return storage.Request{}, refuse("name at least one role to request")
	}
	d := a.Duration
	if d < 0 {
		return storage.Request{}, refuse("duration must be positive")
	}
	reason := strings.TrimSpace(a.Reason)
	if d == 0 {
		// The policy's default; a role not requestable keeps 0 here and
		// CheckRequest below refuses it by name. Capped at this bastion's
		// limit, since a default is not something the requester asked for.
		d, _ = p.DefaultRequestDuration(requester.Subject, roles)
		d = min(d, s.opts.MaxGrant)
	}
	if d > s.opts.MaxGrant {
		return storage.Request{}, refuse("duration %s exceeds this bastion's limit of %s", policy.FormatDuration(d), policy.FormatDuration(s.opts.MaxGrant))
	}
	if err := p.CheckRequest(requester.Subject, roles, d, reason); err != nil {
		return storage.Request{}, &Refusal{Msg: err.Error(), Cause: err}
	}
	if !a.ForSession && p.ForSessionRequired(requester.Subject, roles) {
		return storage.Request{}, refuse("%s may only be granted for one session: ask again with --for-session", strings.Join(roles, ","))
	}

	now := s.now()
	r := storage.Request{
		User:       requester.User(),
		Roles:      roles,
		Reason:     reason,
		Duration:   d,
		State:      storage.StatePending,
		Created:    now,
		Expires:    now.Add(s.opts.PendingTTL),
		Updated:    now,
		Login:      login,
		ForSession: a.ForSession,
	}
	if a.Node != nil {
		r.Node = a.Node.Name
	} else if len(a.Labels) > 0 {
		r.Labels = maps.Clone(a.Labels)
	}
	// 70 random bits make a collision unlikely, not impossible; a few
	// fresh tries turn "unlikely" into "never seen".
	for try := 0; ; try++ {
		if r.ID, err = newID(); err != nil {
			return storage.Request{}, err
		}
		err = s.store.CreateRequest(ctx, r)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrConflict) || try == 3 {
			return storage.Request{}, fmt.Errorf("store request of %s for %s: %w", r.User, strings.Join(roles, ","), err)
		}
	}
	s.log.InfoContext(ctx, "access request created", "id", r.ID, "user", r.User, "roles", roles, "duration", d, "node", r.Node,
		"labels", storage.FormatLabels(r.Labels), "login", r.Login, "for_session", r.ForSession)
	fields := map[string]any{"roles": roles, "duration": d.String(), "reason": reason, "expires": r.Expires}
	switch {
	case r.Node != "":
		fields["node"], fields["login"] = r.Node, r.Login
	case len(r.Labels) > 0:
		fields["labels"], fields["login"] = maps.Clone(r.Labels), r.Login
	}
	if r.ForSession {
		fields["for_session"] = true
	}
	s.audit(ctx, audit.TypeRequestCreate, r.User, r.ID, "success", fields)
	s.notify(ctx, notify.EventCreated, r, r.User)
	s.wake()
	return r, nil
}

// resourceRoles are the roles through which a resource request a for
// login could be granted: those giving login on a.Node, or on every node of
// a.Nodes that a.Labels select (policy.SelectorRoles).
func (s *Service) resourceRoles(ctx context.Context, p *policy.Policy, requester Effective, a Ask, login string) ([]string, error) {
	switch {
	case a.Node != nil && len(a.Labels) > 0:
		return nil, refuse("a resource request names --node or --labels, not both")
	case login == "":
		return nil, refuse("a resource request needs --login as well as --node or --labels")
	case a.Node != nil:
		return p.ResourceRoles(requester.Subject, login, *a.Node), nil
	}
	if err := policy.CheckLabels(a.Labels); err != nil {
		return nil, refuse("%s", err.Error())
	}
	via, matched := p.SelectorRoles(requester.Subject, login, a.Labels, a.Nodes)
	// The requester is told less than this (see Ask); the operator may
	// need to know why a selector request was refused.
	s.log.DebugContext(ctx, "label selector request checked", "user", requester.User(), "login", login,
		"labels", storage.FormatLabels(a.Labels), "matched", matched, "roles", via)
	return via, nil
}

// cleanRoles trims, drops empties and duplicates, keeping the order given.
func cleanRoles(in []string) []string {
	var out []string
	for _, r := range in {
		r = strings.TrimSpace(r)
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// mayReview reports whether e may review a request for roles and, if so,
// the thresholds e's review rules set.
func mayReview(p *policy.Policy, e Effective, roles []string) (approvals, denials int, ok bool) {
	if e.admin || e.Lock != nil {
		return 0, 0, false
	}
	approvals, denials, ok = p.ReviewThreshold(e.Subject, roles)
	// A rule written as approvals: 0 must not approve without anyone
	// looking; the requester never counts, so one reviewer is the floor.
	return max(approvals, 1), max(denials, 1), ok
}

// expireInPlace moves a pending request past its Expires to EXPIRED.
func expireInPlace(r *storage.Request, now time.Time) {
	r.State = storage.StateExpired
	r.StateReason = "not reviewed in time"
	r.StateBy = ""
	r.Updated = now
}

// Review records reviewer's verdict on request id. Enough approvals make
// it APPROVED (the grant starts now), enough denials make it DENIED. The
// whole check-and-update runs inside the store's UpdateRequest, so
// concurrent reviewers on any bastion are counted exactly once each.
func (s *Service) Review(ctx context.Context, reviewer Effective, id string, approve bool, reason string) (storage.Request, error) {
	return s.ReviewWith(ctx, reviewer, id, ReviewVerdict{Approve: approve, Reason: reason})
}

// ReviewVerdict is one review: approve or deny, why, and for an approval
// optionally the requested roles it approves (empty: all of them).
type ReviewVerdict struct {
	Approve bool
	Reason  string
	Roles   []string
}

// ReviewWith is Review with the whole verdict, so a reviewer can approve a
// subset of the requested roles. Each requested role is granted when the
// approvals that include it meet the request's approval rule; the request
// is approved as soon as one role is, and the grant holds the roles met at
// that moment.
func (s *Service) ReviewWith(ctx context.Context, reviewer Effective, id string, v ReviewVerdict) (storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("review request %s: %w", id, err)
	}
	return s.review(ctx, p, reviewer, "", id, v)
}

// ReviewOnBehalf records a review that bot submits for person (a plugin
// relaying alice's click in Slack). bot needs allow.review_on_behalf; the
// review itself is person's in every respect: her current roles must make
// her a reviewer of the requested roles, she may not be the requester, and
// her review counts once whichever channel it came through. The audit event
// has person as actor and the bot in its "via" field.
func (s *Service) ReviewOnBehalf(ctx context.Context, bot Effective, person, id string, approve bool, reason string) (storage.Request, error) {
	return s.ReviewOnBehalfWith(ctx, bot, person, id, ReviewVerdict{Approve: approve, Reason: reason})
}

// ReviewOnBehalfWith is ReviewOnBehalf with the whole verdict (see ReviewWith).
func (s *Service) ReviewOnBehalfWith(ctx context.Context, bot Effective, person, id string, v ReviewVerdict) (storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("review request %s: %w", id, err)
	}
	eff, err := s.onBehalf(ctx, p, bot, person)
	if err != nil {
		return storage.Request{}, err
	}
	return s.review(ctx, p, eff, bot.User(), id, v)
}

// onBehalf checks that bot may relay reviews and returns person's standing
// now, from her users: roles, grants, lock and latest claims, as if she
// had logged in herself.
func (s *Service) onBehalf(ctx context.Context, p *policy.Policy, bot Effective, person string) (Effective, error) {
	if bot.userToken {
		return Effective{}, refuse("a user API token acts only as its user: on_behalf_of is for plugin bots")
	}
	if bot.admin || bot.Lock != nil || !p.MayReviewOnBehalf(bot.Subject) {
		return Effective{}, refuse("%s may not review on behalf of others (no role of it allows review_on_behalf)", bot.User())
	}
	person = strings.TrimSpace(person)
	if person == "" || IsBot(person) || person == AdminName || strings.ContainsAny(person, " \t\r\n") {
		return Effective{}, refuse("on_behalf_of must name a person")
	}
	var claims map[string][]string
	if s.opts.Claims != nil {
		var err error
		if claims, err = s.opts.Claims.LatestClaims(ctx, person); err != nil {
			return Effective{}, fmt.Errorf("review on behalf of %s: %w", person, err)
		}
	}
	eff, err := s.Effective(ctx, person, claims)
	if err != nil {
		return Effective{}, fmt.Errorf("review on behalf of %s: %w", person, err)
	}
	return eff, nil
}

// CanReviewOnBehalf answers, without reviewing, whether person may review
// request id now: the question a plugin asks before it asks her for a
// reason. It returns the request and, when she may not, the one line why
// (cannot); "" means she may. approve, when not nil, asks about that verdict
// (an approval can be refused where a denial is not: "would not count").
// bot needs review_on_behalf exactly as for ReviewOnBehalf, and the answer
// comes from checkReview, the check every review passes, so it can differ
// from the review's own only when something changed in between; the review
// checks again.
func (s *Service) CanReviewOnBehalf(ctx context.Context, bot Effective, person, id string, approve *bool) (r storage.Request, cannot string, err error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, "", fmt.Errorf("check review of request %s: %w", id, err)
	}
	eff, err := s.onBehalf(ctx, p, bot, person)
	if err != nil {
		return storage.Request{}, "", err
	}
	r, err = s.store.GetRequest(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Request{}, "", noSuchRequest(id, "see")
	}
	if err != nil {
		return storage.Request{}, "", fmt.Errorf("check review of request %s: %w", id, err)
	}
	expired, err := checkReview(p, eff, bot.User(), id, r, s.now())
	if err == nil && expired {
		err = refuse("request %s expired before it was reviewed", id)
	}
	if err == nil && approve != nil && *approve {
		err = checkApproval(p, eff, bot.User(), id, r)
	}
	var ref *Refusal
	switch {
	case err == nil:
		return r, "", nil
	case errors.As(err, &ref):
		return r, ref.Msg, nil
	default:
		return storage.Request{}, "", err
	}
}

// speaker is how a refusal names the reviewer: "you" to a person reviewing
// directly, her name when a bot relays (via).
func speaker(reviewer Effective, via string) (who, whose string) {
	if via != "" {
		return reviewer.User(), "their"
	}
	return "you", "your"
}

// checkReview is why reviewer may not review r now, whatever the verdict
// and reason: locked, the requester, not a reviewer of its roles (or, for
// a direct reviewer, not allowed to see it), no longer pending, already
// reviewed by them. A pending request past its Expires is reported as
// expired with no error: a review moves it to EXPIRED, a check says so.
// Review and CanReviewOnBehalf both decide through it.
func checkReview(p *policy.Policy, reviewer Effective, via, id string, r storage.Request, now time.Time) (expired bool, err error) {
	who, whose := speaker(reviewer, via)
	if reviewer.Lock != nil {
		if via == "" {
			return false, refuse("you are locked and may not review requests")
		}
		return false, refuse("%s is locked and may not review requests", reviewer.User())
	}
	if r.User == reviewer.User() {
		return false, refuse("%s cannot review %s own request", who, whose)
	}
	// A relaying bot sees every request (review_on_behalf), so it learns
	// nothing from the person's refusal; anyone else gets the answer a
	// made-up id gets.
	if via == "" && !visible(p, reviewer, r) {
		return false, noSuchRequest(id, "review")
	}
	_, _, ok := mayReview(p, reviewer, r.Roles)
	if _, ruleOK := p.ApprovalRule(r.Roles); !ok || !ruleOK {
		return false, refuse("%s may not review request %s", who, id)
	}
	if r.State != storage.StatePending {
		return false, refuse("request %s is already %s", id, strings.ToLower(r.State))
	}
	if !now.Before(r.Expires) {
		return true, nil
	}
	for _, rv := range r.Reviews {
		if rv.Reviewer == reviewer.User() {
			return false, refuse("%s already reviewed request %s", who, id)
		}
	}
	return false, nil
}

// checkApproval is why reviewer's approval of r would not count toward its
// approval rule (checkReview passed first).
func checkApproval(p *policy.Policy, reviewer Effective, via, id string, r storage.Request) error {
	rule, _ := p.ApprovalRule(r.Roles)
	if !rule.CanCount(reviewer.Subject.Roles) {
		_, whose := speaker(reviewer, via)
		return refuse("%s approval would not count: request %s needs %s", whose, id, rule.Approvals())
	}
	return nil
}

// review is Review for reviewer, submitted directly (via "") or by the bot
// named in via.
func (s *Service) review(ctx context.Context, p *policy.Policy, reviewer Effective, via, id string, v ReviewVerdict) (storage.Request, error) {
	approve := v.Approve
	reason := strings.TrimSpace(v.Reason)
	subset := cleanRoles(v.Roles)
	if !approve && len(subset) > 0 {
		return storage.Request{}, refuse("a denial covers the whole request; name roles only when approving")
	}
	now := s.now()
	var expired bool
	var decided string
	r, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
		// The store may call fn again after a lost race; start clean.
		expired, decided = false, ""
		var err error
		if expired, err = checkReview(p, reviewer, via, id, *r, now); err != nil {
			return err
		}
		if expired {
			expireInPlace(r, now)
			return nil
		}
		// Checked here, the one place every channel's review passes (ssh,
		// web, API, plugins on someone's behalf), so none can skip it.
		if role, ok := p.ReviewReasonRequired(r.Roles); ok && reason == "" {
			return refuse("a reason is required to review request %s (role %s asks reviewers to say why)", id, role)
		}
		for _, role := range subset {
			if !slices.Contains(r.Roles, role) {
				return refuse("request %s does not ask for role %s", id, termsafe.String(role))
			}
		}
		if len(subset) == len(r.Roles) {
			subset = nil
		}
		if approve {
			if err := checkApproval(p, reviewer, via, id, *r); err != nil {
				return err
			}
		}
		rule, _ := p.ApprovalRule(r.Roles)
		r.Reviews = append(r.Reviews, storage.Review{Reviewer: reviewer.User(), Via: via, Approve: approve, Reason: reason, Time: now,
			Roles: subset, As: rule.Relevant(reviewer.Subject.Roles)})
		r.Updated = now
		no := 0
		for _, rv := range r.Reviews {
			if !rv.Approve {
				no++
			}
		}
		switch granted := grantedRoles(rule, *r); {
		case approve && len(granted) > 0:
			start, end := now, now.Add(r.Duration)
			if len(granted) < len(r.Roles) {
				r.Requested, r.Roles = r.Roles, granted
			}
			r.State, r.GrantStart, r.GrantEnd = storage.StateApproved, &start, &end
			decided = storage.StateApproved
		case !approve && no >= rule.Denials:
			r.State = storage.StateDenied
			decided = storage.StateDenied
		}
		if decided != "" {
			r.StateBy, r.StateReason = reviewer.User(), reason
		}
		return nil
	})
	if err != nil {
		return storage.Request{}, s.updateErr(err, "review", id)
	}
	if expired {
		s.expired(ctx, r)
		return r, refuse("request %s expired before it was reviewed", id)
	}
	verdict := "deny"
	if approve {
		verdict = "approve"
	}
	fields := map[string]any{"requester": r.User, "roles": r.Roles, "reason": reason}
	if via != "" {
		fields["via"] = via
	}
	if subset != nil {
		fields["approved_roles"] = subset
	}
	s.audit(ctx, audit.TypeRequestReview, reviewer.User(), id, verdict, fields)
	switch decided {
	case storage.StateApproved:
		s.log.InfoContext(ctx, "access request approved", "id", id, "user", r.User, "roles", r.Roles, "by", reviewer.User())
		fields := map[string]any{"requester": r.User, "roles": r.Roles, "grant_start": *r.GrantStart, "grant_end": *r.GrantEnd}
		if via != "" {
			fields["via"] = via
		}
		s.audit(ctx, audit.TypeRequestApprove, reviewer.User(), id, "success", fields)
		s.notify(ctx, notify.EventApproved, r, reviewer.User())
		s.changed(ctx, audit.TypeRequestApprove, r.User)
	case storage.StateDenied:
		s.log.InfoContext(ctx, "access request denied", "id", id, "user", r.User, "by", reviewer.User())
		fields := map[string]any{"requester": r.User, "roles": r.Roles, "reason": reason}
		if via != "" {
			fields["via"] = via
		}
		s.audit(ctx, audit.TypeRequestDeny, reviewer.User(), id, "success", fields)
		s.notify(ctx, notify.EventDenied, r, reviewer.User())
		s.changed(ctx, audit.TypeRequestDeny, r.User)
	default:
		s.wake()
	}
	return r, nil
}

// updateErr turns an UpdateRequest error into what the caller returns; a
// missing request gets the same refusal as one fn found invisible.
func (s *Service) updateErr(err error, verb, id string) error {
	var ref *Refusal
	switch {
	case errors.As(err, &ref):
		return err
	case errors.Is(err, storage.ErrNotFound):
		return noSuchRequest(id, verb)
	default:
		return fmt.Errorf("%s request %s: %w", verb, id, err)
	}
}

// expired records and announces a request that just became EXPIRED.
func (s *Service) expired(ctx context.Context, r storage.Request) {
	s.log.InfoContext(ctx, "access request expired", "id", r.ID, "user", r.User)
	s.audit(ctx, audit.TypeRequestExpire, "gatehouse", r.ID, "success", map[string]any{
		"requester": r.User, "roles": r.Roles, "reviews": len(r.Reviews),
	})
	s.notify(ctx, notify.EventExpired, r, "gatehouse")
	s.changed(ctx, audit.TypeRequestExpire, r.User)
}

// expire moves request id to EXPIRED if it is still pending and past its
// Expires; on several bastions exactly one of them does it and audits it.
func (s *Service) expire(ctx context.Context, id string, now time.Time) error {
	r, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
		if r.State != storage.StatePending || now.Before(r.Expires) {
			return errNoChange
		}
		expireInPlace(r, now)
		return nil
	})
	if errors.Is(err, errNoChange) || errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("expire request %s: %w", id, err)
	}
	s.expired(ctx, r)
	return nil
}

// Cancel withdraws user's own pending request.
func (s *Service) Cancel(ctx context.Context, user Effective, id string) (storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("cancel request %s: %w", id, err)
	}
	now := s.now()
	var expired bool
	r, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
		expired = false
		if !visible(p, user, *r) {
			return noSuchRequest(id, "cancel")
		}
		if r.User != user.User() || user.admin {
			return refuse("you may only cancel your own requests")
		}
		if r.State != storage.StatePending {
			return refuse("request %s is already %s", id, strings.ToLower(r.State))
		}
		if !now.Before(r.Expires) {
			expireInPlace(r, now)
			expired = true
			return nil
		}
		r.State, r.StateBy, r.StateReason, r.Updated = storage.StateCancelled, user.User(), "cancelled by requester", now
		return nil
	})
	if err != nil {
		return storage.Request{}, s.updateErr(err, "cancel", id)
	}
	if expired {
		s.expired(ctx, r)
		return r, refuse("request %s had already expired", id)
	}
	s.audit(ctx, audit.TypeRequestCancel, user.User(), id, "success", map[string]any{"roles": r.Roles})
	s.notify(ctx, notify.EventCancelled, r, user.User())
	s.changed(ctx, audit.TypeRequestCancel, r.User)
	return r, nil
}

// Revoke ends an active grant now. The requester may drop their own grant;
// otherwise it takes locks: manage or the admin identity.
func (s *Service) Revoke(ctx context.Context, actor Effective, id, reason string) (storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("revoke request %s: %w", id, err)
	}
	reason = strings.TrimSpace(reason)
	now := s.now()
	r, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
		if !visible(p, actor, *r) && !p.Can(actor.Subject, policy.AreaLocks, policy.VerbManage) {
			return noSuchRequest(id, "revoke")
		}
		if !actor.admin && r.User != actor.User() && !p.Can(actor.Subject, policy.AreaLocks, policy.VerbManage) {
			// A reviewer, who may see the request but not end its grant.
			return refuse("you may not revoke request %s", id)
		}
		if r.State != storage.StateApproved {
			return refuse("request %s is %s, not an active grant", id, strings.ToLower(r.State))
		}
		if r.GrantEnd != nil && !now.Before(*r.GrantEnd) {
			return refuse("the grant of request %s already ended", id)
		}
		end := now
		r.State, r.GrantEnd, r.StateBy, r.StateReason, r.Updated = storage.StateRevoked, &end, actor.User(), reason, now
		return nil
	})
	if err != nil {
		return storage.Request{}, s.updateErr(err, "revoke", id)
	}
	s.log.InfoContext(ctx, "access grant revoked", "id", id, "user", r.User, "by", actor.User())
	s.audit(ctx, audit.TypeRequestRevoke, actor.User(), id, "success", map[string]any{
		"requester": r.User, "roles": r.Roles, "reason": reason, "admin": actor.admin,
	})
	s.notify(ctx, notify.EventRevoked, r, actor.User())
	s.changed(ctx, audit.TypeRequestRevoke, r.User)
	return r, nil
}

// visible reports whether viewer may see r: their own, ones they may
// review, or everything for the admin identity and for a plugin that
// reviews on behalf of people (it relays every request to its reviewers).
func visible(p *policy.Policy, viewer Effective, r storage.Request) bool {
	if viewer.admin || r.User == viewer.User() {
		return true
	}
	if viewer.Lock == nil && p.MayReviewOnBehalf(viewer.Subject) {
		return true
	}
	_, _, ok := mayReview(p, viewer, r.Roles)
	return ok
}

// Get returns request id if viewer may see it; otherwise it answers as if
// the request did not exist, so ids cannot be probed.
func (s *Service) Get(ctx context.Context, viewer Effective, id string) (storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return storage.Request{}, fmt.Errorf("get request %s: %w", id, err)
	}
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Request{}, noSuchRequest(id, "see")
	}
	if err != nil {
		return storage.Request{}, fmt.Errorf("get request %s: %w", id, err)
	}
	if !visible(p, viewer, r) {
		return storage.Request{}, noSuchRequest(id, "see")
	}
	return r, nil
}

// List returns the requests matching f that viewer may see, newest first.
func (s *Service) List(ctx context.Context, viewer Effective, f storage.RequestFilter) ([]storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	limit := f.Limit
	if !viewer.admin && f.User != viewer.User() {
		// Visibility is decided here, so the store's limit would count
		// rows the viewer never gets to see.
		f.Limit = 0
	}
	all, err := s.store.ListRequests(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out := make([]storage.Request, 0, len(all))
	for _, r := range all {
		if visible(p, viewer, r) {
			out = append(out, r)
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// ReviewQueue returns the pending, unexpired requests viewer may review and
// has not reviewed yet, newest first.
func (s *Service) ReviewQueue(ctx context.Context, viewer Effective) ([]storage.Request, error) {
	p, err := s.policy()
	if err != nil {
		return nil, fmt.Errorf("list review queue: %w", err)
	}
	all, err := s.store.ListRequests(ctx, storage.RequestFilter{States: []string{storage.StatePending}})
	if err != nil {
		return nil, fmt.Errorf("list review queue: %w", err)
	}
	now := s.now()
	var out []storage.Request
	for _, r := range all {
		if r.User == viewer.User() || !now.Before(r.Expires) {
			continue
		}
		if _, _, ok := mayReview(p, viewer, r.Roles); !ok {
			continue
		}
		if slices.ContainsFunc(r.Reviews, func(rv storage.Review) bool { return rv.Reviewer == viewer.User() }) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Wait blocks until request id leaves PENDING and returns it. It polls the
// store (another bastion may decide) and wakes early on decisions made in
// this process.
func (s *Service) Wait(ctx context.Context, id string) (storage.Request, error) {
	return s.WaitSeeing(ctx, id, nil)
}

// WaitSeeing is Wait that also hands pending each reading of the request
// while it is still pending, so a waiter can show how far its approval
// rule has come (a partial approval changes no state). pending runs on the
// waiting goroutine and should not block.
func (s *Service) WaitSeeing(ctx context.Context, id string, pending func(storage.Request)) (storage.Request, error) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		// Take the wake-up channel before reading, so a change between the
		// read and the select is not missed.
		wake := s.updates()
		r, err := s.store.GetRequest(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return storage.Request{}, noSuchRequest(id, "see")
		}
		if err != nil {
			return storage.Request{}, fmt.Errorf("wait for request %s: %w", id, err)
		}
		if r.State != storage.StatePending {
			return r, nil
		}
		if !s.now().Before(r.Expires) {
			// Do not depend on Run for the answer a waiter is owed.
			if err := s.expire(ctx, id, s.now()); err != nil {
				return storage.Request{}, err
			}
			continue
		}
		if pending != nil {
			pending(r)
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("wait for request %s: %w", id, ctx.Err())
		case <-wake:
		case <-t.C:
		}
	}
}
