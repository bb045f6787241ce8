package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
	"github.com/gatehouse-dev/gatehouse/storage/sqlite"
)

// buildChain appends n events through a Log and returns them as stored.
func buildChain(t *testing.T, store storage.AuditStore, n int) []storage.Event {
	t.Helper()
	ctx := context.Background()
	l := audit.New(store, audit.Options{Now: fixedClock()})
	for i := range n {
		if err := l.Append(ctx, storage.Event{Type: audit.TypeExec, Actor: "bob", Target: "db-1", Outcome: audit.OutcomeSuccess,
			Fields: map[string]any{"n": i + 1, "cmd": fmt.Sprintf("echo %d", i+1)}}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	evs, err := store.ListEvents(ctx, storage.EventFilter{})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	return evs
}

func sqlExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("tamper %q: %v", q, err)
	}
}

// moveSeq renumbers events from..to (inclusive) by delta without tripping
// the primary key halfway, via negative seqs.
func moveSeq(t *testing.T, db *sql.DB, from, to, delta int64) {
	sqlExec(t, db, `UPDATE events SET seq = -(seq + ?) WHERE seq BETWEEN ? AND ?`, delta, from, to)
	sqlExec(t, db, `UPDATE events SET seq = -seq WHERE seq < 0`)
}

// forge inserts ev at its Seq with a correct hash, as an attacker who knows
// the (public) algorithm would.
func forge(t *testing.T, db *sql.DB, ev storage.Event) []byte {
	h, err := audit.Hash(&ev)
	if err != nil {
		t.Fatal(err)
	}
	sqlExec(t, db, `INSERT INTO events(seq, time, type, actor, target, outcome, fields, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)`,
		ev.Seq, ev.Time.UnixNano(), ev.Type, ev.Actor, ev.Target, ev.Outcome, nil, ev.PrevHash, h)
	return h
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB, evs []storage.Event)
		badSeq  int64
		problem string
	}{
		{"intact", func(*testing.T, *sql.DB, []storage.Event) {}, 0, ""},
		{"edit actor", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET actor = 'alice' WHERE seq = 4`)
		}, 4, "does not match its hash"},
		{"edit outcome", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET outcome = 'failure' WHERE seq = 9`)
		}, 9, "does not match its hash"},
		{"edit fields", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET fields = '{"cmd":"true","n":5}' WHERE seq = 5`)
		}, 5, "does not match its hash"},
		{"edit time by 1ns", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET time = time + 1 WHERE seq = 6`)
		}, 6, "does not match its hash"},
		{"edit and rehash", func(t *testing.T, db *sql.DB, evs []storage.Event) {
			ev := evs[3]
			ev.Actor = "alice"
			h, _ := audit.Hash(&ev)
			sqlExec(t, db, `UPDATE events SET actor = 'alice', hash = ? WHERE seq = 4`, h)
		}, 5, "does not link to event 4"},
		{"delete middle", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq = 5`)
		}, 5, "event 5 is missing"},
		{"edit before a deletion", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET target = 'db-2' WHERE seq = 3`)
			sqlExec(t, db, `DELETE FROM events WHERE seq = 7`)
		}, 3, "event 3 does not match its hash"},
		{"delete range", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq BETWEEN 3 AND 6`)
		}, 3, "events 3 to 6 are missing"},
		{"delete first", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq = 1`)
		}, 1, "event 1 is missing"},
		{"delete and renumber", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq = 5`)
			moveSeq(t, db, 6, 10, -1)
		}, 5, "does not link to event 4"},
		{"insert in the middle", func(t *testing.T, db *sql.DB, evs []storage.Event) {
			moveSeq(t, db, 4, 10, 1)
			forge(t, db, storage.Event{Seq: 4, Time: evs[2].Time, Type: audit.TypeUserUnlock, Actor: "bob", Target: "bob", PrevHash: evs[2].Hash})
		}, 5, "does not link to event 4"},
		{"swap two events", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET seq = -1 WHERE seq = 6`)
			sqlExec(t, db, `UPDATE events SET seq = 6 WHERE seq = 7`)
			sqlExec(t, db, `UPDATE events SET seq = 7 WHERE seq = -1`)
		}, 6, "does not link to event 5"},
		{"swap contents keeping seqs", func(t *testing.T, db *sql.DB, evs []storage.Event) {
			a, b := evs[1], evs[2]
			sqlExec(t, db, `UPDATE events SET fields = ?, prev_hash = ?, hash = ? WHERE seq = 2`, `{"cmd":"echo 3","n":3}`, b.PrevHash, b.Hash)
			sqlExec(t, db, `UPDATE events SET fields = ?, prev_hash = ?, hash = ? WHERE seq = 3`, `{"cmd":"echo 2","n":2}`, a.PrevHash, a.Hash)
		}, 2, "does not link to event 1"},
		{"append garbage", func(t *testing.T, db *sql.DB, evs []storage.Event) {
			sqlExec(t, db, `INSERT INTO events(seq, time, type, prev_hash, hash) VALUES (11, 0, 'exec', ?, x'00')`, evs[9].Hash)
		}, 11, "does not match its hash"},
		{"reformatted fields are not tampering", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET fields = '{ "n": 5, "cmd": "echo 5" }' WHERE seq = 5`)
		}, 0, ""},
		{"fields replaced by garbage", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET fields = 'not json' WHERE seq = 5`)
		}, 5, "not valid JSON"},
		{"edit actor to hold a NUL byte", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET actor = 'bob' || char(0) || 'x' WHERE seq = 4`)
		}, 4, "does not match its hash"},
		{"hash made a number", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET hash = 5 WHERE seq = 3`)
		}, 3, "does not match its hash"},
		{"fields removed", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET fields = NULL WHERE seq = 5`)
		}, 5, "does not match its hash"},
		{"fields emptied", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET fields = '' WHERE seq = 5`)
		}, 5, "not valid JSON"},
		{"prev_hash removed", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET prev_hash = NULL WHERE seq = 6`)
		}, 6, "does not link to event 5"},
		{"type stored as a blob is not tampering", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET type = CAST(type AS BLOB), fields = CAST(fields AS BLOB) WHERE seq = 2`)
		}, 0, ""},
		{"time made text", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `UPDATE events SET time = 'soon' WHERE seq = 2`)
		}, 2, unreadable},
		{"forge anchor", func(t *testing.T, db *sql.DB, _ []storage.Event) {
			sqlExec(t, db, `DELETE FROM events WHERE seq <= 3`)
			sqlExec(t, db, `INSERT INTO audit_anchor(id, seq, hash) VALUES (1, 3, x'0102')`)
		}, 4, "does not link to the retention anchor"},
	}
	// Both verification paths: the SQLite store's raw walk, and the plain
	// WalkEvents any backend has.
	for _, plain := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/plain=%v", tc.name, plain), func(t *testing.T) {
				runTamper(t, plain, tc.tamper, tc.badSeq, tc.problem)
			})
		}
	}
}

