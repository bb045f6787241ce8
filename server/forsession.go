package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// sessionBinder is the session index as the proxy sees it, with the
// bookkeeping of session-bound (--for-session) grants around it: a session
// that starts on such a grant binds it (a second session on it is refused
// before it is indexed), and when the bound session ends, the grant ends.
type sessionBinder struct {
	storage.SessionStore
	access *access.Service
	log    *slog.Logger
}

func (s sessionBinder) CreateSession(ctx context.Context, ss storage.Session) error {
	if err := s.access.BindSession(ctx, ss.ID, ss.RequestIDs); err != nil {
		var ref *access.Refusal
		if errors.As(err, &ref) {
			return &proxy.UserError{Line: "gatehouse: " + termsafe.String(ref.Msg) + "; session refused", Cause: err}
		}
		return err
	}
	return s.SessionStore.CreateSession(ctx, ss)
}

func (s sessionBinder) EndSession(ctx context.Context, id string, end time.Time, status string, exit *int, bytesIn, bytesOut int64) error {
	if err := s.SessionStore.EndSession(ctx, id, end, status, exit, bytesIn, bytesOut); err != nil {
		return err
	}
	ss, err := s.SessionStore.GetSession(ctx, id)
	if err != nil {
		// The grant still ends at its own end time; say why it lasted.
		s.log.ErrorContext(ctx, "session-bound grants: read ended session", "session", id, "err", err)
		return nil
	}
	if len(ss.RequestIDs) == 0 {
		return nil
	}
	if err := s.access.SessionEnded(ctx, id, ss.RequestIDs, end); err != nil {
		s.log.ErrorContext(ctx, "session-bound grants: end with session", "session", id, "err", err)
	}
	return nil
}
