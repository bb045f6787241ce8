package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Run runs the whole suite. open must return a new, empty store for each
// call and arrange (t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("Audit", func(t *testing.T) { runAudit(t, open) })
	t.Run("Sessions", func(t *testing.T) { runSessions(t, open) })
	t.Run("Requests", func(t *testing.T) { runRequests(t, open) })
	t.Run("Locks", func(t *testing.T) { runLocks(t, open) })
	t.Run("Identity", func(t *testing.T) { runIdentity(t, open) })
	t.Run("Bots", func(t *testing.T) { runBots(t, open) })
	t.Run("AuditTypePrefix", func(t *testing.T) { runAuditTypePrefix(t, open) })
}

// base is a fixed instant so no test depends on the wall clock.
func base() time.Time { return time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC) }

func at(d time.Duration) time.Time { return base().Add(d) }

// us is at truncated to microseconds, for non-audit times.
func us(d time.Duration) time.Time { return at(d).Truncate(time.Microsecond) }

func ptr[T any](v T) *T { return &v }

// seal is a stand-in for the audit package's hash: it covers everything the
// backend must round-trip exactly, so re-sealing a stored event detects any
// change the backend made on the way (number formats, time precision, key
// order of fields).
func seal(ev *storage.Event) []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(ev.Seq))
	h.Write(n[:])
	h.Write([]byte(ev.Time.UTC().Format(time.RFC3339Nano)))
	for _, s := range []string{ev.Type, ev.Actor, ev.Target, ev.Outcome} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	f, _ := json.Marshal(ev.Fields)
	if len(ev.Fields) == 0 {
		f = []byte("{}")
	}
	h.Write(f)
	h.Write(ev.PrevHash)
	return h.Sum(nil)
}

func fieldsJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal fields: %v", err)
	}
	return string(b)
}

// checkChain asserts evs are a gapless chain starting after anchor, with
// every hash reproducible.
func checkChain(t *testing.T, anchor storage.Anchor, evs []storage.Event) {
	t.Helper()
	prev, seq := anchor.Hash, anchor.Seq
	for _, ev := range evs {
		seq++
		if ev.Seq != seq {
			t.Fatalf("chain: got seq %d, want %d", ev.Seq, seq)
		}
		if !bytes.Equal(ev.PrevHash, prev) {
			t.Fatalf("chain: event %d prev_hash %x, want %x", ev.Seq, ev.PrevHash, prev)
		}
		if got := seal(&ev); !bytes.Equal(got, ev.Hash) {
			t.Fatalf("chain: event %d does not re-seal to its stored hash (round trip changed it)", ev.Seq)
		}
		prev = ev.Hash
	}
}

