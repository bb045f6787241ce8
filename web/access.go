package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

var funcs = template.FuncMap{
	"iso": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		case *time.Time:
			if t == nil {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		return ""
	},
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"dur": policy.FormatDuration,
	"join": func(s []string) string {
		return strings.Join(s, ", ")
	},
	"lower": strings.ToLower,
}

// grantView is one active grant with its end.
type grantView struct {
	ID    string
	Roles []string
	End   time.Time
	// Node (or Labels) and Login are set for a resource grant: that login
	// there only.
	Node       string            `json:",omitempty"`
	Labels     map[string]string `json:",omitempty"`
	Login      string            `json:",omitempty"`
	ForSession bool              `json:",omitempty"`
}

// Where names the nodes of a resource grant ("" for a whole role), as
// storage.Request.Where does.
func (g grantView) Where() string { return storage.Request{Node: g.Node, Labels: g.Labels}.Where() }

// nodeView is one node the viewer may log in to now.
type nodeView struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	Logins []string          `json:"logins"`
	SSH    []string          `json:"ssh"`
}

// me is the home page and /api/me.
type me struct {
	User        string              `json:"user"`
	Roles       []string            `json:"roles"`
	Base        []string            `json:"base_roles"`
	Grants      []grantView         `json:"grants"`
	Locked      bool                `json:"locked"`
	Permissions map[string]bool     `json:"permissions"`
	Nodes       []nodeView          `json:"nodes"`
	Sessions    []storage.Session   `json:"recent_sessions"`
	Claims      map[string][]string `json:"-"`
}

func (h *Handler) me(r *http.Request, v *viewer) (me, error) {
	e := v.Eff
	m := me{User: v.User(), Roles: e.Subject.Roles, Base: e.Base, Locked: e.Locked(), Grants: []grantView{},
		Nodes: []nodeView{}, Permissions: map[string]bool{
			"sessions:list": v.CanList, "sessions:play": v.CanPlay, "sessions:join": v.CanJoin,
			"sessions:terminate": v.CanTerminate, "audit:read": v.CanAudit, "locks:manage": v.CanLocks,
			"review": v.CanReview, "request": v.CanRequest,
		}}
	if m.Roles == nil {
		m.Roles = []string{}
	}
	for _, g := range e.Grants {
		if g.GrantEnd != nil {
			m.Grants = append(m.Grants, grantView{ID: g.ID, Roles: g.Roles, End: *g.GrantEnd, Node: g.Node, Labels: g.Labels, Login: g.Login, ForSession: g.ForSession})
		}
	}
	slices.SortFunc(m.Grants, func(a, b grantView) int { return a.End.Compare(b.End) })
	target := sshTarget(h.opt.Config)
	for _, n := range h.opt.Config.Nodes {
		logins := e.Logins(policy.Node{Name: n.Name, Labels: n.Labels})
		if len(logins) == 0 {
			continue
		}
		nv := nodeView{Node: n.Name, Labels: n.Labels, Logins: logins}
		for _, l := range logins {
			nv.SSH = append(nv.SSH, "ssh -J "+v.User()+"@"+target+" "+l+"@"+n.Name)
		}
		m.Nodes = append(m.Nodes, nv)
	}
	var err error
	m.Sessions, err = h.opt.Store.ListSessions(r.Context(), storage.SessionFilter{User: v.User(), Limit: 10})
	if m.Sessions == nil {
		m.Sessions = []storage.Session{}
	}
	return m, err
}

type homePage struct {
	*viewer
	Me me
}

func (h *Handler) homePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	m, err := h.me(r, v)
	if err != nil {
		h.internal(w, r, v, "list your sessions", err)
		return
	}
	h.render(w, r, http.StatusOK, "home", homePage{viewer: v, Me: m})
}

