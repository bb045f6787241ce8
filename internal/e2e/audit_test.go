package e2e_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// The audit log end to end: after a real access scenario the operator's
// `gatehouse audit verify` proves the chain intact, `audit ls` finds the
// events, and editing or deleting a row in the SQLite database behind
// gatehouse's back is caught and pinned to the first bad sequence number.

// auditEvent is an `audit ls --json` line.
type auditEvent struct {
	Seq     int64          `json:"seq"`
	Time    time.Time      `json:"time"`
	Type    string         `json:"type"`
	Actor   string         `json:"actor"`
	Target  string         `json:"target"`
	Outcome string         `json:"outcome"`
	Fields  map[string]any `json:"fields"`
}

// auditLs runs `gatehouse audit ls --json ARGS` and decodes its lines.
func auditLs(t *testing.T, gh *e2e.Gatehouse, args ...string) []auditEvent {
	t.Helper()
	r := gh.MustRun(append([]string{"audit", "ls", "--json", "--limit", "0"}, args...)...)
	var evs []auditEvent
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit ls --json printed a line that is not a JSON event: %v\n%q", err, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

func findEvent(evs []auditEvent, typ, target string) (auditEvent, bool) {
	for _, ev := range evs {
		if ev.Type == typ && ev.Target == target {
			return ev, true
		}
	}
	return auditEvent{}, false
}

func TestAuditLog(t *testing.T) {
	e2e.RequireAccount(t, "root")
	env := startAccess(t, nil)
	gh := env.gh
	bob, alice := env.user(t, "bob"), env.user(t, "alice")

	// The scenario: a request, its approval, a session, a lock and unlock.
	id := env.request(t, bob, "dba", "INC-42 disk full", "10m")
	env.approve(t, alice, id, "APPROVED")
	allowedJump(t, bob, "root@db-1", "root")
	gh.MustRun("lock", "--user", "bob", "--reason", "investigation")
	gh.MustRun("unlock", "--user", "bob")

	r := gh.Run("audit", "verify")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "audit log intact") {
		t.Fatalf("audit verify after the scenario: want exit 0 and intact, got %s", r)
	}

	t.Run("ls by type", func(t *testing.T) {
		evs := auditLs(t, gh, "--type", "request.approve")
		if len(evs) != 1 {
			t.Fatalf("want exactly one request.approve event, got %+v", evs)
		}
		ev := evs[0]
		if ev.Target != id || ev.Actor != "alice" || ev.Outcome != "success" || ev.Fields["requester"] != "bob" {
			t.Errorf("request.approve event: want alice approving %s of bob, got %+v", id, ev)
		}
	})
	t.Run("ls by user and since", func(t *testing.T) {
		evs := auditLs(t, gh, "--user", "bob", "--since", "1h")
		if len(evs) == 0 {
			t.Fatal("no events for bob in the last hour")
		}
		for _, ev := range evs {
			if ev.Actor != "bob" && ev.Target != "bob" {
				t.Errorf("--user bob returned an event of someone else: %+v", ev)
			}
			if time.Since(ev.Time) > time.Hour {
				t.Errorf("--since 1h returned an older event: %+v", ev)
			}
		}
		if ev, ok := findEvent(evs, "request.create", id); !ok || ev.Fields["reason"] != "INC-42 disk full" {
			t.Errorf("--user bob lacks bob's request.create of %s with its reason: %+v", id, evs)
		}
		if _, ok := findEvent(evs, "user.lock", "bob"); !ok {
			t.Errorf("--user bob lacks the lock of bob: %+v", evs)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if evs := auditLs(t, gh, "--user", "bob", "--since", future); len(evs) != 0 {
			t.Errorf("--since %s (the future) returned events: %+v", future, evs)
		}
		if evs := auditLs(t, gh, "--user", "nobody-at-all"); len(evs) != 0 {
			t.Errorf("--user nobody-at-all returned events: %+v", evs)
		}
	})

	all := auditLs(t, gh)
	create, ok1 := findEvent(all, "request.create", id)
	approve, ok2 := findEvent(all, "request.approve", id)
	lock, ok3 := findEvent(all, "user.lock", "bob")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("audit ls lacks the scenario's create/approve/lock events: %+v", all)
	}

	// Tamper with the database only while no gatehouse has it open.
	gh.Stop()
	dbPath := filepath.Join(gh.DataDir, "gatehouse.db")
	tests := []struct {
		name   string
		seq    int64
		tamper string // SQL; ? is the event's seq
	}{
		{"edit an event's fields", create.Seq, `UPDATE events SET fields = replace(fields, 'INC-42', 'INC-24') WHERE seq = ?`},
		{"edit an event's actor", approve.Seq, `UPDATE events SET actor = 'mallory' WHERE seq = ?`},
		{"edit an event's time", lock.Seq, `UPDATE events SET time = time - 3600000000000 WHERE seq = ?`},
		{"delete an event", approve.Seq, `DELETE FROM events WHERE seq = ?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			restore := tamperEvent(t, dbPath, tc.seq, tc.tamper)
			r := gh.Run("audit", "verify")
			want := fmt.Sprintf("first bad sequence number %d", tc.seq)
			if r.ExitCode != 1 || !strings.Contains(r.Stdout, want) {
				t.Errorf("audit verify after %s at seq %d: want exit 1 and %q, got %s", tc.name, tc.seq, want, r)
			}
			// Putting the row back makes the chain whole again, so the
			// detection was about exactly this change.
			restore()
			if r := gh.Run("audit", "verify"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "audit log intact") {
				t.Errorf("audit verify after restoring seq %d: want exit 0 and intact, got %s", tc.seq, r)
			}
		})
	}
}

// tamperEvent saves the events row seq, runs stmt on it directly in the
// SQLite database and returns a function that puts the saved row back.
func tamperEvent(t *testing.T, dbPath string, seq int64, stmt string) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", dbPath)
	if err != nil {
		t.Fatalf("open %s: %v", dbPath, err)
	}
	defer db.Close()
	const cols = "seq, time, type, actor, target, outcome, fields, prev_hash, hash"
	row := make([]any, 9)
	ptrs := make([]any, len(row))
	for i := range row {
		ptrs[i] = &row[i]
	}
	if err := db.QueryRow("SELECT "+cols+" FROM events WHERE seq = ?", seq).Scan(ptrs...); err != nil {
		t.Fatalf("read event %d: %v", seq, err)
	}
	res, err := db.Exec(stmt, seq)
	if err != nil {
		t.Fatalf("tamper with event %d (%s): %v", seq, stmt, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampering changed %d rows, want 1 (%s)", n, stmt)
	}
	return func() {
		t.Helper()
		db, err := sql.Open("sqlite3", dbPath)
		if err != nil {
			t.Fatalf("open %s: %v", dbPath, err)
		}
		defer db.Close()
		if _, err := db.Exec("INSERT OR REPLACE INTO events ("+cols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row...); err != nil {
			t.Fatalf("restore event %d: %v", seq, err)
		}
	}
}
