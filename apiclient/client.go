package apiclient

import (
	"bytes"
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

// Request is an access request as the API shows it.
type Request struct {
	ID          string        `json:"id"`
	User        string        `json:"user"`
	Roles       []string      `json:"roles"`
	Reason      string        `json:"reason"`
	Duration    time.Duration `json:"duration"`
	State       string        `json:"state"` // PENDING, APPROVED, DENIED, EXPIRED, CANCELLED, REVOKED
	Created     time.Time     `json:"created"`
	Expires     time.Time     `json:"expires"`
	GrantStart  *time.Time    `json:"grant_start,omitempty"`
	GrantEnd    *time.Time    `json:"grant_end,omitempty"`
	Reviews     []Review      `json:"reviews,omitempty"`
	StateReason string        `json:"state_reason,omitempty"`
	StateBy     string        `json:"state_by,omitempty"`
	Updated     time.Time     `json:"updated"`
	// CanCancel and CanDrop say what the caller may do to its own request
	// (list and show only).
	CanCancel bool `json:"can_cancel,omitempty"`
	CanDrop   bool `json:"can_drop,omitempty"`
	// ReviewReasonRequired says an approval or denial must give a reason
	// (list and show only).
	ReviewReasonRequired bool `json:"review_reason_required,omitempty"`
	// Requested are the roles asked for when reviewers approved only some
	// (Roles then holds the granted ones).
	Requested []string `json:"requested,omitempty"`
	// Node (or Labels) and Login make a resource request: one login on one
	// node, or on every node whose labels hold all of Labels' pairs.
	Node       string            `json:"node,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Login      string            `json:"login,omitempty"`
	ForSession bool              `json:"for_session,omitempty"`
	Session    string            `json:"session,omitempty"`
	// Approval is the request's approval rule and its progress.
	Approval Approval `json:"approval"`
}

// Approval explains a request's approval rule: Rule in words, Status such as
// "needs 1 more approval from manager", Met once every requested role's
// approvals meet it.
type Approval struct {
	Rule   string `json:"rule"`
	Status string `json:"status"`
	Met    bool   `json:"met"`
}

// Review is one reviewer's verdict; Via names the bot that relayed it.
type Review struct {
	Reviewer string    `json:"reviewer"`
	Via      string    `json:"via,omitempty"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
	Roles    []string  `json:"roles,omitempty"` // an approval of only these requested roles
}

// Me is the caller as the bastion sees it now.
type Me struct {
	User        string          `json:"user"`
	Roles       []string        `json:"roles"`
	BaseRoles   []string        `json:"base_roles"`
	Locked      bool            `json:"locked"`
	Permissions map[string]bool `json:"permissions"`
}

// Error is a refusal from the server: its one-line message and status.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Client calls one bastion's API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
	csrf  string
	// retryMin and retryMax bound Watch's wait between reconnects.
	retryMin, retryMax time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken authenticates every call with a bot token.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sets the HTTP client, e.g. one whose cookie jar holds a
// browser session. The default has no overall timeout (Watch streams last)
// but bounds connecting and waiting for response headers.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithCSRFToken sends the browser session's CSRF token on calls that change
// state; not needed with a bot token.
func WithCSRFToken(token string) Option { return func(c *Client) { c.csrf = token } }

// WithRetry bounds the wait between Watch's reconnects [1s, 30s].
func WithRetry(min, max time.Duration) Option {
	return func(c *Client) { c.retryMin, c.retryMax = min, max }
}

// New returns a client of the bastion whose web address is baseURL
// (web.public_url, e.g. https://bastion.example.com).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bastion URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, retryMin: time.Second, retryMax: 30 * time.Second}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	return c, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" && method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	return req, nil
}

// call does one JSON round trip; a non-2xx answer is an *Error.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return errorOf(res.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// errorOf turns a refusal's body into an *Error, keeping the server's one
// line when it sent {"error": ...}.
func errorOf(status int, body []byte) *Error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &Error{Status: status, Message: e.Error}
	}
	msg := strings.TrimSpace(string(body))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" || len(msg) > 300 {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// Me returns the caller's identity, roles and permissions now.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var m Me
	err := c.call(ctx, http.MethodGet, "/api/me", nil, nil, &m)
	return m, err
}

// ListOptions filter Requests; zero values mean the server's defaults.
type ListOptions struct {
	// All lists every request the caller may see (its own and those it may
	// review) instead of its own only.
	All    bool
	User   string   // requests of this requester
	States []string // e.g. PENDING, APPROVED
	Role   string   // requests asking for this role
	Limit  int      // 1..1000
}

