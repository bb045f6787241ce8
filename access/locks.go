package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	s.audit(ctx, AuditLock, actor.User(), user, "success", fields)
	s.changed(ctx, AuditLock, user)
	return l, nil
}

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
	s.audit(ctx, AuditUnlock, actor.User(), user, "success", map[string]any{"admin": actor.admin})
	s.changed(ctx, AuditUnlock, user)
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