func walkAll(t *testing.T, s storage.AuditStore) []storage.Event {
	t.Helper()
	var evs []storage.Event
	if err := s.WalkEvents(context.Background(), func(ev storage.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatalf("WalkEvents: %v", err)
	}
	return evs
}

func mustAppend(t *testing.T, s storage.AuditStore, evs ...storage.Event) []storage.Event {
	t.Helper()
	out, err := s.AppendEvents(context.Background(), evs, seal)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return out
}

func seqs(evs []storage.Event) []int64 {
	out := []int64{}
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

func runAudit(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()

	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		a, err := s.AuditAnchor(ctx)
		if err != nil || a.Seq != 0 || len(a.Hash) != 0 {
			t.Fatalf("AuditAnchor on empty store = %+v, %v; want zero", a, err)
		}
		evs, err := s.ListEvents(ctx, storage.EventFilter{})
		if err != nil || len(evs) != 0 {
			t.Fatalf("ListEvents on empty store = %d events, %v", len(evs), err)
		}
		if got := walkAll(t, s); len(got) != 0 {
			t.Fatalf("WalkEvents on empty store visited %d events", len(got))
		}
		n, err := s.PruneEvents(ctx, at(time.Hour))
		if err != nil || n != 0 {
			t.Fatalf("PruneEvents on empty store = %d, %v", n, err)
		}
	})

	t.Run("AppendAssignsChain", func(t *testing.T) {
		s := open(t)
		out := mustAppend(t, s,
			storage.Event{Time: at(0), Type: "a", Actor: "bob"},
			storage.Event{Time: at(1), Type: "b", Actor: "bob"},
			storage.Event{Time: at(2), Type: "c", Actor: "bob"})
		if got := seqs(out); !slices.Equal(got, []int64{1, 2, 3}) {
			t.Fatalf("first append seqs = %v, want [1 2 3]", got)
		}
		if len(out[0].PrevHash) != 0 {
			t.Fatalf("first event prev_hash = %x, want empty", out[0].PrevHash)
		}
		more := mustAppend(t, s, storage.Event{Time: at(3), Type: "d"})
		if more[0].Seq != 4 || !bytes.Equal(more[0].PrevHash, out[2].Hash) {
			t.Fatalf("second append = seq %d prev %x; want 4 chained to %x", more[0].Seq, more[0].PrevHash, out[2].Hash)
		}
		stored := walkAll(t, s)
		checkChain(t, storage.Anchor{}, stored)
		want := append(out, more...)
		for i := range want {
			if !bytes.Equal(stored[i].Hash, want[i].Hash) || stored[i].Type != want[i].Type {
				t.Fatalf("stored event %d differs from the one AppendEvents returned", want[i].Seq)
			}
		}
		if out, err := s.AppendEvents(ctx, nil, seal); err != nil || len(out) != 0 {
			t.Fatalf("AppendEvents(nil) = %v, %v; want nothing, no error", out, err)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		loc := time.FixedZone("UTC+5:30", 5*3600+1800)
		in := storage.Event{
			Time: time.Date(2025, 1, 2, 3, 4, 5, 123456789, loc), Type: "ssh.auth.failure",
			Actor: "bob", Target: "root@db-1", Outcome: "failure",
			Fields: map[string]any{
				"method": "publickey", "fp": "SHA256:abc<&>\u2028", "attempt": 3, "big": int64(1)<<60 + 1,
				"ratio": 1.5, "ok": false, "nested": map[string]any{"z": 1, "a": []any{"x", 2.25, nil}},
				"list": []string{"dba", "dev"}, "unicode": "ünïcødé",
			},
		}
		out := mustAppend(t, s, in)
		got, err := s.ListEvents(ctx, storage.EventFilter{})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListEvents = %d events, %v", len(got), err)
		}
		ev := got[0]
		if !ev.Time.Equal(in.Time) || ev.Time.UTC().Format(time.RFC3339Nano) != in.Time.UTC().Format(time.RFC3339Nano) {
			t.Errorf("time = %v, want %v to the nanosecond", ev.Time, in.Time)
		}
		if ev.Type != in.Type || ev.Actor != in.Actor || ev.Target != in.Target || ev.Outcome != in.Outcome {
			t.Errorf("event = %+v, want %+v", ev, in)
		}
		if g, w := fieldsJSON(t, ev.Fields), fieldsJSON(t, in.Fields); g != w {
			t.Errorf("fields = %s, want %s", g, w)
		}
		if !bytes.Equal(ev.Hash, out[0].Hash) || !bytes.Equal(seal(&ev), ev.Hash) {
			t.Errorf("stored event does not re-seal to the hash computed at append time")
		}
	})

	t.Run("Filters", func(t *testing.T) {
		s := open(t)
		// seq:            1        2         3        4        5         6
		mustAppend(t, s,
			storage.Event{Time: at(0 * time.Hour), Type: "session.start", Actor: "bob", Target: "db-1"},
			storage.Event{Time: at(1 * time.Hour), Type: "request.create", Actor: "bob", Target: "req-1"},
			storage.Event{Time: at(2 * time.Hour), Type: "request.approve", Actor: "alice", Target: "bob"},
			storage.Event{Time: at(3 * time.Hour), Type: "session.start", Actor: "alice", Target: "db-2"},
			storage.Event{Time: at(4 * time.Hour), Type: "lock", Actor: "sam", Target: "bob"},
			storage.Event{Time: at(5 * time.Hour), Type: "session.start", Actor: "sam", Target: "db-1"})
		tests := []struct {
			name string
			f    storage.EventFilter
			want []int64
		}{
			{"all", storage.EventFilter{}, []int64{1, 2, 3, 4, 5, 6}},
			{"type", storage.EventFilter{Type: "session.start"}, []int64{1, 4, 6}},
			{"user as actor or target", storage.EventFilter{User: "bob"}, []int64{1, 2, 3, 5}},
			{"user only as actor", storage.EventFilter{User: "sam"}, []int64{5, 6}},
			{"since inclusive", storage.EventFilter{Since: at(2 * time.Hour)}, []int64{3, 4, 5, 6}},
			{"until exclusive", storage.EventFilter{Until: at(2 * time.Hour)}, []int64{1, 2}},
			{"since and until", storage.EventFilter{Since: at(1 * time.Hour), Until: at(4 * time.Hour)}, []int64{2, 3, 4}},
			{"after", storage.EventFilter{After: 4}, []int64{5, 6}},
			{"limit", storage.EventFilter{Limit: 2}, []int64{1, 2}},
			{"newest", storage.EventFilter{Newest: true}, []int64{6, 5, 4, 3, 2, 1}},
			{"newest limit", storage.EventFilter{Newest: true, Limit: 2}, []int64{6, 5}},
			{"newest before", storage.EventFilter{Newest: true, Before: 5, Limit: 2}, []int64{4, 3}},
			{"type and user", storage.EventFilter{Type: "session.start", User: "alice"}, []int64{4}},
			{"type user since", storage.EventFilter{Type: "session.start", User: "sam", Since: at(time.Hour)}, []int64{6}},
			{"no match", storage.EventFilter{Type: "nope"}, []int64{}},
			{"since in the other zone", storage.EventFilter{Since: at(2 * time.Hour).In(time.FixedZone("X", -7*3600))}, []int64{3, 4, 5, 6}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListEvents(ctx, tc.f)
				if err != nil {
					t.Fatalf("ListEvents(%+v): %v", tc.f, err)
				}
				if g := seqs(got); !slices.Equal(g, tc.want) {
					t.Fatalf("ListEvents(%+v) seqs = %v, want %v", tc.f, g, tc.want)
				}
			})
		}
	})

	t.Run("Paging", func(t *testing.T) {
		s := open(t)
		var batch []storage.Event
		for i := range 23 {
			batch = append(batch, storage.Event{Time: at(time.Duration(i) * time.Minute), Type: "exec", Actor: "bob"})
		}
		mustAppend(t, s, batch...)
		var all []int64
		var after int64
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not terminate")
			}
			page, err := s.ListEvents(ctx, storage.EventFilter{User: "bob", After: after, Limit: 5})
			if err != nil {
				t.Fatalf("ListEvents page after %d: %v", after, err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, seqs(page)...)
			after = page[len(page)-1].Seq
		}
		want := make([]int64, 23)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(all, want) {
			t.Fatalf("paged seqs = %v, want 1..23", all)
		}
	})

	t.Run("WalkStops", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, storage.Event{Time: at(0), Type: "a"}, storage.Event{Time: at(1), Type: "b"}, storage.Event{Time: at(2), Type: "c"})
		stop := errors.New("stop")
		var visited []int64
		err := s.WalkEvents(ctx, func(ev storage.Event) error {
			visited = append(visited, ev.Seq)
			if ev.Seq == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("WalkEvents error = %v, want the callback's error", err)
		}
		if !slices.Equal(visited, []int64{1, 2}) {
			t.Fatalf("visited %v, want [1 2]", visited)
		}
	})

	t.Run("PruneAndAnchor", func(t *testing.T) {
		s := open(t)
		var batch []storage.Event
		for i := range 10 {
			batch = append(batch, storage.Event{Time: at(time.Duration(i) * time.Hour), Type: "exec"})
		}
		out := mustAppend(t, s, batch...)
		tests := []struct {
			name       string
			before     time.Time
			wantN      int64
			wantAnchor int64
		}{
			{"nothing older", at(-time.Hour), 0, 0},
			{"boundary exclusive", at(3 * time.Hour), 3, 3},
			{"again same cutoff", at(3 * time.Hour), 0, 3},
			{"more", at(5*time.Hour + time.Minute), 3, 6},
			{"everything", at(100 * time.Hour), 4, 10},
		}
		for _, tc := range tests {
			n, err := s.PruneEvents(ctx, tc.before)
			if err != nil {
				t.Fatalf("%s: PruneEvents: %v", tc.name, err)
			}
			if n != tc.wantN {
				t.Fatalf("%s: pruned %d, want %d", tc.name, n, tc.wantN)
			}
			a, err := s.AuditAnchor(ctx)
			if err != nil {
				t.Fatalf("%s: AuditAnchor: %v", tc.name, err)
			}
			if a.Seq != tc.wantAnchor {
				t.Fatalf("%s: anchor seq %d, want %d", tc.name, a.Seq, tc.wantAnchor)
			}
			if a.Seq > 0 && !bytes.Equal(a.Hash, out[a.Seq-1].Hash) {
				t.Fatalf("%s: anchor hash is not the hash of event %d", tc.name, a.Seq)
			}
			rest := walkAll(t, s)
			if int64(len(rest)) != 10-a.Seq {
				t.Fatalf("%s: %d events left, want %d", tc.name, len(rest), 10-a.Seq)
			}
			checkChain(t, a, rest)
		}
		// After everything was pruned the chain continues from the anchor.
		next := mustAppend(t, s, storage.Event{Time: at(200 * time.Hour), Type: "exec"})
		if next[0].Seq != 11 || !bytes.Equal(next[0].PrevHash, out[9].Hash) {
			t.Fatalf("append after full prune = seq %d prev %x; want 11 chained to event 10", next[0].Seq, next[0].PrevHash)
		}
	})

	t.Run("PruneKeepsChainWithSkewedTimes", func(t *testing.T) {
		// Times not monotonic in seq (several bastions' clocks): whatever
		// is deleted, the rest must still chain from the anchor.
		s := open(t)
		hours := []int{0, 1, 5, 2, 3, 6, 4, 7}
		var batch []storage.Event
		for _, h := range hours {
			batch = append(batch, storage.Event{Time: at(time.Duration(h) * time.Hour), Type: "exec"})
		}
		mustAppend(t, s, batch...)
		if _, err := s.PruneEvents(ctx, at(4*time.Hour+time.Minute)); err != nil {
			t.Fatalf("PruneEvents: %v", err)
		}
		a, err := s.AuditAnchor(ctx)
		if err != nil {
			t.Fatalf("AuditAnchor: %v", err)
		}
		rest := walkAll(t, s)
		if a.Seq < 2 {
			t.Fatalf("anchor at %d: the two oldest leading events were not pruned", a.Seq)
		}
		checkChain(t, a, rest)
		for _, ev := range rest {
			if !ev.Time.Before(at(4*time.Hour + time.Minute)) {
				break
			}
			if ev.Seq == a.Seq+1 {
				t.Fatalf("event %d is older than the cutoff yet starts the kept chain", ev.Seq)
			}
		}
	})

	runAuditOptional(t, open)

	t.Run("ConcurrentAppendsOneChain", func(t *testing.T) {
		s := open(t)
		const workers, each = 50, 20
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i += 2 {
					// Batches of two also check that a batch stays contiguous.
					out, err := s.AppendEvents(ctx, []storage.Event{
						{Time: at(time.Duration(i)), Type: "exec", Actor: fmt.Sprintf("w%d", w), Fields: map[string]any{"i": i}},
						{Time: at(time.Duration(i + 1)), Type: "exec", Actor: fmt.Sprintf("w%d", w), Fields: map[string]any{"i": i + 1}},
					}, seal)
					if err != nil {
						errs <- err
						return
					}
					if out[1].Seq != out[0].Seq+1 || !bytes.Equal(out[1].PrevHash, out[0].Hash) {
						errs <- fmt.Errorf("batch split: seqs %d,%d", out[0].Seq, out[1].Seq)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent AppendEvents: %v", err)
		}
		all := walkAll(t, s)
		if len(all) != workers*each {
			t.Fatalf("%d events stored, want %d", len(all), workers*each)
		}
		checkChain(t, storage.Anchor{}, all)
	})
}

