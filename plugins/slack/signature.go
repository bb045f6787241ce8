package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// MaxSkew is how far a request's timestamp may be from now: older requests
// are refused as possible replays, as Slack recommends.
const MaxSkew = 5 * time.Minute

// VerifySignature checks Slack's X-Slack-Signature (sig) of body sent with
// X-Slack-Request-Timestamp ts: "v0=" + hex HMAC-SHA256 of "v0:ts:body" under
// the signing secret, compared in constant time, ts within MaxSkew of now.
func VerifySignature(secret, ts, sig string, body []byte, now time.Time) error {
	if ts == "" || sig == "" {
		return errors.New("missing Slack signature headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed Slack request timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
		return errors.New("Slack request timestamp too old or in the future")
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return errors.New("unsupported Slack signature version")
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return errors.New("malformed Slack signature")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("bad Slack signature")
	}
	return nil
}
