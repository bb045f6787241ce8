package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

const hashDomain = "gatehouse-audit-v1\x00"

// Hash computes ev's hash as documented in the package comment, from its
// Seq, Time, Type, Actor, Target, Outcome, Fields and PrevHash (ev.Hash is
// ignored). It fails only when Fields cannot be encoded as JSON.
func Hash(ev *storage.Event) ([]byte, error) {
	fields, err := canonicalFields(ev.Fields)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(appendCanonical(nil, ev, fields))
	return sum[:], nil
}

// canonicalFields encodes fields as canonical JSON. Values are first brought
// to the shapes a store hands back (maps, slices, json.Number, string, bool,
// nil) by a JSON round trip, so a struct or an int64 hashes the same at
// append time as after it was stored and read again.
func canonicalFields(fields map[string]any) ([]byte, error) {
	if len(fields) == 0 {
		return []byte("{}"), nil
	}
	norm, err := normalizeFields(fields)
	if err != nil {
		return nil, err
	}
	return encodeCanonical(norm)
}

// normalizeFields returns fields as a store will return them.
func normalizeFields(fields map[string]any) (map[string]any, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode audit fields: %w", err)
	}
	var norm map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&norm); err != nil {
		return nil, fmt.Errorf("normalise audit fields: %w", err)
	}
	return norm, nil
}

// decodeFields parses stored fields JSON the way stores do.
func decodeFields(raw []byte) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeCanonical encodes already-normalised fields. encoding/json sorts map
// keys; HTML escaping is turned off because it is a browser concern that an
// outside verifier should not have to reproduce.
func encodeCanonical(norm map[string]any) ([]byte, error) {
	if len(norm) == 0 {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(norm); err != nil {
		return nil, fmt.Errorf("encode audit fields: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendCanonical appends the hashed byte string of ev to dst.
func appendCanonical(dst []byte, ev *storage.Event, fields []byte) []byte {
	dst = append(dst, hashDomain...)
	var num [20]byte
	dst = appendPart(dst, strconv.AppendInt(num[:0], ev.Seq, 10))
	var ts [40]byte
	dst = appendPart(dst, ev.Time.UTC().AppendFormat(ts[:0], time.RFC3339Nano))
	dst = appendString(dst, ev.Type)
	dst = appendString(dst, ev.Actor)
	dst = appendString(dst, ev.Target)
	dst = appendString(dst, ev.Outcome)
	dst = appendPart(dst, fields)
	dst = appendPart(dst, ev.PrevHash)
	return dst
}

func appendPart(dst, part []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(part)))
	return append(dst, part...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}
