package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/session/sftp"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// relayBufSize matches the SSH maximum packet payload so one read fills one
// packet on the other side.
const relayBufSize = 32 * 1024

var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// copyTap copies src to dst, handing each chunk to tap before writing it.
func copyTap(dst io.Writer, src io.Reader, tap func([]byte)) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		r, err := src.Read(buf)
		if r > 0 {
			if tap != nil {
				tap(buf[:r])
			}
			w, werr := dst.Write(buf[:r])
			n += int64(w)
			if werr != nil {
				return n
			}
		}
		if err != nil {
			return n
		}
	}
}

// pipeChannels relays data and requests between two channels until both
// directions end; it returns bytes a->b and b->a.
func pipeChannels(a ssh.Channel, areqs <-chan *ssh.Request, b ssh.Channel, breqs <-chan *ssh.Request) (int64, int64) {
	var ab, ba int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ab = copyTap(b, a, nil); _ = b.CloseWrite() }()
	go func() { defer wg.Done(); ba = copyTap(a, b, nil); _ = a.CloseWrite() }()
	go forwardRequests(areqs, b, nil, nil)
	go forwardRequests(breqs, a, nil, nil)
	wg.Wait()
	a.Close()
	b.Close()
	return ab, ba
}

// forwardRequests sends every request from reqs on to ch, relaying replies.
// filter may answer a request itself by returning handled=true. If
// inflight is set it is held from a request's arrival until its reply has
// been sent, so that another goroutine can wait for answers in flight.
func forwardRequests(reqs <-chan *ssh.Request, ch ssh.Channel, filter func(*ssh.Request) (handled bool), inflight *sync.Mutex) {
	for r := range reqs {
		if inflight != nil {
			inflight.Lock()
		}
		if filter == nil || !filter(r) {
			ok, err := ch.SendRequest(r.Type, r.WantReply, r.Payload)
			if err != nil {
				ok = false
			}
			if r.WantReply {
				_ = r.Reply(ok, nil)
			}
		}
		if inflight != nil {
			inflight.Unlock()
		}
	}
}

// handleInnerChannel serves one channel the client opened on the terminated
// connection.
func (s *Server) handleInnerChannel(ctx context.Context, lc *liveConn, nc ssh.NewChannel, up *upstream) {
	switch nc.ChannelType() {
	case "session":
		s.relaySession(ctx, lc, nc, up)
	case "direct-tcpip":
		v := lc.currentVerdict()
		var fwd directTCPIP
		_ = ssh.Unmarshal(nc.ExtraData(), &fwd)
		if !v.PortForwarding {
			s.audit(ctx, storage.Event{Type: audit.TypePortForward, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "denied",
				Fields: map[string]any{"direction": "local", "login": lc.login, "host": fwd.Host, "port": fwd.Port}})
			// The login is what the client sent: escaped, as in refusal.
			f := termsafe.String
			rejectChannel(nc, ssh.Prohibited, userErrorf("port forwarding is not allowed for %s as %s on %s", f(lc.ident.User), f(lc.login), f(lc.node.Name)))
			return
		}
		s.bridgeChannel(ctx, lc, nc, up.conn, "local")
	default:
		rejectChannel(nc, ssh.UnknownChannelType, userErrorf("unsupported channel type %s", termsafe.String(nc.ChannelType())))
	}
}

// sessionTap is one session channel (shell, exec, subsystem) on its way
// through the relay: what the session is (settled by its start request),
// its stages (see stages.go), and its start and end on record.
type sessionTap struct {
	s    *Server
	ctx  context.Context
	lc   *liveConn
	id   string
	live *liveChannel

	stages sessionStages
	// streams is what each stream goes through: counting and live
	// watching until the session starts, then what compose builds.
	streams atomic.Pointer[streams]

	mu    sync.Mutex
	shape sessionShape

	failed  atomic.Bool
	replies sync.Mutex // held while a client request is forwarded and answered
	// startedCh is closed once the session's start (shell, exec, subsystem)
	// has been handled or can no longer come: client data waits for it.
	startedCh   chan struct{}
	startedOnce sync.Once
}

// sessionShape is what the client's requests said about a session.
type sessionShape struct {
	kind, command, term string
	pty                 bool
	cols, rows          int
	started             bool // a start request arrived
	begun               bool // the index entry and session.start exist
	exit                *int
}

