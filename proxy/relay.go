package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

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
			s.audit(ctx, storage.Event{Type: "port_forward", Actor: lc.ident.User, Target: lc.node.Name, Outcome: "denied",
				Fields: map[string]any{"direction": "local", "login": lc.login, "host": fwd.Host, "port": fwd.Port}})
			_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("gatehouse: port forwarding is not allowed for %s as %s on %s", lc.ident.User, lc.login, lc.node.Name))
			return
		}
		s.bridgeChannel(ctx, lc, nc, up.conn, "local")
	default:
		_ = nc.Reject(ssh.UnknownChannelType, "gatehouse: unsupported channel type "+nc.ChannelType())
	}
}

// sessionTap observes one session channel: what kind it is, the terminal
// size, output for the recording and for live watchers, and byte counts.
type sessionTap struct {
	s       *Server
	ctx     context.Context
	lc      *liveConn
	id      string
	mu      sync.Mutex
	rec     Recorder
	kind    string
	command string
	term    string
	pty     bool
	cols    int
	rows    int
	started bool
	begun   bool // the index entry and session.start exist
	exit    *int
	watch   *broadcaster
	failed  atomic.Bool
	sftp    *sftp.Watcher // set for sftp subsystem sessions
	onlcr   onlcr         // for live watchers of a session without a pty
	replies sync.Mutex    // held while a client request is forwarded and answered
	binary  *binaryStream // set once stdout turned binary
	// raw keeps every byte of a session without a pty; binaryIn is set
	// once its stdin turned binary and stopped going into the cast.
	raw      RawRecorder
	binaryIn bool
	// startedCh is closed once the session's start (shell, exec, subsystem)
	// has been handled or can no longer come: client data waits for it.
	startedCh   chan struct{}
	startedOnce sync.Once
	// sftpEvents decouples the relay from durable audit appends.
	sftpEvents chan storage.Event
	sftpDone   chan struct{}

	bytesIn, bytesOut atomic.Int64
}

func (t *sessionTap) output(p []byte) {
	if w := t.sftpWatcher(); w != nil {
		w.FromServer(p)
	}
	t.record(p, true)
}

func (t *sessionTap) sftpWatcher() *sftp.Watcher {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sftp
}

// stderr taps output that is not part of a subsystem's protocol stream.
func (t *sessionTap) stderr(p []byte) { t.record(p, false) }

// binaryMarker is the "m" event where a recording's text stops: from there
// on the session's stdout is binary; it is in the raw store, and its byte
// count and SHA-256 are in the audit log, like a file transfer's.
const binaryMarker = "gatehouse: binary output from here on is not recorded as text (raw bytes: sessions export --stream stdout; bytes and sha256 in the session.end audit event)"

// binaryInputMarker is the same for stdin of a session without a pty.
const binaryInputMarker = "gatehouse: binary input from here on is not recorded as text (raw bytes: sessions export --stream stdin)"

// record hands output to the raw store, the recording and live watchers.
// The recorders copy p and encode it on goroutines of their own, so this
// costs the relay a copy each. Stdout of a session without a pty that
// turns binary (a NUL byte, which terminal output does not contain), such
// as `ssh node cat db.dump > db.dump`, stops going into the cast, where it
// would be U+FFFD noise costing several times the transfer in CPU and
// disk: it is counted and hashed, and kept in the raw store like every
// byte of a session without a pty. A user who prints a NUL to get out of
// the cast gets into the raw store.
func (t *sessionTap) record(p []byte, stdout bool) {
	t.bytesOut.Add(int64(len(p)))
	t.mu.Lock()
	rec, pty, raw := t.rec, t.pty, t.raw
	turned := false
	if stdout && t.binary == nil && !pty && !isTransfer(t.kind) && bytes.IndexByte(p, 0) >= 0 {
		t.binary = newBinaryStream()
		turned = true
	}
	bin := t.binary
	t.mu.Unlock()
	if raw != nil {
		if stdout {
			raw.Write(RawStdout, p)
		} else {
			raw.Write(RawStderr, p)
		}
	}
	if turned {
		// Outside the lock: a full recording queue may make Marker wait.
		if rec != nil {
			rec.Marker(binaryMarker)
		}
		t.watch.write([]byte("\r\n[" + binaryMarker + "]\r\n"))
	}
	if stdout && bin != nil {
		// Only the stdout relay goroutine touches the stream.
		_, _ = bin.q.Write(p) // a hash does not fail
		bin.bytes += int64(len(p))
		return
	}
	if rec != nil {
		rec.Output(p) // the recorder applies ONLCR itself when there is no pty
	}
	// The broadcaster keeps recent output for watchers who join later, so
	// it sees every write, watched or not.
	if !pty {
		// Without a pty the user's own terminal turned \n into \r\n
		// (ONLCR); watchers see what the user saw. One stream converts
		// at a time: the buffer is shared.
		t.mu.Lock()
		t.watch.write(t.onlcr.apply(p))
		t.mu.Unlock()
		return
	}
	t.watch.write(p)
}

