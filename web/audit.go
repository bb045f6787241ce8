package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// auditPageSize is how many events one page shows.
const auditPageSize = 100

type auditFilter struct {
	Type   string
	User   string
	Since  string
	After  int64
	Before int64
}

// badFilter is a filter the user typed wrong: a 400 with the one line.
type badFilter struct{ msg string }

func (e badFilter) Error() string { return e.msg }

type auditPage struct {
	*viewer
	Filter auditFilter
	Events []storage.Event
	Next   int64 // Seq to continue from; 0 when this is the last page
	Verify *verifyResult
	Error  string // the filter's one-line error (the page answers 400)
}

// listAudit reads one page of events: oldest first after ?after= for the
// API (tools follow the chain forward), newest first before ?before= for
// the page (people look for what just happened).
func (h *Handler) listAudit(r *http.Request, newest bool) (auditFilter, []storage.Event, int64, error) {
	q := r.URL.Query()
	f := auditFilter{Type: strings.TrimSpace(q.Get("type")), User: strings.TrimSpace(q.Get("user")), Since: strings.TrimSpace(q.Get("since"))}
	ef := storage.EventFilter{Type: f.Type, User: f.User, Limit: auditPageSize + 1, Newest: newest}
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"after", &f.After}, {"before", &f.Before}} {
		if a := q.Get(b.name); a != "" {
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil || n < 0 {
				return f, nil, 0, badFilter{b.name + " must be an event sequence number"}
			}
			*b.dst = n
		}
	}
	ef.After, ef.Before = f.After, f.Before
	if f.Since != "" {
		t, err := audit.ParseSince(f.Since, time.Now())
		if err != nil {
			return f, nil, 0, badFilter{strings.Replace(err.Error(), "--since", "since", 1)}
		}
		ef.Since = t
	}
	evs, err := h.opt.Store.ListEvents(r.Context(), ef)
	if err != nil {
		return f, nil, 0, err
	}
	var next int64
	if len(evs) > auditPageSize {
		evs = evs[:auditPageSize]
		next = evs[len(evs)-1].Seq
	}
	if evs == nil {
		evs = []storage.Event{}
	}
	return f, evs, next, nil
}

func (h *Handler) auditDenied(w http.ResponseWriter, r *http.Request, v *viewer) bool {
	if v.CanAudit {
		return false
	}
	h.fail(w, r, v, http.StatusForbidden, "you may not read the audit log (no role of yours allows audit: read)")
	return true
}

func (h *Handler) lastVerification() *verifyResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastVerify == nil {
		return nil
	}
	c := *h.lastVerify
	return &c
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.auditDenied(w, r, v) {
		return
	}
	f, evs, next, err := h.listAudit(r, true)
	var bad badFilter
	if errors.As(err, &bad) {
		// Keep what was typed so one wrong field is one fix away.
		h.render(w, r, http.StatusBadRequest, "audit", auditPage{viewer: v, Filter: f, Error: bad.msg, Verify: h.lastVerification()})
		return
	}
	if err != nil {
		h.refused(w, r, v, "list audit events", err)
		return
	}
	h.render(w, r, http.StatusOK, "audit", auditPage{viewer: v, Filter: f, Events: evs, Next: next, Verify: h.lastVerification()})
}

func (h *Handler) apiAudit(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.auditDenied(w, r, v) {
		return
	}
	_, evs, next, err := h.listAudit(r, false)
	var bad badFilter
	if errors.As(err, &bad) {
		h.fail(w, r, v, http.StatusBadRequest, bad.msg)
		return
	}
	if err != nil {
		h.refused(w, r, v, "list audit events", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "next_after": next, "last_verification": h.lastVerification()})
}

