package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Events a Message can carry.
const (
	EventCreated   = "created"
	EventApproved  = "approved"
	EventDenied    = "denied"
	EventExpired   = "expired"
	EventCancelled = "cancelled"
	EventRevoked   = "revoked"
)

// Notifier is what the access workflow calls. Implementations must not
// block the caller.
type Notifier interface {
	Notify(ctx context.Context, m Message)
}

// Message is one change of an access request.
type Message struct {
	Event   string          `json:"event"`
	Request storage.Request `json:"request"`
	Actor   string          `json:"actor,omitempty"`
	Link    string          `json:"link,omitempty"`
	// Reviewers are the users who may review a new request, as far as
	// roles.yaml names them (policy.StaticReviewers); set on created.
	Reviewers []string `json:"reviewers,omitempty"`
	// Approval is where the request stands against its approval rule, the
	// line `requests ID` shows ("needs 1 more approval from manager"); set
	// on created, for the reviewers.
	Approval string `json:"approval,omitempty"`
}

// Asked names what r asks for: "dba", or for a request of one login
// "login postgres on db-1 (role dba)" or "login postgres on nodes labelled
// team=db (role dba)"; " for one session" when the grant ends with the
// session that uses it.
func Asked(r storage.Request) string {
	s := strings.Join(r.Roles, ",")
	if r.IsResource() {
		s = fmt.Sprintf("login %s on %s (role %s)", r.Login, r.Where(), s)
	}
	if r.ForSession {
		s += " for one session"
	}
	return s
}

// Auditor records delivery failures; *audit.Log satisfies it.
type Auditor interface {
	Append(ctx context.Context, ev storage.Event) error
}

// Options tune delivery. Zero values take the defaults in brackets.
type Options struct {
	QueueSize    int           // messages waiting per target [64]
	Attempts     int           // tries per message and target [5]
	MinBackoff   time.Duration // wait after the first failure, doubled each time [500ms]
	MaxBackoff   time.Duration // cap on the wait [8s]
	Timeout      time.Duration // per HTTP request or SMTP conversation [10s]
	DrainTimeout time.Duration // how long Close waits for queued messages [10s]
	Client       *http.Client  // [a client with no overall timeout; Timeout applies per attempt]
	Observer     Observer      // told of every message not delivered (metrics) [none]
}

// Observer is told of notifications that did not reach their target;
// reason is "failed" (after every attempt) or "dropped" (queue full).
type Observer interface {
	NotifyFailed(kind, reason string)
}

func (o *Options) fill() {
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 8 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
}

// Dispatcher delivers messages to the configured targets asynchronously.
type Dispatcher struct {
	aud     Auditor
	log     *slog.Logger
	opts    Options
	workers []*worker

	// ctx bounds every delivery; Close cancels it when the drain deadline
	// passes so no worker outlives the dispatcher.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // guards closed against the channel close in Close
	closed bool
	wg     sync.WaitGroup
}

type worker struct {
	index int
	kind  string
	url   string       // slack, webhook
	email *emailTarget // email
	setup error        // why the target cannot work; every message fails with it
	queue chan Message
}

// name identifies a target in logs and audit events without its URL: a
// Slack webhook URL is a credential.
func (w *worker) name() string {
	host := ""
	if w.email != nil {
		host = w.email.addr
	} else if u, err := url.Parse(w.url); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("notify[%d] %s %s", w.index, w.kind, host)
}

// New starts one worker per target. With no targets it returns a
// Dispatcher that drops nothing and sends nothing.
func New(targets []config.NotifyTarget, aud Auditor, logger *slog.Logger, opts Options) *Dispatcher {
	opts.fill()
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{aud: aud, log: logger, opts: opts, ctx: ctx, cancel: cancel}
	for i, t := range targets {
		w := &worker{index: i, kind: t.Kind, url: t.URL, queue: make(chan Message, opts.QueueSize)}
		if t.Kind == "email" {
			w.email, w.setup = newEmailTarget(t)
			if w.setup != nil {
				logger.Error("email notify target unusable; its messages will fail", "target", i, "err", w.setup)
			}
		}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go d.run(w)
	}
	return d
}

// Notify queues m for every target and returns at once. A full queue drops
// the message for that target and audits the drop.
func (d *Dispatcher) Notify(ctx context.Context, m Message) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.log.WarnContext(ctx, "notification after close dropped", "event", m.Event, "request", m.Request.ID)
		return
	}
	for _, w := range d.workers {
		select {
		case w.queue <- m:
		default:
			d.log.ErrorContext(ctx, "notification queue full; message dropped", "target", w.name(), "event", m.Event, "request", m.Request.ID)
			d.audit(audit.TypeNotifyDropped, w, m, 0, errors.New("queue full"))
		}
	}
}

// Close stops accepting messages and waits up to DrainTimeout for the
// queued ones to be delivered; after that it abandons the rest (auditing
// each) so shutdown is never held up by a dead endpoint.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, w := range d.workers {
		close(w.queue)
	}
	d.mu.Unlock()

	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	timer := time.NewTimer(d.opts.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-timer.C:
		d.cancel()
		<-done
		return fmt.Errorf("drain notification queues: gave up after %s", d.opts.DrainTimeout)
	}
}

