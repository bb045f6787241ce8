package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Report is the outcome of Verify.
type Report struct {
	Events   int64  `json:"events"`    // events checked and found intact
	FirstSeq int64  `json:"first_seq"` // first stored event (anchor.Seq+1 when intact)
	LastSeq  int64  `json:"last_seq"`  // last intact event
	OK       bool   `json:"ok"`
	BadSeq   int64  `json:"bad_seq,omitempty"` // first sequence number found wrong
	Problem  string `json:"problem,omitempty"`
}

// rangeWalker is implemented by stores that can walk a range of the chain
// handing out each event's stored fields JSON undecoded (storage/sqlite
// does). Decoding and re-encoding fields would dominate the cost of
// verifying, and ranges let several CPUs verify one chain.
type rangeWalker interface {
	WalkEventsRaw(ctx context.Context, from, to int64, fn func(ev storage.Event, raw []byte) error) error
}

// errStop ends a walk at the first problem.
var errStop = errors.New("stop")

// minParallel is the chain length from which Verify splits the work.
const minParallel = 4096

// Verify walks the chain from the store's anchor and checks, for every
// event in order, that its sequence number is the next one, that PrevHash is
// the previous event's Hash, and that Hash matches its content. It reports
// the first problem by sequence number: an edited event fails its own hash;
// a deleted one leaves a gap; an inserted or moved one breaks the link to
// its predecessor or fails its hash because its seq changed. An error means
// the store could not be read, not that the chain is bad.
//
// Events appended while Verify runs are not checked. If retention prunes
// while Verify runs and a problem shows at the start of the chain, Verify
// starts over from the new anchor rather than report a false gap.
func Verify(ctx context.Context, store storage.AuditStore) (Report, error) {
	for attempt := 0; ; attempt++ {
		anchor, err := store.AuditAnchor(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: read anchor: %w", err)
		}
		rep, err := verifyFrom(ctx, store, anchor)
		if err != nil || rep.OK || attempt == 2 {
			return rep, err
		}
		now, err := store.AuditAnchor(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: read anchor: %w", err)
		}
		if now.Seq == anchor.Seq {
			return rep, nil
		}
	}
}

func verifyFrom(ctx context.Context, store storage.AuditStore, anchor storage.Anchor) (Report, error) {
	first := anchor.Seq + 1
	var segs []*segment
	rw, ranged := store.(rangeWalker)
	if ranged {
		newest, err := store.ListEvents(ctx, storage.EventFilter{Newest: true, Limit: 1})
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain: find newest event: %w", err)
		}
		if len(newest) == 0 {
			return Report{OK: true}, nil
		}
		last := newest[0].Seq
		parts := int64(1)
		if last-first+1 >= minParallel {
			parts = int64(runtime.GOMAXPROCS(0))
		}
		size := max(1, (last-first+1+parts-1)/parts)
		for lo := first; lo <= last; lo += size {
			segs = append(segs, &segment{lo: lo, hi: min(lo+size-1, last)})
		}
		if len(segs) == 0 { // a stored event at or below the anchor
			segs = append(segs, &segment{lo: first, hi: last})
		}
	} else {
		segs = []*segment{{lo: first}}
	}

	errs := make([]error, len(segs))
	var wg sync.WaitGroup
	for i, sg := range segs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sg.init()
			var err error
			if ranged {
				err = rw.WalkEventsRaw(ctx, sg.lo, sg.hi, func(ev storage.Event, raw []byte) error {
					if raw == nil {
						raw = sg.empty
					}
					return sg.step(&ev, raw)
				})
			} else {
				err = store.WalkEvents(ctx, func(ev storage.Event) error { return sg.step(&ev, nil) })
			}
			if err != nil && !errors.Is(err, errStop) {
				errs[i] = err
				return
			}
			sg.finish()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, fmt.Errorf("verify audit chain: %w", err)
	}

	// Stitch the segments: each must start where the previous one ended.
	rep := Report{FirstSeq: segs[0].firstSeq}
	prev := anchor.Hash
	for _, sg := range segs {
		if sg.n > 0 && !bytes.Equal(sg.firstPrev, prev) {
			if sg.lo == first && anchor.Seq > 0 {
				rep.BadSeq, rep.Problem = sg.lo, fmt.Sprintf("event %d does not link to the retention anchor (pruned events tampered with?)", sg.lo)
			} else {
				rep.BadSeq, rep.Problem = sg.lo, fmt.Sprintf("event %d does not link to event %d (inserted, removed or reordered?)", sg.lo, sg.lo-1)
			}
			break
		}
		if sg.badSeq != 0 {
			rep.BadSeq, rep.Problem = sg.badSeq, sg.problem
			break
		}
		prev = sg.lastHash
		rep.LastSeq = sg.lastSeq
	}
	if rep.BadSeq != 0 {
		rep.LastSeq = max(0, rep.BadSeq-1)
		if rep.LastSeq <= anchor.Seq {
			rep.LastSeq = 0
		}
	}
	if rep.LastSeq > 0 {
		rep.Events = rep.LastSeq - anchor.Seq
	}
	rep.OK = rep.Problem == ""
	return rep, nil
}

