package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Optional audit methods. A backend need not have them (package audit
// falls back to the required ones), but one that does must agree with what
// the required methods store and return.

// rawWalker is what package audit's Verify uses to hash stored bytes.
type rawWalker interface {
	WalkEventsRaw(ctx context.Context, from, to int64, fn func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error) error
}

// encodedAppender is what package audit's Log uses to store the fields
// text it sealed.
type encodedAppender interface {
	AppendEncodedEvents(ctx context.Context, evs []storage.Event, fields [][]byte, seal func(*storage.Event) []byte) ([]storage.Event, error)
}

// rawEvent is one event as WalkEventsRaw handed it out, copied.
type rawEvent struct {
	seq, unixNano                                       int64
	typ, actor, target, outcome, fields, prevHash, hash []byte
}

func walkRaw(t *testing.T, rw rawWalker, from, to int64) []rawEvent {
	t.Helper()
	var out []rawEvent
	err := rw.WalkEventsRaw(context.Background(), from, to, func(seq, unixNano int64, typ, actor, target, outcome, fields, prevHash, hash []byte) error {
		// The slices are only valid during the call.
		out = append(out, rawEvent{seq, unixNano, bytes.Clone(typ), bytes.Clone(actor), bytes.Clone(target),
			bytes.Clone(outcome), bytes.Clone(fields), bytes.Clone(prevHash), bytes.Clone(hash)})
		return nil
	})
	if err != nil {
		t.Fatalf("WalkEventsRaw(%d, %d): %v", from, to, err)
	}
	return out
}

// sameEvent reports how a raw event differs from the decoded one.
func sameEvent(r rawEvent, ev storage.Event) error {
	switch {
	case r.seq != ev.Seq:
		return fmt.Errorf("seq %d, want %d", r.seq, ev.Seq)
	case r.unixNano != ev.Time.UnixNano():
		return fmt.Errorf("time %d, want %d", r.unixNano, ev.Time.UnixNano())
	case string(r.typ) != ev.Type || string(r.actor) != ev.Actor || string(r.target) != ev.Target || string(r.outcome) != ev.Outcome:
		return fmt.Errorf("strings %q %q %q %q, want %q %q %q %q", r.typ, r.actor, r.target, r.outcome, ev.Type, ev.Actor, ev.Target, ev.Outcome)
	case !bytes.Equal(r.prevHash, ev.PrevHash) || !bytes.Equal(r.hash, ev.Hash):
		return fmt.Errorf("hashes %x %x, want %x %x", r.prevHash, r.hash, ev.PrevHash, ev.Hash)
	}
	if ev.Fields == nil {
		if r.fields != nil {
			return fmt.Errorf("fields %q, want NULL", r.fields)
		}
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(r.fields))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return fmt.Errorf("fields %q: %v", r.fields, err)
	}
	if !reflect.DeepEqual(m, ev.Fields) {
		return fmt.Errorf("fields %q, want %v", r.fields, ev.Fields)
	}
	return nil
}