func (d *Dispatcher) run(w *worker) {
	defer d.wg.Done()
	for m := range w.queue {
		attempts, err := d.deliver(w, m)
		if err != nil {
			d.log.Error("notification failed", "target", w.name(), "event", m.Event, "request", m.Request.ID, "attempts", attempts, "err", err)
			d.audit(audit.TypeNotifyFailure, w, m, attempts, err)
		}
	}
}

// deliver tries m up to Attempts times and reports how many it made.
func (d *Dispatcher) deliver(w *worker, m Message) (int, error) {
	if w.setup != nil {
		return 0, w.setup
	}
	var send func() error
	if w.email != nil {
		send = func() error {
			ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout)
			defer cancel()
			return w.email.send(ctx, m)
		}
	} else {
		body, err := encode(w.kind, m)
		if err != nil {
			return 0, err
		}
		send = func() error { return d.post(w, body) }
	}
	wait := d.opts.MinBackoff
	var last error
	for i := 1; i <= d.opts.Attempts; i++ {
		if d.ctx.Err() != nil {
			return i - 1, fmt.Errorf("shut down before delivery: %w", errors.Join(last, d.ctx.Err()))
		}
		last = send()
		if last == nil {
			return i, nil
		}
		d.log.Warn("notification attempt failed", "target", w.name(), "request", m.Request.ID, "attempt", i, "err", last)
		if i == d.opts.Attempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
		}
		wait = min(wait*2, d.opts.MaxBackoff)
	}
	return d.opts.Attempts, last
}

func (d *Dispatcher) post(w *worker, body []byte) error {
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatehouse-notify")
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", redact(err))
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused, no more: the
	// response is not ours to store.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post: status %s", resp.Status)
	}
	return nil
}

// redact drops the URL from net/http errors, which would otherwise carry a
// Slack webhook's secret path into logs and the audit chain.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (d *Dispatcher) audit(typ string, w *worker, m Message, attempts int, cause error) {
	if d.opts.Observer != nil {
		reason := "failed"
		if typ == audit.TypeNotifyDropped {
			reason = "dropped"
		}
		d.opts.Observer.NotifyFailed(w.kind, reason)
	}
	if d.aud == nil {
		return
	}
	// Failures surface after retries, when the caller's context is long
	// gone: audit.Append outlives it.
	ev := storage.Event{
		Time:    time.Now(),
		Type:    typ,
		Actor:   "gatehouse",
		Target:  m.Request.ID,
		Outcome: "failure",
		Fields: map[string]any{
			"target":   w.name(),
			"event":    m.Event,
			"user":     m.Request.User,
			"attempts": attempts,
			"error":    cause.Error(),
		},
	}
	_ = audit.Append(d.ctx, d.aud, d.log, ev)
}

// encode renders m for a target kind.
func encode(kind string, m Message) ([]byte, error) {
	switch kind {
	case "slack":
		b, err := json.Marshal(struct {
			Text string `json:"text"`
		}{SlackText(m)})
		if err != nil {
			return nil, fmt.Errorf("encode slack message: %w", err)
		}
		return b, nil
	case "webhook":
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode webhook message: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown notify kind %q", kind)
	}
}

// SlackText is the one-paragraph summary posted to Slack.
func SlackText(m Message) string {
	r := m.Request
	roles := strings.Join(r.Roles, ",")
	var b strings.Builder
	switch m.Event {
	case EventCreated:
		fmt.Fprintf(&b, "%s requests %s for %s: %s", r.User, Asked(r), r.Duration, r.Reason)
		if m.Approval != "" {
			fmt.Fprintf(&b, " (%s)", m.Approval)
		}
	case EventApproved:
		fmt.Fprintf(&b, "%s approved %s's request for %s", m.Actor, r.User, roles)
		if r.GrantEnd != nil {
			fmt.Fprintf(&b, " (until %s)", r.GrantEnd.UTC().Format("15:04 UTC"))
		}
	case EventDenied:
		fmt.Fprintf(&b, "%s denied %s's request for %s", m.Actor, r.User, roles)
	case EventExpired:
		fmt.Fprintf(&b, "%s's request for %s expired without enough reviews", r.User, roles)
	case EventCancelled:
		fmt.Fprintf(&b, "%s cancelled their request for %s", r.User, roles)
	case EventRevoked:
		fmt.Fprintf(&b, "%s revoked %s's access to %s", m.Actor, r.User, roles)
	default:
		fmt.Fprintf(&b, "request for %s by %s: %s", roles, r.User, m.Event)
	}
	if r.StateReason != "" && m.Event != EventCreated {
		fmt.Fprintf(&b, ": %s", r.StateReason)
	}
	fmt.Fprintf(&b, " [request %s]", r.ID)
	// Requesters write the reason: escape Slack's control characters so a
	// reason cannot ping <!channel> or forge a link.
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(b.String())
	if m.Link != "" {
		text += " " + m.Link
	}
	return text
}
