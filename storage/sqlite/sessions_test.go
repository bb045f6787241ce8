package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// writerSynchronous is the writer connection's synchronous setting
// (2 = FULL), which every audit commit relies on.
func writerSynchronous(t *testing.T, s *Store) string {
	t.Helper()
	var got string
	if err := s.w.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&got); err != nil {
		t.Fatalf("PRAGMA synchronous: %v", err)
	}
	return got
}

// Session-index writes commit without an fsync of their own; the writer
// connection must be back at synchronous=FULL after each of them, failed
// ones included, and while audit appends run beside them.
func TestSessionIndexWritesLeaveWriterFull(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	start := time.Unix(1700000000, 0).UTC()
	sess := storage.Session{ID: "s-0001", User: "bob", Login: "ubuntu", Node: "db-1", Kind: "exec", Start: start, Status: "live"}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if got := writerSynchronous(t, s); got != "2" {
		t.Errorf("after CreateSession: synchronous = %s, want 2 (FULL)", got)
	}
	// A failing statement (duplicate id) must restore FULL too.
	if err := s.CreateSession(ctx, sess); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate CreateSession: %v, want ErrConflict", err)
	}
	if got := writerSynchronous(t, s); got != "2" {
		t.Errorf("after a failed CreateSession: synchronous = %s, want 2 (FULL)", got)
	}
	exit := 0
	end := start.Add(time.Second)
	if err := s.EndSession(ctx, sess.ID, end, "ended", &exit, 10, 20); err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if err := s.EndSession(ctx, "s-missing", end, "ended", &exit, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("EndSession of an unknown session: %v, want ErrNotFound", err)
	}
	if got := writerSynchronous(t, s); got != "2" {
		t.Errorf("after EndSession: synchronous = %s, want 2 (FULL)", got)
	}
	got, err := s.GetSession(ctx, sess.ID)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if got.Status != "ended" || got.End == nil || !got.End.Equal(end) || got.ExitStatus == nil || *got.ExitStatus != 0 ||
		got.BytesIn != 10 || got.BytesOut != 20 {
		t.Errorf("session after EndSession = %+v", got)
	}

	// Index writes and audit appends interleave on the one writer, as
	// they do for sessions starting and ending together.
	seal := func(ev *storage.Event) []byte { return []byte{byte(ev.Seq)} }
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				id := fmt.Sprintf("s-%d-%d", i, j)
				err := s.CreateSession(ctx, storage.Session{ID: id, User: "bob", Start: start, Status: "live"})
				if err == nil {
					_, err = s.AppendEvents(ctx, []storage.Event{{Time: start, Type: "session.start"}}, seal)
				}
				if err == nil {
					err = s.EndSession(ctx, id, end, "ended", nil, 0, 0)
				}
				if err != nil {
					t.Errorf("session %s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := writerSynchronous(t, s); got != "2" {
		t.Errorf("after concurrent writes: synchronous = %s, want 2 (FULL)", got)
	}
	live, err := s.ListSessions(ctx, storage.SessionFilter{Status: "live"})
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	if len(live) != 0 {
		t.Errorf("%d sessions still live after every one ended", len(live))
	}
}
