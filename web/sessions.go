package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func refusal(msg string) error { return &access.Refusal{Msg: msg} }

func notFoundRefusal(msg string) error {
	return &access.Refusal{Msg: msg, Cause: storage.ErrNotFound}
}

// decodeJSON reads a small JSON body strictly.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %v", err)
	}
	return nil
}

// sessionFilter is the sessions page's filter form.
type sessionFilter struct {
	User  string
	Node  string
	Since string
	Grep  string
	// Unsearched counts the encrypted recordings a search skipped.
	Unsearched int
}

// sessionView is an index entry with what the viewer may do with it.
type sessionView struct {
	storage.Session
	LiveHere  bool `json:"live_here"`
	CanPlay   bool `json:"can_play"`
	CanJoin   bool `json:"can_join"`
	CanKill   bool `json:"can_terminate"`
	Recording bool `json:"has_recording"`
	// Encrypted: the recording is encrypted to recording.encrypt_to, so
	// this bastion cannot play or search it (it never holds the key).
	Encrypted bool `json:"encrypted,omitempty"`
}

// maxGrep bounds how many recordings one search opens.
const maxGrep = 200

func (h *Handler) liveIDs() map[string]bool {
	ids := map[string]bool{}
	if h.opt.Live != nil {
		for _, l := range h.opt.Live.Live() {
			ids[l.ID] = true
		}
	}
	return ids
}

func (h *Handler) listSessions(r *http.Request, v *viewer) (sessionFilter, []sessionView, error) {
	q := r.URL.Query()
	f := sessionFilter{User: strings.TrimSpace(q.Get("user")), Node: strings.TrimSpace(q.Get("node")),
		Since: strings.TrimSpace(q.Get("since")), Grep: q.Get("grep")}
	sf := storage.SessionFilter{User: f.User, Node: f.Node, Limit: maxGrep}
	if f.Since != "" {
		t, err := audit.ParseSince(f.Since, time.Now())
		if err != nil {
			return f, nil, badFilter{strings.Replace(err.Error(), "--since", "since", 1)}
		}
		sf.Since = t
	}
	list, err := h.opt.Store.ListSessions(r.Context(), sf)
	if err != nil {
		return f, nil, fmt.Errorf("list sessions: %w", err)
	}
	live, recs := h.liveIDs(), h.recordings(r.Context())
	out := make([]sessionView, 0, len(list))
	for _, s := range list {
		if f.Grep != "" {
			if s.Recording != "" && session.EncryptedFS(recs, s.ID) {
				f.Unsearched++
				continue
			}
			ok, err := h.grep(recs, s.ID, f.Grep)
			if err != nil {
				h.log.WarnContext(r.Context(), "web: search recording", "session", s.ID, "err", err)
			}
			if !ok {
				continue
			}
		}
		sv := sessionView{Session: s, LiveHere: live[s.ID], Recording: s.Recording != ""}
		sv.Encrypted = sv.Recording && session.EncryptedFS(recs, s.ID)
		sv.CanPlay = v.CanPlay && sv.Recording
		reachable := sv.LiveHere || h.runsElsewhere(s)
		sv.CanJoin = v.CanJoin && reachable
		sv.CanKill = v.CanTerminate && reachable
		out = append(out, sv)
	}
	return f, out, nil
}

// grep searches one recording. An encrypted one is not searched: the web
// server has no key to read it with (see playerPage).
func (h *Handler) grep(recs fs.FS, id, text string) (bool, error) {
	rc, err := session.OpenFS(recs, id)
	if err != nil {
		if errors.Is(err, session.ErrNoRecording) || errors.Is(err, session.ErrEncrypted) {
			return false, nil
		}
		return false, err
	}
	defer rc.Close()
	return session.Grep(rc, text)
}

// recordings is where recordings are read from.
func (h *Handler) recordings(ctx context.Context) fs.FS {
	if h.opt.Recordings == nil {
		return os.DirFS(h.opt.Config.Recording.Dir)
	}
	return h.opt.Recordings(ctx)
}

type sessionsPage struct {
	*viewer
	Filter   sessionFilter
	Sessions []sessionView
	Error    string // the filter's one-line error (the page answers 400)
}

func (h *Handler) sessionsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.CanList {
		h.fail(w, r, v, http.StatusForbidden, "you may not list sessions (no role of yours allows sessions: list)")
		return
	}
	f, list, err := h.listSessions(r, v)
	var bad badFilter
	if errors.As(err, &bad) {
		h.render(w, r, http.StatusBadRequest, "sessions", sessionsPage{viewer: v, Filter: f, Error: bad.msg})
		return
	}
	if err != nil {
		h.refused(w, r, v, "list sessions", err)
		return
	}
	h.render(w, r, http.StatusOK, "sessions", sessionsPage{viewer: v, Filter: f, Sessions: list})
}

