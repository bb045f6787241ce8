package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/apiclient"
)

// Plugin links Gatehouse requests and Jira issues.
type Plugin struct {
	cfg  *Config
	api  *apiclient.Client
	jira *Client
	log  *slog.Logger
	seen *seenSet

	// mu serialises everything that reads or changes st or an issue, so an
	// event from the watch and a webhook never act on one issue at once.
	mu sync.Mutex
	st *state
	// replayBefore is set on a first run, which replays the whole log:
	// requests created before it that are no longer pending get no issue.
	replayBefore time.Time
}

// New builds a plugin from its config; api is the bastion's client with
// the bot token, jira the Jira REST client.
func New(cfg *Config, api *apiclient.Client, jira *Client, log *slog.Logger) (*Plugin, error) {
	st, err := loadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	p := &Plugin{cfg: cfg, api: api, jira: jira, log: log, seen: newSeenSet(10000), st: st}
	if st.LastEventID < 0 {
		p.replayBefore = time.Now()
	}
	return p, nil
}

// Run serves the webhook on cfg.Listen and follows the bastion's events
// until ctx ends.
func (p *Plugin) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s for the Jira webhook: %w", p.cfg.Listen, err)
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- p.Watch(ctx) }()
	p.log.Info("jira plugin running", "listen", ln.Addr().String(), "bastion", p.cfg.Gatehouse.URL, "jira", p.cfg.Jira.URL)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// Watch follows request events from the stored last event id (from the
// beginning of the log on a first run: events of requests still pending
// open their issues) until ctx ends.
func (p *Plugin) Watch(ctx context.Context) error {
	p.mu.Lock()
	after := p.st.LastEventID
	p.mu.Unlock()
	if after < 0 {
		after = 0
	}
	return p.api.Watch(ctx, after, func(ev apiclient.Event) error {
		if err := p.HandleEvent(ctx, ev); err != nil {
			// Jira being down must not stop the stream: the issue misses
			// one update, the log says which.
			p.log.Error("jira plugin: handle event", "event", ev.ID, "kind", ev.Event, "request", ev.RequestID, "err", err)
		}
		return nil
	})
}

