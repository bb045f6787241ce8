package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// reference is the definition canonicalize must reproduce: the JSON round
// trip and encoding/json's canonical encoding.
func reference(fields map[string]any) (map[string]any, []byte, error) {
	norm, err := normalizeFields(fields)
	if err != nil {
		return nil, nil, err
	}
	enc, err := encodeCanonical(norm)
	return norm, enc, err
}

func checkCanonical(t *testing.T, fields map[string]any) {
	t.Helper()
	wantNorm, wantEnc, wantErr := reference(fields)
	norm, enc, err := canonicalize([]byte("prefix:"), fields)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("canonicalize(%#v) error = %v, reference error = %v", fields, err, wantErr)
	}
	if err != nil {
		return
	}
	if got, ok := bytes.CutPrefix(enc, []byte("prefix:")); !ok || !bytes.Equal(got, wantEnc) {
		t.Fatalf("canonicalize(%#v) = %s, reference %s", fields, enc, wantEnc)
	}
	if !reflect.DeepEqual(norm, wantNorm) {
		t.Fatalf("canonicalize(%#v) normalised to %#v, reference %#v", fields, norm, wantNorm)
	}
	// Already-normalised fields (as a store decodes them) encode the same.
	again, err := appendCanonicalFields(nil, norm)
	if err != nil || !bytes.Equal(again, wantEnc) {
		t.Fatalf("appendCanonicalFields(%#v) = %s, %v; want %s", norm, again, err, wantEnc)
	}
}

func TestCanonicalizeMatchesEncodingJSON(t *testing.T) {
	type point struct {
		Y int    `json:"y"`
		X string `json:"x"`
	}
	deep := map[string]any{"v": 1}
	for range maxFastDepth + 5 {
		deep = map[string]any{"d": deep}
	}
	tests := []struct {
		name   string
		fields map[string]any
	}{
		{"nil", nil},
		{"empty", map[string]any{}},
		{"strings", map[string]any{"op": "open", "path": "/var/lib/x", "session_id": "2f1c9a7e", "": "empty key"}},
		{"escapes", map[string]any{"s": "quote\" backslash\\ nl\n cr\r tab\t bs\b ff\f nul\x00 esc\x1b us\x1f del\x7f"}},
		{"html stays literal", map[string]any{"s": "<script>&amp;</script>"}},
		{"line separators", map[string]any{"s": "a\u2028b\u2029c", "k\u2028": 1}},
		{"unicode", map[string]any{"ünï": "cødé ✓ 𝄞", "emoji": "🙂"}},
		{"invalid utf-8 value", map[string]any{"s": "a\xffb\xc3"}},
		{"invalid utf-8 keys that collide", map[string]any{"a\xff": 1, "a\xfe": 2}},
		{"ints", map[string]any{"i": 42, "i8": int8(-128), "i16": int16(32767), "i32": int32(math.MinInt32),
			"i64": int64(math.MinInt64), "u": uint(7), "u8": uint8(255), "u16": uint16(65535), "u32": uint32(math.MaxUint32),
			"u64": uint64(math.MaxUint64)}},
		{"bool and null", map[string]any{"t": true, "f": false, "n": nil}},
		{"json numbers", map[string]any{"a": json.Number("3600"), "b": json.Number("-0.5e+10"), "c": json.Number("1E5")}},
		{"invalid json number", map[string]any{"a": json.Number("01")}},
		{"empty json number", map[string]any{"a": json.Number("")}},
		{"floats take the reference path", map[string]any{"f": 1.5, "g": 1e21, "h": 1e-7, "z": 0.0, "f32": float32(0.1)}},
		{"nan fails", map[string]any{"f": math.NaN()}},
		{"lists", map[string]any{"roles": []string{"dba", "dev"}, "none": []string(nil), "empty": []string{},
			"mixed": []any{"a", 1, true, nil, []any{}, map[string]any{"z": 1, "a": 2}}, "nil any": []any(nil)}},
		{"nested maps", map[string]any{"m": map[string]any{"b": map[string]any{"y": 1, "x": "2"}, "a": []any{}},
			"ss": map[string]string{"k": "v", "a": "b"}, "nil map": map[string]any(nil), "nil ss": map[string]string(nil)}},
		{"struct", map[string]any{"to": point{Y: 1, X: "db-1"}}},
		{"pointer", map[string]any{"p": &point{Y: 2}}},
		{"time", map[string]any{"at": time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{"other slice and map types", map[string]any{"ints": []int{3, 1}, "m": map[string]int{"b": 1, "a": 2}}},
		{"too deep for the fast path", deep},
		{"unencodable", map[string]any{"ch": make(chan int)}},
		{"unencodable inside a list", map[string]any{"l": []any{"ok", func() {}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkCanonical(t, tc.fields) })
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "ü", "<&>", "\xe2\x80"} {
		f.Add(s, s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, key, val string, n int64) {
		checkCanonical(t, map[string]any{key: val, "n": n, "l": []any{val, n}, "m": map[string]any{val: key}})
		// Strings the fast path never sees (invalid UTF-8) must still be
		// quoted exactly as encoding/json quotes them.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(val); err != nil {
			t.Fatal(err)
		}
		if got, want := appendJSONString(nil, val), bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json %s", val, got, want)
		}
	})
}

func TestValidNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "10", "1.5", "-0.25", "1e5", "1E+5", "1e-5", "12.34e56",
		"", "-", "01", "1.", ".5", "1e", "1e+", "1ex", "+1", "0x10", "1 ", " 1", "NaN", "1.5.5", "--1"} {
		_, err := json.Marshal(json.Number(s))
		want := err == nil && s != "" // Marshal writes an empty Number as 0
		if got := validNumber(s); got != want {
			t.Errorf("validNumber(%q) = %v, encoding/json accepts it: %v", s, got, want)
		}
	}
}

