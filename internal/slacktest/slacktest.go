// Package slacktest is a stand-in for the Slack Web API, for tests: no real
// Slack can run here. It answers the methods the Slack plugin calls
// (chat.postMessage, chat.update, chat.postEphemeral, users.info,
// users.lookupByEmail, views.open) the way Slack documents them, checks the
// bot token, and records every call so a test can see what the plugin told
// Slack. Click and Submission build the signed interaction payloads Slack
// would send for a button press and a modal's submission.
package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is a member of the stand-in workspace.
type User struct {
	ID, Name, RealName, Email string
}

// Call is one Web API call as Slack would have received it.
type Call struct {
	Method string     // e.g. chat.postMessage
	Form   url.Values // the form fields (slack-go posts forms)
	// JSON is the body of a method called with a JSON body (views.open).
	JSON json.RawMessage
	// TS is the message timestamp the stand-in answered a
	// chat.postMessage with (Slack's id of the message).
	TS string
}

// Server is the stand-in. Its URL + "/api/" is the API base to configure.
type Server struct {
	*httptest.Server
	token string

	mu      sync.Mutex
	users   []User
	calls   []Call
	nextTS  int
	changed chan struct{}  // closed and replaced on every call
	limited map[string]int // method → calls still to answer 429
	views   []View
	// triggers are the trigger ids views.open has used: Slack honours
	// each once.
	triggers map[string]bool
}

// View is a modal the app opened with views.open.
type View struct {
	ID              string
	TriggerID       string
	CallbackID      string
	PrivateMetadata string
	Title           string
	// Blocks is the view's blocks as the app sent them.
	Blocks json.RawMessage
}

// Views returns the modals opened so far.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]View(nil), s.views...)
}

// RateLimit makes the next n calls of method answer as Slack does when an
// app is rate limited: HTTP 429 with Retry-After (they are not recorded).
func (s *Server) RateLimit(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited[method] = n
}