// segment verifies the events lo..hi (hi 0: to the end) in isolation; the
// link into its first event is checked when segments are stitched.
type segment struct {
	lo, hi int64

	want      int64
	n         int64
	firstSeq  int64
	firstPrev []byte
	lastSeq   int64
	lastHash  []byte
	badSeq    int64
	problem   string

	buf   []byte
	empty []byte
}

func (sg *segment) init() {
	sg.want = sg.lo
	sg.buf = make([]byte, 0, 512)
	sg.empty = []byte("{}")
}

func (sg *segment) fail(seq int64, format string, args ...any) error {
	sg.badSeq, sg.problem = seq, fmt.Sprintf(format, args...)
	return errStop
}

// step checks one event. raw is the stored fields text (nil when the store
// only gives decoded fields). Raw text is hashed as is; only if that does
// not match (a store that encodes differently) are the decoded fields
// re-encoded canonically before the event is called edited.
func (sg *segment) step(ev *storage.Event, raw []byte) error {
	if sg.n == 0 && sg.firstSeq == 0 {
		sg.firstSeq = ev.Seq
	}
	switch {
	case ev.Seq == sg.want+1:
		return sg.fail(sg.want, "event %d is missing (deleted?): %d follows %d", sg.want, ev.Seq, sg.want-1)
	case ev.Seq > sg.want:
		return sg.fail(sg.want, "events %d to %d are missing (deleted?): %d follows %d", sg.want, ev.Seq-1, ev.Seq, sg.want-1)
	case ev.Seq < sg.want:
		return sg.fail(ev.Seq, "event %d is out of order: found after %d", ev.Seq, sg.want-1)
	}
	if sg.n == 0 {
		sg.firstPrev = ev.PrevHash
	} else if !bytes.Equal(ev.PrevHash, sg.lastHash) {
		return sg.fail(ev.Seq, "event %d does not link to event %d (inserted, removed or reordered?)", ev.Seq, ev.Seq-1)
	}
	matched := false
	if raw != nil {
		sg.buf = appendCanonical(sg.buf[:0], ev, raw)
		sum := sha256.Sum256(sg.buf)
		if matched = bytes.Equal(sum[:], ev.Hash); !matched {
			m, err := decodeFields(raw)
			if err != nil {
				return sg.fail(ev.Seq, "event %d: stored fields are not valid JSON (edited?)", ev.Seq)
			}
			ev.Fields = m
		}
	}
	if !matched {
		fields, err := encodeCanonical(ev.Fields)
		if err != nil {
			return sg.fail(ev.Seq, "event %d: fields cannot be encoded: %v", ev.Seq, err)
		}
		sg.buf = appendCanonical(sg.buf[:0], ev, fields)
		if sum := sha256.Sum256(sg.buf); !bytes.Equal(sum[:], ev.Hash) {
			return sg.fail(ev.Seq, "event %d does not match its hash (edited?)", ev.Seq)
		}
	}
	sg.n++
	sg.lastSeq, sg.lastHash = ev.Seq, ev.Hash
	sg.want = ev.Seq + 1
	return nil
}

// finish notices events missing at the end of a bounded segment, which no
// later event of the same segment would reveal.
func (sg *segment) finish() {
	if sg.badSeq != 0 || sg.hi == 0 || sg.want > sg.hi {
		return
	}
	if sg.want == sg.hi {
		sg.fail(sg.want, "event %d is missing (deleted?)", sg.want)
	} else {
		sg.fail(sg.want, "events %d to %d are missing (deleted?)", sg.want, sg.hi)
	}
}
