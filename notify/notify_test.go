package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// recorder is an HTTP endpoint that keeps every body it was sent and
// answers with the status chosen by fail for the n-th call (1-based).
type recorder struct {
	mu     sync.Mutex
	calls  int
	bodies [][]byte
	fail   func(n int) bool
	got    chan struct{} // one value per call, for tests that must wait
	hold   chan struct{} // when non-nil, handlers block until it is closed
}

func newRecorder(t *testing.T, fail func(n int) bool) (*recorder, *httptest.Server) {
	t.Helper()
	r := &recorder{fail: fail, got: make(chan struct{}, 100)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.bodies = append(r.bodies, b)
	hold := r.hold
	r.mu.Unlock()
	r.got <- struct{}{}
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return
		}
	}
	if r.fail != nil && r.fail(n) {
		http.Error(w, "nope", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *recorder) snapshot() (int, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, append([][]byte(nil), r.bodies...)
}

// memAudit stands in for *audit.Log, which is another package's job; it
// only has to record what was appended.
type memAudit struct {
	mu  sync.Mutex
	evs []storage.Event
}

func (a *memAudit) Append(_ context.Context, ev storage.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return nil
}

func (a *memAudit) events(typ string) []storage.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []storage.Event
	for _, e := range a.evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func fastOpts() Options {
	return Options{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Attempts: 5}
}

func sampleRequest() storage.Request {
	end := time.Date(2025, 1, 2, 15, 4, 0, 0, time.UTC)
	return storage.Request{
		ID: "abcde12345", User: "bob", Roles: []string{"dba"}, Reason: "incident <!channel> & more",
		Duration: 2 * time.Hour, State: storage.StatePending, GrantEnd: &end,
	}
}

func TestSlackAndWebhookBodies(t *testing.T) {
	slack, slackSrv := newRecorder(t, nil)
	hook, hookSrv := newRecorder(t, nil)
	aud := &memAudit{}
	d := New([]config.NotifyTarget{
		{Kind: "slack", URL: slackSrv.URL + "/services/secret"},
		{Kind: "webhook", URL: hookSrv.URL + "/hook"},
	}, aud, nil, fastOpts())

	m := Message{Event: EventCreated, Request: sampleRequest(), Actor: "bob", Link: "http://gh.example/requests/abcde12345"}
	d.Notify(context.Background(), m)
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, sb := slack.snapshot()
	if len(sb) != 1 {
		t.Fatalf("slack got %d posts, want 1", len(sb))
	}
	var sm struct{ Text string }
	if err := json.Unmarshal(sb[0], &sm); err != nil {
		t.Fatalf("slack body %q: %v", sb[0], err)
	}
	for _, want := range []string{"bob requests dba for 2h0m0s", "http://gh.example/requests/abcde12345", "&lt;!channel&gt; &amp; more", "abcde12345"} {
		if !strings.Contains(sm.Text, want) {
			t.Errorf("slack text %q lacks %q", sm.Text, want)
		}
	}
	if strings.Contains(sm.Text, "<!channel>") {
		t.Errorf("slack text %q lets the reason ping the channel", sm.Text)
	}

	_, hb := hook.snapshot()
	if len(hb) != 1 {
		t.Fatalf("webhook got %d posts, want 1", len(hb))
	}
	var got Message
	if err := json.Unmarshal(hb[0], &got); err != nil {
		t.Fatalf("webhook body %q: %v", hb[0], err)
	}
	if got.Event != EventCreated || got.Actor != "bob" || got.Link != m.Link || got.Request.ID != "abcde12345" ||
		got.Request.Reason != m.Request.Reason || got.Request.Duration != 2*time.Hour || len(got.Request.Roles) != 1 {
		t.Errorf("webhook got %+v, want %+v", got, m)
	}
	if n := len(aud.events(audit.TypeNotifyFailure)); n != 0 {
		t.Errorf("%d failure events on a clean delivery", n)
	}
}

func TestSlackText(t *testing.T) {
	r := sampleRequest()
	r.Reason = "disk full"
	r.StateReason = "looks fine"
	tests := []struct {
		event string
		want  string
	}{
		{EventCreated, "bob requests dba for 2h0m0s: disk full [request abcde12345] L"},
		{EventApproved, "alice approved bob's request for dba (until 15:04 UTC): looks fine [request abcde12345] L"},
		{EventDenied, "alice denied bob's request for dba: looks fine [request abcde12345] L"},
		{EventExpired, "bob's request for dba expired without enough reviews: looks fine [request abcde12345] L"},
		{EventCancelled, "bob cancelled their request for dba: looks fine [request abcde12345] L"},
		{EventRevoked, "alice revoked bob's access to dba: looks fine [request abcde12345] L"},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			got := SlackText(Message{Event: tt.event, Request: r, Actor: "alice", Link: "L"})
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	rec, srv := newRecorder(t, func(n int) bool { return n <= 2 })
	aud := &memAudit{}
	d := New([]config.NotifyTarget{{Kind: "webhook", URL: srv.URL}}, aud, nil, fastOpts())
	d.Notify(context.Background(), Message{Event: EventApproved, Request: sampleRequest(), Actor: "alice"})
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls, bodies := rec.snapshot()
	if calls != 3 {
		t.Errorf("endpoint saw %d attempts, want 3 (two failures, one success)", calls)
	}
	for i, b := range bodies[1:] {
		if string(b) != string(bodies[0]) {
			t.Errorf("retry %d sent a different body", i+1)
		}
	}
	if n := len(aud.events(audit.TypeNotifyFailure)); n != 0 {
		t.Errorf("%d failure events although the third try succeeded", n)
	}
}

func TestAlwaysFailingIsAuditedAndOthersStillDelivered(t *testing.T) {
	bad, badSrv := newRecorder(t, func(int) bool { return true })
	good, goodSrv := newRecorder(t, nil)
	aud := &memAudit{}
	d := New([]config.NotifyTarget{
		{Kind: "slack", URL: badSrv.URL + "/services/T000/B000/sekrit"},
		{Kind: "webhook", URL: goodSrv.URL},
	}, aud, nil, fastOpts())
	d.Notify(context.Background(), Message{Event: EventCreated, Request: sampleRequest()})
	d.Notify(context.Background(), Message{Event: EventCancelled, Request: sampleRequest()})
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if calls, _ := bad.snapshot(); calls != 10 {
		t.Errorf("failing endpoint saw %d attempts, want 5 per message = 10", calls)
	}
	if calls, _ := good.snapshot(); calls != 2 {
		t.Errorf("healthy endpoint saw %d posts, want 2", calls)
	}
	fails := aud.events(audit.TypeNotifyFailure)
	if len(fails) != 2 {
		t.Fatalf("got %d %s events, want 2", len(fails), audit.TypeNotifyFailure)
	}
	for _, ev := range fails {
		if ev.Target != "abcde12345" || ev.Outcome != "failure" || ev.Fields["attempts"] != 5 {
			t.Errorf("failure event %+v", ev)
		}
		if s, _ := json.Marshal(ev.Fields); strings.Contains(string(s), "sekrit") {
			t.Errorf("failure event leaks the webhook URL: %s", s)
		}
	}
}

func TestNotifyNeverBlocksAndDropsWhenFull(t *testing.T) {
	rec, srv := newRecorder(t, nil)
	rec.hold = make(chan struct{})
	aud := &memAudit{}
	opts := fastOpts()
	opts.QueueSize = 1
	d := New([]config.NotifyTarget{{Kind: "webhook", URL: srv.URL}}, aud, nil, opts)

	m := Message{Event: EventCreated, Request: sampleRequest()}
	d.Notify(context.Background(), m) // taken by the worker, which then hangs in the endpoint
	<-rec.got
	d.Notify(context.Background(), m) // waits in the queue
	d.Notify(context.Background(), m) // queue full: dropped, and we got here, so Notify did not block
	drops := aud.events(audit.TypeNotifyDropped)
	if len(drops) != 1 {
		t.Fatalf("got %d %s events, want 1", len(drops), audit.TypeNotifyDropped)
	}
	close(rec.hold)
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if calls, _ := rec.snapshot(); calls != 2 {
		t.Errorf("endpoint saw %d posts, want 2 (the dropped one never sent)", calls)
	}
}

func TestCloseGivesUpAfterDrainTimeout(t *testing.T) {
	rec, srv := newRecorder(t, nil)
	rec.hold = make(chan struct{})
	defer close(rec.hold)
	aud := &memAudit{}
	opts := fastOpts()
	opts.DrainTimeout = 50 * time.Millisecond
	d := New([]config.NotifyTarget{{Kind: "webhook", URL: srv.URL}}, aud, nil, opts)
	d.Notify(context.Background(), Message{Event: EventCreated, Request: sampleRequest()})
	d.Notify(context.Background(), Message{Event: EventDenied, Request: sampleRequest()})
	<-rec.got
	if err := d.Close(); err == nil {
		t.Fatal("Close returned nil although the endpoint never answered")
	}
	if n := len(aud.events(audit.TypeNotifyFailure)); n != 2 {
		t.Errorf("got %d failure events after abandoning 2 messages, want 2", n)
	}
	// After Close, Notify is a harmless no-op.
	d.Notify(context.Background(), Message{Event: EventCreated, Request: sampleRequest()})
}

type countingObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *countingObserver) NotifyFailed(kind, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[kind+" "+reason]++
}

func TestObserverSeesFailuresAndDrops(t *testing.T) {
	_, badSrv := newRecorder(t, func(int) bool { return true })
	obs := &countingObserver{n: map[string]int{}}
	opts := fastOpts()
	opts.Observer = obs
	d := New([]config.NotifyTarget{{Kind: "slack", URL: badSrv.URL}}, &memAudit{}, nil, opts)
	d.Notify(context.Background(), Message{Event: EventCreated, Request: sampleRequest()})
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.n["slack failed"] != 1 || len(obs.n) != 1 {
		t.Errorf("observer saw %v, want one slack failure", obs.n)
	}
}

// A new request's notification tells reviewers what the rule still needs
// and, for one login, which; decisions leave the line out.
func TestNotificationsSayWhatTheRuleNeeds(t *testing.T) {
	r := sampleRequest()
	r.Reason, r.Node, r.Login, r.ForSession = "disk full", "db-1", "postgres", true
	m := Message{Event: EventCreated, Request: r, Actor: "bob", Link: "L", Approval: "needs 1 more approval from manager"}
	if got, want := SlackText(m), "bob requests login postgres on db-1 (role dba) for one session for 2h0m0s: disk full (needs 1 more approval from manager) [request abcde12345] L"; got != want {
		t.Errorf("slack:\n got %q\nwant %q", got, want)
	}
	body := EmailBody(m)
	for _, want := range []string{"Only:      login postgres on db-1\n", "Ends:      with the first session that uses it\n", "Approval:  needs 1 more approval from manager\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("e-mail body lacks %q:\n%s", want, body)
		}
	}
	if got := EmailSubject(m); got != "[gatehouse] bob requests login postgres on db-1 (role dba) for one session (request abcde12345)" {
		t.Errorf("subject %q", got)
	}
	m.Event = EventApproved
	if body := EmailBody(m); strings.Contains(body, "Approval:") {
		t.Errorf("a decision's mail repeats the approval line:\n%s", body)
	}
}