// binaryStream is binary stdout kept out of the recording. It is hashed
// on a goroutine of its own: SHA-256 (1.5 GB/s here) on the relay
// goroutine was the largest single cost of a download.
type binaryStream struct {
	hash  hash.Hash
	q     *queuedWriter // into hash
	bytes int64
}

func newBinaryStream() *binaryStream {
	h := sha256.New()
	q := newQueuedWriter(h)
	q.startAt = queueMax * 3 / 4 // nobody waits for the hash until the session ends
	return &binaryStream{hash: h, q: q}
}

// sum is the SHA-256 of every byte written, once the queue has drained.
func (b *binaryStream) sum() string {
	_ = b.q.Flush()
	return hex.EncodeToString(b.hash.Sum(nil))
}

// onlcr converts lone \n to \r\n across chunk boundaries. It reuses its
// buffer, so the result is valid until the next call. It runs on the relay
// goroutine for every chunk of a session without a pty, so it copies the
// runs between newlines whole (memmove) instead of byte by byte.
type onlcr struct {
	lastCR bool
	buf    []byte
}

func (o *onlcr) apply(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		if len(p) > 0 {
			o.lastCR = p[len(p)-1] == '\r'
		}
		return p
	}
	o.buf = o.buf[:0]
	for i >= 0 {
		cr := o.lastCR
		if i > 0 {
			cr = p[i-1] == '\r'
		}
		o.buf = append(o.buf, p[:i]...)
		if !cr {
			o.buf = append(o.buf, '\r')
		}
		o.buf = append(o.buf, '\n')
		o.lastCR = false
		p = p[i+1:]
		i = bytes.IndexByte(p, '\n')
	}
	if len(p) > 0 {
		o.buf = append(o.buf, p...)
		o.lastCR = p[len(p)-1] == '\r'
	}
	return o.buf
}

func (t *sessionTap) input(p []byte) {
	if w := t.sftpWatcher(); w != nil {
		w.FromClient(p)
	}
	t.bytesIn.Add(int64(len(p)))
	t.mu.Lock()
	rec, pty, raw := t.rec, t.pty, t.raw
	// Stdin of a session without a pty is recorded whatever
	// record_input says (it is not keystrokes echoed by a terminal but
	// what the user fed the command): as text in the cast until it turns
	// binary, and all of it in the raw store.
	turned := rec != nil && !pty && !t.binaryIn && bytes.IndexByte(p, 0) >= 0
	if turned {
		t.binaryIn = true
	}
	toCast := rec != nil && (pty || !t.binaryIn)
	t.mu.Unlock()
	if raw != nil {
		raw.Write(RawStdin, p)
	}
	if turned {
		rec.Marker(binaryInputMarker)
	}
	if toCast {
		rec.Input(p)
	}
}

// inputDrainWait bounds how long a session's end waits for the client's
// last input.
const inputDrainWait = 5 * time.Second

// relaySession relays a session channel (shell, exec, subsystem) to the
// node, recording it.
func (s *Server) relaySession(ctx context.Context, lc *liveConn, nc ssh.NewChannel, up *upstream) {
	upCh, upReqs, err := up.conn.OpenChannel("session", nc.ExtraData())
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "gatehouse: node refused the session: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		upCh.Close()
		return
	}
	t := &sessionTap{s: s, ctx: ctx, lc: lc, id: newID(), watch: newBroadcaster(), startedCh: make(chan struct{})}
	live := &liveChannel{id: t.id, ch: ch, watch: t.watch}
	lc.addChannel(live)
	defer lc.removeChannel(t.id)
	defer t.watch.closeAll()

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
		forwardRequests(reqs, upCh, func(r *ssh.Request) bool { return t.clientRequest(r, ch, live) }, &t.replies)
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
				t.exit = &code
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
func (t *sessionTap) clientRequest(r *ssh.Request, ch ssh.Channel, live *liveChannel) bool {
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
			if !t.started {
				t.term, t.cols, t.rows, t.pty = p.Term, int(p.Cols), int(p.Rows), true
			}
			t.mu.Unlock()
		}
	case "window-change":
		var p struct{ Cols, Rows, W, H uint32 }
		if ssh.Unmarshal(r.Payload, &p) == nil {
			t.mu.Lock()
			t.cols, t.rows = int(p.Cols), int(p.Rows)
			rec := t.rec
			t.mu.Unlock()
			if rec != nil {
				rec.Resize(int(p.Cols), int(p.Rows))
			}
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
		already, pty := t.started, t.pty
		t.started = true
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
		live.kind, live.command = kind, command
		err := t.begin(kind, command)
		t.markStarted()
		if err != nil {
			// Accept the request, then refuse in words: OpenSSH exits at
			// once on a failed exec reply, before printing our stderr.
			msg := "gatehouse: session recording is unavailable; session refused (" + err.Error() + ")"
			if errors.Is(err, errAuditUnavailable) {
				msg = "gatehouse: the audit log is unavailable; session refused"
			}
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
			live.writeStderr(msg + "\r\n")
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{1}))
			ch.Close()
			return true
		}
	}
	return false
}

