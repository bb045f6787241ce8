package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// TestAppendAllKeepsOrder: events appended together land in the order
// given, durable when AppendAll returns, while other sessions append
// around them; the chain stays one gapless, verifiable sequence.
func TestAppendAllKeepsOrder(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	cs := &countingStore{Store: store}
	l := newLog(t, cs, audit.Options{})
	const sessions, noise = 50, 200
	var wg sync.WaitGroup
	for i := range noise {
		wg.Go(func() {
			if err := l.Append(ctx, storage.Event{Type: audit.TypeSFTPOp, Actor: "alice", Fields: map[string]any{"n": i}}); err != nil {
				t.Error(err)
			}
		})
	}
	for i := range sessions {
		wg.Go(func() {
			id := fmt.Sprintf("s%d", i)
			err := l.AppendAll(ctx,
				storage.Event{Type: audit.TypeSessionStart, Actor: "bob", Fields: map[string]any{"session": id}},
				storage.Event{Type: audit.TypeExec, Actor: "bob", Fields: map[string]any{"session": id, "command": "true"}})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := l.AppendAll(ctx); err != nil {
		t.Errorf("AppendAll of nothing: %v", err)
	}
	if err := l.AppendAll(ctx, storage.Event{Type: audit.TypeExec}, storage.Event{}); err == nil {
		t.Errorf("AppendAll with an event without a type succeeded")
	}

	evs, err := store.ListEvents(ctx, storage.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != noise+2*sessions {
		t.Fatalf("%d events stored, want %d (the refused batch must add none)", len(evs), noise+2*sessions)
	}
	startSeq := map[any]int64{}
	for _, ev := range evs {
		switch ev.Type {
		case audit.TypeSessionStart:
			startSeq[ev.Fields["session"]] = ev.Seq
		case audit.TypeExec:
			s, ok := startSeq[ev.Fields["session"]]
			if !ok || s >= ev.Seq {
				t.Errorf("exec of %v at seq %d is not after its session.start (%d, found %v)", ev.Fields["session"], ev.Seq, s, ok)
			}
		}
	}
	if rep := mustVerify(t, store); !rep.OK || rep.Events != int64(len(evs)) {
		t.Errorf("Verify = %+v", rep)
	}
	// Batched: far fewer commits than events.
	if c := cs.commits.Load(); c >= int64(len(evs)) {
		t.Errorf("%d commits for %d events: nothing was batched", c, len(evs))
	}
}