// normSession makes a Session comparable with reflect.DeepEqual.
func normSession(s storage.Session) storage.Session {
	s.Start = s.Start.UTC()
	if s.End != nil {
		s.End = ptr(s.End.UTC())
	}
	if len(s.Roles) == 0 {
		s.Roles = nil
	}
	if len(s.RequestIDs) == 0 {
		s.RequestIDs = nil
	}
	return s
}

func sessionIDs(ss []storage.Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func runSessions(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()

	t.Run("CreateGetEnd", func(t *testing.T) {
		s := open(t)
		in := storage.Session{
			ID: "s1", User: "bob", Login: "root", Node: "db-1", Kind: "exec", Command: "uptime",
			Roles: []string{"dev", "dba"}, RequestIDs: []string{"r1"}, ClientAddr: "127.0.0.1:5555",
			Bastion: "b1", Recording: "s1.cast", Start: us(0), Status: "live",
		}
		if err := s.CreateSession(ctx, in); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		got, err := s.GetSession(ctx, "s1")
		if err != nil {
			t.Fatalf("GetSession: %v", err)
		}
		if !reflect.DeepEqual(normSession(got), normSession(in)) {
			t.Fatalf("GetSession = %+v, want %+v", got, in)
		}
		if err := s.CreateSession(ctx, in); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate CreateSession error = %v, want ErrConflict", err)
		}
		if _, err := s.GetSession(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetSession(missing) error = %v, want ErrNotFound", err)
		}
		if err := s.EndSession(ctx, "s1", us(time.Minute), "ended", ptr(3), 100, 2000); err != nil {
			t.Fatalf("EndSession: %v", err)
		}
		got, err = s.GetSession(ctx, "s1")
		if err != nil {
			t.Fatalf("GetSession after end: %v", err)
		}
		want := in
		want.End, want.Status, want.ExitStatus, want.BytesIn, want.BytesOut = ptr(us(time.Minute)), "ended", ptr(3), 100, 2000
		if !reflect.DeepEqual(normSession(got), normSession(want)) {
			t.Fatalf("after EndSession = %+v, want %+v", got, want)
		}
		if err := s.EndSession(ctx, "nope", us(0), "ended", nil, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("EndSession(missing) error = %v, want ErrNotFound", err)
		}
		// A terminated session without an exit status keeps it nil.
		if err := s.CreateSession(ctx, storage.Session{ID: "s2", User: "bob", Start: us(0), Status: "live"}); err != nil {
			t.Fatalf("CreateSession s2: %v", err)
		}
		if err := s.EndSession(ctx, "s2", us(time.Second), "terminated", nil, 1, 2); err != nil {
			t.Fatalf("EndSession s2: %v", err)
		}
		if got, err := s.GetSession(ctx, "s2"); err != nil || got.ExitStatus != nil || got.Status != "terminated" {
			t.Fatalf("s2 = %+v, %v; want terminated with no exit status", got, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		for _, ss := range []storage.Session{
			{ID: "a", User: "bob", Node: "db-1", Start: us(0), Status: "ended"},
			{ID: "b", User: "alice", Node: "db-1", Start: us(time.Hour), Status: "live"},
			{ID: "c", User: "bob", Node: "web-1", Start: us(2 * time.Hour), Status: "live"},
			{ID: "d", User: "bob", Node: "db-1", Start: us(3 * time.Hour), Status: "terminated"},
		} {
			if err := s.CreateSession(ctx, ss); err != nil {
				t.Fatalf("CreateSession %s: %v", ss.ID, err)
			}
		}
		tests := []struct {
			name string
			f    storage.SessionFilter
			want []string
		}{
			{"all newest first", storage.SessionFilter{}, []string{"d", "c", "b", "a"}},
			{"user", storage.SessionFilter{User: "bob"}, []string{"d", "c", "a"}},
			{"node", storage.SessionFilter{Node: "db-1"}, []string{"d", "b", "a"}},
			{"since inclusive", storage.SessionFilter{Since: us(time.Hour)}, []string{"d", "c", "b"}},
			{"status", storage.SessionFilter{Status: "live"}, []string{"c", "b"}},
			{"limit", storage.SessionFilter{Limit: 2}, []string{"d", "c"}},
			{"user node", storage.SessionFilter{User: "bob", Node: "db-1"}, []string{"d", "a"}},
			{"no match", storage.SessionFilter{User: "mallory"}, []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListSessions(ctx, tc.f)
				if err != nil {
					t.Fatalf("ListSessions(%+v): %v", tc.f, err)
				}
				if g := sessionIDs(got); !slices.Equal(g, tc.want) {
					t.Fatalf("ListSessions(%+v) = %v, want %v", tc.f, g, tc.want)
				}
			})
		}
	})

	t.Run("MarkInterrupted", func(t *testing.T) {
		s := open(t)
		for _, ss := range []storage.Session{
			{ID: "a1", User: "bob", Bastion: "A", Start: us(0), Status: "live"},
			{ID: "a2", User: "bob", Bastion: "A", Start: us(1), Status: "live"},
			{ID: "a3", User: "bob", Bastion: "A", Start: us(2), Status: "ended", End: ptr(us(3)), ExitStatus: ptr(0)},
			{ID: "b1", User: "bob", Bastion: "B", Start: us(0), Status: "live"},
		} {
			if err := s.CreateSession(ctx, ss); err != nil {
				t.Fatalf("CreateSession %s: %v", ss.ID, err)
			}
		}
		n, err := s.MarkInterrupted(ctx, "A", us(time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("MarkInterrupted = %d, %v; want 2", n, err)
		}
		want := map[string]struct {
			status string
			end    *time.Time
		}{
			"a1": {"interrupted", ptr(us(time.Hour))},
			"a2": {"interrupted", ptr(us(time.Hour))},
			"a3": {"ended", ptr(us(3))},
			"b1": {"live", nil},
		}
		for id, w := range want {
			got, err := s.GetSession(ctx, id)
			if err != nil {
				t.Fatalf("GetSession %s: %v", id, err)
			}
			if got.Status != w.status || (got.End == nil) != (w.end == nil) || (w.end != nil && !got.End.Equal(*w.end)) {
				t.Errorf("%s: status %q end %v, want %q %v", id, got.Status, got.End, w.status, w.end)
			}
		}
		if n, err := s.MarkInterrupted(ctx, "A", us(2*time.Hour)); err != nil || n != 0 {
			t.Fatalf("second MarkInterrupted = %d, %v; want 0", n, err)
		}
	})
}

func normRequest(r storage.Request) storage.Request {
	r.Created, r.Expires, r.Updated = r.Created.UTC(), r.Expires.UTC(), r.Updated.UTC()
	if r.GrantStart != nil {
		r.GrantStart = ptr(r.GrantStart.UTC())
	}
	if r.GrantEnd != nil {
		r.GrantEnd = ptr(r.GrantEnd.UTC())
	}
	if len(r.Roles) == 0 {
		r.Roles = nil
	}
	if len(r.Reviews) == 0 {
		r.Reviews = nil
	}
	if len(r.Requested) == 0 {
		r.Requested = nil
	}
	if len(r.Labels) == 0 {
		r.Labels = nil
	}
	rv := make([]storage.Review, len(r.Reviews))
	for i, x := range r.Reviews {
		x.Time = x.Time.UTC()
		rv[i] = x
	}
	if r.Reviews != nil {
		r.Reviews = rv
	}
	return r
}

func requestIDs(rs []storage.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func runRequests(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()

	t.Run("CreateGetUpdate", func(t *testing.T) {
		s := open(t)
		in := storage.Request{
			ID: "r1", User: "bob", Roles: []string{"dba"}, Reason: "INC-42 disk full", Duration: 2 * time.Hour,
			State: storage.StatePending, Created: us(0), Expires: us(24 * time.Hour), Updated: us(0),
		}
		if err := s.CreateRequest(ctx, in); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		if err := s.CreateRequest(ctx, in); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate CreateRequest error = %v, want ErrConflict", err)
		}
		got, err := s.GetRequest(ctx, "r1")
		if err != nil || !reflect.DeepEqual(normRequest(got), normRequest(in)) {
			t.Fatalf("GetRequest = %+v, %v; want %+v", got, err, in)
		}
		if _, err := s.GetRequest(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetRequest(missing) error = %v, want ErrNotFound", err)
		}

		upd, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
			r.Reviews = append(r.Reviews, storage.Review{Reviewer: "alice", Approve: true, Reason: "ok", Time: us(time.Minute)})
			r.State, r.StateBy, r.StateReason = storage.StateApproved, "alice", "ok"
			r.GrantStart, r.GrantEnd = ptr(us(time.Minute)), ptr(us(time.Minute+2*time.Hour))
			r.Updated = us(time.Minute)
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateRequest: %v", err)
		}
		stored, err := s.GetRequest(ctx, "r1")
		if err != nil || !reflect.DeepEqual(normRequest(stored), normRequest(upd)) {
			t.Fatalf("after UpdateRequest stored %+v, %v; returned %+v", stored, err, upd)
		}
		if stored.State != storage.StateApproved || len(stored.Reviews) != 1 || stored.Reviews[0].Reviewer != "alice" ||
			stored.GrantEnd == nil || !stored.GrantEnd.Equal(us(time.Minute+2*time.Hour)) {
			t.Fatalf("update not stored: %+v", stored)
		}

		boom := errors.New("self-approval")
		_, err = s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
			r.State = storage.StateDenied
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("UpdateRequest fn error = %v, want it returned as is", err)
		}
		if again, _ := s.GetRequest(ctx, "r1"); again.State != storage.StateApproved {
			t.Fatalf("aborted update was stored: state %s", again.State)
		}
		if _, err := s.UpdateRequest(ctx, "nope", func(*storage.Request) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UpdateRequest(missing) error = %v, want ErrNotFound", err)
		}
	})

	// Subset approval, resource requests and session-bound grants keep
	// their fields through create, update and every read.
	t.Run("ScopeFields", func(t *testing.T) {
		s := open(t)
		in := storage.Request{
			ID: "r1", User: "bob", Roles: []string{"dba"}, State: storage.StatePending, Node: "db-1", Login: "postgres",
			ForSession: true, Created: us(0), Expires: us(time.Hour), Updated: us(0), Duration: time.Hour,
		}
		if err := s.CreateRequest(ctx, in); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		got, err := s.GetRequest(ctx, "r1")
		if err != nil || !reflect.DeepEqual(normRequest(got), normRequest(in)) {
			t.Fatalf("GetRequest = %+v, %v; want %+v", got, err, in)
		}
		upd, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
			r.Reviews = []storage.Review{{Reviewer: "alice", Approve: true, Time: us(time.Minute), Roles: []string{"dba"}, As: []string{"manager"}}}
			r.Requested, r.Roles = []string{"dba", "web"}, []string{"dba"}
			r.State, r.Session = storage.StateApproved, "s-1"
			r.GrantStart, r.GrantEnd = ptr(us(time.Minute)), ptr(us(2*time.Hour))
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateRequest: %v", err)
		}
		for _, read := range []func() ([]storage.Request, error){
			func() ([]storage.Request, error) { r, err := s.GetRequest(ctx, "r1"); return []storage.Request{r}, err },
			func() ([]storage.Request, error) { return s.ListRequests(ctx, storage.RequestFilter{User: "bob"}) },
			func() ([]storage.Request, error) { return s.ActiveGrants(ctx, "bob", us(time.Hour)) },
		} {
			rs, err := read()
			if err != nil || len(rs) != 1 || !reflect.DeepEqual(normRequest(rs[0]), normRequest(upd)) {
				t.Fatalf("read back %+v, %v; want %+v", rs, err, upd)
			}
		}
	})

	// A resource request by label selector keeps its selector through
	// create, update and every read, and a request without one reads back
	// without one (not an empty map that would still look like a selector).
	t.Run("LabelSelector", func(t *testing.T) {
		s := open(t)
		sel := storage.Request{
			ID: "r1", User: "bob", Roles: []string{"dba"}, State: storage.StatePending, Login: "postgres",
			Labels:  map[string]string{"env": "staging", "team": "db"},
			Created: us(0), Expires: us(time.Hour), Updated: us(0), Duration: time.Hour,
		}
		plain := storage.Request{ID: "r2", User: "bob", Roles: []string{"dba"}, State: storage.StatePending,
			Labels: map[string]string{}, Created: us(time.Second), Expires: us(time.Hour), Updated: us(0)}
		for _, r := range []storage.Request{sel, plain} {
			if err := s.CreateRequest(ctx, r); err != nil {
				t.Fatalf("CreateRequest %s: %v", r.ID, err)
			}
		}
		if got, err := s.GetRequest(ctx, "r2"); err != nil || got.Labels != nil || got.IsResource() {
			t.Fatalf("GetRequest(r2) labels = %#v, %v; want none", got.Labels, err)
		}
		upd, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
			r.Labels["team"] = "data" // fn edits the loaded copy; the store must keep what fn returns
			r.State, r.GrantStart, r.GrantEnd = storage.StateApproved, ptr(us(time.Minute)), ptr(us(2*time.Hour))
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateRequest: %v", err)
		}
		if want := map[string]string{"env": "staging", "team": "data"}; !reflect.DeepEqual(upd.Labels, want) {
			t.Fatalf("UpdateRequest labels = %v, want %v", upd.Labels, want)
		}
		for _, read := range []func() ([]storage.Request, error){
			func() ([]storage.Request, error) { r, err := s.GetRequest(ctx, "r1"); return []storage.Request{r}, err },
			func() ([]storage.Request, error) {
				rs, err := s.ListRequests(ctx, storage.RequestFilter{User: "bob", States: []string{storage.StateApproved}})
				return rs, err
			},
			func() ([]storage.Request, error) { return s.ActiveGrants(ctx, "bob", us(time.Hour)) },
		} {
			rs, err := read()
			if err != nil || len(rs) != 1 || !reflect.DeepEqual(normRequest(rs[0]), normRequest(upd)) {
				t.Fatalf("read back %+v, %v; want %+v", rs, err, upd)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		for i, r := range []storage.Request{
			{ID: "r1", User: "bob", State: storage.StateApproved},
			{ID: "r2", User: "alice", State: storage.StatePending},
			{ID: "r3", User: "bob", State: storage.StatePending},
			{ID: "r4", User: "bob", State: storage.StateDenied},
		} {
			r.Created = us(time.Duration(i) * time.Hour)
			r.Roles = []string{"dba"}
			if err := s.CreateRequest(ctx, r); err != nil {
				t.Fatalf("CreateRequest %s: %v", r.ID, err)
			}
		}
		tests := []struct {
			name string
			f    storage.RequestFilter
			want []string
		}{
			{"all newest first", storage.RequestFilter{}, []string{"r4", "r3", "r2", "r1"}},
			{"user", storage.RequestFilter{User: "bob"}, []string{"r4", "r3", "r1"}},
			{"one state", storage.RequestFilter{States: []string{storage.StatePending}}, []string{"r3", "r2"}},
			{"two states", storage.RequestFilter{States: []string{storage.StateApproved, storage.StateDenied}}, []string{"r4", "r1"}},
			{"user and state", storage.RequestFilter{User: "bob", States: []string{storage.StatePending}}, []string{"r3"}},
			{"limit", storage.RequestFilter{Limit: 1}, []string{"r4"}},
			{"no match", storage.RequestFilter{User: "sam"}, []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListRequests(ctx, tc.f)
				if err != nil {
					t.Fatalf("ListRequests(%+v): %v", tc.f, err)
				}
				if g := requestIDs(got); !slices.Equal(g, tc.want) {
					t.Fatalf("ListRequests(%+v) = %v, want %v", tc.f, g, tc.want)
				}
			})
		}
	})

	t.Run("ConcurrentApprovals", func(t *testing.T) {
		s := open(t)
		if err := s.CreateRequest(ctx, storage.Request{ID: "r1", User: "bob", Roles: []string{"dba"}, State: storage.StatePending, Created: us(0)}); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		const reviewers = 40
		var wg sync.WaitGroup
		errs := make(chan error, reviewers)
		for i := range reviewers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
					r.Reviews = append(r.Reviews, storage.Review{Reviewer: fmt.Sprintf("rev%d", i), Approve: true, Time: us(time.Duration(i))})
					if len(r.Reviews) >= 2 {
						r.State = storage.StateApproved
					}
					return nil
				})
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent UpdateRequest: %v", err)
		}
		got, err := s.GetRequest(ctx, "r1")
		if err != nil {
			t.Fatalf("GetRequest: %v", err)
		}
		seen := map[string]bool{}
		for _, rv := range got.Reviews {
			seen[rv.Reviewer] = true
		}
		if len(got.Reviews) != reviewers || len(seen) != reviewers {
			t.Fatalf("%d reviews (%d distinct) stored, want %d: a concurrent review was lost", len(got.Reviews), len(seen), reviewers)
		}
		if got.State != storage.StateApproved {
			t.Fatalf("state = %s, want APPROVED", got.State)
		}
	})

	t.Run("ActiveGrants", func(t *testing.T) {
		s := open(t)
		now := us(10 * time.Hour)
		grant := func(id, user, state string, start, end time.Duration) storage.Request {
			return storage.Request{ID: id, User: user, Roles: []string{"dba"}, State: state, Created: us(0),
				GrantStart: ptr(now.Add(start)), GrantEnd: ptr(now.Add(end))}
		}
		for _, r := range []storage.Request{
			grant("active", "bob", storage.StateApproved, -time.Hour, time.Hour),
			grant("starts-now", "bob", storage.StateApproved, 0, time.Hour),
			grant("ends-now", "bob", storage.StateApproved, -time.Hour, 0),
			grant("future", "bob", storage.StateApproved, time.Minute, time.Hour),
			grant("past", "bob", storage.StateApproved, -2*time.Hour, -time.Hour),
			grant("revoked", "bob", storage.StateRevoked, -time.Hour, time.Hour),
			grant("expired", "bob", storage.StateExpired, -time.Hour, time.Hour),
			grant("other-user", "alice", storage.StateApproved, -time.Hour, time.Hour),
			{ID: "pending", User: "bob", State: storage.StatePending, Created: us(0)},
		} {
			if err := s.CreateRequest(ctx, r); err != nil {
				t.Fatalf("CreateRequest %s: %v", r.ID, err)
			}
		}
		got, err := s.ActiveGrants(ctx, "bob", now)
		if err != nil {
			t.Fatalf("ActiveGrants: %v", err)
		}
		ids := requestIDs(got)
		slices.Sort(ids)
		if want := []string{"active", "starts-now"}; !slices.Equal(ids, want) {
			t.Fatalf("ActiveGrants(bob) = %v, want %v", ids, want)
		}
		if got, err := s.ActiveGrants(ctx, "sam", now); err != nil || len(got) != 0 {
			t.Fatalf("ActiveGrants(sam) = %v, %v; want none", requestIDs(got), err)
		}
	})
}