// begin opens the recording and the index entry when the session starts.
func (t *sessionTap) begin(kind, command string) error {
	s, lc := t.s, t.lc
	t.mu.Lock()
	t.kind, t.command = kind, command
	cols, rows, term, pty := t.cols, t.rows, t.term, t.pty
	t.mu.Unlock()
	if cols == 0 {
		cols, rows = 80, 24
	}
	v := lc.currentVerdict()
	if kind == "sftp" {
		w := sftp.NewWatcher(func(op sftp.Op) { t.sftpOp(op) })
		t.sftpEvents, t.sftpDone = make(chan storage.Event, 1024), make(chan struct{})
		go func() {
			defer close(t.sftpDone)
			// The batch's last operations may still be queued when the
			// client hangs up; s.audit outlives t.ctx for them.
			for ev := range t.sftpEvents {
				s.audit(t.ctx, ev)
			}
		}()
		t.mu.Lock()
		t.sftp = w
		t.mu.Unlock()
	}
	rec := storage.Session{
		ID: t.id, User: lc.ident.User, Login: lc.login, Node: lc.node.Name, Kind: kind, Command: command,
		Roles: v.Roles, RequestIDs: v.RequestIDs, ClientAddr: lc.remote, Bastion: s.cfg.BastionID,
		Start: time.Now().UTC(), Status: "live",
	}
	if s.opt.Recorder != nil && !isTransfer(kind) {
		r, path, err := s.opt.Recorder(t.id, RecordingHeader{Width: cols, Height: rows, Term: term, PTY: pty, Command: command,
			Title: fmt.Sprintf("%s@%s (%s)", lc.login, lc.node.Name, lc.ident.User), Start: rec.Start},
			func(err error) { t.recordingFailed(err) })
		if err != nil {
			s.audit(t.ctx, storage.Event{Type: "recording.failure", Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
				Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.cfg.Recording.Mode}})
			if s.cfg.Recording.Mode != "best-effort" {
				return fmt.Errorf("cannot open recording")
			}
		} else {
			t.mu.Lock()
			t.rec = r
			t.mu.Unlock()
			rec.Recording = path
		}
	}
	if s.opt.RawRecorder != nil && !pty {
		raw, err := s.opt.RawRecorder(t.id, t.rawCapped, func(err error) { t.recordingFailed(err) })
		if err != nil {
			s.audit(t.ctx, storage.Event{Type: "recording.failure", Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
				Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.cfg.Recording.Mode, "store": "raw"}})
			if s.cfg.Recording.Mode != "best-effort" {
				t.closeRecorder()
				return fmt.Errorf("cannot open raw recording")
			}
		} else {
			t.mu.Lock()
			t.raw = raw
			t.mu.Unlock()
		}
	}
	if err := s.opt.Sessions.CreateSession(t.ctx, rec); err != nil {
		s.log.Error("session index", "session", t.id, "err", err)
		if s.cfg.Recording.Mode != "best-effort" {
			t.closeRecorder()
			t.closeRaw()
			return fmt.Errorf("cannot index session")
		}
	}
	fields := lc.innerAuth.addTo(map[string]any{"session": t.id, "login": lc.login, "kind": kind, "remote": lc.remote, "roles": v.Roles, "requests": v.RequestIDs, "conn": lc.id})
	evs := []storage.Event{{Type: "session.start", Actor: lc.ident.User, Target: lc.node.Name, Fields: fields}}
	if command != "" {
		evs = append(evs, storage.Event{Type: "exec", Actor: lc.ident.User, Target: lc.node.Name, Fields: map[string]any{"session": t.id, "login": lc.login, "command": command}})
	}
	// One durable commit for both, in this order, before the command
	// reaches the node; without it the command does not go (fail closed).
	if err := s.auditAll(t.ctx, evs...); err != nil {
		ictx, icancel := context.WithTimeout(context.WithoutCancel(t.ctx), auditTimeout)
		if ierr := s.opt.Sessions.EndSession(ictx, t.id, time.Now().UTC(), "refused", nil, 0, 0); ierr != nil {
			s.log.Error("session index end", "session", t.id, "err", ierr)
		}
		icancel()
		t.closeRecorder()
		t.closeRaw()
		return errAuditUnavailable
	}
	t.mu.Lock()
	t.begun = true
	t.mu.Unlock()
	return nil
}