func newSessionTap(s *Server, ctx context.Context, lc *liveConn, live *liveChannel) *sessionTap {
	t := &sessionTap{s: s, ctx: ctx, lc: lc, id: live.id, live: live, startedCh: make(chan struct{})}
	t.stages.live = newLiveStage(live.watch, false)
	out := tee{t.stages.count.output(), t.stages.live}
	t.streams.Store(&streams{stdin: t.stages.count.stdin(), stdout: out, stderr: out})
	return t
}

func (t *sessionTap) output(p []byte) { _, _ = t.streams.Load().stdout.Write(p) }
func (t *sessionTap) stderr(p []byte) { _, _ = t.streams.Load().stderr.Write(p) }
func (t *sessionTap) input(p []byte)  { _, _ = t.streams.Load().stdin.Write(p) }

// inputDrainWait bounds how long a session's end waits for the client's
// last input.
const inputDrainWait = 5 * time.Second

// relaySession relays a session channel (shell, exec, subsystem) to the
// node, recording it.
func (s *Server) relaySession(ctx context.Context, lc *liveConn, nc ssh.NewChannel, up *upstream) {
	upCh, upReqs, err := up.conn.OpenChannel("session", nc.ExtraData())
	if err != nil {
		rejectChannel(nc, ssh.ConnectionFailed, &UserError{Line: "gatehouse: node refused the session: " + err.Error(), Cause: err})
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		upCh.Close()
		return
	}
	live := &liveChannel{id: newID(), ch: ch, watch: newBroadcaster(), delivered: make(chan struct{})}
	t := newSessionTap(s, ctx, lc, live)
	lc.addChannel(live)
	defer lc.removeChannel(t.id)
	defer live.watch.closeAll()
	// This relay owns the channel, so it is the one to tell the client
	// why, when the connection is terminated.
	stopNotice := context.AfterFunc(lc.ctx, func() { live.deliverNotice(context.Cause(lc.ctx)) })
	defer func() {
		if stopNotice() {
			live.markDelivered()
		}
	}()

	outDone := make(chan struct{})
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); copyTap(ch, upCh, t.output) }()
	go func() { defer copies.Done(); copyTap(ch.Stderr(), upCh.Stderr(), t.stderr) }()
	go func() { copies.Wait(); _ = live.closeWrite(); close(outDone) }()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		// Data the client sends before its exec request would reach the
		// node (sshd keeps it for the command) before the recorders
		// exist; it is read once they do.
		<-t.startedCh
		copyTap(upCh, ch, t.input)
		_ = upCh.CloseWrite()
	}()

	// Client -> node requests, observed for the recording and policy.
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		forwardRequests(reqs, upCh, func(r *ssh.Request) bool { return t.clientRequest(r, ch) }, &t.replies)
		// The client closed the channel.
		t.markStarted()
		upCh.Close()
	}()
	// A client request the node has answered may still be on its way back
	// to the client (the goroutine above relays the reply). The client
	// must have it before the exit status and the close: a command that
	// ends at once otherwise closes the channel before the exec is
	// answered, and the client reports EOF instead of the exit status.
	answered := func() { t.replies.Lock(); t.replies.Unlock() }
	// Node -> client requests; exit-status waits for the output to drain so
	// the client sees every byte before the status.
	for r := range upReqs {
		switch r.Type {
		case "exit-status":
			if len(r.Payload) >= 4 {
				code := int(binary.BigEndian.Uint32(r.Payload))
				t.mu.Lock()
				t.shape.exit = &code
				t.mu.Unlock()
			}
			<-outDone
			answered()
		case "exit-signal":
			<-outDone
			answered()
		}
		ok, err := ch.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			_ = r.Reply(ok && err == nil, nil)
		}
	}
	<-outDone
	answered()
	ch.Close()
	<-reqDone
	// Both channels are closed now, so the input copy ends once the
	// client confirms the close; its last chunk must be in the raw store
	// before the store is closed. A client that never confirms does not
	// hold the session's end off the record.
	select {
	case <-inDone:
	case <-time.After(inputDrainWait):
	}
	t.finish()
}

func (t *sessionTap) markStarted() { t.startedOnce.Do(func() { close(t.startedCh) }) }