// HandleEvent mirrors one request event in Jira and records its id.
func (p *Plugin) HandleEvent(ctx context.Context, ev apiclient.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.handleEvent(ctx, ev)
	if ev.ID > p.st.LastEventID {
		p.st.LastEventID = ev.ID
	}
	if serr := p.st.save(p.cfg.StateFile); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func (p *Plugin) handleEvent(ctx context.Context, ev apiclient.Event) error {
	key := p.st.issueOf(ev.RequestID)
	if key == "" {
		// A request gets its issue when it is created, even if it was
		// decided before the event arrived (the next event settles the
		// issue). On a first run's replay of old events, only requests
		// still pending get one: the others are settled history.
		live := ev.Event == "created" && !ev.Time.Before(p.replayBefore)
		if ev.Request.ID == "" || (ev.Request.State != "PENDING" && !live) {
			return nil
		}
		k, err := p.openIssue(ctx, ev.Request)
		if err != nil {
			return err
		}
		p.st.Issues[ev.RequestID] = k
		if err := p.st.save(p.cfg.StateFile); err != nil {
			return err
		}
		key = k
		if ev.Event == "created" {
			return nil
		}
	}
	s := p.cfg.Jira.Statuses
	who := ev.Actor
	if ev.Via != "" {
		who += " via " + ev.Via
	}
	note := ""
	if ev.Reason != "" {
		note = ": " + oneLine(ev.Reason)
	}
	switch ev.Event {
	case "approved":
		return p.settle(ctx, key, s.Approved, fmt.Sprintf("Gatehouse: request %s approved by %s%s", ev.RequestID, who, note))
	case "denied":
		return p.settle(ctx, key, s.Denied, fmt.Sprintf("Gatehouse: request %s denied by %s%s", ev.RequestID, who, note))
	case "expired":
		return p.settle(ctx, key, s.Expired, fmt.Sprintf("Gatehouse: request %s expired without enough approvals", ev.RequestID))
	case "reviewed":
		if ev.Request.State == "PENDING" {
			return p.jira.AddComment(ctx, key, fmt.Sprintf("Gatehouse: review by %s recorded%s; more approvals are needed", who, note))
		}
	case "cancelled", "revoked":
		return p.jira.AddComment(ctx, key, fmt.Sprintf("Gatehouse: request %s %s by %s%s", ev.RequestID, ev.Event, who, note))
	}
	return nil
}

// settle moves the issue to status unless it is there already, and says why.
func (p *Plugin) settle(ctx context.Context, key, status, comment string) error {
	is, err := p.jira.Issue(ctx, key)
	if err != nil {
		return err
	}
	if !strings.EqualFold(is.Fields.Status.Name, status) {
		if err := p.jira.MoveTo(ctx, key, status); err != nil {
			return err
		}
	}
	return p.jira.AddComment(ctx, key, comment)
}

func (p *Plugin) openIssue(ctx context.Context, r apiclient.Request) (string, error) {
	link := strings.TrimRight(p.cfg.Gatehouse.URL, "/") + "/requests/" + r.ID
	roles := strings.Join(r.Roles, ", ")
	summary := oneLine(fmt.Sprintf("Access request %s: %s asks for %s for %s", r.ID, r.User, roles, formatDuration(r.Duration)))
	desc := fmt.Sprintf("*Requester:* %s\n*Roles:* %s\n*Duration:* %s\n*Expires unreviewed:* %s\n*Request:* [%s|%s]\n\n*Reason:*\n{noformat}\n%s\n{noformat}\n\n"+
		"To review: move this issue to %s or %s; add a comment starting with \"Reason:\" first to give a reason. Gatehouse checks your rights and reverts a move it refuses.",
		r.User, roles, formatDuration(r.Duration), r.Expires.UTC().Format(time.RFC3339), r.ID, link,
		strings.ReplaceAll(r.Reason, "{noformat}", ""), p.cfg.Jira.Statuses.Approved, p.cfg.Jira.Statuses.Denied)
	var reporter *User
	if email := p.cfg.email(r.User); email != "" {
		u, err := p.jira.FindUser(ctx, email)
		if err != nil {
			p.log.Warn("jira plugin: user search", "email", email, "err", err)
		}
		reporter = u
	}
	key, err := p.jira.CreateIssue(ctx, p.cfg.Jira.Project, p.cfg.Jira.IssueType, summary, desc, reporter)
	if err != nil && reporter != nil {
		// The reporter field may not be on the create screen: an issue
		// without it beats none.
		p.log.Warn("jira plugin: create issue with reporter failed; retrying without", "request", r.ID, "err", err)
		key, err = p.jira.CreateIssue(ctx, p.cfg.Jira.Project, p.cfg.Jira.IssueType, summary, desc, nil)
	}
	if err != nil {
		return "", fmt.Errorf("open jira issue for request %s: %w", r.ID, err)
	}
	p.log.Info("jira plugin: opened issue", "request", r.ID, "issue", key)
	return key, nil
}

// Handler serves POST /jira/webhook.
func (p *Plugin) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /jira/webhook", p.webhook)
	return m
}

