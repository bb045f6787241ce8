package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Change kinds.
const (
	ChangeGrantStarted = "grant-started"
	ChangeGrantEnded   = "grant-ended" // expired or revoked
	ChangeLocked       = "locked"
	ChangeUnlocked     = "unlocked"
)

// Change tells subscribers that a user's access changed.
type Change struct {
	Kind      string
	User      string
	Reason    string    // why, for logs and the audit trail; not shown to the user
	RequestID string    // the grant, for grant changes
	At        time.Time // when the change took effect
}

// Notice is the line the proxy prints on a session it closes because of c.
// It names only the user's own request and the time, never the lock reason,
// which may be about an investigation the user should not learn of.
func (c Change) Notice() string {
	at := c.At.Format("15:04")
	switch c.Kind {
	case ChangeGrantEnded:
		return fmt.Sprintf("gatehouse: access via request %s ended at %s; session closed", c.RequestID, at)
	case ChangeLocked:
		return fmt.Sprintf("gatehouse: your access was locked at %s; session closed", at)
	default:
		return fmt.Sprintf("gatehouse: your access changed at %s; session closed", at)
	}
}

type subscription struct {
	ch   chan Change
	done chan struct{}
	once sync.Once
}

// Subscribe returns a channel of Changes and a function that ends the
// subscription. The channel is never closed (a send could race the close);
// stop reading once you have called the cancel function. Changes are
// delivered, not dropped: a subscriber that stops reading without
// cancelling holds up Run.
func (s *Service) Subscribe() (<-chan Change, func()) {
	sub := &subscription{ch: make(chan Change, 64), done: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub.ch, func() {
		sub.once.Do(func() {
			s.mu.Lock()
			delete(s.subs, sub)
			s.mu.Unlock()
			close(sub.done)
		})
	}
}

func (s *Service) emit(ctx context.Context, c Change) {
	s.log.InfoContext(ctx, "access change", "kind", c.Kind, "user", c.User, "request", c.RequestID, "reason", c.Reason)
	s.generation.Add(1)
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		select {
		case sub.ch <- c:
		case <-sub.done:
		case <-ctx.Done():
			return
		}
	}
}

// watchState is what Scan remembers between passes. It only deduplicates;
// the facts come from the store each time.
type watchState struct {
	last    time.Time            // time of the last fully successful scan
	started map[string]time.Time // grant id -> GrantEnd, start already announced
	ended   map[string]time.Time // grant id -> GrantEnd, end already announced
	locked  map[string]bool      // users locked at the last scan
}

// Run scans the store every Interval, and at once after a change made in
// this process, until ctx ends. Store errors are logged and retried: the
// next successful scan covers the time the failed ones missed.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		if err := s.Scan(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "access scan failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Scan does one pass of Run: it expires pending requests past their
// Expires and emits a Change for each grant that started or ended and each
// lock placed or lifted since the previous pass. Run calls it; tests call it
// directly to step an injected clock.
func (s *Service) Scan(ctx context.Context) error {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	now := s.now()
	w := &s.watch
	if w.started == nil {
		// Nothing that ended before this process watched can have a live
		// session here.
		w.last = now
		w.started, w.ended, w.locked = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
	}
	// Look back past the last scan by Skew: another bastion's clock may lag
	// ours, and dedupe maps keep the overlap from repeating changes.
	from := w.last.Add(-s.opts.Skew)
	var errs []error
	var changes []Change

	pending, err := s.store.ListRequests(ctx, storage.RequestFilter{States: []string{storage.StatePending}})
	if err != nil {
		errs = append(errs, fmt.Errorf("list pending requests: %w", err))
	}
	for _, r := range pending {
		if !now.Before(r.Expires) {
			if err := s.expire(ctx, r.ID, now); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Locks first: a lock ends the user's grants too, and the sessions it
	// closes should say "locked", not that a grant ended.
	locks, err := s.store.ListLocks(ctx, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("list locks: %w", err))
	} else {
		cur := make(map[string]bool, len(locks))
		for _, l := range locks {
			cur[l.User] = true
			if !w.locked[l.User] {
				changes = append(changes, Change{Kind: ChangeLocked, User: l.User, Reason: l.Reason, At: l.Created})
			}
		}
		for u := range w.locked {
			if !cur[u] {
				changes = append(changes, Change{Kind: ChangeUnlocked, User: u, Reason: "lock lifted or expired", At: now})
			}
		}
		w.locked = cur
	}

	grants, err := s.recentGrants(ctx, from)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range grants {
		if r.GrantStart == nil || r.GrantEnd == nil {
			continue
		}
		start, end := *r.GrantStart, *r.GrantEnd
		switch {
		case !now.Before(end):
			if _, seen := w.ended[r.ID]; !seen && end.After(from) {
				w.ended[r.ID] = end
				reason := "grant expired"
				if r.State == storage.StateRevoked {
					reason = "grant revoked by " + r.StateBy
				}
				changes = append(changes, Change{Kind: ChangeGrantEnded, User: r.User, RequestID: r.ID, Reason: reason, At: end})
			}
		case r.State == storage.StateApproved && !now.Before(start):
			if _, seen := w.started[r.ID]; !seen && start.After(from) {
				w.started[r.ID] = end
				changes = append(changes, Change{Kind: ChangeGrantStarted, User: r.User, RequestID: r.ID, Reason: "grant approved", At: start})
			}
		}
	}

	for id, end := range w.ended {
		if !end.After(from) {
			delete(w.ended, id)
		}
	}
	for id, end := range w.started {
		if !end.After(from) {
			delete(w.started, id)
		}
	}
	if len(errs) == 0 {
		w.last = now
	}
	for _, c := range changes {
		s.emit(ctx, c)
	}
	return errors.Join(errs...)
}

// recentGrants returns the APPROVED and REVOKED requests that can still
// start or end after from. A grant starts before its request's Expires and
// lasts at most MaxGrant (Create enforces it), so anything created more
// than PendingTTL+MaxGrant before from is settled. The store lists newest
// first; we widen the page until it reaches past that point.
func (s *Service) recentGrants(ctx context.Context, from time.Time) ([]storage.Request, error) {
	cutoff := from.Add(-s.opts.PendingTTL - s.opts.MaxGrant)
	f := storage.RequestFilter{States: []string{storage.StateApproved, storage.StateRevoked}, Limit: 256}
	for {
		rs, err := s.store.ListRequests(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("list grants: %w", err)
		}
		if len(rs) < f.Limit || rs[len(rs)-1].Created.Before(cutoff) {
			return rs, nil
		}
		f.Limit *= 4
	}
}
