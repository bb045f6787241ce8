package session

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe/termsafetest"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// TestListWriterEscapes: `sessions ls` prints what users chose (command,
// login, user) without letting it act on the security team's terminal,
// in the table and in --json, and --json still decodes to the exact value.
func TestListWriterEscapes(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for name, attack := range termsafetest.Attacks {
		t.Run(name, func(t *testing.T) {
			s := storage.Session{ID: "s1", User: "bob" + attack, Login: "root" + attack, Node: "web-1", Kind: "exec",
				Command: attack + " and more", Start: start, Status: "ended"}
			var table, js bytes.Buffer
			lw := NewListWriter(&table, false)
			if err := lw.Write(s); err != nil {
				t.Fatal(err)
			}
			if err := lw.Flush(); err != nil {
				t.Fatal(err)
			}
			termsafetest.Inert(t, "sessions ls", table.String())
			if n := strings.Count(table.String(), "\n"); n != 2 {
				t.Errorf("want a header and one row, got %d lines:\n%s", n, table.String())
			}
			lw = NewListWriter(&js, true)
			if err := lw.Write(s); err != nil {
				t.Fatal(err)
			}
			termsafetest.Inert(t, "sessions ls --json", js.String())
			var back storage.Session
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(s.Command, "\ufffd"); back.Command != want {
				t.Errorf("--json command %q, want %q", back.Command, want)
			}
		})
	}
}

func TestTruncateCutsBetweenRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 30, "short"},
		{"abcdef", 4, "abc…"},
		{"ääääää", 4, "äää…"},
		{"日本語のテキスト", 5, "日本語の…"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
