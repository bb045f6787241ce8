package slack

import (
	"strings"
	"testing"
	"time"
)

// Slack's own example from "Verifying requests from Slack"
// (api.slack.com/authentication/verifying-requests-from-slack).
const (
	slackExampleSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackExampleTS     = "1531420618"
	slackExampleBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackExampleSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestVerifySignatureSlackExample(t *testing.T) {
	at := time.Unix(1531420618, 0).Add(30 * time.Second)
	if err := VerifySignature(slackExampleSecret, slackExampleTS, slackExampleSig, []byte(slackExampleBody), at); err != nil {
		t.Fatalf("Slack's published example refused: %v", err)
	}
}

func TestVerifySignatureRefusals(t *testing.T) {
	at := time.Unix(1531420618, 0)
	flip := slackExampleSig[:len(slackExampleSig)-1] + "4"
	tests := []struct {
		name, secret, ts, sig, body string
		now                         time.Time
		want                        string
	}{
		{"wrong secret", "8f742231b10e8888abcd99yyyzzz85a6", slackExampleTS, slackExampleSig, slackExampleBody, at, "bad Slack signature"},
		{"one hex digit changed", slackExampleSecret, slackExampleTS, flip, slackExampleBody, at, "bad Slack signature"},
		{"body changed", slackExampleSecret, slackExampleTS, slackExampleSig, slackExampleBody + "&x=1", at, "bad Slack signature"},
		{"timestamp changed", slackExampleSecret, "1531420619", slackExampleSig, slackExampleBody, at, "bad Slack signature"},
		{"older than 5 minutes", slackExampleSecret, slackExampleTS, slackExampleSig, slackExampleBody, at.Add(5*time.Minute + time.Second), "too old"},
		{"from the future", slackExampleSecret, slackExampleTS, slackExampleSig, slackExampleBody, at.Add(-6 * time.Minute), "too old or in the future"},
		{"no signature", slackExampleSecret, slackExampleTS, "", slackExampleBody, at, "missing"},
		{"no timestamp", slackExampleSecret, "", slackExampleSig, slackExampleBody, at, "missing"},
		{"timestamp not a number", slackExampleSecret, "yesterday", slackExampleSig, slackExampleBody, at, "malformed Slack request timestamp"},
		{"other version", slackExampleSecret, slackExampleTS, "v1=" + slackExampleSig[3:], slackExampleBody, at, "unsupported"},
		{"not hex", slackExampleSecret, slackExampleTS, "v0=zz", slackExampleBody, at, "malformed Slack signature"},
		{"truncated", slackExampleSecret, slackExampleTS, slackExampleSig[:21], slackExampleBody, at, "bad Slack signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(tc.secret, tc.ts, tc.sig, []byte(tc.body), tc.now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func FuzzVerifySignature(f *testing.F) {
	f.Add(slackExampleTS, slackExampleSig, slackExampleBody)
	f.Fuzz(func(t *testing.T, ts, sig, body string) {
		at := time.Unix(1531420618, 0)
		err := VerifySignature(slackExampleSecret, ts, sig, []byte(body), at)
		if err == nil && (ts != slackExampleTS || body != slackExampleBody) {
			t.Fatalf("accepted a forged request ts=%q body=%q", ts, body)
		}
	})
}