func TestTimeText(t *testing.T) {
	edges := []int64{0, 1, -1, 999_999_999, 1_000_000_000, -1_000_000_000, -999_999_999, 100, 120_000_000,
		math.MaxInt64, math.MinInt64, time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC).UnixNano()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		edges = append(edges, r.Int64(), r.Int64N(4e18)-2e18, r.Int64N(1e9)*1e9+r.Int64N(10)*1e8)
	}
	var c timeText
	check := func(ns int64) {
		want := time.Unix(0, ns).UTC().AppendFormat(nil, time.RFC3339Nano)
		if got := c.append(nil, ns); !bytes.Equal(got, want) {
			t.Fatalf("timeText(%d) = %s, AppendFormat %s", ns, got, want)
		}
	}
	for _, ns := range edges {
		check(ns)
		check(ns) // the cached second
		if ns < math.MaxInt64-5 {
			check(ns + 5) // usually the same second, sometimes the next
		}
	}
}

func FuzzTimeText(f *testing.F) {
	f.Add(int64(0), int64(1))
	f.Add(int64(-1), int64(1e9))
	f.Fuzz(func(t *testing.T, a, b int64) {
		var c timeText
		for _, ns := range []int64{a, b, a} {
			want := time.Unix(0, ns).UTC().AppendFormat(nil, time.RFC3339Nano)
			if got := c.append([]byte("x"), ns); !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Fatalf("timeText(%d) = %s, AppendFormat %s", ns, got, want)
			}
		}
	})
}

// The generic encoder takes the same path for events and stored bytes.
func TestAppendCanonicalPartsAgree(t *testing.T) {
	ev := eventForParts()
	var c timeText
	fields := []byte(`{"k":"v"}`)
	a := appendCanonical(nil, &ev, fields)
	b := appendCanonicalParts(nil, ev.Seq, c.append(nil, ev.Time.UnixNano()), []byte(ev.Type), []byte(ev.Actor),
		[]byte(ev.Target), []byte(ev.Outcome), fields, ev.PrevHash)
	if !bytes.Equal(a, b) {
		t.Fatalf("string and byte parts encode differently:\n%q\n%q", a, b)
	}
	if !strings.HasPrefix(string(a), hashDomain) {
		t.Fatalf("encoding does not start with the domain: %q", a)
	}
}

func eventForParts() storage.Event {
	return storage.Event{Seq: 9, Time: time.Date(2025, 1, 2, 3, 4, 5, 60, time.FixedZone("X", 3600)), Type: "exec",
		Actor: "bob\x00", Target: "\xffdb", Outcome: "", PrevHash: []byte{1, 2, 3}}
}
