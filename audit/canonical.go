package audit

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The fields of nearly every event are flat maps of strings and integers,
// yet the reference path (normalizeFields, encodeCanonical) sends them
// through encoding/json three times with reflection. That was the largest
// cost of an append on the callers' side. The functions below produce the
// same normalised map and the same canonical bytes directly for the value
// types they know; for anything else they report !ok and the caller takes
// the reference path, so encoding/json remains the definition.

// maxFastDepth bounds recursion; deeper (or cyclic) values take the
// reference path, which reports cycles as errors.
const maxFastDepth = 32

// canonicalize returns fields as a store will hand them back (see
// normalizeFields) and their canonical JSON (component 7 in doc.go),
// appended to dst.
func canonicalize(dst []byte, fields map[string]any) (map[string]any, []byte, error) {
	if len(fields) == 0 {
		return nil, append(dst, "{}"...), nil
	}
	if v, ok := fastNormalize(fields, 0); ok {
		norm := v.(map[string]any)
		if out, ok := appendJSON(dst, norm, 0); ok {
			return norm, out, nil
		}
	}
	norm, err := normalizeFields(fields)
	if err != nil {
		return nil, nil, err
	}
	enc, err := encodeCanonical(norm)
	if err != nil {
		return nil, nil, err
	}
	return norm, append(dst, enc...), nil
}

// appendCanonicalFields appends the canonical JSON of already-normalised
// fields (as decoded from a store) to dst.
func appendCanonicalFields(dst []byte, norm map[string]any) ([]byte, error) {
	if len(norm) == 0 {
		return append(dst, "{}"...), nil
	}
	if out, ok := appendJSON(dst, norm, 0); ok {
		return out, nil
	}
	enc, err := encodeCanonical(norm)
	if err != nil {
		return nil, err
	}
	return append(dst, enc...), nil
}

// fastNormalize returns what json.Marshal followed by a UseNumber decode
// would make of v, or !ok when v holds something it does not handle
// exactly: floats (encoding/json's float formatting), invalid UTF-8 (which
// Marshal rewrites), structs, pointers, other map and slice types.
func fastNormalize(v any, depth int) (any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	// Values that stay as they are are returned as the interface they came
	// in, not boxed again.
	switch x := v.(type) {
	case nil, bool:
		return v, true
	case string:
		return v, utf8.ValidString(x)
	case json.Number:
		return v, validNumber(string(x))
	}
	switch v := v.(type) {
	case int:
		return json.Number(strconv.FormatInt(int64(v), 10)), true
	case int8:
		return json.Number(strconv.FormatInt(int64(v), 10)), true
	case int16:
		return json.Number(strconv.FormatInt(int64(v), 10)), true
	case int32:
		return json.Number(strconv.FormatInt(int64(v), 10)), true
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), true
	case uint:
		return json.Number(strconv.FormatUint(uint64(v), 10)), true
	case uint8:
		return json.Number(strconv.FormatUint(uint64(v), 10)), true
	case uint16:
		return json.Number(strconv.FormatUint(uint64(v), 10)), true
	case uint32:
		return json.Number(strconv.FormatUint(uint64(v), 10)), true
	case uint64:
		return json.Number(strconv.FormatUint(v, 10)), true
	case []string:
		if v == nil {
			return nil, true // null
		}
		out := make([]any, len(v))
		for i, s := range v {
			if !utf8.ValidString(s) {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	case []any:
		if v == nil {
			return nil, true
		}
		out := make([]any, len(v))
		for i, e := range v {
			n, ok := fastNormalize(e, depth+1)
			if !ok {
				return nil, false
			}
			out[i] = n
		}
		return out, true
	case map[string]string:
		if v == nil {
			return nil, true
		}
		out := make(map[string]any, len(v))
		for k, s := range v {
			if !utf8.ValidString(k) || !utf8.ValidString(s) {
				return nil, false
			}
			out[k] = s
		}
		return out, true
	case map[string]any:
		if v == nil {
			return nil, true
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			// Invalid UTF-8 keys could collide once Marshal rewrote them.
			if !utf8.ValidString(k) {
				return nil, false
			}
			n, ok := fastNormalize(e, depth+1)
			if !ok {
				return nil, false
			}
			out[k] = n
		}
		return out, true
	}
	return nil, false
}

// appendJSON appends the canonical JSON of a normalised value: what
// encodeCanonical writes, byte for byte. !ok means a type it does not
// handle.
func appendJSON(dst []byte, v any, depth int) ([]byte, bool) {
	if depth > maxFastDepth {
		return dst, false
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case string:
		return appendJSONString(dst, v), true
	case json.Number:
		if !validNumber(string(v)) {
			return dst, false
		}
		return append(dst, v...), true
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendJSON(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		var stack [16]string // no allocation for the usual few keys
		keys := stack[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // bytewise, as encoding/json sorts map keys
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			var ok bool
			if dst, ok = appendJSON(dst, v[k], depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return dst, false
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping off:
// '"', '\\' and control characters escaped (\b \f \n \r \t short, others
// \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped, everything
// else literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validNumber reports whether s is a JSON number literal, the check
// encoding/json makes before writing a json.Number as is.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i+1 < len(s) && s[i] == '.' && '0' <= s[i+1] && s[i+1] <= '9' {
		i += 2
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i+1 < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if s[j] == '+' || s[j] == '-' {
			j++
		}
		if j < len(s) && '0' <= s[j] && s[j] <= '9' {
			i = j
			for i < len(s) && '0' <= s[i] && s[i] <= '9' {
				i++
			}
		}
	}
	return i == len(s)
}