// clientRequest inspects (and may answer) a request from the client.
func (t *sessionTap) clientRequest(r *ssh.Request, ch ssh.Channel) bool {
	switch r.Type {
	case "pty-req":
		var p struct {
			Term             string
			Cols, Rows, W, H uint32
			Modes            string
		}
		if ssh.Unmarshal(r.Payload, &p) == nil {
			t.mu.Lock()
			// How the session is recorded is settled when it starts: a
			// pty requested later does not turn an exec's recording into
			// a terminal's.
			if !t.shape.started {
				t.shape.term, t.shape.cols, t.shape.rows, t.shape.pty = p.Term, int(p.Cols), int(p.Rows), true
			}
			t.mu.Unlock()
		}
	case "window-change":
		var p struct{ Cols, Rows, W, H uint32 }
		if ssh.Unmarshal(r.Payload, &p) == nil {
			t.mu.Lock()
			t.shape.cols, t.shape.rows = int(p.Cols), int(p.Rows)
			cast := t.stages.cast
			t.mu.Unlock()
			cast.resize(int(p.Cols), int(p.Rows))
		}
	case "auth-agent-req@openssh.com":
		if !t.lc.currentVerdict().AgentForwarding {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
			return true
		}
	case "shell", "exec", "subsystem":
		t.mu.Lock()
		already, pty := t.shape.started, t.shape.pty
		t.shape.started = true
		t.mu.Unlock()
		if already {
			return false // the node refuses a second one
		}
		command := ""
		if r.Type == "exec" || r.Type == "subsystem" {
			var p struct{ S string }
			if ssh.Unmarshal(r.Payload, &p) == nil {
				command = p.S
			}
		}
		kind := classify(r.Type, command, pty)
		t.lc.describe(t.live, kind, command)
		refused := t.begin(kind, command)
		t.markStarted()
		if refused != nil {
			t.s.log.Warn("session refused", "session", t.id, "user", t.lc.ident.User, "node", t.lc.node.Name, "err", refused)
			// Accept the request, then refuse in words: OpenSSH exits at
			// once on a failed exec reply, before printing our stderr.
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
			t.live.writeStderr(refused.Line + "\r\n")
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{1}))
			ch.Close()
			return true
		}
	}
	return false
}

// begin opens the session's stages and its index entry when it starts,
// and puts its start on record; the session goes ahead only if it
// returns nil, else the user is told why.
func (t *sessionTap) begin(kind, command string) *UserError {
	s, lc := t.s, t.lc
	t.mu.Lock()
	t.shape.kind, t.shape.command = kind, command
	sh := t.shape
	t.mu.Unlock()
	if sh.cols == 0 {
		sh.cols, sh.rows = 80, 24
	}
	v := lc.currentVerdict()
	st := &t.stages
	st.live = newLiveStage(t.live.watch, sh.pty)
	rec := storage.Session{
		ID: t.id, User: lc.ident.User, Login: lc.login, Node: lc.node.Name, Kind: kind, Command: command,
		Roles: v.Roles, RequestIDs: v.RequestIDs, ClientAddr: lc.remote, Bastion: s.opt.BastionID,
		Start: time.Now().UTC(), Status: "live",
	}
	var cast *castStage
	if s.opt.Recorder != nil && !isTransfer(kind) {
		r, path, err := s.opt.Recorder(t.id, RecordingHeader{Width: sh.cols, Height: sh.rows, Term: sh.term, PTY: sh.pty, Command: command,
			Title: fmt.Sprintf("%s@%s (%s)", lc.login, lc.node.Name, lc.ident.User), Start: rec.Start},
			func(err error) { t.recordingFailed(err) })
		if err != nil {
			s.audit(t.ctx, storage.Event{Type: audit.TypeRecordingFailure, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
				Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.opt.RecordingMode}})
			if s.opt.RecordingMode != RecordingBestEffort {
				return recordingUnavailable("cannot open recording", err)
			}
		} else {
			cast = newCastStage(r)
			rec.Recording = path
		}
	}
	if s.opt.RawRecorder != nil && !sh.pty {
		raw, err := s.opt.RawRecorder(t.id, t.rawCapped, func(err error) { t.recordingFailed(err) })
		if err != nil {
			s.audit(t.ctx, storage.Event{Type: audit.TypeRecordingFailure, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
				Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.opt.RecordingMode, "store": "raw"}})
			if s.opt.RecordingMode != RecordingBestEffort {
				t.closeRecorder(cast)
				return recordingUnavailable("cannot open raw recording", err)
			}
		} else {
			st.raw = newRawStage(raw)
		}
	}
	// Once the stages exist, finish closes them whatever happens next.
	t.mu.Lock()
	st.cast = cast
	t.mu.Unlock()
	if err := s.opt.Sessions.CreateSession(t.ctx, rec); err != nil {
		// The index may refuse the session itself, whatever the recording
		// mode (a one-session grant another session has used): its line.
		if ue := (*UserError)(nil); errors.As(err, &ue) {
			return ue
		}
		s.log.Error("session index", "session", t.id, "err", err)
		if s.opt.RecordingMode != RecordingBestEffort {
			return recordingUnavailable("cannot index session", err)
		}
		// Best effort goes on unindexed, but on the record.
		s.audit(t.ctx, storage.Event{Type: audit.TypeRecordingFailure, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
			Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.opt.RecordingMode, "store": "index"}})
	}
	fields := lc.innerAuth.addTo(map[string]any{"session": t.id, "login": lc.login, "kind": kind, "remote": lc.remote, "roles": v.Roles, "requests": v.RequestIDs, "conn": lc.id})
	evs := []storage.Event{{Type: audit.TypeSessionStart, Actor: lc.ident.User, Target: lc.node.Name, Fields: fields}}
	if command != "" {
		evs = append(evs, storage.Event{Type: audit.TypeExec, Actor: lc.ident.User, Target: lc.node.Name, Fields: map[string]any{"session": t.id, "login": lc.login, "command": command}})
	}
	// One durable commit for both, in this order, before the command
	// reaches the node; without it the command does not go (fail closed).
	if err := s.auditAll(t.ctx, evs...); err != nil {
		ictx, icancel := context.WithTimeout(context.WithoutCancel(t.ctx), audit.AppendTimeout)
		if ierr := s.opt.Sessions.EndSession(ictx, t.id, time.Now().UTC(), "refused", nil, 0, 0); ierr != nil {
			s.log.Error("session index end", "session", t.id, "err", ierr)
		}
		icancel()
		return &UserError{Line: "gatehouse: the audit log is unavailable; session refused", Cause: err}
	}
	if kind == kindSFTP {
		st.sftp = newSFTPStage(t.sftpEvent, func(ev storage.Event) {
			// The batch's last operations may still be queued when the
			// client hangs up; s.audit outlives t.ctx for them.
			s.audit(t.ctx, ev)
		})
	}
	composed := st.compose(kind, sh.pty)
	t.streams.Store(&composed)
	t.mu.Lock()
	t.shape.begun = true
	t.mu.Unlock()
	return nil
}

