package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/apiclient"
)

// maxBody bounds an interaction payload (Slack's include the whole message).
const maxBody = 1 << 20

// Plugin relays requests between one bastion and one Slack channel.
type Plugin struct {
	cfg   Config
	api   *apiclient.Client
	slack *slack.Client
	log   *slog.Logger
	now   func() time.Time
	// retryWait is the first pause before retrying a failed Slack call.
	retryWait time.Duration

	mu     sync.Mutex
	st     state
	seen   map[string]time.Time // signatures and trigger ids of handled clicks
	clicks sync.WaitGroup
}

// New builds a plugin from its config.
func New(cfg Config, log *slog.Logger) (*Plugin, error) {
	api, err := apiclient.New(cfg.GatehouseURL, apiclient.WithToken(cfg.BotToken))
	if err != nil {
		return nil, err
	}
	st, err := loadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	return &Plugin{
		cfg:       cfg,
		api:       api,
		slack:     slack.New(cfg.SlackBotToken, slack.OptionAPIURL(cfg.SlackAPIURL)),
		log:       log,
		now:       time.Now,
		retryWait: time.Second,
		st:        st,
		seen:      map[string]time.Time{},
	}, nil
}

// Run serves the interactions endpoint on cfg.Listen and relays watch
// events until ctx ends or the bastion refuses the bot for good.
func (p *Plugin) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for Slack interactions on %s: %w", p.cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/interactions", p.handleInteraction)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	p.log.Info("slack plugin started", "listen", ln.Addr().String(), "gatehouse", p.cfg.GatehouseURL, "channel", p.cfg.Channel)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	after := p.st.LastEventID
	p.mu.Unlock()
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- p.api.Watch(ctx, after, func(ev apiclient.Event) error { return p.handleEvent(ctx, ev) })
	}()

	var runErr error
	select {
	case err := <-watchErr:
		if ctx.Err() == nil {
			runErr = fmt.Errorf("watch requests: %w", err)
		}
	case err := <-srvErr:
		runErr = fmt.Errorf("serve Slack interactions: %w", err)
	case <-ctx.Done():
	}
	cancel()
	shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(shutCtx)
	p.clicks.Wait()
	return runErr
}