func (h *Handler) apiSessions(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.CanList {
		h.fail(w, r, v, http.StatusForbidden, "you may not list sessions (no role of yours allows sessions: list)")
		return
	}
	_, list, err := h.listSessions(r, v)
	var bad badFilter
	if errors.As(err, &bad) {
		h.fail(w, r, v, http.StatusBadRequest, bad.msg)
		return
	}
	if err != nil {
		h.refused(w, r, v, "list sessions", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": list})
}

// session looks up id for a viewer who needs allowed; without it the
// answer is the same "not found" as for an id that does not exist, so ids
// cannot be probed.
func (h *Handler) session(r *http.Request, allowed bool) (storage.Session, error) {
	id := r.PathValue("id")
	if !allowed || session.ValidID(id) != nil {
		return storage.Session{}, notFoundRefusal("session " + safeID(id) + " not found")
	}
	s, err := h.opt.Store.GetSession(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Session{}, notFoundRefusal("session " + safeID(id) + " not found")
	}
	return s, err
}

// safeID keeps a refusal line short whatever was typed into the URL.
func safeID(id string) string {
	if session.ValidID(id) != nil {
		return "(invalid id)"
	}
	return id
}

type playerPage struct {
	*viewer
	S sessionView
}

func (h *Handler) playerPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.session(r, v.CanPlay)
	if err != nil {
		h.refused(w, r, v, "look up session", err)
		return
	}
	live := h.liveIDs()[s.ID]
	rec := s.Recording != ""
	reachable := live || h.runsElsewhere(s)
	h.render(w, r, http.StatusOK, "player", playerPage{viewer: v, S: sessionView{Session: s, LiveHere: live,
		CanJoin: v.CanJoin && reachable, CanKill: v.CanTerminate && reachable, Recording: rec, CanPlay: true,
		Encrypted: rec && session.EncryptedFS(h.recordings(r.Context()), s.ID)}})
}

// encryptedMsg is what the web UI says instead of playing an encrypted
// recording. The web server decrypts nothing: the identity that could
// would have to live on the bastion, next to the recordings it protects,
// and anyone who took the bastion would take both.
func encryptedMsg(id string) string {
	return "this recording is encrypted (recording.encrypt_to); the bastion holds no key for it: export it where your age identity is, with gatehouse sessions export --identity FILE " + id
}

// apiRecording streams the asciicast file. It is data for the player,
// never a page: the content type, nosniff and a sandboxing CSP keep a
// browser from rendering what a node printed.
func (h *Handler) apiRecording(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.session(r, v.CanPlay)
	if err != nil {
		h.refused(w, r, v, "look up session", err)
		return
	}
	rc, err := session.OpenFS(h.recordings(r.Context()), s.ID)
	if errors.Is(err, session.ErrNoRecording) {
		h.fail(w, r, v, http.StatusNotFound, "session "+s.ID+" has no recording on this bastion")
		return
	}
	if errors.Is(err, session.ErrEncrypted) {
		h.fail(w, r, v, http.StatusConflict, encryptedMsg(s.ID))
		return
	}
	if err != nil {
		h.internal(w, r, v, "open recording", err)
		return
	}
	defer rc.Close()
	h.auditEvent(r, v, audit.TypeSessionPlay, s.Node, map[string]any{"session": s.ID, "user": s.User, "via": "web"})
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.ID+`.cast"`)
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if _, err := io.Copy(w, rc); err != nil {
		h.log.WarnContext(r.Context(), "web: send recording", "session", s.ID, "err", err)
	}
}

type livePage struct {
	*viewer
	S sessionView
}

func (h *Handler) livePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.session(r, v.CanJoin)
	if err != nil {
		h.refused(w, r, v, "look up session", err)
		return
	}
	live := h.liveIDs()[s.ID]
	if !live {
		h.notHere(w, r, v, s)
		return
	}
	h.render(w, r, http.StatusOK, "live", livePage{viewer: v, S: sessionView{Session: s, LiveHere: true,
		CanKill: v.CanTerminate, CanPlay: v.CanPlay && s.Recording != ""}})
}

// heartbeat keeps idle SSE connections (and proxies in between) open.
const heartbeat = 15 * time.Second

// apiLive streams a running session's output as server-sent events: each
// "data:" line is one chunk, base64 because terminal output is bytes, not
// text. The stream is passed through session.Sanitizer so what a node
// prints cannot drive the viewer's terminal beyond drawing. An "end"
// event says the session is over.
func (h *Handler) apiLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.session(r, v.CanJoin)
	if err != nil {
		h.refused(w, r, v, "look up session", err)
		return
	}
	var ch <-chan []byte
	var stop func()
	ok := false
	if h.opt.Live != nil {
		ch, stop, ok = h.opt.Live.Join(r.Context(), s.ID, v.User())
	}
	if !ok {
		h.notHere(w, r, v, s)
		return
	}
	defer stop()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": joined "+s.ID+"\n\n")
	_ = rc.Flush()
	var san session.Sanitizer
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	buf := make([]byte, 0, 4096)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case p, open := <-ch:
			if !open {
				_, _ = io.WriteString(w, "event: end\ndata: session ended\n\n")
				_ = rc.Flush()
				return
			}
			buf = san.Append(buf[:0], p)
			if len(buf) == 0 {
				continue
			}
			if _, err := io.WriteString(w, "data: "+base64.StdEncoding.EncodeToString(buf)+"\n\n"); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// elsewhereError is a live session on another bastion that could not be
