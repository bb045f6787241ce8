package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/pgtest"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/storage/postgres"
)

// opTimeout bounds each store call in these tests so a wedged server fails
// the test instead of hanging it.
const opTimeout = 30 * time.Second

func openStore(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	// One server for the whole suite, one fresh database per store: initdb
	// per subtest would cost more than the suite itself.
	c := pgtest.StartCluster(t)
	conformance.Run(t, func(t *testing.T) storage.Store {
		return openStore(t, c.NewDatabase(t))
	})
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	const bastions = 4
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, bastions)
	errs := make([]error, bastions)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for i := range bastions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d racing %d others: %v", i, bastions-1, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	for i, s := range stores {
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != postgres.LatestSchemaVersion() {
			t.Fatalf("store %d: SchemaVersion = %d, %v; want %d", i, v, err, postgres.LatestSchemaVersion())
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var rows, heads int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	if rows != postgres.LatestSchemaVersion() {
		t.Errorf("schema_migrations has %d rows, want %d (one per version)", rows, postgres.LatestSchemaVersion())
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_head`).Scan(&heads); err != nil {
		t.Fatalf("count chain heads: %v", err)
	}
	if heads != 1 {
		t.Errorf("audit_head has %d rows, want 1: a migration ran twice", heads)
	}
	// Reopening an up-to-date database applies nothing and still works.
	s := openStore(t, dsn)
	if v, err := s.SchemaVersion(ctx); err != nil || v != postgres.LatestSchemaVersion() {
		t.Fatalf("reopen: SchemaVersion = %d, %v", v, err)
	}
}

// seal is this test's stand-in for the audit package's hash.
func seal(ev *storage.Event) []byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, ev.Seq)
	h.Write([]byte(ev.Time.UTC().Format(time.RFC3339Nano)))
	for _, s := range []string{ev.Type, ev.Actor, ev.Target, ev.Outcome} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	f, _ := json.Marshal(ev.Fields)
	h.Write(f)
	h.Write(ev.PrevHash)
	return h.Sum(nil)
}

// verifyChain walks the whole stored chain and fails unless it is gapless,
// linked and re-seals; it returns the number of events.
func verifyChain(t *testing.T, s storage.AuditStore) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	a, err := s.AuditAnchor(ctx)
	if err != nil {
		t.Fatalf("AuditAnchor: %v", err)
	}
	seq, prev, n := a.Seq, a.Hash, 0
	err = s.WalkEvents(ctx, func(ev storage.Event) error {
		seq++
		n++
		switch {
		case ev.Seq != seq:
			return fmt.Errorf("gap: seq %d follows %d", ev.Seq, seq-1)
		case !bytes.Equal(ev.PrevHash, prev):
			return fmt.Errorf("event %d does not link to its predecessor", ev.Seq)
		case !bytes.Equal(seal(&ev), ev.Hash):
			return fmt.Errorf("event %d does not re-seal", ev.Seq)
		}
		prev = ev.Hash
		return nil
	})
	if err != nil {
		t.Fatalf("chain broken: %v", err)
	}
	return n
}

func TestTwoBastionsAppendOneChain(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	// Two Stores, two pools, two sets of server connections: as far as
	// PostgreSQL can tell, two bastions.
	bastions := []*postgres.Store{openStore(t, dsn), openStore(t, dsn)}
	const writersPerBastion, appendsPerWriter = 8, 25
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, len(bastions)*writersPerBastion)
	for b, s := range bastions {
		for w := range writersPerBastion {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range appendsPerWriter {
					// Batches of 1..3 events: a batch must stay contiguous.
					batch := make([]storage.Event, 1+i%3)
					for j := range batch {
						batch[j] = storage.Event{Time: time.Now(), Type: "exec", Actor: fmt.Sprintf("b%d-w%d", b, w),
							Fields: map[string]any{"i": i, "j": j}}
					}
					out, err := s.AppendEvents(ctx, batch, seal)
					if err != nil {
						errs <- fmt.Errorf("bastion %d writer %d: %w", b, w, err)
						return
					}
					for j := 1; j < len(out); j++ {
						if out[j].Seq != out[j-1].Seq+1 || !bytes.Equal(out[j].PrevHash, out[j-1].Hash) {
							errs <- fmt.Errorf("bastion %d: batch split at seq %d", b, out[j].Seq)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := 0
	for i := range appendsPerWriter {
		want += 1 + i%3
	}
	want *= len(bastions) * writersPerBastion
	for b, s := range bastions {
		if n := verifyChain(t, s); n != want {
			t.Fatalf("bastion %d sees %d events, want %d", b, n, want)
		}
	}
}

func TestTwoBastionsReviewOneRequest(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	bastions := []*postgres.Store{openStore(t, dsn), openStore(t, dsn)}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := bastions[0].CreateRequest(ctx, storage.Request{ID: "r1", User: "bob", Roles: []string{"dba"},
		State: storage.StatePending, Created: time.Now()}); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	const perBastion = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*perBastion)
	for b, s := range bastions {
		for i := range perBastion {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateRequest(ctx, "r1", func(r *storage.Request) error {
					r.Reviews = append(r.Reviews, storage.Review{Reviewer: fmt.Sprintf("b%d-%d", b, i), Approve: true, Time: time.Now()})
					return nil
				})
				if err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("UpdateRequest: %v", err)
	}
	got, err := bastions[1].GetRequest(ctx, "r1")
	if err != nil {
		t.Fatalf("GetRequest: %v", err)
	}
	seen := map[string]bool{}
	for _, rv := range got.Reviews {
		seen[rv.Reviewer] = true
	}
	if len(seen) != 2*perBastion || len(got.Reviews) != 2*perBastion {
		t.Fatalf("%d reviews (%d distinct), want %d: a review from one bastion overwrote another's", len(got.Reviews), len(seen), 2*perBastion)
	}
}

func TestAuditStringsPostgresCannotHold(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	s := openStore(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	tests := []struct {
		name, actor, want string
	}{
		{"plain", "bob", "bob"},
		{"nul byte", "bob\x00root", "bob\uFFFDroot"},
		{"invalid utf-8", "b\xffob", "b\uFFFDob"},
		{"valid non-ascii", "bøb", "bøb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.AppendEvents(ctx, []storage.Event{{Time: time.Now(), Type: "ssh.auth", Actor: tc.actor,
				Fields: map[string]any{"raw": tc.actor}}}, seal)
			if err != nil {
				t.Fatalf("AppendEvents(actor %q): %v", tc.actor, err)
			}
			if out[0].Actor != tc.want {
				t.Errorf("returned actor %q, want %q", out[0].Actor, tc.want)
			}
			got, err := s.ListEvents(ctx, storage.EventFilter{After: out[0].Seq - 1, Limit: 1})
			if err != nil || len(got) != 1 {
				t.Fatalf("ListEvents: %d events, %v", len(got), err)
			}
			if got[0].Actor != tc.want {
				t.Errorf("stored actor %q, want %q", got[0].Actor, tc.want)
			}
		})
	}
	verifyChain(t, s)
}

func recv(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: channel closed", what)
		}
		return p
	case <-time.After(opTimeout):
		t.Fatalf("waiting for %s: nothing arrived", what)
	}
	return ""
}

func TestNotifyReachesOtherBastion(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A channel name that needs quoting proves LISTEN quotes it.
	const channel = `gatehouse "changes" Ä`
	ch, err := a.Listen(ctx, channel)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	other, err := a.Listen(ctx, "other")
	if err != nil {
		t.Fatalf("Listen other: %v", err)
	}
	for _, p := range []string{"request r1", "lock bob", ""} {
		if err := b.Notify(ctx, channel, p); err != nil {
			t.Fatalf("Notify: %v", err)
		}
	}
	for _, want := range []string{"request r1", "lock bob", ""} {
		if got := recv(t, ch, "notification"); got != want {
			t.Fatalf("got payload %q, want %q (in order)", got, want)
		}
	}
	// The other channel got nothing: a notification on it now is the
	// first thing it sees.
	if err := b.Notify(ctx, "other", "mark"); err != nil {
		t.Fatalf("Notify other: %v", err)
	}
	if got := recv(t, other, "notification on other"); got != "mark" {
		t.Fatalf("other channel received %q first, want mark", got)
	}

	// Cancelling the Listen context closes the channel.
	cancel()
	for range ch {
	}
}

func TestCloseEndsListen(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ch, err := s.Listen(context.Background(), "c")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("Listen channel still open after Close")
	}
	if _, err := s.Listen(ctx, "c"); !errors.Is(err, postgres.ErrClosed) {
		t.Fatalf("Listen after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOpenUnreachableFails(t *testing.T) {
	// Port 1 on loopback: nothing listens there, so Open must fail fast
	// with an error rather than hand out a Store that fails later.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=5")
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
	if _, err := postgres.Open(ctx, "postgres://%zz"); err == nil {
		t.Fatal("Open of a malformed DSN succeeded")
	}
}

func TestSurvivesServerRestart(t *testing.T) {
	c := pgtest.StartCluster(t)
	if !c.CanRestart() {
		t.Skip("the server is external; it cannot be restarted by the test")
	}
	dsn := c.NewDatabase(t)
	s := openStore(t, dsn)
	listenCtx, stopListen := context.WithCancel(context.Background())
	defer stopListen()
	ch, err := s.Listen(listenCtx, "changes")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx := context.Background()
	now := time.Now()
	lock := storage.Lock{User: "bob", Reason: "before restart", By: "sam", Created: now}
	if err := s.PutLock(ctx, lock); err != nil {
		t.Fatalf("PutLock: %v", err)
	}
	if err := s.Notify(ctx, "changes", "before"); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got := recv(t, ch, "notification before restart"); got != "before" {
		t.Fatalf("got %q, want before", got)
	}

	c.Stop(t)
	// While the server is down every operation fails, and the caller's
	// deadline, not a TCP timeout, decides how long that takes.
	down := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"ActiveLock", func(ctx context.Context) error { _, err := s.ActiveLock(ctx, "bob", now); return err }},
		{"AppendEvents", func(ctx context.Context) error {
			_, err := s.AppendEvents(ctx, []storage.Event{{Time: now, Type: "x"}}, seal)
			return err
		}},
		{"Notify", func(ctx context.Context) error { return s.Notify(ctx, "changes", "lost") }},
	}
	for _, tc := range down {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := tc.op(octx)
		cancel()
		if err == nil {
			t.Fatalf("%s succeeded while the server was down", tc.name)
		}
		if errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s reported ErrNotFound while the server was down; an outage must not look like 'not locked': %v", tc.name, err)
		}
	}

	c.Restart(t)
	// The pool drops dead connections as it meets them, so allow a few
	// failing attempts before the first success.
	var got storage.Lock
	for attempt := 1; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err = s.ActiveLock(octx, "bob", now)
		cancel()
		if err == nil {
			break
		}
		if attempt == 20 {
			t.Fatalf("ActiveLock still failing after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.Reason != lock.Reason {
		t.Fatalf("lock after restart = %+v", got)
	}
	if _, err := s.AppendEvents(ctx, []storage.Event{{Time: now, Type: "after"}}, seal); err != nil {
		t.Fatalf("AppendEvents after restart: %v", err)
	}
	verifyChain(t, s)

	// The same Listen channel resumes: first the empty "re-check now"
	// payload that marks the reconnect, then live notifications again.
	if p := recv(t, ch, "reconnect marker"); p != "" {
		t.Fatalf("first payload after restart = %q, want the empty reconnect marker", p)
	}
	if err := s.Notify(ctx, "changes", "after"); err != nil {
		t.Fatalf("Notify after restart: %v", err)
	}
	if p := recv(t, ch, "notification after restart"); p != "after" {
		t.Fatalf("got %q after restart, want after", p)
	}
}
