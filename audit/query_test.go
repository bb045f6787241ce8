package audit_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestParseSince(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, loc)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "1d12h", want: now.Add(-36 * time.Hour)},
		{in: "0s", want: now},
		{in: " 2h ", want: now.Add(-2 * time.Hour)},
		{in: "2025-06-01T08:00:00Z", want: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)},
		{in: "2025-06-01T08:00:00.25+02:00", want: time.Date(2025, 6, 1, 6, 0, 0, 250000000, time.UTC)},
		{in: "2025-06-01", want: time.Date(2025, 6, 1, 0, 0, 0, 0, loc)},
		{in: "2025-06-01 09:30", want: time.Date(2025, 6, 1, 9, 30, 0, 0, loc)},
		{in: "2025-06-01T09:30:15", want: time.Date(2025, 6, 1, 9, 30, 15, 0, loc)},
		{in: "", bad: true},
		{in: "-2h", bad: true},
		{in: "+2h", bad: true},
		{in: "d", bad: true},
		{in: "xd", bad: true},
		{in: "-1d", bad: true},
		{in: "7days", bad: true},
		{in: "yesterday", bad: true},
		{in: "2025-13-01", bad: true},
	}
	for _, tc := range tests {
		got, err := audit.ParseSince(tc.in, now)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseSince(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestWriteText(t *testing.T) {
	tm := time.Date(2025, 6, 1, 12, 0, 0, 0, time.Local)
	evs := []storage.Event{
		{Seq: 1, Time: tm, Type: audit.TypeAuthFailure, Actor: "bob", Target: "root@db-1", Outcome: "failure",
			Fields: map[string]any{"method": "publickey", "key_fp": "SHA256:abc", "reason": "no such key"}},
		{Seq: 12, Time: tm.Add(time.Second), Type: audit.TypeUserLock, Actor: "sam", Target: "evil\x1b[2Jname", Outcome: "success",
			Fields: map[string]any{"ttl": json.Number("3600"), "empty": "", "list": []any{"a", "b"}}},
		{Seq: 13, Time: tm.Add(2 * time.Second), Type: audit.TypePolicyReload},
	}
	var buf bytes.Buffer
	if err := audit.WriteText(&buf, evs); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`1   2025-06-01 12:00:00  ssh.auth.failure  bob  root@db-1          failure  key_fp=SHA256:abc method=publickey reason="no such key"`,
		`12  2025-06-01 12:00:01  user.lock         sam  "evil\x1b[2Jname"  success  empty="" list=["a","b"] ttl=3600`,
		`13  2025-06-01 12:00:02  policy.reload     -    -                  -`,
	}, "\n") + "\n"
	if buf.String() != want {
		t.Fatalf("WriteText:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	evs := []storage.Event{
		{Seq: 1, Time: t0, Type: audit.TypeExec, Actor: "bob", Fields: map[string]any{"cmd": "a<b"}, Hash: []byte{1, 2}},
		{Seq: 2, Time: t0, Type: audit.TypeExec, Actor: "bob", PrevHash: []byte{1, 2}, Hash: []byte{3}},
	}
	var buf bytes.Buffer
	if err := audit.WriteJSON(&buf, evs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"cmd":"a<b"`) {
		t.Errorf("line %q: HTML-escaped or missing field", lines[0])
	}
	for i, line := range lines {
		var ev storage.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if ev.Seq != evs[i].Seq || !ev.Time.Equal(evs[i].Time) || !bytes.Equal(ev.Hash, evs[i].Hash) {
			t.Errorf("line %d round-trips to %+v", i, ev)
		}
	}
}

// TestListingsEscapeTerminalControls: an actor, target or field a client
// chose reaches `audit ls` (text and --json) without acting on the
// terminal it is printed to.
func TestListingsEscapeTerminalControls(t *testing.T) {
	p := termsafetest.Payload
	evs := []storage.Event{{Seq: 1, Time: t0, Type: audit.TypeExec, Actor: p, Target: p, Outcome: p,
		Fields: map[string]any{"command": p, p: "key", "list": []any{p}, "map": map[string]any{"k": p}}}}
	var text, js bytes.Buffer
	if err := audit.WriteText(&text, evs); err != nil {
		t.Fatal(err)
	}
	termsafetest.Inert(t, "audit ls", text.String())
	if err := audit.WriteJSON(&js, evs); err != nil {
		t.Fatal(err)
	}
	termsafetest.Inert(t, "audit ls --json", js.String())
	var back storage.Event
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Fields["command"] != strings.ToValidUTF8(p, "\ufffd") {
		t.Fatalf("--json no longer carries the exact value: %q, %v", back.Fields["command"], err)
	}
}