// handleEvent keeps Slack in step with one request event, then records the
// event id so a restart resumes after it. Stopped half-way (ctx ended), it
// records nothing: the restarted plugin handles the event again, so an event
// is relayed at least once.
func (p *Plugin) handleEvent(runCtx context.Context, ev apiclient.Event) error {
	ctx, cancel := context.WithTimeout(runCtx, time.Minute)
	defer cancel()
	r := ev.Request
	if r.ID == "" {
		r.ID = ev.RequestID
	}
	p.mu.Lock()
	msg, posted := p.st.Messages[r.ID]
	p.mu.Unlock()
	switch {
	case !posted && r.State == "PENDING":
		var ch, ts string
		err := p.retry(ctx, func() (err error) {
			ch, ts, err = p.slack.PostMessageContext(ctx, p.cfg.Channel,
				slack.MsgOptionText(summary(r), false), slack.MsgOptionBlocks(blocks(r)...))
			return err
		})
		if err != nil {
			p.log.Error("post request to Slack", "request", r.ID, "err", err)
		} else {
			msg, posted = message{Channel: ch, TS: ts}, true
			p.log.Info("posted request to Slack", "request", r.ID, "channel", ch, "ts", ts)
		}
	case posted:
		p.update(ctx, msg, r)
	}
	// Only requesters whose request this plugin relayed hear the outcome, so
	// a first start replaying old history sends no stale messages.
	switch ev.Event {
	case "approved", "denied", "expired":
		if posted && r.State == strings.ToUpper(ev.Event) {
			p.tellRequester(ctx, r)
		}
	}
	if err := runCtx.Err(); err != nil {
		return fmt.Errorf("handle event %d: %w", ev.ID, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if posted && !final(r.State) {
		p.st.Messages[r.ID] = msg
	} else {
		delete(p.st.Messages, r.ID)
	}
	p.st.LastEventID = ev.ID
	if err := p.st.save(p.cfg.StateFile); err != nil {
		// The event is handled; only a restart would see it again.
		p.log.Error("save state", "err", err)
	}
	return nil
}

func (p *Plugin) update(ctx context.Context, msg message, r apiclient.Request) {
	err := p.retry(ctx, func() error {
		_, _, _, err := p.slack.UpdateMessageContext(ctx, msg.Channel, msg.TS,
			slack.MsgOptionText(summary(r), false), slack.MsgOptionBlocks(blocks(r)...))
		return err
	})
	if err != nil {
		p.log.Error("update Slack message", "request", r.ID, "err", err)
	}
}

// retry runs call up to 4 times while Slack rate-limits it, is unavailable
// or cannot be reached; an answer like channel_not_found is final.
func (p *Plugin) retry(ctx context.Context, call func() error) error {
	wait := p.retryWait
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil || attempt == 4 {
			return err
		}
		var rl *slack.RateLimitedError
		var se slack.SlackErrorResponse
		switch {
		case errors.As(err, &rl):
			wait = max(wait, rl.RetryAfter)
		case errors.As(err, &se) && se.Err != "internal_error" && se.Err != "fatal_error" && se.Err != "service_unavailable" && se.Err != "request_timeout":
			return err
		}
		p.log.Warn("Slack call failed; retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// tellRequester sends the requester a direct message with the outcome,
// when their Slack account can be found by e-mail.
func (p *Plugin) tellRequester(ctx context.Context, r apiclient.Request) {
	email := p.cfg.requesterEmail(r.User)
	if email == "" {
		p.log.Info("requester has no known e-mail; no direct message", "request", r.ID, "user", r.User)
		return
	}
	u, err := p.slack.GetUserByEmailContext(ctx, email)
	if err != nil {
		p.log.Warn("find requester in Slack", "request", r.ID, "email", email, "err", err)
		return
	}
	text := fmt.Sprintf("Your Gatehouse request %s for %s is *%s*", esc(r.ID), esc(strings.Join(r.Roles, ", ")), esc(r.State))
	if r.StateBy != "" {
		text += " by " + esc(r.StateBy)
	}
	if r.StateReason != "" {
		text += ": " + esc(r.StateReason)
	}
	// Posting to a user id delivers to the app's direct message with them.
	if _, _, err := p.slack.PostMessageContext(ctx, u.ID, slack.MsgOptionText(text, false)); err != nil {
		p.log.Warn("tell requester in Slack", "request", r.ID, "err", err)
	}
}

// handleInteraction verifies a click's signature, answers Slack at once and
// submits the review in the background (Slack wants an answer within 3 s).
func (p *Plugin) handleInteraction(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("X-Slack-Signature")
	if err := VerifySignature(p.cfg.SigningSecret, r.Header.Get("X-Slack-Request-Timestamp"), sig, body, p.now()); err != nil {
		p.log.Warn("refused Slack interaction", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(formValue(body, "payload")), &cb); err != nil {
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	if cb.Type == slack.InteractionTypeViewSubmission && cb.View.CallbackID == reasonCallback {
		p.handleReasonSubmission(w, sig, cb)
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	if !p.firstSight(sig, cb.TriggerID) {
		p.log.Info("ignored a replayed Slack interaction", "user", cb.User.ID)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK)
	act := cb.ActionCallback.BlockActions[0]
	channel := cb.Container.ChannelID
	if channel == "" {
		channel = cb.Channel.ID
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	p.clicks.Add(1)
	go func() {
		defer p.clicks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.click(ctx, cb.User.ID, cb.TriggerID, act.ActionID, act.Value, message{Channel: channel, TS: ts})
	}()
}

// handleReasonSubmission takes the reason typed into the modal click opened
// and submits the review in the background. The reviewer is the Slack user
// who submitted (from Slack's signed payload), mapped by e-mail again; the
// modal's metadata only says which request and which verdict.
func (p *Plugin) handleReasonSubmission(w http.ResponseWriter, sig string, cb slack.InteractionCallback) {
	var meta reasonMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil || meta.Request == "" {
		http.Error(w, "malformed view metadata", http.StatusBadRequest)
		return
	}
	reason := ""
	if cb.View.State != nil {
		reason = strings.TrimSpace(cb.View.State.Values[reasonBlock][reasonAction].Value)
	}
	if reason == "" {
		// Slack shows this under the field and keeps the modal open.
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"response_action": "errors",
			"errors": map[string]string{reasonBlock: "A reason is required to review this request."}})
		return
	}
	// Only a submission that will be acted on counts as seen: the person
	// may submit again after an empty reason was sent back.
	if !p.firstSight(sig, "view:"+cb.View.ID) {
		p.log.Info("ignored a replayed Slack view submission", "user", cb.User.ID)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK) // an empty answer closes the modal
	p.clicks.Add(1)
	go func() {
		defer p.clicks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		msg := message{Channel: meta.Channel, TS: meta.TS}
		who, _, ok := p.reviewer(ctx, cb.User.ID, msg)
		if !ok {
			return
		}
		p.submit(ctx, cb.User.ID, who, meta.Request, meta.Approve, reason, msg)
	}()
}

// firstSight records a click and reports whether it is new. Entries older
// than MaxSkew are forgotten: their timestamps are refused anyway.
func (p *Plugin) firstSight(keys ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k, t := range p.seen {
		if now.Sub(t) > 2*MaxSkew {
			delete(p.seen, k)
		}
	}
	for _, k := range keys {
		if _, dup := p.seen[k]; k != "" && dup {
			return false
		}
	}
	for _, k := range keys {
		if k != "" {
			p.seen[k] = now
		}
	}
	return true
}

// click handles a press of Approve or Deny by the Slack user slackUser on
// request id: a person the bastion says may not review it now gets the
// one-line refusal at once; otherwise, when a requested role asks reviewers
// for a reason, it opens a modal for one (views.open with the click's
// trigger id, which Slack honours for three seconds), else it submits the
// review at once.
func (p *Plugin) click(ctx context.Context, slackUser, triggerID, action, id string, msg message) {
	var approve bool
	switch action {
	case actionApprove:
		approve = true
	case actionDeny:
	default:
		return
	}
	who, name, ok := p.reviewer(ctx, slackUser, msg)
	if !ok {
		return
	}
	// Ask the bastion first, so someone who may not review is told at the
	// click rather than after typing a reason; the submission is checked
	// again, as things may change in between.
	check, err := p.api.MayReview(ctx, id, who, &approve)
	if err != nil {
		p.refuseAPI(ctx, slackUser, who, id, msg, err)
		return
	}
	if !check.May {
		p.log.Info("review refused", "request", id, "user", who, "slack_user", slackUser, "err", check.Why)
		p.refuse(ctx, slackUser, msg, check.Why)
		return
	}
	req := check.Request
	if req.ReviewReasonRequired {
		if _, err := p.slack.OpenViewContext(ctx, triggerID, reasonModal(req, approve, msg)); err != nil {
			p.log.Warn("open the reason dialog in Slack", "request", id, "user", who, "err", err)
			p.refuse(ctx, slackUser, msg, "this request needs a reason and the dialog asking for it could not be opened; click again")
			return
		}
		p.log.Info("asked for a review reason", "request", id, "user", who, "slack_user", slackUser)
		return
	}
	reason := "denied in Slack by " + name
	if approve {
		reason = "approved in Slack by " + name
	}
	p.submit(ctx, slackUser, who, id, approve, reason, msg)
}

// reviewer maps the Slack user to a Gatehouse user by e-mail; when that
// fails it tells them so (ephemeral) and reports !ok.
func (p *Plugin) reviewer(ctx context.Context, slackUser string, msg message) (who, name string, ok bool) {
	u, err := p.slack.GetUserInfoContext(ctx, slackUser)
	if err != nil {
		p.log.Warn("look up Slack user", "user", slackUser, "err", err)
		p.refuse(ctx, slackUser, msg, "cannot look up your Slack account, so the review was not submitted")
		return "", "", false
	}
	who, err = p.cfg.gatehouseUser(u.Profile.Email)
	if err != nil {
		p.refuse(ctx, slackUser, msg, err.Error())
		return "", "", false
	}
	name = u.RealName
	if name == "" {
		name = u.Name
	}
	return who, name, true
}

// submit sends who's review of request id on their behalf and updates the
// message; a refusal reaches the Slack user as one ephemeral line.
func (p *Plugin) submit(ctx context.Context, slackUser, who, id string, approve bool, reason string, msg message) {
	opts := apiclient.ReviewOptions{OnBehalfOf: who, Reason: reason}
	review := p.api.Deny
	if approve {
		review = p.api.Approve
	}
	req, err := review(ctx, id, opts)
	if err != nil {
		p.refuseAPI(ctx, slackUser, who, id, msg, err)
		return
	}
	p.log.Info("review submitted", "request", id, "user", who, "slack_user", slackUser, "approve", approve, "state", req.State)
	if msg.Channel != "" && msg.TS != "" {
		p.update(ctx, msg, req)
	}
}

// refuse tells the Slack user one line only they see.
func (p *Plugin) refuse(ctx context.Context, slackUser string, msg message, text string) {
	if _, err := p.slack.PostEphemeralContext(ctx, msg.Channel, slackUser, slack.MsgOptionText("Gatehouse: "+esc(text), false)); err != nil {
		p.log.Warn("send refusal to Slack", "user", slackUser, "err", err)
	}
}

// refuseAPI passes the bastion's one-line refusal on, or says it could not
// be reached.
func (p *Plugin) refuseAPI(ctx context.Context, slackUser, who, id string, msg message, err error) {
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) {
		p.log.Info("review refused", "request", id, "user", who, "slack_user", slackUser, "err", apiErr.Message)
		p.refuse(ctx, slackUser, msg, apiErr.Message)
		return
	}
	p.log.Error("submit review", "request", id, "user", who, "err", err)
	p.refuse(ctx, slackUser, msg, "the bastion could not be reached; try again")
}

// formValue returns field of an x-www-form-urlencoded body.
func formValue(body []byte, field string) string {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return v.Get(field)
}
