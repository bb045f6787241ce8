package audit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// recorder is an Appender that keeps what it was given and whether the
// context it was given had already ended.
type recorder struct {
	mu      sync.Mutex
	evs     []storage.Event
	batches int
	ctxErr  []error
}

func (r *recorder) Append(ctx context.Context, ev storage.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	r.ctxErr = append(r.ctxErr, ctx.Err())
	return nil
}

// batcher adds AppendAll to recorder, as Log has it.
type batcher struct{ recorder }

func (b *batcher) AppendAll(ctx context.Context, evs ...storage.Event) error {
	b.mu.Lock()
	b.batches++
	b.mu.Unlock()
	for _, ev := range evs {
		if err := b.Append(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// stuck is a store that never answers: it returns only when its context
// ends.
type stuck struct{}

func (stuck) Append(ctx context.Context, ev storage.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestAppendOutlivesACancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client hung up: its session was just cancelled
	var r recorder
	if err := audit.Append(ctx, &r, nil, storage.Event{Type: audit.TypeSessionEnd, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if len(r.evs) != 1 || r.evs[0].Type != audit.TypeSessionEnd {
		t.Fatalf("written %v, want the session.end", r.evs)
	}
	if r.ctxErr[0] != nil {
		t.Errorf("the store was handed an ended context (%v)", r.ctxErr[0])
	}
}

func TestAppendToALogOutlivesACancelledContext(t *testing.T) {
	s, _ := openStore(t)
	l := audit.New(s, audit.Options{})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := audit.Append(ctx, l, nil, storage.Event{Type: audit.TypeSessionEnd, Actor: "bob"},
		storage.Event{Type: audit.TypeFileTransfer, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(context.Background(), storage.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != audit.TypeSessionEnd || evs[1].Type != audit.TypeFileTransfer || evs[0].Outcome != audit.OutcomeSuccess {
		t.Fatalf("stored %+v, want session.end then file_transfer, outcome success", evs)
	}
}

func TestAppendTimeoutBoundsAStuckStore(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	err := audit.AppendWithin(context.Background(), 20*time.Millisecond, stuck{}, log,
		[]storage.Event{{Type: audit.TypeSessionStart, Actor: "bob", Target: "db-1"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	for _, want := range []string{"audit append failed", "type=session.start", "actor=bob", "target=db-1", "deadline exceeded"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

// failing is a store that refuses every event and counts the attempts.
type failing struct{ calls int }

func (f *failing) Append(ctx context.Context, ev storage.Event) error {
	f.calls++
	return errors.New("disk full")
}

func TestAppendStopsAtTheFirstFailure(t *testing.T) {
	var f failing
	err := audit.Append(context.Background(), &f, slog.New(slog.DiscardHandler),
		storage.Event{Type: audit.TypeSessionStart}, storage.Event{Type: audit.TypeExec})
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("err = %v, want the store's", err)
	}
	if f.calls != 1 {
		t.Errorf("%d appends, want 1: exec must not be on record without its session.start", f.calls)
	}
}

func TestAppendBatchesAndFillsOutcome(t *testing.T) {
	var b batcher
	evs := []storage.Event{{Type: audit.TypeSessionStart}, {Type: audit.TypeExec, Outcome: audit.OutcomeDenied}}
	if err := audit.Append(context.Background(), &b, nil, evs...); err != nil {
		t.Fatal(err)
	}
	if b.batches != 1 {
		t.Errorf("%d AppendAll calls, want the two events in one", b.batches)
	}
	if len(b.evs) != 2 || b.evs[0].Outcome != audit.OutcomeSuccess || b.evs[1].Outcome != audit.OutcomeDenied {
		t.Errorf("written %+v, want outcome success filled in and denied kept", b.evs)
	}
	if evs[0].Outcome != "" {
		t.Errorf("the caller's event was changed: %+v", evs[0])
	}
	if err := audit.Append(context.Background(), nil, nil, evs...); err != nil {
		t.Errorf("nil appender: %v, want nothing recorded and no error", err)
	}
}