// reached: 503, the session is there but not now.
type elsewhereError struct{ msg string }

func (e elsewhereError) Error() string { return e.msg }

// runsElsewhere reports whether s is recorded as live on another bastion
// that this one can reach through the shared database.
func (h *Handler) runsElsewhere(s storage.Session) bool {
	return h.opt.Remote != nil && s.Status == "live" && s.Bastion != "" && s.Bastion != h.opt.Config.BastionID
}

// notHere answers a watcher of a session that does not run on this
// bastion: sent on to the bastion that holds it, when there is one to
// send them to.
func (h *Handler) notHere(w http.ResponseWriter, r *http.Request, v *viewer, s storage.Session) {
	if !h.runsElsewhere(s) {
		h.fail(w, r, v, http.StatusNotFound, "session "+s.ID+" is not running on this bastion")
		return
	}
	where, err := h.opt.Remote.Locate(r.Context(), s)
	if err != nil {
		h.log.WarnContext(r.Context(), "web: locate live session", "session", s.ID, "bastion", s.Bastion, "err", err)
		h.fail(w, r, v, http.StatusServiceUnavailable, "session "+s.ID+" runs on bastion "+s.Bastion+", which did not answer; try again")
		return
	}
	where = strings.TrimSuffix(where, "/")
	if where == "" || where == strings.TrimSuffix(h.opt.Config.Web.PublicURL, "/") {
		// Both behind one address (a load balancer): a redirect would
		// come back here.
		h.fail(w, r, v, http.StatusConflict, "session "+s.ID+" runs on bastion "+s.Bastion+", which shares this web address; watch it through that bastion's own address")
		return
	}
	http.Redirect(w, r, where+r.URL.Path, http.StatusTemporaryRedirect)
}

// terminate ends a live session for a viewer with sessions: terminate,
// here or, through the shared database, on the bastion holding it.
func (h *Handler) terminate(r *http.Request, v *viewer) (storage.Session, error) {
	s, err := h.session(r, v.CanTerminate)
	if err != nil {
		return s, err
	}
	if h.opt.Live != nil && h.opt.Live.Terminate(r.Context(), s.ID, v.User()) {
		return s, nil
	}
	if !h.runsElsewhere(s) {
		return s, notFoundRefusal("session " + s.ID + " is not running on this bastion")
	}
	if err := h.opt.Remote.Terminate(r.Context(), s, v.User()); err != nil {
		return s, fmt.Errorf("terminate session %s on bastion %s: %w", s.ID, s.Bastion, err)
	}
	if !h.awaitEnd(r.Context(), s.ID, remoteTerminateWait) {
		return s, elsewhereError{"asked bastion " + s.Bastion + " to end session " + s.ID + "; it has not recorded the end yet"}
	}
	return s, nil
}

// terminateWait bounds how long the Terminate button waits for the
// session's end to be recorded (the proxy shows the user a notice, then
// closes within about a second), so the list it lands on says "terminated"
// rather than "live". A session on another bastion is only terminated
// once that bastion records its end: remoteTerminateWait bounds that.
const (
	terminateWait       = 3 * time.Second
	remoteTerminateWait = 10 * time.Second
)

// awaitEnd waits until session id is no longer recorded as live, or wait
// has passed, and reports whether it ended.
func (h *Handler) awaitEnd(ctx context.Context, id string, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := h.opt.Store.GetSession(ctx, id)
		if err == nil && s.Status != "live" {
			return true
		}
		if err != nil && ctx.Err() == nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func (h *Handler) formTerminate(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.terminate(r, v)
	if err != nil {
		h.refused(w, r, v, "terminate session", err)
		return
	}
	h.awaitEnd(r.Context(), s.ID, terminateWait)
	h.redirect(w, r, "/sessions", "Terminated session "+s.ID+" of "+s.User+" on "+s.Node+".")
}

func (h *Handler) apiTerminate(w http.ResponseWriter, r *http.Request, v *viewer) {
	s, err := h.terminate(r, v)
	if err != nil {
		h.refused(w, r, v, "terminate session", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"terminated": s.ID})
}

// auditEvent records a security-relevant read of type typ (an audit.Type
// constant); a failure is logged, not shown, because the read itself
// already happened.
func (h *Handler) auditEvent(r *http.Request, v *viewer, typ, target string, fields map[string]any) {
	_ = audit.Append(r.Context(), h.opt.Audit, h.log, storage.Event{Time: time.Now().UTC(), Type: typ, Actor: v.User(), Target: target, Outcome: "success", Fields: fields})
}
