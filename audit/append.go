package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Appender is where events go: a *Log, or a fake in tests.
type Appender interface {
	Append(ctx context.Context, ev storage.Event) error
}

// batchAppender appends several events in one durable commit (Log does).
type batchAppender interface {
	AppendAll(ctx context.Context, evs ...storage.Event) error
}

// AppendTimeout bounds one call of Append: long enough for a busy store's
// group commit, short enough that a dead store does not hold a session, a
// request or a worker forever.
const AppendTimeout = time.Minute

// Append is how every package writes audit events, with one rule for
// cancellation: the write does not end with ctx, because most callers hold
// a connection's or a request's context, which ends when the client hangs
// up, and what that client did (a denial, its last SFTP operations, the end
// of a session that was just cancelled) must be on record all the same.
// AppendTimeout bounds it instead.
//
// Events without an Outcome are written with OutcomeSuccess. Several
// events go into one commit, in order, when a supports it. A failure is
// logged on log (slog.Default when nil) and returned, for callers that
// must not go on without the record (fail closed); the others may drop it.
// A nil a records nothing and returns nil.
func Append(ctx context.Context, a Appender, log *slog.Logger, evs ...storage.Event) error {
	return appendWithin(ctx, AppendTimeout, a, log, evs)
}

func appendWithin(ctx context.Context, limit time.Duration, a Appender, log *slog.Logger, evs []storage.Event) error {
	if a == nil || len(evs) == 0 {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	defer cancel()
	copied := false
	for i := range evs {
		if evs[i].Outcome == "" {
			if !copied {
				evs, copied = append([]storage.Event(nil), evs...), true // the caller's slice stays as it was
			}
			evs[i].Outcome = OutcomeSuccess
		}
	}
	if ba, ok := a.(batchAppender); ok && len(evs) > 1 {
		if err := ba.AppendAll(wctx, evs...); err != nil {
			log.ErrorContext(ctx, "audit append failed", "type", evs[0].Type, "events", len(evs), "err", err)
			return err
		}
		return nil
	}
	for _, ev := range evs {
		if err := a.Append(wctx, ev); err != nil {
			log.ErrorContext(ctx, "audit append failed", "type", ev.Type, "actor", ev.Actor, "target", ev.Target, "err", err)
			// The rest would be on record without what came before.
			return err
		}
	}
	return nil
}
