package jira

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// FuzzWebhook: whatever the body and headers, a delivery without the right
// secret and signature is refused before anything is read from Jira, and
// nothing panics.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"issue":{"key":"SEC-1"}}`), "url-secret", "sha256=00", "d1")
	f.Add([]byte(`{`), "", "", "")
	f.Add([]byte(`{"issue":{"key":"SEC-1"}}`), "url-secret", "sha256=zz", "")
	r := newRig(f)
	f.Fuzz(func(t *testing.T, body []byte, secret, sig, delivery string) {
		req := httptest.NewRequest("POST", "/jira/webhook", bytes.NewReader(body))
		req.Header.Set("X-Gatehouse-Webhook-Secret", secret)
		req.Header.Set("X-Hub-Signature", sig)
		req.Header.Set("X-Atlassian-Webhook-Identifier", delivery)
		w := httptest.NewRecorder()
		r.hook.ServeHTTP(w, req)
		valid := secret == "url-secret" && checkSignature("hmac-secret", body, sig)
		if !valid && w.Code != 401 {
			t.Fatalf("unauthenticated delivery got %d", w.Code)
		}
	})
}
