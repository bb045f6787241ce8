package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// ParseSince reads the --since flag of `gatehouse audit ls` and
// `gatehouse sessions ls`: a duration back from now ("90m", "2h", "7d",
// "1d12h"), an RFC 3339 time, or a local date or date-time ("2025-01-02",
// "2025-01-02 15:04", "2025-01-02T15:04:05") in now's location.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("bad --since %q: want a duration like 2h or 7d, or a time like 2025-01-02 or 2025-01-02T15:04:05Z", s)
	}
	if s == "" {
		return bad()
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return bad()
}

// parseAgo parses a non-negative Go duration with an optional leading
// whole-days part ("7d", "1d12h"), since nobody thinks of a week as 168h.
func parseAgo(s string) (time.Duration, bool) {
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, false
		}
		days, s = n, s[i+1:]
		if s == "" {
			return time.Duration(days) * 24 * time.Hour, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, false
	}
	return time.Duration(days)*24*time.Hour + d, true
}

// WriteText writes one aligned line per event for humans: seq, local time,
// type, actor, target, outcome, then key=value fields in key order. Values
// that could break the line or smuggle terminal escapes (user names and
// fields come from clients) are quoted.
func WriteText(w io.Writer, evs []storage.Event) error {
	var out bytes.Buffer
	tw := tabwriter.NewWriter(&out, 0, 4, 2, ' ', 0)
	for _, ev := range evs {
		var b strings.Builder
		for i, k := range slices.Sorted(maps.Keys(ev.Fields)) {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(safe(k))
			b.WriteByte('=')
			b.WriteString(fieldText(ev.Fields[k]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05"),
			orDash(safe(ev.Type)), orDash(safe(ev.Actor)), orDash(safe(ev.Target)), orDash(safe(ev.Outcome)), b.String())
	}
	tw.Flush() // writes to a bytes.Buffer cannot fail
	// Drop the padding tabwriter leaves on lines without fields.
	var clean bytes.Buffer
	for line := range bytes.Lines(out.Bytes()) {
		clean.Write(bytes.TrimRight(line, " \n"))
		clean.WriteByte('\n')
	}
	if _, err := w.Write(clean.Bytes()); err != nil {
		return fmt.Errorf("write audit events: %w", err)
	}
	return nil
}

// WriteJSON writes one JSON object per event per line (`--json`), the same
// encoding the sink uses, with the runes encoding/json leaves raw that a
// terminal would act on (DEL, C1, bidi) written as \u escapes: the same
// values, safe to print.
func WriteJSON(w io.Writer, evs []storage.Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range evs {
		buf.Reset()
		if err := enc.Encode(&evs[i]); err != nil {
			return fmt.Errorf("write audit event %d as JSON: %w", evs[i].Seq, err)
		}
		if _, err := w.Write(termsafe.JSON(buf.Bytes())); err != nil {
			return fmt.Errorf("write audit event %d as JSON: %w", evs[i].Seq, err)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// safe quotes s when it is unsafe for a space-separated line: spaces,
// quotes, '=', backslashes, or anything termsafe escapes (ESC, newlines,
// tabs, bidi overrides).
func safe(s string) string {
	if strings.ContainsAny(s, ` "=\\`) || !termsafe.Safe(s) {
		return termsafe.Quote(s)
	}
	return s
}

func fieldText(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return `""`
		}
		return safe(v)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return safe(fmt.Sprint(v))
	}
	// JSON escapes C0 controls, termsafe.JSON the rest; quote only what a
	// space would split.
	b = termsafe.JSON(b)
	if bytes.ContainsAny(b, " \t") {
		return termsafe.Quote(string(b))
	}
	return string(b)
}