// verify walks the whole chain now and keeps the result for the page.
func (h *Handler) verify(r *http.Request, v *viewer) verifyResult {
	rep, err := audit.Verify(r.Context(), h.opt.Store)
	res := verifyResult{Report: rep, Time: time.Now().UTC(), By: v.User()}
	outcome := "success"
	if err != nil {
		h.log.ErrorContext(r.Context(), "web: verify audit chain", "err", err)
		res.Error = "the audit log could not be read; see the server log"
		outcome = "error"
	} else if !rep.OK {
		outcome = "failure"
	}
	h.mu.Lock()
	h.lastVerify = &res
	h.mu.Unlock()
	h.auditEvent(r, v, audit.TypeAuditVerify, "audit", map[string]any{"ok": rep.OK, "events": rep.Events, "bad_seq": rep.BadSeq, "outcome": outcome, "via": "web"})
	return res
}

func (h *Handler) formVerify(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.auditDenied(w, r, v) {
		return
	}
	res := h.verify(r, v)
	msg := "Audit chain intact: " + strconv.FormatInt(res.Report.Events, 10) + " events verified."
	switch {
	case res.Error != "":
		msg = "!Verification failed: " + res.Error
	case !res.Report.OK:
		msg = "!Audit chain BROKEN at event " + strconv.FormatInt(res.Report.BadSeq, 10) + ": " + res.Report.Problem
	}
	h.redirect(w, r, "/audit", msg)
}

func (h *Handler) apiVerify(w http.ResponseWriter, r *http.Request, v *viewer) {
	if h.auditDenied(w, r, v) {
		return
	}
	writeJSON(w, http.StatusOK, h.verify(r, v))
}

type locksPage struct {
	*viewer
	Locks []storage.Lock
}

func (h *Handler) locksPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ls, err := h.opt.Access.Locks(r.Context(), v.Eff)
	if err != nil {
		h.refused(w, r, v, "list locks", err)
		return
	}
	h.render(w, r, http.StatusOK, "locks", locksPage{viewer: v, Locks: ls})
}

func (h *Handler) apiLocks(w http.ResponseWriter, r *http.Request, v *viewer) {
	ls, err := h.opt.Access.Locks(r.Context(), v.Eff)
	if err != nil {
		h.refused(w, r, v, "list locks", err)
		return
	}
	if ls == nil {
		ls = []storage.Lock{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"locks": ls})
}

func (h *Handler) lock(r *http.Request, v *viewer, user, reason, ttl string) (storage.Lock, error) {
	d, err := parseDuration(ttl)
	if err != nil {
		return storage.Lock{}, refusal(err.Error())
	}
	return h.opt.Access.Lock(r.Context(), v.Eff, user, reason, d)
}

func (h *Handler) formLock(w http.ResponseWriter, r *http.Request, v *viewer) {
	l, err := h.lock(r, v, r.PostFormValue("user"), r.PostFormValue("reason"), r.PostFormValue("ttl"))
	if err != nil {
		h.refused(w, r, v, "lock user", err)
		return
	}
	h.redirect(w, r, "/locks", "Locked "+l.User+"; their sessions are being closed.")
}

func (h *Handler) apiLock(w http.ResponseWriter, r *http.Request, v *viewer) {
	var in struct {
		User   string `json:"user"`
		Reason string `json:"reason"`
		TTL    string `json:"ttl"`
	}
	if err := decodeJSON(r, &in); err != nil {
		h.fail(w, r, v, http.StatusBadRequest, err.Error())
		return
	}
	l, err := h.lock(r, v, in.User, in.Reason, in.TTL)
	if err != nil {
		h.refused(w, r, v, "lock user", err)
		return
	}
	writeJSON(w, http.StatusCreated, l)
}

func (h *Handler) formUnlock(w http.ResponseWriter, r *http.Request, v *viewer) {
	user := r.PathValue("user")
	if err := h.opt.Access.Unlock(r.Context(), v.Eff, user); err != nil {
		h.refused(w, r, v, "unlock user", err)
		return
	}
	h.redirect(w, r, "/locks", "Unlocked "+user+".")
}

func (h *Handler) apiUnlock(w http.ResponseWriter, r *http.Request, v *viewer) {
	user := r.PathValue("user")
	if err := h.opt.Access.Unlock(r.Context(), v.Eff, user); err != nil {
		h.refused(w, r, v, "unlock user", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"unlocked": user})
}