// Requests lists requests, newest first.
func (c *Client) Requests(ctx context.Context, o ListOptions) ([]Request, error) {
	q := url.Values{}
	if o.All {
		q.Set("scope", "all")
	}
	if o.User != "" {
		q.Set("user", o.User)
	}
	if len(o.States) > 0 {
		q.Set("state", strings.Join(o.States, ","))
	}
	if o.Role != "" {
		q.Set("role", o.Role)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out struct {
		Requests []Request `json:"requests"`
	}
	err := c.call(ctx, http.MethodGet, "/api/requests", q, nil, &out)
	return out.Requests, err
}

// ReviewQueue lists the pending requests the caller may review and has not.
func (c *Client) ReviewQueue(ctx context.Context) ([]Request, error) {
	var out struct {
		Requests []Request `json:"requests"`
	}
	err := c.call(ctx, http.MethodGet, "/api/review", nil, nil, &out)
	return out.Requests, err
}

// Request returns one request with its reviews.
func (c *Client) Request(ctx context.Context, id string) (Request, error) {
	var r Request
	err := c.call(ctx, http.MethodGet, "/api/requests/"+url.PathEscape(id), nil, nil, &r)
	return r, err
}

// ReviewCheck is the bastion's answer to MayReview: the request, and whether
// the person may review it now; Why is the one line when not.
type ReviewCheck struct {
	Request Request
	May     bool
	Why     string
}

// MayReview asks, without submitting anything, whether person may review
// request id now; approve, when not nil, asks about that verdict only (an
// approval may not count where a denial would). The caller needs
// review_on_behalf. The review is checked again when submitted.
func (c *Client) MayReview(ctx context.Context, id, person string, approve *bool) (ReviewCheck, error) {
	q := url.Values{"on_behalf_of": {person}}
	if approve != nil {
		q.Set("verdict", "deny")
		if *approve {
			q.Set("verdict", "approve")
		}
	}
	var out struct {
		Request
		CanReview    *bool  `json:"can_review"`
		CannotReview string `json:"cannot_review"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/requests/"+url.PathEscape(id), q, nil, &out); err != nil {
		return ReviewCheck{}, err
	}
	if out.CanReview == nil {
		// A bastion that predates the check: let the review itself decide.
		return ReviewCheck{Request: out.Request, May: true}, nil
	}
	return ReviewCheck{Request: out.Request, May: *out.CanReview, Why: out.CannotReview}, nil
}

// NewRequest is what Create sends.
type NewRequest struct {
	Roles []string `json:"roles,omitempty"`
	// Node (or Labels) and Login, instead of Roles, ask for one login on
	// one node, or on every node whose labels hold all of Labels' pairs.
	Node       string            `json:"node,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Login      string            `json:"login,omitempty"`
	ForSession bool              `json:"for_session,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	// Duration like "2h"; empty takes the default (1h, capped by policy).
	Duration string `json:"duration,omitempty"`
}

// Create files a request for the caller itself.
func (c *Client) Create(ctx context.Context, nr NewRequest) (Request, error) {
	var r Request
	err := c.call(ctx, http.MethodPost, "/api/requests", nil, nr, &r)
	return r, err
}

// ReviewOptions go with Approve and Deny.
type ReviewOptions struct {
	Reason string
	// OnBehalfOf submits the review as this person's (the caller needs
	// review_on_behalf; the person's own rights decide).
	OnBehalfOf string
	// Roles, on Approve, approve only these of the requested roles.
	Roles []string
}

type actionBody struct {
	Reason     string   `json:"reason,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	OnBehalfOf string   `json:"on_behalf_of,omitempty"`
}

// Approve approves request id.
func (c *Client) Approve(ctx context.Context, id string, o ReviewOptions) (Request, error) {
	return c.action(ctx, id, "approve", actionBody{Reason: o.Reason, Roles: o.Roles, OnBehalfOf: o.OnBehalfOf})
}

// Deny denies request id.
func (c *Client) Deny(ctx context.Context, id string, o ReviewOptions) (Request, error) {
	return c.action(ctx, id, "deny", actionBody{Reason: o.Reason, OnBehalfOf: o.OnBehalfOf})
}

// Cancel withdraws the caller's own pending request.
func (c *Client) Cancel(ctx context.Context, id string) (Request, error) {
	return c.action(ctx, id, "cancel", actionBody{})
}

// Drop gives up the caller's own active grant now.
func (c *Client) Drop(ctx context.Context, id, reason string) (Request, error) {
	return c.action(ctx, id, "drop", actionBody{Reason: reason})
}

func (c *Client) action(ctx context.Context, id, action string, body actionBody) (Request, error) {
	var r Request
	err := c.call(ctx, http.MethodPost, "/api/requests/"+url.PathEscape(id)+"/"+action, nil, body, &r)
	return r, err
}

// IsPermanent reports whether err is a refusal that retrying cannot fix
// (bad input, bad credentials, no right): Watch stops on these.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}