func runLocks(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	s := open(t)
	now := us(10 * time.Hour)
	for _, l := range []storage.Lock{
		{User: "bob", Reason: "incident", By: "sam", Created: now},
		{User: "alice", Reason: "leaver", By: "sam", Created: now, Expires: ptr(now.Add(time.Hour))},
		{User: "eve", Reason: "old", By: "sam", Created: us(0), Expires: ptr(now.Add(-time.Hour))},
	} {
		if err := s.PutLock(ctx, l); err != nil {
			t.Fatalf("PutLock %s: %v", l.User, err)
		}
	}
	tests := []struct {
		user   string
		at     time.Time
		locked bool
	}{
		{"bob", now, true},
		{"bob", now.Add(1000 * time.Hour), true}, // no expiry
		{"alice", now, true},
		{"alice", now.Add(time.Hour - time.Microsecond), true},
		{"alice", now.Add(time.Hour), false}, // expiry is exclusive
		{"eve", now, false},
		{"sam", now, false},
	}
	for _, tc := range tests {
		l, err := s.ActiveLock(ctx, tc.user, tc.at)
		switch {
		case tc.locked && err != nil:
			t.Errorf("ActiveLock(%s, %v): %v, want locked", tc.user, tc.at, err)
		case tc.locked && (l.User != tc.user || l.By != "sam"):
			t.Errorf("ActiveLock(%s) = %+v", tc.user, l)
		case !tc.locked && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("ActiveLock(%s, %v) = %+v, %v; want ErrNotFound", tc.user, tc.at, l, err)
		}
	}
	got, err := s.ActiveLock(ctx, "alice", now)
	if err != nil || got.Reason != "leaver" || !got.Created.Equal(now) || got.Expires == nil || !got.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("ActiveLock(alice) = %+v, %v", got, err)
	}
	list, err := s.ListLocks(ctx, now)
	if err != nil {
		t.Fatalf("ListLocks: %v", err)
	}
	var users []string
	for _, l := range list {
		users = append(users, l.User)
	}
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("ListLocks = %v, want [alice bob]", users)
	}
	// A new lock replaces the old one: here it lifts the expiry.
	if err := s.PutLock(ctx, storage.Lock{User: "alice", Reason: "extended", By: "sam", Created: now}); err != nil {
		t.Fatalf("PutLock replace: %v", err)
	}
	if l, err := s.ActiveLock(ctx, "alice", now.Add(2*time.Hour)); err != nil || l.Reason != "extended" || l.Expires != nil {
		t.Fatalf("replaced lock = %+v, %v", l, err)
	}
	if err := s.DeleteLock(ctx, "bob"); err != nil {
		t.Fatalf("DeleteLock: %v", err)
	}
	if _, err := s.ActiveLock(ctx, "bob", now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("ActiveLock after DeleteLock = %v, want ErrNotFound", err)
	}
	if err := s.DeleteLock(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteLock(unlocked) = %v, want ErrNotFound", err)
	}
}