func (t *sessionTap) recordingFailed(err error) {
	if !t.failed.CompareAndSwap(false, true) {
		return
	}
	s, lc := t.s, t.lc
	s.audit(t.ctx, storage.Event{Type: "recording.failure", Actor: lc.ident.User, Target: lc.node.Name, Outcome: "failure",
		Fields: map[string]any{"session": t.id, "error": err.Error(), "mode": s.cfg.Recording.Mode}})
	if s.cfg.Recording.Mode != "best-effort" {
		lc.terminate("gatehouse: session recording failed; session closed (recording.mode is strict)")
	}
}

func (t *sessionTap) closeRecorder() {
	t.mu.Lock()
	rec := t.rec
	t.rec = nil
	t.mu.Unlock()
	if rec != nil {
		// Closing compresses the file: CPU-heavy for a big session. A
		// few at a time, so a thousand sessions ending together (a lock,
		// a shutdown) don't starve the live ones and the bookkeeping.
		t.s.finalizers <- struct{}{}
		err := rec.Close()
		<-t.s.finalizers
		if err != nil {
			t.recordingFailed(err)
		}
	}
}

// closeRaw closes the raw store, if the session has one, and returns its
// summary (ok=false without one).
func (t *sessionTap) closeRaw() (sum RawSummary, ok bool) {
	t.mu.Lock()
	raw := t.raw
	t.raw = nil
	t.mu.Unlock()
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
	s.audit(t.ctx, storage.Event{Type: "recording.cap_reached", Actor: lc.ident.User, Target: lc.node.Name,
		Fields: map[string]any{"session": t.id, "login": lc.login, "stored_bytes": stored, "max_raw_bytes": max}})
}

// errAuditUnavailable refuses a session whose start could not be written
// to the audit log: nothing reaches a node off the record.
var errAuditUnavailable = errors.New("the audit log is unavailable")

// auditTimeout bounds one audit append (see Server.auditAll).
const auditTimeout = time.Minute

// finish closes the recording and the index entry.
func (t *sessionTap) finish() {
	t.mu.Lock()
	begun, kind, command, exit, bin := t.begun, t.kind, t.command, t.exit, t.binary
	t.mu.Unlock()
	if !begun {
		// Never started (refused before the index entry was written):
		// session.denied/recording.failure already tell the story.
		t.closeRecorder()
		t.closeRaw()
		return
	}
	if w := t.sftpWatcher(); w != nil {
		w.Close()
		close(t.sftpEvents)
		<-t.sftpDone
	}
	s, lc := t.s, t.lc
	status := "ended"
	lc.mu.Lock()
	if lc.closed {
		status = "terminated"
	}
	lc.mu.Unlock()
	in, out := t.bytesIn.Load(), t.bytesOut.Load()
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
		err := s.opt.Sessions.EndSession(ctx, t.id, end, status, exit, in, out)
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
	fields := map[string]any{"session": t.id, "login": lc.login, "kind": kind, "bytes_in": in, "bytes_out": out, "status": status}
	if exit != nil {
		fields["exit_status"] = *exit
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
	s.audit(ctx, storage.Event{Type: "session.end", Actor: lc.ident.User, Target: lc.node.Name, Fields: fields})
	if bin != nil {
		// Binary stdout is a download whatever the command was called.
		s.audit(ctx, storage.Event{Type: "file_transfer", Actor: lc.ident.User, Target: lc.node.Name,
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
		s.audit(ctx, storage.Event{Type: "file_transfer", Actor: lc.ident.User, Target: lc.node.Name, Fields: ft})
	}
	// Last: closing compresses the recording, which takes a while for a
	// large session; the index and the audit log are already up to date.
	t.closeRecorder()
}

// sftpOp audits one SFTP file operation with its path.
func (t *sessionTap) sftpOp(op sftp.Op) {
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
	t.sftpEvents <- storage.Event{Type: "sftp.op", Actor: t.lc.ident.User, Target: t.lc.node.Name, Outcome: outcome, Fields: fields}
}