// A request by label selector shows the selector wherever a node would
// stand, and the webhook's JSON carries it as "labels".
func TestNotificationsShowTheSelector(t *testing.T) {
	r := sampleRequest()
	r.Reason, r.Labels, r.Login = "disk full", map[string]string{"team": "db", "env": "staging"}, "postgres"
	m := Message{Event: EventCreated, Request: r, Actor: "bob", Link: "L"}
	if got, want := SlackText(m), "bob requests login postgres on nodes labelled env=staging,team=db (role dba) for 2h0m0s: disk full [request abcde12345] L"; got != want {
		t.Errorf("slack:\n got %q\nwant %q", got, want)
	}
	if body := EmailBody(m); !strings.Contains(body, "Only:      login postgres on nodes labelled env=staging,team=db\n") {
		t.Errorf("e-mail body lacks the selector:\n%s", body)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"labels":{"env":"staging","team":"db"}`) {
		t.Errorf("webhook JSON lacks the selector: %s", b)
	}
}

// A generic webhook gets the approval line of a new request as the JSON
// field "approval", and no such field on a decision.
func TestWebhookCarriesTheApprovalLine(t *testing.T) {
	m := Message{Event: EventCreated, Request: sampleRequest(), Actor: "bob", Link: "L", Approval: "needs 1 more approval from manager"}
	b, err := encode("webhook", m)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("webhook body %s: %v", b, err)
	}
	if got["approval"] != "needs 1 more approval from manager" {
		t.Errorf("webhook body %s: want \"approval\" with the rule's line", b)
	}
	m.Event, m.Approval = EventApproved, ""
	if b, _ := encode("webhook", m); strings.Contains(string(b), `"approval"`) {
		t.Errorf("a decision's webhook body has an approval field: %s", b)
	}
}