func (t *sessionTap) recordingFailed(err error) {
	if !t.failed.CompareAndSwap(false, true) {
		return
	}
	s, lc := t.s, t.lc
	s.audit(t.ctx, storage.Event{Type: audit.TypeRecordingFailure, Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
		Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.opt.RecordingMode}})
	if s.opt.RecordingMode != RecordingBestEffort {
		lc.terminate(&UserError{Line: "gatehouse: session recording failed; session closed (recording.mode is strict)", Cause: err})
	}
}

// closeRecorder closes the cast stage's recorder, if it still has one.
func (t *sessionTap) closeRecorder(cast *castStage) {
	rec := cast.close()
	if rec == nil {
		return
	}
	// Closing encodes and compresses what is still queued, then syncs
	// the file. A few at a time, so a thousand sessions ending together
	// (a lock, a shutdown) don't starve the live ones and the bookkeeping.
	t.s.finalizers <- struct{}{}
	err := rec.Close()
	<-t.s.finalizers
	if err != nil {
		t.recordingFailed(err)
	}
}

// closeRaw closes the raw store, if the session has one, and returns its
// summary (ok=false without one).
func (t *sessionTap) closeRaw() (sum RawSummary, ok bool) {
	raw := t.stages.raw.close()
	if raw == nil {
		return sum, false
	}
	sum, err := raw.Close()
	if err != nil {
		t.recordingFailed(err)
	}
	return sum, true
}

// rawCapped audits that the session's raw store reached its cap: from
// here on its bytes are only counted and hashed (in session.end).
func (t *sessionTap) rawCapped(stored, max int64) {
	s, lc := t.s, t.lc
	s.audit(t.ctx, storage.Event{Type: audit.TypeRecordingCapReached, Actor: lc.ident.User, Target: lc.node.Name,
		Fields: map[string]any{"session": t.id, "login": lc.login, "stored_bytes": stored, "max_raw_bytes": max}})
}

// recordingUnavailable refuses a session that cannot be recorded (in
// strict mode): what failed is in the line, why in the cause.
func recordingUnavailable(what string, cause error) *UserError {
	return &UserError{Line: "gatehouse: session recording is unavailable; session refused (" + what + ")", Cause: cause}
}