func (h *Handler) apiMe(w http.ResponseWriter, r *http.Request, v *viewer) {
	m, err := h.me(r, v)
	if err != nil {
		h.internal(w, r, v, "list your sessions", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// requestView is a request with what the viewer may do to it now.
type requestView struct {
	storage.Request
	CanCancel bool `json:"can_cancel"`
	CanDrop   bool `json:"can_drop"`
	// ReviewReasonRequired says a review (approve or deny) must give a
	// reason (a requested role sets options.review_reason_required), so a
	// plugin asks its user for one before submitting.
	ReviewReasonRequired bool `json:"review_reason_required"`
	// Approval is the request's approval rule and how far it is ("needs 1
	// more approval from manager").
	Approval access.RuleStatus `json:"approval"`
	// CanReview and CannotReview answer GET /api/requests/ID?on_behalf_of=
	// only: whether that person may review the request now and, if not,
	// the one line why, so a plugin refuses a click before it asks her for
	// a reason.
	CanReview    *bool  `json:"can_review,omitempty"`
	CannotReview string `json:"cannot_review,omitempty"`
}

type requestsPage struct {
	*viewer
	Requestable    []string
	MaxDuration    time.Duration
	ReasonRequired bool
	Requests       []requestView
	Form           requestForm
}

// requestForm is what the request form shows: the defaults, or what was
// typed with the refusal when filing it failed.
type requestForm struct {
	Roles      map[string]bool
	Duration   string
	Reason     string
	Node       string
	Labels     string // KEY=VALUE[,KEY=VALUE], as typed
	Login      string
	ForSession bool
	Error      string
}

func (h *Handler) myRequests(r *http.Request, v *viewer) ([]requestView, error) {
	list, err := h.opt.Access.List(r.Context(), v.Eff, storage.RequestFilter{User: v.User(), Limit: 50})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]requestView, 0, len(list))
	for _, q := range list {
		out = append(out, viewOf(q, v, now))
	}
	return out, nil
}

func (h *Handler) requestsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	// The form starts at the policy's default for what the viewer may
	// request, the same default a request naming no duration gets.
	roles, _, _ := v.Pol.Requestable(v.Eff.Subject)
	form := requestForm{Duration: policy.FormatDuration(policy.DefaultRequestDuration)}
	if d, ok := v.Pol.DefaultRequestDuration(v.Eff.Subject, roles); ok {
		form.Duration = policy.FormatDuration(d)
	}
	h.renderRequests(w, r, v, http.StatusOK, form)
}

func (h *Handler) renderRequests(w http.ResponseWriter, r *http.Request, v *viewer, status int, form requestForm) {
	list, err := h.myRequests(r, v)
	if err != nil {
		h.internal(w, r, v, "list your requests", err)
		return
	}
	p := requestsPage{viewer: v, Requests: list, Form: form}
	p.Requestable, p.MaxDuration, p.ReasonRequired = v.Pol.Requestable(v.Eff.Subject)
	h.render(w, r, status, "requests", p)
}

// requestLink is where notifications point (/requests/ID): reviewers land
// on their queue while the request waits, requesters on their list. A
// decided request of someone else is in neither, so it gets a page of its
// own: the decision notice links here, and the reviewer should see which
// rule the decision met or missed.
func (h *Handler) requestLink(w http.ResponseWriter, r *http.Request, v *viewer) {
	id := r.PathValue("id")
	q, err := h.opt.Access.Get(r.Context(), v.Eff, id)
	if err != nil {
		h.refused(w, r, v, "look up request", err)
		return
	}
	switch {
	case q.User == v.User():
		http.Redirect(w, r, "/requests#req-"+q.ID, http.StatusSeeOther)
	case q.State == storage.StatePending:
		http.Redirect(w, r, "/review#req-"+q.ID, http.StatusSeeOther)
	default:
		h.render(w, r, http.StatusOK, "request", requestPage{viewer: v, Request: viewOf(q, v, time.Now())})
	}
}

// requestPage shows one decided request to someone other than its owner.
type requestPage struct {
	*viewer
	Request requestView
}

