package apiclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Event is one request event of Watch.
type Event struct {
	// ID orders events and resumes a watch: pass the last one you handled
	// to Watch after a restart.
	ID        int64     `json:"id"`
	Event     string    `json:"event"` // created, reviewed, approved, denied, expired, cancelled, revoked, ended
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Actor     string    `json:"actor"`
	Via       string    `json:"via,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	// Request is the request as it stands when the event is sent.
	Request Request `json:"request"`
}

// FromNow starts a Watch at the present instead of after an event id.
const FromNow int64 = -1

// Watch calls fn for every request event the caller may see after event id
// after (FromNow: only new ones; 0: from the beginning of the audit log), in
// order, until ctx ends (it then returns ctx's error), fn returns an error
// (returned as is), or the server refuses the watch for good (an *Error, e.g.
// the token was revoked). A broken stream is reopened with Last-Event-ID, with
// a growing pause between tries, so no event is skipped or repeated.
func (c *Client) Watch(ctx context.Context, after int64, fn func(Event) error) error {
	wait := c.retryMin
	for {
		progressed, err := c.watchOnce(ctx, &after, fn)
		var stop *fnError
		switch {
		case errors.As(err, &stop):
			return stop.err
		case ctx.Err() != nil:
			return ctx.Err()
		case IsPermanent(err):
			return err
		}
		if progressed {
			wait = c.retryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, c.retryMax)
	}
}

// fnError carries the callback's error out of the stream reader.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// watchOnce reads one stream until it ends; *after follows every event
// handed to fn. progressed says whether the stream delivered anything.
func (c *Client) watchOnce(ctx context.Context, after *int64, fn func(Event) error) (progressed bool, err error) {
	q := url.Values{}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/watch", q, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*after, 10))
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return false, errorOf(res.StatusCode, data)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id, kind string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				kind = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			continue
		}
		// A blank line ends an event. An id without data only moves the
		// resume point (the server sends one first).
		switch {
		case kind == "" && data.Len() == 0 && id != "":
			if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
				*after = n
			}
		case kind == "error":
			var e struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal([]byte(data.String()), &e)
			if e.Error == "" {
				e.Error = "the server ended the watch"
			}
			return progressed, &Error{Status: http.StatusUnauthorized, Message: e.Error}
		case kind != "" && data.Len() > 0:
			var ev Event
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				return progressed, fmt.Errorf("watch: decode event %s: %w", id, err)
			}
			if n, err := strconv.ParseInt(id, 10, 64); err == nil {
				ev.ID = n
			}
			if err := fn(ev); err != nil {
				return progressed, &fnError{err}
			}
			*after, progressed = ev.ID, true
		}
		id, kind = "", ""
		data.Reset()
	}
	if err := sc.Err(); err != nil {
		return progressed, fmt.Errorf("watch: read stream: %w", err)
	}
	return progressed, errors.New("watch: the server closed the stream")
}
