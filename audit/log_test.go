package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// lockedBuffer is a sink the test can read while the writer goroutine
// may still write to it.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func TestConcurrentAppendsOneChain(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	sink := &lockedBuffer{}
	l := audit.New(store, audit.Options{Sink: sink})
	const workers, each = 100, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := storage.Event{Type: audit.TypeExec, Actor: fmt.Sprintf("user%d", w), Fields: map[string]any{"i": i}}
				if err := l.Append(ctx, ev); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	rep := mustVerify(t, store)
	if !rep.OK || rep.Events != workers*each || rep.FirstSeq != 1 || rep.LastSeq != workers*each {
		t.Fatalf("Verify after concurrent appends: %+v", rep)
	}
	// The sink saw every event once, in seq order, in fewer writes than
	// events: proof that appends were group-committed.
	sc := bufio.NewScanner(bytes.NewReader(sink.buf.Bytes()))
	var want int64 = 1
	for sc.Scan() {
		var ev storage.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("sink line %q: %v", sc.Text(), err)
		}
		if ev.Seq != want || len(ev.Hash) != 32 {
			t.Fatalf("sink line %d: seq %d hash %x", want, ev.Seq, ev.Hash)
		}
		want++
	}
	if want-1 != workers*each {
		t.Fatalf("sink has %d events, want %d", want-1, workers*each)
	}
	t.Logf("%d events in %d commits", workers*each, sink.writes)
	if sink.writes >= workers*each {
		t.Fatalf("%d sink writes for %d events: no batching happened", sink.writes, workers*each)
	}
}

func TestAppendFillsAndNormalises(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	now := time.Date(2025, 6, 1, 14, 0, 0, 123, time.FixedZone("CEST", 2*3600))
	l := newLog(t, store, audit.Options{Now: func() time.Time { return now }})
	type detail struct {
		Port int    `json:"port"`
		Host string `json:"host"`
	}
	given := t0.Add(-time.Hour)
	for _, ev := range []storage.Event{
		{Type: audit.TypePortForward, Actor: "bob", Fields: map[string]any{"to": detail{Port: 5432, Host: "db-1"}, "big": uint64(1<<63 + 1)}},
		{Type: audit.TypeUserLock, Actor: "sam", Time: given},
	} {
		if err := l.Append(ctx, ev); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	evs, err := store.ListEvents(ctx, storage.EventFilter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("ListEvents = %d, %v", len(evs), err)
	}
	if !evs[0].Time.Equal(now) {
		t.Errorf("zero Time filled with %v, want %v", evs[0].Time, now)
	}
	if !evs[1].Time.Equal(given) {
		t.Errorf("given Time replaced: %v, want %v", evs[1].Time, given)
	}
	if b, _ := json.Marshal(evs[0].Fields); string(b) != `{"big":9223372036854775809,"to":{"host":"db-1","port":5432}}` {
		t.Errorf("stored fields = %s", b)
	}
	if rep := mustVerify(t, store); !rep.OK {
		t.Fatalf("struct- and uint64-valued fields broke the chain: %+v", rep)
	}
}

func TestAppendRejects(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	l := audit.New(store, audit.Options{})
	tests := []struct {
		name string
		ev   storage.Event
	}{
		{"no type", storage.Event{Actor: "bob"}},
		{"unencodable field", storage.Event{Type: audit.TypeExec, Fields: map[string]any{"f": func() {}}}},
	}
	for _, tc := range tests {
		if err := l.Append(ctx, tc.ev); err == nil {
			t.Errorf("%s: Append succeeded", tc.name)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(ctx, storage.Event{Type: audit.TypeExec}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	evs, _ := store.ListEvents(ctx, storage.EventFilter{})
	if len(evs) != 0 {
		t.Fatalf("%d rejected events were stored", len(evs))
	}
}

// failingStore fails every append, to check callers hear about it.
type failingStore struct{ storage.AuditStore }

func (failingStore) AppendEvents(context.Context, []storage.Event, func(*storage.Event) []byte) ([]storage.Event, error) {
	return nil, errors.New("disk full")
}

func TestAppendReportsStoreFailure(t *testing.T) {
	sink := &lockedBuffer{}
	l := newLog(t, failingStore{}, audit.Options{Sink: sink, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := l.Append(context.Background(), storage.Event{Type: audit.TypeExec}); err == nil {
		t.Fatal("Append succeeded although the store failed")
	}
	l.Close()
	if sink.buf.Len() != 0 {
		t.Fatalf("sink got an event that was never stored: %s", sink.buf.String())
	}
}

func TestCloseFlushesQueued(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	l := audit.New(store, audit.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(ctx, storage.Event{Type: audit.TypeExec}); err == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			} else if !errors.Is(err, audit.ErrClosed) {
				t.Errorf("Append: %v", err)
			}
		}()
	}
	l.Close()
	wg.Wait()
	rep := mustVerify(t, store)
	if !rep.OK || rep.Events != int64(acked) {
		t.Fatalf("%d appends acknowledged, %d stored: %+v", acked, rep.Events, rep)
	}
}
