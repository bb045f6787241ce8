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
	_, fields, err := canonicalize(nil, ev.Fields)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(appendCanonical(make([]byte, 0, 256), ev, fields))
	return sum[:], nil
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
	var ts [40]byte
	return appendCanonicalParts(dst, ev.Seq, ev.Time.UTC().AppendFormat(ts[:0], time.RFC3339Nano),
		ev.Type, ev.Actor, ev.Target, ev.Outcome, fields, ev.PrevHash)
}

// appendCanonicalParts appends the hashed byte string of an event given as
// its parts, ts being the formatted time; T is string for events, []byte
// for the stored bytes Verify reads.
func appendCanonicalParts[T string | []byte](dst []byte, seq int64, ts []byte, typ, actor, target, outcome T, fields, prev []byte) []byte {
	dst = append(dst, hashDomain...)
	var num [20]byte
	dst = appendPart(dst, strconv.AppendInt(num[:0], seq, 10))
	dst = appendPart(dst, ts)
	dst = appendPart(dst, typ)
	dst = appendPart(dst, actor)
	dst = appendPart(dst, target)
	dst = appendPart(dst, outcome)
	dst = appendPart(dst, fields)
	return appendPart(dst, prev)
}

func appendPart[T string | []byte](dst []byte, part T) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(part)))
	return append(dst, part...)
}

// timeText formats Unix nanosecond times as time.Time.AppendFormat does
// with RFC3339Nano in UTC, for Verify's hot loop. Consecutive events nearly
// always fall in the same second, so the date and clock text of the last
// second is kept and only the fraction is written anew.
type timeText struct {
	sec    int64
	valid  bool
	prefix []byte // "2006-01-02T15:04:05" of sec
}

func (c *timeText) append(dst []byte, unixNano int64) []byte {
	sec, frac := unixNano/1e9, unixNano%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	if !c.valid || sec != c.sec {
		c.prefix = time.Unix(sec, 0).UTC().AppendFormat(c.prefix[:0], "2006-01-02T15:04:05")
		c.sec, c.valid = sec, true
	}
	dst = append(dst, c.prefix...)
	if frac != 0 {
		// Nine digits without trailing zeros, as ".999999999" formats.
		var f [10]byte
		f[0] = '.'
		for i := 9; i > 0; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := len(f)
		for f[n-1] == '0' {
			n--
		}
		dst = append(dst, f[:n]...)
	}
	return append(dst, 'Z')
}