// finish closes the session's stages and its index entry. The relay is
// done with every stream when it is called (the input's last chunk at
// most inputDrainWait late).
func (t *sessionTap) finish() {
	t.mu.Lock()
	sh, cast := t.shape, t.stages.cast
	t.mu.Unlock()
	if !sh.begun {
		// Never started (refused before the index entry was written):
		// session.denied/recording.failure already tell the story.
		t.closeRecorder(cast)
		t.closeRaw()
		return
	}
	t.stages.sftp.close()
	s, lc := t.s, t.lc
	status := "ended"
	if lc.isClosed() {
		status = "terminated"
	}
	in, out := t.stages.count.in.Load(), t.stages.count.out.Load()
	bin := t.stages.binOut.binary()
	// Before the audit events, which carry its hashes; the relay is done
	// with it, so what is left to write is at most one queue.
	raw, hasRaw := t.closeRaw()
	s.observer().Relayed(in, out)
	// Use a fresh context: the session's may be cancelled by now, and the
	// end of a session must still be on record.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end := time.Now().UTC()
	for attempt := 1; ; attempt++ {
		err := s.opt.Sessions.EndSession(ctx, t.id, end, status, sh.exit, in, out)
		if err == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			// The next start marks it interrupted; the audit event below still records the end.
			s.log.Error("session index end", "session", t.id, "err", err)
			break
		}
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
	}
	kind, command := sh.kind, sh.command
	fields := map[string]any{"session": t.id, "login": lc.login, "kind": kind, "bytes_in": in, "bytes_out": out, "status": status}
	if sh.exit != nil {
		fields["exit_status"] = *sh.exit
	}
	if bin != nil {
		fields["binary_output_bytes"] = bin.bytes
		fields["binary_output_sha256"] = bin.sum()
	}
	if hasRaw {
		for i, name := range [...]string{"stdin", "stdout", "stderr"} {
			fields[name+"_bytes"] = raw.Streams[i].Bytes
			fields[name+"_sha256"] = raw.Streams[i].SHA256
		}
		fields["raw_stored_bytes"], fields["raw_capped"] = raw.Stored, raw.Capped
	}
	s.audit(ctx, storage.Event{Type: audit.TypeSessionEnd, Actor: lc.ident.User, Target: lc.node.Name, Fields: fields})
	if bin != nil {
		// Binary stdout is a download whatever the command was called.
		s.audit(ctx, storage.Event{Type: audit.TypeFileTransfer, Actor: lc.ident.User, Target: lc.node.Name,
			Fields: map[string]any{"session": t.id, "login": lc.login, "kind": kind, "command": command, "direction": "download",
				"bytes_to_node": in, "bytes_from_node": out, "binary_output_bytes": bin.bytes, "sha256": fields["binary_output_sha256"]}})
	}
	if isTransfer(kind) {
		dir := transferDirection(kind, command)
		ft := map[string]any{"session": t.id, "login": lc.login, "kind": kind, "command": command, "direction": dir,
			"bytes_to_node": in, "bytes_from_node": out}
		if hasRaw {
			ft["sha256_to_node"], ft["sha256_from_node"] = raw.Streams[RawStdin].SHA256, raw.Streams[RawStdout].SHA256
		}
		s.audit(ctx, storage.Event{Type: audit.TypeFileTransfer, Actor: lc.ident.User, Target: lc.node.Name, Fields: ft})
	}
	// Last: closing drains the recording's queue and syncs it, which can
	// wait on the disk; the index and the audit log are already up to date.
	t.closeRecorder(cast)
}

// sftpEvent is the audit event of one SFTP file operation.
func (t *sessionTap) sftpEvent(op sftp.Op) storage.Event {
	fields := map[string]any{"session": t.id, "login": t.lc.login, "op": op.Op, "path": op.Path, "ok": op.OK}
	if op.Target != "" {
		fields["target"] = op.Target
	}
	if op.Mode != "" {
		fields["mode"] = op.Mode
	}
	if op.Op == "close" {
		fields["bytes_read"], fields["bytes_written"] = op.Read, op.Written
	}
	if !op.OK {
		fields["status"] = op.Status
	}
	outcome := "success"
	if !op.OK {
		outcome = "failure"
	}
	return storage.Event{Type: audit.TypeSFTPOp, Actor: t.lc.ident.User, Target: t.lc.node.Name, Outcome: outcome, Fields: fields}
}
