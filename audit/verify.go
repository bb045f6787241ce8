package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/storage"
)

// Report is the outcome of Verify.
type Report struct {
	Events   int64  `json:"events"`    // events checked and found intact
	FirstSeq int64  `json:"first_seq"` // first stored event (anchor.Seq+1 when intact)
	LastSeq  int64  `json:"last_seq"`  // last event checked
	OK       bool   `json:"ok"`
	BadSeq   int64  `json:"bad_seq,omitempty"` // first sequence number found wrong
	Problem  string `json:"problem,omitempty"`
}

// errStop ends the walk at the first problem.
var errStop = errors.New("stop")

// Verify walks the chain from the store's anchor and checks, for every
// event in order, that its sequence number is the next one, that PrevHash is
// the previous event's Hash, and that Hash matches its content. It stops at
// the first problem and names it: an edited event fails its own hash; a
// deleted one leaves a gap; an inserted or moved one breaks the link to
// its predecessor or fails its hash because its seq changed. An error means
// the store could not be read, not that the chain is bad.
func Verify(ctx context.Context, store storage.AuditStore) (Report, error) {
	anchor, err := store.AuditAnchor(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify audit chain: read anchor: %w", err)
	}
	var rep Report
	wantSeq, prev := anchor.Seq+1, anchor.Hash
	buf := make([]byte, 0, 512)
	fail := func(seq int64, format string, args ...any) error {
		rep.BadSeq, rep.Problem = seq, fmt.Sprintf(format, args...)
		return errStop
	}
	err = store.WalkEvents(ctx, func(ev storage.Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rep.Events == 0 {
			rep.FirstSeq = ev.Seq
		}
		switch {
		case ev.Seq > wantSeq && ev.Seq == wantSeq+1:
			return fail(wantSeq, "event %d is missing (deleted?): %d follows %d", wantSeq, ev.Seq, wantSeq-1)
		case ev.Seq > wantSeq:
			return fail(wantSeq, "events %d to %d are missing (deleted?): %d follows %d", wantSeq, ev.Seq-1, ev.Seq, wantSeq-1)
		case ev.Seq < wantSeq:
			return fail(ev.Seq, "event %d is out of order: found after %d", ev.Seq, wantSeq-1)
		}
		if !bytes.Equal(ev.PrevHash, prev) {
			if ev.Seq == anchor.Seq+1 && anchor.Seq > 0 {
				return fail(ev.Seq, "event %d does not link to the retention anchor (pruned events tampered with?)", ev.Seq)
			}
			return fail(ev.Seq, "event %d does not link to event %d (inserted, removed or reordered?)", ev.Seq, ev.Seq-1)
		}
		fields, err := encodeCanonical(ev.Fields)
		if err != nil {
			return fail(ev.Seq, "event %d: fields cannot be encoded: %v", ev.Seq, err)
		}
		buf = appendCanonical(buf[:0], &ev, fields)
		if sum := sha256.Sum256(buf); !bytes.Equal(sum[:], ev.Hash) {
			return fail(ev.Seq, "event %d does not match its hash (edited?)", ev.Seq)
		}
		rep.Events++
		rep.LastSeq = ev.Seq
		wantSeq, prev = ev.Seq+1, ev.Hash
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, fmt.Errorf("verify audit chain: %w", err)
	}
	rep.OK = rep.Problem == ""
	return rep, nil
}