// plainStore hides the SQLite store's optional methods (raw walk, encoded
// append), so that Log and Verify take the paths any backend has.
type plainStore struct{ storage.AuditStore }

// unreadable as the expected problem means Verify must fail with an error:
// the row cannot even be read as an event.
const unreadable = "(unreadable)"

func runTamper(t *testing.T, plain bool, tamper func(*testing.T, *sql.DB, []storage.Event), badSeq int64, problem string) {
	sqlite, path := openStore(t)
	var store storage.AuditStore = sqlite
	if plain {
		store = plainStore{sqlite}
	}
	evs := buildChain(t, store, 10)
	if len(evs) != 10 {
		t.Fatalf("built %d events, want 10", len(evs))
	}
	tamper(t, rawDB(t, path), evs)
	rep, err := audit.Verify(context.Background(), store)
	if problem == unreadable {
		if err == nil {
			t.Fatalf("Verify of an unreadable row = %+v, want an error", rep)
		}
		return
	}
	if plain && strings.Contains(problem, "not valid JSON") {
		// Through plain WalkEvents the store itself fails to decode the
		// row; Verify must then fail rather than pass.
		if err == nil && rep.OK {
			t.Fatalf("garbage fields passed verification: %+v", rep)
		}
		return
	}
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if badSeq == 0 {
		if !rep.OK || rep.Events != 10 || rep.FirstSeq != 1 || rep.LastSeq != 10 {
			t.Fatalf("untampered chain: %+v", rep)
		}
		return
	}
	if rep.OK {
		t.Fatalf("tampering not detected: %+v", rep)
	}
	if rep.BadSeq != badSeq || !strings.Contains(rep.Problem, problem) {
		t.Fatalf("report = bad seq %d %q; want %d %q", rep.BadSeq, rep.Problem, badSeq, problem)
	}
}

