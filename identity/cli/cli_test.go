package cli

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The loopback listener must only accept the redirect of its own sign-in:
// another local page or process guessing the port cannot inject a code.
func TestCallbackHandlerChecksChallenge(t *testing.T) {
	tests := []struct {
		name, query string
		wantStatus  int
		wantCode    string
	}{
		{"wrong challenge", "?code=evil&challenge=guess", http.StatusBadRequest, ""},
		{"no challenge", "?code=evil", http.StatusBadRequest, ""},
		{"no code", "?challenge=right-challenge", http.StatusBadRequest, ""},
		{"ours", "?code=good&challenge=right-challenge", http.StatusOK, "good"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codes := make(chan string, 1)
			h := callbackHandler("right-challenge", codes)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/callback"+tt.query, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			var got string
			select {
			case got = <-codes:
			default:
			}
			if got != tt.wantCode {
				t.Fatalf("delivered code %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestLoginRejectsBadProxyURL(t *testing.T) {
	for _, u := range []string{"", "bastion.example.com", "ftp://x"} {
		if err := Login(t.Context(), u, CLIOptions{Home: t.TempDir(), Headless: true}); err == nil {
			t.Errorf("Login(%q) accepted a bad proxy URL", u)
		}
	}
}
