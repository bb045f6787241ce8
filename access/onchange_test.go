package access

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// hookLog records what Options.OnChange was told.
type hookLog struct {
	mu  sync.Mutex
	got []string
}

func (h *hookLog) record(ctx context.Context, kind, user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// The hook publishes to other bastions after the action is stored;
	// the caller hanging up must not cancel that.
	if ctx.Done() != nil {
		kind += "(cancellable ctx)"
	}
	h.got = append(h.got, kind+" "+user)
}

func (h *hookLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.got
	h.got = nil
	return out
}

// TestOnChange: every stored change that can alter someone's access, and
// nothing else, reaches the hook with its kind and whose access it is.
func TestOnChange(t *testing.T) {
	tests := []struct {
		name string
		act  func(t *testing.T, e *env, h *hookLog, ctx context.Context) error
		want []string
	}{
		{
			name: "create is not a change of access",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				e.create(t, "bob", "web")
				return nil
			},
		},
		{
			name: "approve",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				r := e.create(t, "bob", "web")
				_, err := e.svc.Review(ctx, e.who(t, "dave"), r.ID, true, "ok")
				return err
			},
			want: []string{"request.approve bob"},
		},
		{
			name: "a first approval of two decides nothing",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				r := e.create(t, "bob", "dba")
				_, err := e.svc.Review(ctx, e.who(t, "alice"), r.ID, true, "ok")
				return err
			},
		},
		{
			name: "deny",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				r := e.create(t, "bob", "web")
				_, err := e.svc.Review(ctx, e.who(t, "dave"), r.ID, false, "no")
				return err
			},
			want: []string{"request.deny bob"},
		},
		{
			name: "cancel",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				r := e.create(t, "carol", "web")
				_, err := e.svc.Cancel(ctx, e.who(t, "carol"), r.ID)
				return err
			},
			want: []string{"request.cancel carol"},
		},
		{
			name: "revoke by a lock manager",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				r := e.create(t, "bob", "web")
				e.review(t, "dave", r.ID, true)
				h.take()
				_, err := e.svc.Revoke(ctx, e.who(t, "sam"), r.ID, "incident over")
				return err
			},
			want: []string{"request.revoke bob"},
		},
		{
			name: "expiry found by a scan",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				e.create(t, "bob", "web")
				e.clock.Advance(25 * time.Hour)
				return e.svc.Scan(ctx)
			},
			want: []string{"request.expire bob"},
		},
		{
			name: "lock and unlock",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				if _, err := e.svc.Lock(ctx, Admin(), "bob", "investigation", 0); err != nil {
					return err
				}
				return e.svc.Unlock(ctx, Admin(), "bob")
			},
			want: []string{"user.lock bob", "user.unlock bob"},
		},
		{
			name: "a refused lock changes nothing",
			act: func(t *testing.T, e *env, h *hookLog, ctx context.Context) error {
				if _, err := e.svc.Lock(ctx, e.who(t, "bob"), "carol", "spite", 0); err == nil {
					t.Errorf("bob locked carol")
				}
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, h := newEnv(t), &hookLog{}
			e.svc = New(e.store, e.pol, e.aud, e.notes, Options{
				Clock: e.clock.Now, Logger: slog.New(slog.DiscardHandler), OnChange: h.record,
			})
			// The caller's context ends as soon as the action returns,
			// like an ssh client hanging up.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := tt.act(t, e, h, ctx); err != nil {
				t.Fatal(err)
			}
			if got := h.take(); !slices.Equal(got, tt.want) {
				t.Errorf("OnChange calls %q, want %q", got, tt.want)
			}
		})
	}
}