func (h *Handler) apiRequests(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	f, role, err := requestFilter(q, v)
	if err != nil {
		h.fail(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	var list []storage.Request
	if f.User == v.User() && len(f.States) == 0 && role == "" && q.Get("limit") == "" {
		// The page's own list, unchanged: your 50 newest.
		f.Limit = 50
	}
	limit := f.Limit
	if role != "" {
		f.Limit = 0 // the role filter runs here, after the store's limit would have cut
	}
	list, err = h.opt.Access.List(r.Context(), v.Eff, f)
	if err != nil {
		h.internal(w, r, v, "list requests", err)
		return
	}
	now := time.Now()
	out := make([]requestView, 0, len(list))
	for _, rq := range list {
		if role != "" && !slices.Contains(rq.Roles, role) {
			continue
		}
		out = append(out, viewOf(rq, v, now))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

// maxListLimit caps one GET /api/requests answer.
const maxListLimit = 1000

// requestFilter reads GET /api/requests' query: scope=mine (the default,
// your own requests) or all (every request you may see), user (whose
// requests; implies scope=all), state (comma-separated), role, limit.
func requestFilter(q url.Values, v *viewer) (storage.RequestFilter, string, error) {
	var f storage.RequestFilter
	switch scope := q.Get("scope"); scope {
	case "", "mine":
		f.User = v.User()
	case "all":
	default:
		return f, "", fmt.Errorf("scope must be mine or all, not %q", scope)
	}
	if u := strings.TrimSpace(q.Get("user")); u != "" {
		f.User = u
	}
	for _, st := range strings.Split(q.Get("state"), ",") {
		st = strings.ToUpper(strings.TrimSpace(st))
		if st == "" {
			continue
		}
		switch st {
		case storage.StatePending, storage.StateApproved, storage.StateDenied, storage.StateExpired, storage.StateCancelled, storage.StateRevoked:
			f.States = append(f.States, st)
		default:
			return f, "", fmt.Errorf("unknown state %q (want pending, approved, denied, expired, cancelled or revoked)", strings.ToLower(st))
		}
	}
	f.Limit = 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListLimit {
			return f, "", fmt.Errorf("limit must be a number from 1 to %d", maxListLimit)
		}
		f.Limit = n
	}
	return f, strings.TrimSpace(q.Get("role")), nil
}

// viewOf is q with what v may do to it now.
func viewOf(q storage.Request, v *viewer, now time.Time) requestView {
	rv := requestView{Request: q, Approval: access.Explain(v.Pol, q)}
	own := q.User == v.User()
	rv.CanCancel = own && q.State == storage.StatePending && now.Before(q.Expires)
	rv.CanDrop = own && q.State == storage.StateApproved && q.GrantEnd != nil && now.Before(*q.GrantEnd)
	if v.Pol != nil {
		_, rv.ReviewReasonRequired = v.Pol.ReviewReasonRequired(q.Roles)
	}
	return rv
}

// apiRequest shows one request the viewer may see; any other id is 404.
// With on_behalf_of (a caller with review_on_behalf) it also says whether
// that person may review it now, optionally for one verdict.
func (h *Handler) apiRequest(w http.ResponseWriter, r *http.Request, v *viewer) {
	id, query := r.PathValue("id"), r.URL.Query()
	if !query.Has("on_behalf_of") {
		if query.Has("verdict") {
			h.fail(w, r, v, http.StatusBadRequest, "verdict applies with on_behalf_of only")
			return
		}
		q, err := h.opt.Access.Get(r.Context(), v.Eff, id)
		if err != nil {
			h.refused(w, r, v, "look up request", err)
			return
		}
		writeJSON(w, http.StatusOK, viewOf(q, v, time.Now()))
		return
	}
	var approve *bool
	switch verdict := query.Get("verdict"); verdict {
	case "":
	case "approve", "deny":
		approve = new(bool)
		*approve = verdict == "approve"
	default:
		h.fail(w, r, v, http.StatusBadRequest, fmt.Sprintf("verdict must be approve or deny, not %q", verdict))
		return
	}
	q, cannot, err := h.opt.Access.CanReviewOnBehalf(r.Context(), v.Eff, query.Get("on_behalf_of"), id, approve)
	if err != nil {
		h.refused(w, r, v, "check a review of request", err)
		return
	}
	rv := viewOf(q, v, time.Now())
	can := cannot == ""
	rv.CanReview, rv.CannotReview = &can, cannot
	writeJSON(w, http.StatusOK, rv)
}

// createRequest files a request from form or JSON fields: roles, or node
// (or labels) and login for a resource request.
func (h *Handler) createRequest(r *http.Request, v *viewer, in createJSON) (storage.Request, error) {
	d, err := parseDuration(in.Duration)
	if err != nil {
		return storage.Request{}, refusal(err.Error())
	}
	ask := access.Ask{Roles: in.Roles, Reason: in.Reason, Duration: d, Login: in.Login, ForSession: in.ForSession}
	if node := strings.TrimSpace(in.Node); node != "" {
		// An unknown node has no labels, so no role allows anything on
		// it: the refusal does not tell which nodes exist.
		n := policy.Node{Name: node}
		if cn, ok := h.opt.Config.Node(node); ok {
			n.Labels = cn.Labels
		}
		ask.Node = &n
	}
	if len(in.Labels) > 0 {
		// Checked against every node: the selector's roles must allow the
		// login on all the nodes it matches, not only those v may reach.
		ask.Labels = in.Labels
		for _, cn := range h.opt.Config.Nodes {
			ask.Nodes = append(ask.Nodes, policy.Node{Name: cn.Name, Labels: cn.Labels})
		}
	}
	return h.opt.Access.Ask(r.Context(), v.Eff, ask)
}

func (h *Handler) formCreateRequest(w http.ResponseWriter, r *http.Request, v *viewer) {
	roles := r.PostForm["roles"]
	var split []string
	for _, s := range roles {
		split = append(split, strings.Split(s, ",")...)
	}
	in := createJSON{Roles: split, Reason: r.PostFormValue("reason"), Duration: r.PostFormValue("duration"),
		Node: r.PostFormValue("node"), Login: r.PostFormValue("login"), ForSession: r.PostFormValue("for_session") != ""}
	labels := strings.TrimSpace(r.PostFormValue("labels"))
	var err error
	if labels != "" {
		in.Labels, err = policy.ParseLabels(labels)
	}
	if strings.TrimSpace(in.Node) != "" || labels != "" {
		in.Roles = nil // the role boxes are for whole-role requests
	}
	var q storage.Request
	if err != nil {
		err = refusal(err.Error())
	} else {
		q, err = h.createRequest(r, v, in)
	}
	var ref *access.Refusal
	if errors.As(err, &ref) {
		// The form again, with the refusal and everything typed, rather
		// than a redirect that would lose it.
		form := requestForm{Roles: map[string]bool{}, Duration: in.Duration, Reason: in.Reason, Node: in.Node, Labels: labels, Login: in.Login,
			ForSession: in.ForSession, Error: ref.Msg}
		for _, s := range split {
			form.Roles[strings.TrimSpace(s)] = true
		}
		h.renderRequests(w, r, v, http.StatusBadRequest, form)
		return
	}
	if err != nil {
		h.refused(w, r, v, "create request", err)
		return
	}
	what := strings.Join(q.Roles, ", ")
	if q.IsResource() {
		what = "login " + q.Login + " on " + q.Where() + " (role " + what + ")"
	}
	h.redirect(w, r, "/requests", "Requested "+what+" for "+policy.FormatDuration(q.Duration)+" (request "+q.ID+"); reviewers have been told.")
}

// createJSON is the body of POST /api/requests: roles, or node (or
// labels) and login for a resource request.
type createJSON struct {
	Roles      []string          `json:"roles"`
	Reason     string            `json:"reason"`
	Duration   string            `json:"duration"`
	Node       string            `json:"node"`
	Labels     map[string]string `json:"labels"`
	Login      string            `json:"login"`
	ForSession bool              `json:"for_session"`
}

func (h *Handler) apiCreateRequest(w http.ResponseWriter, r *http.Request, v *viewer) {
	var in createJSON
	if err := decodeJSON(r, &in); err != nil {
		h.fail(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	q, err := h.createRequest(r, v, in)
	if err != nil {
		h.refused(w, r, v, "create request", err)
		return
	}
	writeJSON(w, http.StatusCreated, viewOf(q, v, time.Now()))
}

// requestAction approves, denies, cancels or drops request id.
// roles, for an approval, are the requested roles it approves (none: all).
func (h *Handler) requestAction(r *http.Request, v *viewer, id, action, reason string, roles []string) (storage.Request, string, error) {
	ctx := r.Context()
	if len(roles) > 0 && action != "approve" {
		return storage.Request{}, "", refusal("roles apply to approvals only")
	}
	switch action {
	case "approve":
		q, err := h.opt.Access.ReviewWith(ctx, v.Eff, id, access.ReviewVerdict{Approve: true, Reason: reason, Roles: roles})
		msg := "Approved request " + id + " (" + strings.ToLower(q.State) + ")."
		if len(roles) > 0 {
			msg = "Approved " + strings.Join(roles, ", ") + " of request " + id + " (" + strings.ToLower(q.State) + ")."
		}
		return q, msg, err
	case "deny":
		q, err := h.opt.Access.Review(ctx, v.Eff, id, false, reason)
		return q, "Denied request " + id + " (" + strings.ToLower(q.State) + ").", err
	case "cancel":
		q, err := h.opt.Access.Cancel(ctx, v.Eff, id)
		return q, "Cancelled request " + id + ".", err
	case "drop":
		// Dropping is revoking your own grant; Revoke lets only the
		// requester or a lock manager do it, but here we insist on the
		// requester: this button is for giving up access you hold.
		q, err := h.opt.Access.Get(ctx, v.Eff, id)
		if err != nil {
			return q, "", err
		}
		if q.User != v.User() {
			return q, "", refusal("you may only drop your own grants")
		}
		if reason == "" {
			reason = "dropped by requester"
		}
		q, err = h.opt.Access.Revoke(ctx, v.Eff, id, reason)
		return q, "Dropped grant " + id + "; its roles are gone now.", err
	}
	return storage.Request{}, "", notFoundRefusal("no such action " + action)
}

func (h *Handler) formRequestAction(w http.ResponseWriter, r *http.Request, v *viewer) {
	id, action := r.PathValue("id"), r.PathValue("action")
	all, ticked := r.PostFormValue("all_roles"), r.PostForm["roles"]
	if action == "approve" && all != "" && len(ticked) == 0 {
		h.refused(w, r, v, action+" request", refusal("tick at least one role to approve, or deny the request"))
		return
	}
	var roles []string
	if action == "approve" && len(ticked) < len(strings.Split(all, ",")) {
		roles = ticked
	}
	_, msg, err := h.requestAction(r, v, id, action, r.PostFormValue("reason"), roles)
	if err != nil {
		h.refused(w, r, v, action+" request", err)
		return
	}
	h.redirect(w, r, backTo(r), msg)
}

// actionJSON is the body of POST /api/requests/ID/ACTION; every field is
// optional.
type actionJSON struct {
	Reason string `json:"reason"`
	// Roles, on approve, approve only these of the requested roles.
	Roles []string `json:"roles"`
	// OnBehalfOf names the person whose review a plugin submits (approve
	// and deny only; the caller needs review_on_behalf).
	OnBehalfOf string `json:"on_behalf_of"`
}

func (h *Handler) apiRequestAction(w http.ResponseWriter, r *http.Request, v *viewer, action string) {
	var in actionJSON
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			h.fail(w, r, v, http.StatusBadRequest, err.Error())
			return
		}
	}
	id := r.PathValue("id")
	var q storage.Request
	var err error
	switch {
	case len(in.Roles) > 0 && action != "approve":
		h.fail(w, r, v, http.StatusBadRequest, "roles apply to approve only")
		return
	case in.OnBehalfOf != "" && (action == "approve" || action == "deny"):
		q, err = h.opt.Access.ReviewOnBehalfWith(r.Context(), v.Eff, in.OnBehalfOf, id, access.ReviewVerdict{Approve: action == "approve", Reason: in.Reason, Roles: in.Roles})
	case in.OnBehalfOf != "":
		h.fail(w, r, v, http.StatusBadRequest, "on_behalf_of applies to approve and deny only")
		return
	default:
		q, _, err = h.requestAction(r, v, id, action, in.Reason, in.Roles)
	}
	if err != nil {
		h.refused(w, r, v, action+" request", err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(q, v, time.Now()))
}

// reviewItem is a queued request with the reviews so far.
type reviewPage struct {
	*viewer
	Queue    []requestView
	Fragment bool
}

// queueViews is the review queue as the page and the API show it.
func queueViews(q []storage.Request, v *viewer) []requestView {
	now := time.Now()
	out := make([]requestView, 0, len(q))
	for _, r := range q {
		out = append(out, viewOf(r, v, now))
	}
	return out
}

func (h *Handler) reviewPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.CanReview {
		h.fail(w, r, v, http.StatusForbidden, "you may not review access requests (none of your roles reviews any role)")
		return
	}
	q, err := h.opt.Access.ReviewQueue(r.Context(), v.Eff)
	if err != nil {
		h.internal(w, r, v, "list the review queue", err)
		return
	}
	p := reviewPage{viewer: v, Queue: queueViews(q, v)}
	if r.URL.Query().Get("fragment") == "1" {
		// The queue alone, for the page's script to swap in when it
		// changes: the same template, so there is one way to draw it.
		var b strings.Builder
		if err := h.pages["review"].ExecuteTemplate(&b, "queue", p); err != nil {
			h.internal(w, r, v, "draw the review queue", err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	h.render(w, r, http.StatusOK, "review", p)
}

func (h *Handler) apiReview(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.CanReview {
		writeJSON(w, http.StatusOK, map[string]any{"requests": []storage.Request{}})
		return
	}
	q, err := h.opt.Access.ReviewQueue(r.Context(), v.Eff)
	if err != nil {
		h.internal(w, r, v, "list the review queue", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": queueViews(q, v)})
}