func (p *Plugin) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if s := p.cfg.Webhook.Secret; s != "" {
		got := r.URL.Query().Get("secret")
		if got == "" {
			got = r.Header.Get("X-Gatehouse-Webhook-Secret")
		}
		if !checkSecret(s, got) {
			http.Error(w, "bad webhook secret", http.StatusUnauthorized)
			return
		}
	}
	if s := p.cfg.Webhook.SigningSecret; s != "" && !checkSignature(s, body, r.Header.Get("X-Hub-Signature")) {
		http.Error(w, "bad X-Hub-Signature", http.StatusUnauthorized)
		return
	}
	delivery := r.Header.Get("X-Atlassian-Webhook-Identifier")
	if delivery != "" && p.seen.has(delivery) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// The body only names the issue; everything else is read back from Jira.
	var hook struct {
		Issue struct {
			Key string `json:"key"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &hook); err != nil || hook.Issue.Key == "" {
		http.Error(w, "no issue key in the webhook", http.StatusBadRequest)
		return
	}
	if err := p.IssueChanged(r.Context(), hook.Issue.Key); err != nil {
		p.log.Error("jira plugin: webhook", "issue", hook.Issue.Key, "err", err)
		// 5xx: Jira delivers again, and the identifier is not marked seen.
		http.Error(w, "could not handle the change now", http.StatusServiceUnavailable)
		return
	}
	if delivery != "" {
		p.seen.add(delivery)
	}
	w.WriteHeader(http.StatusNoContent)
}

// IssueChanged looks at issue key as Jira has it now and, if a person moved
// it to Approved or Denied while its request is pending, submits that
// review on the person's behalf; a move the bastion refuses is reverted.
func (p *Plugin) IssueChanged(ctx context.Context, key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.st.requestOf(key)
	if id == "" {
		return nil // not ours
	}
	is, err := p.jira.Issue(ctx, key)
	if err != nil {
		return err
	}
	s := p.cfg.Jira.Statuses
	status := is.Fields.Status.Name
	approve := strings.EqualFold(status, s.Approved)
	if !approve && !strings.EqualFold(status, s.Denied) && !strings.EqualFold(status, s.Expired) {
		return nil
	}
	req, err := p.api.Request(ctx, id)
	if err != nil {
		return fmt.Errorf("read request %s: %w", id, err)
	}
	if req.State != "PENDING" {
		return nil // settled: the event stream moves the issue
	}
	if strings.EqualFold(status, s.Expired) {
		return p.revert(ctx, key, "only Gatehouse moves a request to "+s.Expired)
	}
	// Who made the move: the newest changelog entry that set this status
	// (by its time: Jira's order of histories differs between versions).
	var mover *User
	var moved time.Time
	for i, h := range is.Changelog.Histories {
		for _, it := range h.Items {
			if it.Field == "status" && strings.EqualFold(it.ToString, status) {
				if at := jiraTime(h.Created, i); mover == nil || !at.Before(moved) {
					mover, moved = &is.Changelog.Histories[i].Author, at
				}
			}
		}
	}
	if mover == nil {
		return p.revert(ctx, key, "no changelog entry says who moved the issue")
	}
	user := p.cfg.gatehouseUser(mover.EmailAddress)
	if user == "" {
		return p.revert(ctx, key, "the Jira account that moved the issue maps to no Gatehouse user (its e-mail is missing or of another domain)")
	}
	reason, err := p.reasonOf(ctx, key, mover)
	if err != nil {
		return err
	}
	opts := apiclient.ReviewOptions{Reason: reason, OnBehalfOf: user}
	if approve {
		req, err = p.api.Approve(ctx, id, opts)
	} else {
		req, err = p.api.Deny(ctx, id, opts)
	}
	var refusal *apiclient.Error
	if errors.As(err, &refusal) && refusal.Status >= 400 && refusal.Status < 500 {
		p.log.Info("jira plugin: review refused; reverting", "issue", key, "request", id, "user", user, "refusal", refusal.Message)
		return p.revert(ctx, key, refusal.Message)
	}
	if err != nil {
		return fmt.Errorf("review request %s on behalf of %s: %w", id, user, err)
	}
	p.log.Info("jira plugin: review submitted", "issue", key, "request", id, "user", user, "approve", approve, "state", req.State)
	if req.State == "PENDING" {
		// The review counted but the request needs more approvals: the
		// issue goes back to open for the next reviewer.
		if err := p.jira.MoveTo(ctx, key, s.Open); err != nil {
			return err
		}
		return p.jira.AddComment(ctx, key, fmt.Sprintf("Gatehouse: %s's review is recorded; request %s needs more approvals", user, id))
	}
	return nil
}

// reasonOf is the newest "Reason:" comment by the mover.
func (p *Plugin) reasonOf(ctx context.Context, key string, mover *User) (string, error) {
	cs, err := p.jira.Comments(ctx, key)
	if err != nil {
		return "", err
	}
	reason, newest := "", time.Time{}
	for i, c := range cs {
		body := strings.TrimSpace(c.Body)
		if !sameUser(c.Author, *mover) || len(body) < 7 || !strings.EqualFold(body[:7], "reason:") {
			continue
		}
		if at := jiraTime(c.Created, i); reason == "" || !at.Before(newest) {
			reason, newest = strings.TrimSpace(body[7:]), at
		}
	}
	return reason, nil
}

// jiraTime parses Jira's timestamps (2024-05-01T10:00:00.000+0000); one it
// cannot parse orders by its position i in the list instead.
func jiraTime(s string, i int) time.Time {
	if t, err := time.Parse("2006-01-02T15:04:05.000-0700", s); err == nil {
		return t
	}
	return time.Unix(int64(i), 0)
}

func sameUser(a, b User) bool {
	switch {
	case a.AccountID != "" || b.AccountID != "":
		return a.AccountID == b.AccountID
	case a.Name != "" || b.Name != "":
		return a.Name == b.Name
	default:
		return a.EmailAddress != "" && strings.EqualFold(a.EmailAddress, b.EmailAddress)
	}
}

// revert puts the issue back to the open status with a one-line comment.
func (p *Plugin) revert(ctx context.Context, key, why string) error {
	merr := p.jira.MoveTo(ctx, key, p.cfg.Jira.Statuses.Open)
	cerr := p.jira.AddComment(ctx, key, "Gatehouse reverted this change: "+oneLine(why))
	return errors.Join(merr, cerr)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 250 {
		s = s[:250] + "…"
	}
	return s
}

func formatDuration(d time.Duration) string {
	s := d.Round(time.Minute).String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		s = "0m"
	}
	return s
}
