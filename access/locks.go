package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/notify"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func (s *Service) mayManageLocks(actor Effective) (bool, error) {
	if actor.admin {
		return true, nil
	}
	p, err := s.policy()
	if err != nil {
		return false, err
	}
	return p.Can(actor.Subject, policy.AreaLocks, policy.VerbManage), nil
}

// Lock bars user from every new and live session until Unlock or, with a
// positive ttl, until ttl has passed. Locking an already locked user
// replaces the lock.
func (s *Service) Lock(ctx context.Context, actor Effective, user, reason string, ttl time.Duration) (storage.Lock, error) {
	ok, err := s.mayManageLocks(actor)
	if err != nil {
		return storage.Lock{}, fmt.Errorf("lock %s: %w", user, err)
	}
	if !ok {
		return storage.Lock{}, refuse("you may not lock users")
	}
	user, reason = strings.TrimSpace(user), strings.TrimSpace(reason)
	if user == "" {
		return storage.Lock{}, refuse("name the user to lock")
	}
	if reason == "" {
		return storage.Lock{}, refuse("a reason is required to lock a user")
	}
	if ttl < 0 {
		return storage.Lock{}, refuse("lock ttl must be positive")
	}
	now := s.now()
	l := storage.Lock{User: user, Reason: reason, By: actor.User(), Created: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		l.Expires = &exp
	}
	if err := s.store.PutLock(ctx, l); err != nil {
		return storage.Lock{}, fmt.Errorf("lock %s: %w", user, err)
	}
	s.log.WarnContext(ctx, "user locked", "user", user, "by", actor.User(), "ttl", ttl)
	fields := map[string]any{"reason": reason, "admin": actor.admin}
	if l.Expires != nil {
		fields["expires"] = *l.Expires
	}
	s.audit(ctx, audit.TypeUserLock, actor.User(), user, "success", fields)
	// A lock is a verdict on the person, not a pause: whatever access they
	// were granted or asked for before it must not come back with unlock.
	s.endAccessOf(ctx, actor, user, now)
	s.revokeUserTokens(ctx, user)
	s.changed(ctx, audit.TypeUserLock, user)
	return l, nil
}

// lockEndedReason is the state reason of grants and requests a lock ended.
// It names no lock reason: the requester can read their requests.
const lockEndedReason = "ended by a lock"

// endAccessOf revokes user's active grants and cancels their pending
// requests, each audited as a revocation or cancellation by actor. The
// lock is already stored, so a grant that cannot be revoked here is still
// powerless while the lock holds; its failure is logged and audited.
func (s *Service) endAccessOf(ctx context.Context, actor Effective, user string, now time.Time) {
	grants, err := s.store.ActiveGrants(ctx, user, now)
	if err != nil {
		s.log.ErrorContext(ctx, "lock: list active grants", "user", user, "err", err)
		s.audit(ctx, audit.TypeRequestRevoke, actor.User(), user, "error", map[string]any{"lock": true, "error": err.Error()})
	}
	for _, g := range grants {
		r, err := s.store.UpdateRequest(ctx, g.ID, func(r *storage.Request) error {
			if r.State != storage.StateApproved || (r.GrantEnd != nil && !now.Before(*r.GrantEnd)) {
				return errNothingToEnd
			}
			end := now
			r.State, r.GrantEnd, r.StateBy, r.StateReason, r.Updated = storage.StateRevoked, &end, actor.User(), lockEndedReason, now
			return nil
		})
		if errors.Is(err, errNothingToEnd) {
			continue
		}
		if err != nil {
			s.log.ErrorContext(ctx, "lock: revoke grant", "id", g.ID, "user", user, "err", err)
			s.audit(ctx, audit.TypeRequestRevoke, actor.User(), g.ID, "error", map[string]any{"requester": user, "lock": true, "error": err.Error()})
			continue
		}
		s.audit(ctx, audit.TypeRequestRevoke, actor.User(), r.ID, "success", map[string]any{
			"requester": r.User, "roles": r.Roles, "reason": lockEndedReason, "lock": true, "admin": actor.admin,
		})
		s.notify(ctx, notify.EventRevoked, r, actor.User())
	}
	pending, err := s.store.ListRequests(ctx, storage.RequestFilter{User: user, States: []string{storage.StatePending}})
	if err != nil {
		s.log.ErrorContext(ctx, "lock: list pending requests", "user", user, "err", err)
		return
	}
	for _, p := range pending {
		r, err := s.store.UpdateRequest(ctx, p.ID, func(r *storage.Request) error {
			if r.State != storage.StatePending {
				return errNothingToEnd
			}
			r.State, r.StateBy, r.StateReason, r.Updated = storage.StateCancelled, actor.User(), lockEndedReason, now
			return nil
		})
		if errors.Is(err, errNothingToEnd) {
			continue
		}
		if err != nil {
			s.log.ErrorContext(ctx, "lock: cancel pending request", "id", p.ID, "user", user, "err", err)
			continue
		}
		s.audit(ctx, audit.TypeRequestCancel, actor.User(), r.ID, "success", map[string]any{"roles": r.Roles, "reason": lockEndedReason, "lock": true})
		s.notify(ctx, notify.EventCancelled, r, actor.User())
	}
}

// errNothingToEnd aborts an update whose request changed state meanwhile.
var errNothingToEnd = errors.New("request no longer active")

// Unlock lifts user's lock.
func (s *Service) Unlock(ctx context.Context, actor Effective, user string) error {
	ok, err := s.mayManageLocks(actor)
	if err != nil {
		return fmt.Errorf("unlock %s: %w", user, err)
	}
	if !ok {
		return refuse("you may not unlock users")
	}
	user = strings.TrimSpace(user)
	// An expired lock is still a row; unlocking it is harmless, but saying
	// "unlocked" about a user who was not locked would mislead.
	if _, err := s.store.ActiveLock(ctx, user, s.now()); errors.Is(err, storage.ErrNotFound) {
		return &Refusal{Msg: fmt.Sprintf("user %s is not locked", user), Cause: storage.ErrNotFound}
	} else if err != nil {
		return fmt.Errorf("unlock %s: %w", user, err)
	}
	if err := s.store.DeleteLock(ctx, user); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("unlock %s: %w", user, err)
	}
	s.log.WarnContext(ctx, "user unlocked", "user", user, "by", actor.User())
	s.audit(ctx, audit.TypeUserUnlock, actor.User(), user, "success", map[string]any{"admin": actor.admin})
	s.changed(ctx, audit.TypeUserUnlock, user)
	return nil
}

// Locks lists the locks in force now; only lock managers may see them.
func (s *Service) Locks(ctx context.Context, viewer Effective) ([]storage.Lock, error) {
	ok, err := s.mayManageLocks(viewer)
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	if !ok {
		return nil, refuse("you may not list locks")
	}
	ls, err := s.store.ListLocks(ctx, s.now())
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return ls, nil
}