func TestVerifyEmpty(t *testing.T) {
	store, _ := openStore(t)
	if rep := mustVerify(t, store); !rep.OK || rep.Events != 0 {
		t.Fatalf("empty chain: %+v", rep)
	}
}

func TestPruneKeepsChainVerifiable(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	now := t0.Add(30 * 24 * time.Hour)
	l := newLog(t, store, audit.Options{Now: func() time.Time { return now }})
	for day := range 30 {
		ev := storage.Event{Time: t0.Add(time.Duration(day) * 24 * time.Hour), Type: audit.TypeSessionStart, Actor: "bob"}
		if err := l.Append(ctx, ev); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	n, err := l.Prune(ctx, 7*24*time.Hour) // keeps days 23..29
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if n != 23 {
		t.Fatalf("pruned %d, want 23", n)
	}
	rep := mustVerify(t, store)
	if !rep.OK || rep.FirstSeq != 24 || rep.LastSeq != 30 || rep.Events != 7 {
		t.Fatalf("after prune: %+v", rep)
	}
	// The chain keeps growing from where it was.
	if err := l.Append(ctx, storage.Event{Type: audit.TypeSessionEnd, Actor: "bob"}); err != nil {
		t.Fatalf("Append after prune: %v", err)
	}
	if rep := mustVerify(t, store); !rep.OK || rep.LastSeq != 31 {
		t.Fatalf("after prune and append: %+v", rep)
	}
	if _, err := l.Prune(ctx, 0); err == nil {
		t.Fatal("Prune(0) accepted: would delete everything")
	}
}

// Long chains are verified in parallel segments; the first problem must be
// reported whichever segment holds it, including problems exactly at a
// segment boundary.
func TestVerifyLongChain(t *testing.T) {
	const n = 4096 // minParallel: segments of 1024 whatever the CPU count
	for _, workers := range []int{1, 2, runtime.GOMAXPROCS(0)} {
		if !slices.Contains(audit.SegmentBounds(1, n, workers), [2]int64{2049, 3072}) {
			t.Fatalf("with %d workers 2048 is not a segment boundary (%v): the cases below would miss the seam", workers, audit.SegmentBounds(1, n, workers))
		}
	}
	tests := []struct {
		name    string
		tamper  []string
		badSeq  int64
		problem string
	}{
		{"intact", nil, 0, ""},
		{"several problems, first wins", []string{
			`UPDATE events SET actor = 'x' WHERE seq IN (3500, 3000)`,
			`DELETE FROM events WHERE seq = 3200`,
			`UPDATE events SET actor = 'x' WHERE seq = 1000`,
		}, 1000, "does not match its hash"},
		{"last of a segment deleted", []string{`DELETE FROM events WHERE seq = 2048`}, 2048, "missing"},
		{"first of a segment deleted", []string{`DELETE FROM events WHERE seq = 2049`}, 2049, "missing"},
		{"tail of a segment deleted", []string{`DELETE FROM events WHERE seq BETWEEN 2040 AND 2048`}, 2040, "missing"},
		{"swap across the boundary", []string{
			`UPDATE events SET seq = -1 WHERE seq = 2048`,
			`UPDATE events SET seq = 2048 WHERE seq = 2049`,
			`UPDATE events SET seq = 2049 WHERE seq = -1`,
		}, 2048, "does not link"},
		{"edit the very last", []string{`UPDATE events SET outcome = 'x' WHERE seq = 4096`}, 4096, "does not match its hash"},
	}
	// Build the chain once; each case tampers with its own copy of the file.
	ctx := context.Background()
	template := filepath.Join(t.TempDir(), "template.db")
	{
		store, err := sqlite.Open(ctx, template)
		if err != nil {
			t.Fatal(err)
		}
		seal := func(ev *storage.Event) []byte {
			h, err := audit.Hash(ev)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		evs := make([]storage.Event, n)
		for i := range evs {
			evs[i] = storage.Event{Time: t0.Add(time.Duration(i) * time.Second), Type: audit.TypeExec, Actor: "bob", Fields: map[string]any{"n": i}}
		}
		if _, err := store.AppendEvents(ctx, evs, seal); err != nil {
			t.Fatal(err)
		}
		store.Close() // checkpoints the WAL into the file
	}
	data, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "g.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			store, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			db := rawDB(t, path)
			for _, q := range tc.tamper {
				sqlExec(t, db, q)
			}
			for _, plain := range []bool{false, true} {
				var s storage.AuditStore = store
				if plain {
					s = plainStore{store}
				}
				rep := mustVerify(t, s)
				if tc.badSeq == 0 {
					if !rep.OK || rep.Events != n || rep.FirstSeq != 1 || rep.LastSeq != n {
						t.Fatalf("plain=%v: intact long chain: %+v", plain, rep)
					}
					continue
				}
				if rep.OK || rep.BadSeq != tc.badSeq || !strings.Contains(rep.Problem, tc.problem) ||
					rep.Events != tc.badSeq-1 || rep.LastSeq != tc.badSeq-1 {
					t.Fatalf("plain=%v: report = %+v; want first problem at %d (%q)", plain, rep, tc.badSeq, tc.problem)
				}
			}
		})
	}
}

