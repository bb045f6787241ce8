package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// watchKinds maps the audit log's request events to the names the watch
// stream gives them. The audit chain is the stream's source: its sequence
// numbers are shared by every bastion on one store and only grow, so they
// make event ids that any bastion can resume from.
var watchKinds = map[string]string{
	audit.TypeRequestCreate:  "created",
	audit.TypeRequestReview:  "reviewed",
	audit.TypeRequestApprove: "approved",
	audit.TypeRequestDeny:    "denied",
	audit.TypeRequestExpire:  "expired",
	audit.TypeRequestCancel:  "cancelled",
	audit.TypeRequestRevoke:  "revoked",
	// A one-session grant whose session ended.
	audit.TypeRequestSessionEnd: "ended",
}

// watchEvent is the data of one event on GET /api/watch.
type watchEvent struct {
	ID        int64     `json:"id"` // the event's audit sequence number, also its SSE id
	Event     string    `json:"event"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Actor     string    `json:"actor"`
	// Via is the bot that submitted a review on Actor's behalf.
	Via string `json:"via,omitempty"`
	// Outcome is approve or deny for a review, success otherwise.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Request is the request as it stands now, not as it stood at the
	// event: a client catching up sees where things ended.
	Request storage.Request `json:"request"`
}

// watchBatch bounds how many audit events one read takes.
const watchBatch = 200

// apiWatch streams request events as server-sent events. Each has id: SEQ;
// a client that reconnects with Last-Event-ID: SEQ (or ?after=SEQ) gets
// every later event it may see, in order, then new ones as they happen.
// Without either it starts at the present. The caller's rights are read
// again before every batch, so a removed bot or locked user stops hearing.
func (h *Handler) apiWatch(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	after, err := watchStart(r)
	if err != nil {
		h.fail(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	if after < 0 {
		head, err := h.opt.Store.ListEvents(ctx, storage.EventFilter{Newest: true, Limit: 1})
		if err != nil {
			h.internal(w, r, v, "read the audit log", err)
			return
		}
		after = 0
		if len(head) == 1 {
			after = head[0].Seq
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The retry hint and a first comment tell the client the stream is up
	// and where it starts.
	// The id line without data sets the client's last event id (SSE), so a
	// watch begun "from now" resumes from the right place even if the stream
	// breaks before its first event.
	if _, err := fmt.Fprintf(w, "retry: 2000\n: watching request events after %d\nid: %d\n\n", after, after); err != nil {
		return
	}
	_ = rc.Flush()
	poll := time.NewTicker(h.opt.WatchPoll)
	defer poll.Stop()
	keep := time.NewTicker(h.opt.WatchKeepAlive)
	defer keep.Stop()
	eff := v.Eff
	for {
		wake := h.opt.Access.Updates()
		if eff, err = v.reauth(ctx); err != nil {
			h.endWatch(w, rc, ctx, v, err)
			return
		}
		evs, err := h.opt.Store.ListEvents(ctx, storage.EventFilter{TypePrefix: "request.", After: after, Limit: watchBatch})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The store may be back at the next poll; the client keeps its
			// place either way.
			h.log.ErrorContext(ctx, "web: watch: read request events", "user", v.User(), "err", err)
		}
		for _, ev := range evs {
			we, ok, err := h.watchEvent(ctx, eff, ev)
			if err != nil {
				// Keep the place: this event is sent at the next try.
				h.log.ErrorContext(ctx, "web: watch: read request", "request", ev.Target, "err", err)
				evs = nil
				break
			}
			after = ev.Seq
			if !ok {
				continue
			}
			b, err := json.Marshal(we)
			if err != nil {
				h.log.ErrorContext(ctx, "web: watch: encode event", "seq", ev.Seq, "err", err)
				continue
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, we.Event, b); err != nil {
				return
			}
		}
		if len(evs) > 0 {
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if len(evs) == watchBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// endWatch closes a stream whose viewer may no longer watch, with one line
// saying why in an "error" event.
func (h *Handler) endWatch(w io.Writer, rc *http.ResponseController, ctx context.Context, v *viewer, err error) {
	msg := "your access has ended"
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, access.ErrBadToken):
		msg = err.Error()
	case errors.Is(err, errSignedOut):
		msg = "sign in again: " + err.Error()
	default:
		h.log.ErrorContext(ctx, "web: watch: re-check the viewer", "user", v.User(), "err", err)
		msg = "your access could not be checked right now; reconnect with Last-Event-ID"
	}
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
	_ = rc.Flush()
}

// watchStart is where a watch begins: after the Last-Event-ID header's
// sequence number, else after ?after=, else -1 for "the present".
func watchStart(r *http.Request) (int64, error) {
	raw, what := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if raw == "" {
		raw, what = r.URL.Query().Get("after"), "after"
	}
	if raw = strings.TrimSpace(raw); raw == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s must be an event id (a whole number) from an earlier watch", what)
	}
	return n, nil
}

// watchEvent turns an audit event into what eff may see of it: nothing for
// a kind the stream does not carry or a request eff may not see.
func (h *Handler) watchEvent(ctx context.Context, eff access.Effective, ev storage.Event) (watchEvent, bool, error) {
	kind, ok := watchKinds[ev.Type]
	if !ok {
		return watchEvent{}, false, nil
	}
	q, err := h.opt.Access.Get(ctx, eff, ev.Target)
	if errors.Is(err, storage.ErrNotFound) {
		// A request eff may not see, or an event whose target is not a
		// request (a failed lock clean-up names the user).
		return watchEvent{}, false, nil
	}
	if err != nil {
		return watchEvent{}, false, err
	}
	we := watchEvent{ID: ev.Seq, Event: kind, Time: ev.Time, RequestID: q.ID, Actor: ev.Actor, Outcome: ev.Outcome, Request: q}
	if s, ok := ev.Fields["via"].(string); ok {
		we.Via = s
	}
	if s, ok := ev.Fields["reason"].(string); ok {
		we.Reason = s
	}
	return we, true, nil
}
