package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// BindSession is called when session starts with access that depends on
// the grants requestIDs. A session-bound (--for-session) grant belongs to
// the first session that uses it: an unbound one is bound to session now;
// one bound to another session refuses this one, so a for-session grant
// never serves two sessions.
func (s *Service) BindSession(ctx context.Context, session string, requestIDs []string) error {
	for _, id := range requestIDs {
		_, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
			if !r.ForSession || r.Session == session {
				return errNoChange
			}
			if r.Session != "" {
				return refuse("grant %s was for one session, and another session has used it", termsafe.String(id))
			}
			r.Session, r.Updated = session, s.now()
			return nil
		})
		switch {
		case err == nil:
			s.log.InfoContext(ctx, "session-bound grant bound", "id", id, "session", session)
		case errors.Is(err, errNoChange), errors.Is(err, storage.ErrNotFound):
		default:
			return fmt.Errorf("bind grant %s to session %s: %w", id, session, err)
		}
	}
	return nil
}

// SessionEnded ends every session-bound grant among requestIDs that
// session holds: the grant's end moves to end, and sessions that depended on
// it are told as for any grant that ends.
func (s *Service) SessionEnded(ctx context.Context, session string, requestIDs []string, end time.Time) error {
	var errs []error
	for _, id := range requestIDs {
		r, err := s.store.UpdateRequest(ctx, id, func(r *storage.Request) error {
			if !r.ForSession || r.Session != session || r.State != storage.StateApproved ||
				r.GrantEnd == nil || !end.Before(*r.GrantEnd) {
				return errNoChange
			}
			e := end.Round(0)
			r.GrantEnd, r.StateReason, r.Updated = &e, "its session "+session+" ended", s.now()
			return nil
		})
		switch {
		case err == nil:
			s.log.InfoContext(ctx, "session-bound grant ended with its session", "id", id, "user", r.User, "session", session)
			s.audit(ctx, audit.TypeRequestSessionEnd, "gatehouse", id, "success", map[string]any{
				"requester": r.User, "roles": r.Roles, "session": session, "grant_end": *r.GrantEnd,
			})
			s.changed(ctx, audit.TypeRequestSessionEnd, r.User)
		case errors.Is(err, errNoChange), errors.Is(err, storage.ErrNotFound):
		default:
			errs = append(errs, fmt.Errorf("end grant %s with session %s: %w", id, session, err))
		}
	}
	return errors.Join(errs...)
}

// ForSessionRequired reports whether the policy grants roles to requester
// only for one session (request.for_session_required), so a request filed
// on the requester's behalf for the session at hand asks for that. False
// without a policy: Ask refuses then anyway.
func (s *Service) ForSessionRequired(requester Effective, roles []string) bool {
	p, err := s.policy()
	return err == nil && p.ForSessionRequired(requester.Subject, roles)
}