// New starts a stand-in that accepts the bot token token.
func New(token string, users ...User) *Server {
	s := &Server{token: token, users: users, nextTS: 1, changed: make(chan struct{}), limited: map[string]int{}, triggers: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// APIURL is the base URL of the Web API (ends in /api/).
func (s *Server) APIURL() string { return s.URL + "/api/" }

// Calls returns the calls so far of method (all calls if method is "").
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// WaitFor waits until ok holds for the calls so far or until timeout, and
// returns those calls and whether ok held.
func (s *Server) WaitFor(timeout time.Duration, ok func([]Call) bool) ([]Call, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		calls := append([]Call(nil), s.calls...)
		ch := s.changed
		s.mu.Unlock()
		if ok(calls) {
			return calls, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return calls, false
		}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	method, found := strings.CutPrefix(r.URL.Path, "/api/")
	if !found || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var body json.RawMessage
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !json.Valid(b) {
			reply(w, map[string]any{"ok": false, "error": "invalid_json"})
			return
		}
		body = b
	} else if err := r.ParseForm(); err != nil {
		reply(w, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.PostForm.Get("token")
	}
	if tok != s.token {
		reply(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	s.mu.Lock()
	if s.limited[method] > 0 {
		s.limited[method]--
		s.mu.Unlock()
		w.Header().Set("Retry-After", "0") // Slack sends seconds; 0 keeps tests quick
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	ts := fmt.Sprintf("1700000000.%06d", s.nextTS)
	s.calls = append(s.calls, Call{Method: method, Form: r.PostForm, JSON: body, TS: ts})
	s.nextTS++
	close(s.changed)
	s.changed = make(chan struct{})
	users := s.users
	s.mu.Unlock()

	if method == "views.open" {
		s.openView(w, body)
		return
	}

	f := r.PostForm
	switch method {
	case "chat.postMessage":
		reply(w, map[string]any{"ok": true, "channel": f.Get("channel"), "ts": ts})
	case "chat.update":
		reply(w, map[string]any{"ok": true, "channel": f.Get("channel"), "ts": f.Get("ts"), "text": f.Get("text")})
	case "chat.postEphemeral":
		reply(w, map[string]any{"ok": true, "message_ts": ts})
	case "users.info", "users.lookupByEmail":
		for _, u := range users {
			if (method == "users.info" && u.ID == f.Get("user")) || (method == "users.lookupByEmail" && strings.EqualFold(u.Email, f.Get("email"))) {
				reply(w, map[string]any{"ok": true, "user": map[string]any{
					"id": u.ID, "name": u.Name, "real_name": u.RealName,
					"profile": map[string]any{"email": u.Email, "real_name": u.RealName},
				}})
				return
			}
		}
		reply(w, map[string]any{"ok": false, "error": "users_not_found"})
	default:
		reply(w, map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// openView answers views.open as Slack does for a modal: the trigger id of
// a recent interaction, used once; a modal with a title of at most 24
// characters and at least one block.
func (s *Server) openView(w http.ResponseWriter, body json.RawMessage) {
	var in struct {
		TriggerID string `json:"trigger_id"`
		View      struct {
			Type            string `json:"type"`
			CallbackID      string `json:"callback_id"`
			PrivateMetadata string `json:"private_metadata"`
			Title           struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"title"`
			Blocks []json.RawMessage `json:"blocks"`
		} `json:"view"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		reply(w, map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	}
	v := in.View
	switch {
	case in.TriggerID == "":
		reply(w, map[string]any{"ok": false, "error": "invalid_trigger_id"})
		return
	case v.Type != "modal" || v.Title.Type != "plain_text" || v.Title.Text == "" || len([]rune(v.Title.Text)) > 24 || len(v.Blocks) == 0 || len(v.PrivateMetadata) > 3000:
		reply(w, map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	}
	s.mu.Lock()
	if s.triggers[in.TriggerID] {
		s.mu.Unlock()
		reply(w, map[string]any{"ok": false, "error": "expired_trigger_id"})
		return
	}
	s.triggers[in.TriggerID] = true
	blocks, _ := json.Marshal(v.Blocks)
	view := View{ID: fmt.Sprintf("V%06d", len(s.views)+1), TriggerID: in.TriggerID, CallbackID: v.CallbackID,
		PrivateMetadata: v.PrivateMetadata, Title: v.Title.Text, Blocks: blocks}
	s.views = append(s.views, view)
	s.mu.Unlock()
	reply(w, map[string]any{"ok": true, "view": map[string]any{
		"id": view.ID, "type": "modal", "callback_id": view.CallbackID, "private_metadata": view.PrivateMetadata,
		"title": map[string]any{"type": "plain_text", "text": view.Title}, "blocks": json.RawMessage(blocks),
	}})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Sign returns the X-Slack-Signature Slack would send for body at ts.
func Sign(secret string, ts int64, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:%s", ts, body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// Click is a button press in a message, as Slack sends it to the
// interactivity request URL.
type Click struct {
	UserID, ActionID, Value, Channel, MessageTS, TriggerID string
}

// Body is the form body of a block_actions interaction for c.
func (c Click) Body() string {
	p := map[string]any{
		"type":       "block_actions",
		"trigger_id": c.TriggerID,
		"user":       map[string]any{"id": c.UserID},
		"channel":    map[string]any{"id": c.Channel},
		"container":  map[string]any{"type": "message", "channel_id": c.Channel, "message_ts": c.MessageTS},
		"message":    map[string]any{"ts": c.MessageTS},
		"actions": []map[string]any{{
			"type": "button", "action_id": c.ActionID, "block_id": "review", "value": c.Value,
			"action_ts": c.TriggerID,
		}},
	}
	b, _ := json.Marshal(p)
	return url.Values{"payload": {string(b)}}.Encode()
}

// Submission is a person pressing the submit button of a modal the app
// opened, as Slack sends it: the view with what was typed, Values[block id]
// [action id] for plain text inputs.
type Submission struct {
	UserID string
	View   View
	Values map[string]map[string]string
}

// Body is the form body of a view_submission interaction for c.
func (c Submission) Body() string {
	values := map[string]map[string]any{}
	for block, actions := range c.Values {
		values[block] = map[string]any{}
		for action, text := range actions {
			values[block][action] = map[string]any{"type": "plain_text_input", "value": text}
		}
	}
	p := map[string]any{
		"type": "view_submission",
		"user": map[string]any{"id": c.UserID},
		"view": map[string]any{
			"id": c.View.ID, "type": "modal", "callback_id": c.View.CallbackID,
			"private_metadata": c.View.PrivateMetadata, "state": map[string]any{"values": values},
		},
	}
	b, _ := json.Marshal(p)
	return url.Values{"payload": {string(b)}}.Encode()
}

// Post sends body to the interactions URL signed with secret at ts, as Slack
// does, and returns the response status.
func Post(hc *http.Client, interactionsURL, secret string, ts int64, body string) (int, error) {
	code, _, err := Send(hc, interactionsURL, secret, ts, body)
	return code, err
}

// Send is Post that also returns the answer's body (a view submission may
// answer with errors to show in the modal).
func Send(hc *http.Client, interactionsURL, secret string, ts int64, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, interactionsURL, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, body))
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(b), err
}