// Values a stored-bytes encoding could trip over, appended through Log:
// each chain must verify on both paths, and an edit of any odd value must
// show.
func TestVerifyOddValues(t *testing.T) {
	odd := []storage.Event{
		{Type: audit.TypeExec, Actor: "a\x00b", Target: "\xff\xfe", Outcome: ""},
		{Type: audit.TypeExec, Actor: "0 1 2 ", Fields: map[string]any{"nul": "x\x00y", "sep": "a\u2028b", "html": "<&>"}},
		// More bytes than a code point can count.
		{Type: "\U0010FFFF", Fields: map[string]any{"blob": strings.Repeat("x", 1<<20+200_000)}},
		// Values only the encoding/json path handles.
		{Type: audit.TypeExec, Fields: map[string]any{"float": 1.5, "struct": struct{ A int }{1}, "bad": "\xffz"}},
	}
	tests := []struct {
		name    string
		tamper  string
		badSeq  int64
		problem string
	}{
		{"intact", "", 0, ""},
		{"NUL moved", `UPDATE events SET actor = 'a' || char(0) || 'c' WHERE seq = 1`, 1, "does not match its hash"},
		{"invalid bytes replaced", `UPDATE events SET target = x'fffd' WHERE seq = 1`, 1, "does not match its hash"},
		{"one byte of a huge field", `UPDATE events SET fields = substr(fields, 1, 100) || 'y' || substr(fields, 102) WHERE seq = 3`, 3, "does not match its hash"},
		{"escaped text unescaped", `UPDATE events SET fields = replace(fields, '\u2028', char(8232)) WHERE seq = 2`, 0, ""},
		{"after the odd ones", `UPDATE events SET outcome = 'x' WHERE seq = 4`, 4, "does not match its hash"},
	}
	for _, plain := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/plain=%v", tc.name, plain), func(t *testing.T) {
				sq, path := openStore(t)
				var store storage.AuditStore = sq
				if plain {
					store = plainStore{sq}
				}
				l := audit.New(store, audit.Options{Now: fixedClock()})
				for _, ev := range odd {
					if err := l.Append(context.Background(), ev); err != nil {
						t.Fatalf("Append: %v", err)
					}
				}
				l.Close()
				if tc.tamper != "" {
					sqlExec(t, rawDB(t, path), tc.tamper)
				}
				rep := mustVerify(t, store)
				if tc.badSeq == 0 {
					if !rep.OK || rep.Events != int64(len(odd)) {
						t.Fatalf("Verify = %+v, want %d intact events", rep, len(odd))
					}
					return
				}
				if rep.OK || rep.BadSeq != tc.badSeq || !strings.Contains(rep.Problem, tc.problem) {
					t.Fatalf("Verify = %+v; want problem at %d (%q)", rep, tc.badSeq, tc.problem)
				}
			})
		}
	}
}