func runIdentity(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	now := us(10 * time.Hour)

	t.Run("Logins", func(t *testing.T) {
		s := open(t)
		in := storage.Login{ID: "l1", User: "bob", Claims: map[string][]string{"groups": {"engineers", "oncall"}, "email": {"bob@example.com"}},
			Kind: "web", Created: now, Expires: now.Add(time.Hour), CSRFToken: "csrf-123"}
		if err := s.PutLogin(ctx, in); err != nil {
			t.Fatalf("PutLogin: %v", err)
		}
		got, err := s.GetLogin(ctx, "l1")
		if err != nil {
			t.Fatalf("GetLogin: %v", err)
		}
		got.Created, got.Expires = got.Created.UTC(), got.Expires.UTC()
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("GetLogin = %+v, want %+v (CSRFToken must be stored too)", got, in)
		}
		if _, err := s.GetLogin(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetLogin(missing) = %v, want ErrNotFound", err)
		}
		if err := s.RevokeLogin(ctx, "l1"); err != nil {
			t.Fatalf("RevokeLogin: %v", err)
		}
		if got, err := s.GetLogin(ctx, "l1"); err != nil || !got.Revoked {
			t.Fatalf("after RevokeLogin = %+v, %v; want revoked", got, err)
		}
		if err := s.RevokeLogin(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("RevokeLogin(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("KeyBindings", func(t *testing.T) {
		s := open(t)
		for _, l := range []storage.Login{
			{ID: "k-old", User: "bob", Kind: "sshkey", KeyFP: "SHA256:bob", Created: now.Add(-2 * time.Hour), Expires: now.Add(time.Hour)},
			{ID: "k-new", User: "bob", Kind: "sshkey", KeyFP: "SHA256:bob", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour)},
			{ID: "k-expired", User: "eve", Kind: "sshkey", KeyFP: "SHA256:eve", Created: now.Add(-2 * time.Hour), Expires: now},
			{ID: "k-revoked", User: "mallory", Kind: "sshkey", KeyFP: "SHA256:mallory", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour)},
			{ID: "web", User: "alice", Kind: "web", KeyFP: "SHA256:alice", Created: now, Expires: now.Add(time.Hour)},
		} {
			if err := s.PutLogin(ctx, l); err != nil {
				t.Fatalf("PutLogin %s: %v", l.ID, err)
			}
		}
		if err := s.RevokeLogin(ctx, "k-revoked"); err != nil {
			t.Fatalf("RevokeLogin: %v", err)
		}
		tests := []struct {
			fp, wantID string
		}{
			{"SHA256:bob", "k-new"}, // newest binding wins
			{"SHA256:eve", ""},      // expired (expiry exclusive)
			{"SHA256:mallory", ""},  // revoked
			{"SHA256:alice", ""},    // not an sshkey login
			{"SHA256:unknown", ""},
		}
		for _, tc := range tests {
			l, err := s.LoginByKey(ctx, tc.fp, now)
			if tc.wantID == "" {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("LoginByKey(%s) = %+v, %v; want ErrNotFound", tc.fp, l, err)
				}
				continue
			}
			if err != nil || l.ID != tc.wantID {
				t.Errorf("LoginByKey(%s) = %q, %v; want %q", tc.fp, l.ID, err, tc.wantID)
			}
		}
	})

	t.Run("LatestLogin", func(t *testing.T) {
		s := open(t)
		if _, err := s.LatestLogin(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("LatestLogin before any login = %v, want ErrNotFound", err)
		}
		for _, l := range []storage.Login{
			{ID: "old", User: "bob", Kind: "web", Claims: map[string][]string{"groups": {"dev"}}, Created: now.Add(-2 * time.Hour), Expires: now.Add(time.Hour)},
			{ID: "new", User: "bob", Kind: "cli", Claims: map[string][]string{"groups": {"dev", "dba"}}, Created: now.Add(-time.Hour), Expires: now},
			{ID: "alice", User: "alice", Kind: "sshkey", KeyFP: "SHA256:a", Created: now, Expires: now.Add(time.Hour)},
			// An API token copies claims; it is never the latest login.
			{ID: "token", User: "bob", Kind: "api", Created: now, Expires: now.Add(time.Hour)},
		} {
			if err := s.PutLogin(ctx, l); err != nil {
				t.Fatalf("PutLogin %s: %v", l.ID, err)
			}
		}
		// Expired and revoked, the newest login still carries the newest
		// claims: it is the one returned.
		if err := s.RevokeLogin(ctx, "new"); err != nil {
			t.Fatal(err)
		}
		l, err := s.LatestLogin(ctx, "bob")
		if err != nil || l.ID != "new" || !l.Revoked || !reflect.DeepEqual(l.Claims, map[string][]string{"groups": {"dev", "dba"}}) ||
			!l.Created.Equal(now.Add(-time.Hour)) {
			t.Errorf("LatestLogin(bob) = %+v, %v; want login new with its claims", l, err)
		}
		if l, err := s.LatestLogin(ctx, "alice"); err != nil || l.ID != "alice" {
			t.Errorf("LatestLogin(alice) = %+v, %v", l, err)
		}
	})

	t.Run("RevokeLogins", func(t *testing.T) {
		s := open(t)
		for _, l := range []storage.Login{
			{ID: "t1", User: "bob", Kind: "api", Created: now, Expires: now.Add(time.Hour)},
			{ID: "t2", User: "bob", Kind: "api", Created: now, Expires: now.Add(time.Hour)},
			{ID: "c1", User: "bob", Kind: "cli", Created: now, Expires: now.Add(time.Hour)},
			{ID: "t3", User: "alice", Kind: "api", Created: now, Expires: now.Add(time.Hour)},
		} {
			if err := s.PutLogin(ctx, l); err != nil {
				t.Fatalf("PutLogin %s: %v", l.ID, err)
			}
		}
		if err := s.RevokeLogins(ctx, "bob", "api"); err != nil {
			t.Fatalf("RevokeLogins: %v", err)
		}
		if err := s.RevokeLogins(ctx, "nobody", "api"); err != nil {
			t.Fatalf("RevokeLogins of a user with none: %v", err)
		}
		for id, want := range map[string]bool{"t1": true, "t2": true, "c1": false, "t3": false} {
			if l, err := s.GetLogin(ctx, id); err != nil || l.Revoked != want {
				t.Errorf("after RevokeLogins(bob, api) login %s revoked=%v (%v), want %v", id, l.Revoked, err, want)
			}
		}
	})

	t.Run("DeleteExpiredLogins", func(t *testing.T) {
		s := open(t)
		for _, l := range []storage.Login{
			{ID: "old-api", User: "bob", Kind: "api", Created: now.Add(-3 * time.Hour), Expires: now.Add(-2 * time.Hour)},
			{ID: "edge-api", User: "bob", Kind: "api", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)},
			{ID: "live-api", User: "bob", Kind: "api", Created: now, Expires: now.Add(time.Hour)},
			{ID: "old-cli", User: "bob", Kind: "cli", Created: now.Add(-3 * time.Hour), Expires: now.Add(-2 * time.Hour)},
		} {
			if err := s.PutLogin(ctx, l); err != nil {
				t.Fatalf("PutLogin %s: %v", l.ID, err)
			}
		}
		if err := s.DeleteExpiredLogins(ctx, "api", now.Add(-time.Hour)); err != nil {
			t.Fatalf("DeleteExpiredLogins: %v", err)
		}
		for id, gone := range map[string]bool{"old-api": true, "edge-api": false, "live-api": false, "old-cli": false} {
			_, err := s.GetLogin(ctx, id)
			if gone != errors.Is(err, storage.ErrNotFound) {
				t.Errorf("after DeleteExpiredLogins(api, now-1h) login %s: %v, want gone=%v", id, err, gone)
			}
		}
	})

	t.Run("OneTime", func(t *testing.T) {
		s := open(t)
		tests := []struct {
			name    string
			expires time.Time
			takeAt  time.Time
			want    bool
		}{
			{"fresh", now.Add(time.Minute), now, true},
			{"at expiry", now, now, false},
			{"expired", now.Add(-time.Minute), now, false},
		}
		for _, tc := range tests {
			key := "code-" + tc.name
			if err := s.PutOneTime(ctx, key, []byte("v-"+tc.name), tc.expires); err != nil {
				t.Fatalf("%s: PutOneTime: %v", tc.name, err)
			}
			v, err := s.TakeOneTime(ctx, key, tc.takeAt)
			if tc.want && (err != nil || string(v) != "v-"+tc.name) {
				t.Errorf("%s: TakeOneTime = %q, %v; want the value", tc.name, v, err)
			}
			if !tc.want && !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: TakeOneTime = %q, %v; want ErrNotFound", tc.name, v, err)
			}
			if _, err := s.TakeOneTime(ctx, key, tc.takeAt); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: second TakeOneTime = %v, want ErrNotFound", tc.name, err)
			}
		}
		if _, err := s.TakeOneTime(ctx, "never-put", now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("TakeOneTime(absent) = %v, want ErrNotFound", err)
		}
		// Putting a key again replaces its value.
		if err := s.PutOneTime(ctx, "k", []byte("one"), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutOneTime(ctx, "k", []byte("two"), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if v, err := s.TakeOneTime(ctx, "k", now); err != nil || string(v) != "two" {
			t.Fatalf("TakeOneTime after replace = %q, %v; want two", v, err)
		}

		// Racing takers: exactly one wins.
		if err := s.PutOneTime(ctx, "race", []byte("prize"), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		const takers = 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := s.TakeOneTime(ctx, "race", now)
				if err == nil && string(v) == "prize" {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("TakeOneTime: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d takers got the one-time value, want exactly 1", wins)
		}
	})
}
