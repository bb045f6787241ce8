package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// flakyStream is an SSE server that serves events 1..total, at most two per
// connection, then drops the connection; it records the Last-Event-ID of
// each connection. Connections without one start at the present, 0.
type flakyStream struct {
	mu     sync.Mutex
	total  int64
	lastID []string
	token  string
}

func (f *flakyStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error": "the API token is not valid"}`)
		return
	}
	f.mu.Lock()
	f.lastID = append(f.lastID, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, ": hello\nid: %d\n\n", after)
	for n := after + 1; n <= min(after+2, f.total); n++ {
		fmt.Fprintf(w, "id: %d\nevent: created\ndata: {\"id\": %d, \"event\": \"created\", \"request_id\": \"r%d\"}\n\n: keep-alive\n\n", n, n, n)
	}
	if after >= f.total {
		fmt.Fprint(w, "event: error\ndata: {\"error\": \"the API token is not valid (unknown, expired or revoked)\"}\n\n")
	}
}

func TestWatchReconnectsWithLastEventID(t *testing.T) {
	f := &flakyStream{total: 5, token: "t"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(srv.URL, WithToken("t"), WithRetry(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	err = c.Watch(context.Background(), FromNow, func(ev Event) error {
		got = append(got, ev.ID)
		return nil
	})
	// After event 5 the server ends the watch for good, as for a revoked token.
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("Watch returned %v, want the server's refusal", err)
	}
	if !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("events %v, want 1..5 once each", got)
	}
	if want := []string{"", "2", "4", "5"}; !slices.Equal(f.lastID, want) {
		t.Fatalf("Last-Event-ID per connection %q, want %q", f.lastID, want)
	}
}

func TestWatchStops(t *testing.T) {
	f := &flakyStream{total: 1000, token: "t"}
	srv := httptest.NewServer(f)
	defer srv.Close()

	bad, _ := New(srv.URL, WithToken("wrong"))
	err := bad.Watch(context.Background(), 0, func(Event) error { return nil })
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Message != "the API token is not valid" {
		t.Fatalf("bad token: %v, want *Error 401 with the server's line", err)
	}

	c, _ := New(srv.URL, WithToken("t"), WithRetry(time.Millisecond, time.Millisecond))
	stop := errors.New("enough")
	n := 0
	if err := c.Watch(context.Background(), 10, func(ev Event) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) {
		t.Fatalf("callback error: Watch returned %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Watch(ctx, 0, func(ev Event) error {
		if ev.ID == 7 {
			cancel()
		}
		return nil
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: Watch returned %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "bastion:8080", "ftp://x", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