func runAuditOptional(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()

	t.Run("RawWalkAgrees", func(t *testing.T) {
		s := open(t)
		rw, ok := s.(rawWalker)
		if !ok {
			t.Skip("backend has no WalkEventsRaw")
		}
		if got := walkRaw(t, rw, 1, 0); len(got) != 0 {
			t.Fatalf("raw walk of an empty store visited %d events", len(got))
		}
		// Long enough for several chunks of any sensible size, with values
		// a length-prefixed or delimited encoding could trip over, and
		// events large enough to force a backend to change its chunking.
		const n = 10_000
		odd := map[int]storage.Event{
			1:    {Type: "", Actor: "", Target: "", Outcome: ""},
			2:    {Type: "exec", Actor: "a\x00b", Target: "\xff\xfe", Outcome: " ", Fields: map[string]any{"nul": "x\x00y", "sep": "a\u2028b", "": []any{}}},
			3:    {Type: "exec", Fields: map[string]any{"nested": map[string]any{"z": []any{1, "two", nil, true}}}},
			4096: {Type: "boundary", Actor: "0 1 2 ", Fields: map[string]any{"digits": "12 34 "}},
			4097: {Type: "boundary", Actor: "\xef\xbf\xbd", Target: "\U0010FFFF"},
			// Over a million bytes: more than one code point can count.
			6000: {Type: "huge", Fields: map[string]any{"blob": strings.Repeat("x", 1<<20+200_000)}},
		}
		for i := 4000; i < 4012; i++ {
			odd[i] = storage.Event{Type: "big", Fields: map[string]any{"blob": strings.Repeat(fmt.Sprint(i%10), 300_000)}}
		}
		var batch []storage.Event
		for i := 1; i <= n; i++ {
			ev, ok := odd[i]
			if !ok {
				ev = storage.Event{Type: "exec", Actor: fmt.Sprintf("user%d", i%7), Target: "root@db-1", Outcome: "success",
					Fields: map[string]any{"i": i, "cmd": "systemctl status"}}
			}
			ev.Time = at(time.Duration(i)*time.Millisecond + time.Duration(i%3))
			if i == 5 {
				ev.Time = time.Unix(-100, 5) // times need not rise, nor be after 1970
			}
			batch = append(batch, ev)
			if len(batch) == 500 || i == n {
				mustAppend(t, s, batch...)
				batch = batch[:0]
			}
		}
		want := walkAll(t, s)
		ranges := [][2]int64{{1, 0}, {1, n}, {0, 3}, {4090, 4100}, {4097, 4097}, {5999, 6001}, {n - 3, 2 * n}, {2 * n, 3 * n}, {7, 6}}
		for _, r := range ranges {
			got := walkRaw(t, rw, r[0], r[1])
			var exp []storage.Event
			for _, ev := range want {
				if ev.Seq >= r[0] && (r[1] <= 0 || ev.Seq <= r[1]) {
					exp = append(exp, ev)
				}
			}
			if len(got) != len(exp) {
				t.Fatalf("WalkEventsRaw(%d, %d) visited %d events, want %d", r[0], r[1], len(got), len(exp))
			}
			for i := range got {
				if err := sameEvent(got[i], exp[i]); err != nil {
					t.Fatalf("WalkEventsRaw(%d, %d): event %d: %v", r[0], r[1], exp[i].Seq, err)
				}
			}
		}

		stop := errors.New("stop here")
		var visited int
		err := rw.WalkEventsRaw(ctx, 1, 0, func(seq, _ int64, _, _, _, _, _, _, _ []byte) error {
			if visited++; seq == 4097 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || visited != 4097 {
			t.Fatalf("WalkEventsRaw stopped with %v after %d events; want the callback's error after 4097", err, visited)
		}
	})

	t.Run("AppendEncoded", func(t *testing.T) {
		s := open(t)
		ea, ok := s.(encodedAppender)
		if !ok {
			t.Skip("backend has no AppendEncodedEvents")
		}
		evs := []storage.Event{
			{Time: at(0), Type: "a"},
			{Time: at(1), Type: "b", Fields: map[string]any{"a": 1}},
			{Time: at(2), Type: "c", Fields: map[string]any{"b": []any{1, 2}}},
			{Time: at(3), Type: "e"},
		}
		// Stored as given, even where that is not how the backend would
		// have encoded the map itself; nil is NULL, empty is empty.
		texts := [][]byte{nil, []byte(`{"a":1}`), []byte(`{ "b" : [1, 2] }`), {}}
		if _, err := ea.AppendEncodedEvents(ctx, evs, texts[:2], seal); err == nil {
			t.Fatal("AppendEncodedEvents with fewer fields than events succeeded")
		}
		out, err := ea.AppendEncodedEvents(ctx, evs, texts, seal)
		if err != nil {
			t.Fatalf("AppendEncodedEvents: %v", err)
		}
		if got := seqs(out); !reflect.DeepEqual(got, []int64{1, 2, 3, 4}) {
			t.Fatalf("seqs = %v, want [1 2 3 4] (did the failed call store anything?)", got)
		}
		more := mustAppend(t, s, storage.Event{Time: at(4), Type: "d"})
		if more[0].Seq != 5 || !bytes.Equal(more[0].PrevHash, out[3].Hash) {
			t.Fatalf("AppendEvents after AppendEncodedEvents = seq %d prev %x; want 5 chained to %x", more[0].Seq, more[0].PrevHash, out[3].Hash)
		}
		stored := walkAll(t, s)
		checkChain(t, storage.Anchor{}, stored)
		if stored[0].Fields != nil || fieldsJSON(t, stored[2].Fields) != `{"b":[1,2]}` {
			t.Fatalf("stored fields = %v, %v", stored[0].Fields, stored[2].Fields)
		}
		if rw, ok := s.(rawWalker); ok {
			raw := walkRaw(t, rw, 1, 4)
			for i, r := range raw {
				if !bytes.Equal(r.fields, texts[i]) || (r.fields == nil) != (texts[i] == nil) {
					t.Fatalf("event %d: stored fields %q, want %q exactly", r.seq, r.fields, texts[i])
				}
			}
		}
	})
}
