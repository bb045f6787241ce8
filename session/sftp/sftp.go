// Package sftp watches an SFTP (version 3) conversation passing through the
// bastion and reports each file operation (open, close with read/write
// totals, remove, rename, mkdir, rmdir, setstat) with its path, for the
// audit log. It never alters the stream and never buffers file contents:
// only the first bytes of each packet, where the metadata lives, are kept.
package sftp

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Packet types (draft-ietf-secsh-filexfer-02).
const (
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpSetstat  = 9
	fxpFsetstat = 10
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpRename   = 18
	fxpExtended = 200

	fxpStatus = 101
	fxpHandle = 102
	fxpData   = 103
)

// headKeep bounds the per-packet bytes kept for parsing: enough for two
// long paths, never the data of a WRITE or DATA packet.
const headKeep = 9000

// Op is one file operation as seen on the wire.
type Op struct {
	Op      string // open, close, remove, rename, mkdir, rmdir, setstat
	Path    string
	Target  string // rename destination
	Mode    string // open: read, write, read-write
	Read    int64  // close: bytes read through the handle
	Written int64  // close: bytes written through the handle
	OK      bool
	Status  uint32 // SSH_FX_* status code when not OK
}

type pending struct {
	op     string
	path   string
	target string
	mode   string
	handle string
}

type handleInfo struct {
	path          string
	mode          string
	read, written int64
}

// Watcher follows one SFTP session. FromClient and FromServer must each be
// called from one goroutine at a time (they may run concurrently with each
// other; shared state is guarded).
type Watcher struct {
	onOp    func(Op)
	client  framer
	server  framer
	mu      sync.Mutex // pending and handles are shared by both directions
	pending map[uint32]pending
	handles map[string]*handleInfo
}

// NewWatcher returns a watcher calling onOp for every completed operation.
func NewWatcher(onOp func(Op)) *Watcher {
	w := &Watcher{onOp: onOp, pending: map[uint32]pending{}, handles: map[string]*handleInfo{}}
	w.client.onPacket = w.clientPacket
	w.server.onPacket = w.serverPacket
	return w
}

func (w *Watcher) lock()   { w.mu.Lock() }
func (w *Watcher) unlock() { w.mu.Unlock() }

// FromClient feeds bytes the client sent to the server.
func (w *Watcher) FromClient(p []byte) { w.client.feed(p) }

// FromServer feeds bytes the server sent to the client.
func (w *Watcher) FromServer(p []byte) { w.server.feed(p) }

// Close reports handles that were never closed (the session ended first).
func (w *Watcher) Close() {
	w.lock()
	var ops []Op
	for h, hi := range w.handles {
		ops = append(ops, Op{Op: "close", Path: hi.path, Mode: hi.mode, Read: hi.read, Written: hi.written, OK: false})
		delete(w.handles, h)
	}
	w.unlock()
	for _, op := range ops {
		w.onOp(op)
	}
}

// framer splits a byte stream into SFTP packets, keeping at most headKeep
// bytes of each.
type framer struct {
	lenBuf   [4]byte
	lenHave  int
	remain   uint32 // bytes of the current packet still to come
	total    uint32 // current packet length
	head     []byte
	onPacket func(head []byte, total uint32)
	broken   bool
}

func (f *framer) feed(p []byte) {
	for len(p) > 0 && !f.broken {
		if f.remain == 0 {
			n := copy(f.lenBuf[f.lenHave:], p)
			f.lenHave += n
			p = p[n:]
			if f.lenHave < 4 {
				return
			}
			f.lenHave = 0
			f.total = binary.BigEndian.Uint32(f.lenBuf[:])
			f.remain = f.total
			f.head = f.head[:0]
			if f.total == 0 || f.total > 1<<24 {
				// Not SFTP (or a corrupted stream): stop watching rather
				// than guess.
				f.broken = true
				return
			}
			continue
		}
		n := uint32(len(p))
		if n > f.remain {
			n = f.remain
		}
		if keep := headKeep - len(f.head); keep > 0 {
			k := int(n)
			if k > keep {
				k = keep
			}
			f.head = append(f.head, p[:k]...)
		}
		p = p[n:]
		f.remain -= n
		if f.remain == 0 {
			f.onPacket(f.head, f.total)
		}
	}
}

// reader decodes SSH wire types from a packet head.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) str() string {
	n := r.u32()
	if r.bad || uint32(len(r.b)) < n {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func openMode(pflags uint32) string {
	const read, write = 1, 2
	switch {
	case pflags&read != 0 && pflags&write != 0:
		return "read-write"
	case pflags&write != 0:
		return "write"
	default:
		return "read"
	}
}

func (w *Watcher) clientPacket(head []byte, total uint32) {
	r := &reader{b: head}
	typ := r.u8()
	id := r.u32()
	if r.bad {
		return
	}
	var p pending
	switch typ {
	case fxpOpen:
		path := r.str()
		p = pending{op: "open", path: path, mode: openMode(r.u32())}
	case fxpClose:
		p = pending{op: "close", handle: r.str()}
	case fxpRead:
		p = pending{op: "read", handle: r.str()}
	case fxpWrite:
		h := r.str()
		r.u32() // offset, high
		r.u32() // offset, low
		n := r.u32()
		if r.bad {
			return
		}
		w.lock()
		if hi := w.handles[h]; hi != nil {
			hi.written += int64(n)
		}
		w.unlock()
		return
	case fxpRemove:
		p = pending{op: "remove", path: r.str()}
	case fxpMkdir:
		p = pending{op: "mkdir", path: r.str()}
	case fxpRmdir:
		p = pending{op: "rmdir", path: r.str()}
	case fxpSetstat:
		p = pending{op: "setstat", path: r.str()}
	case fxpFsetstat:
		p = pending{op: "setstat", handle: r.str()}
	case fxpRename:
		p = pending{op: "rename", path: r.str()}
		p.target = r.str()
	case fxpExtended:
		if name := r.str(); name == "posix-rename@openssh.com" {
			p = pending{op: "rename", path: r.str()}
			p.target = r.str()
		} else {
			return
		}
	default:
		return
	}
	if r.bad {
		return
	}
	w.lock()
	if p.handle != "" && p.path == "" {
		if hi := w.handles[p.handle]; hi != nil {
			p.path, p.mode = hi.path, hi.mode
		}
	}
	w.pending[id] = p
	w.unlock()
}

func (w *Watcher) serverPacket(head []byte, total uint32) {
	r := &reader{b: head}
	typ := r.u8()
	id := r.u32()
	if r.bad {
		return
	}
	w.lock()
	p, ok := w.pending[id]
	if !ok {
		w.unlock()
		return
	}
	delete(w.pending, id)
	var emit *Op
	switch typ {
	case fxpHandle:
		if p.op == "open" {
			h := r.str()
			if !r.bad {
				w.handles[h] = &handleInfo{path: p.path, mode: p.mode}
				emit = &Op{Op: "open", Path: p.path, Mode: p.mode, OK: true}
			}
		}
	case fxpData:
		if p.op == "read" {
			// total = type(1) + id(4) + length(4) + data
			if hi := w.handles[p.handle]; hi != nil && total >= 9 {
				hi.read += int64(total - 9)
			}
		}
	case fxpStatus:
		code := r.u32()
		okStatus := code == 0
		switch p.op {
		case "read":
			// EOF (1) ends a read loop; nothing to report.
		case "close":
			if hi := w.handles[p.handle]; hi != nil {
				emit = &Op{Op: "close", Path: hi.path, Mode: hi.mode, Read: hi.read, Written: hi.written, OK: okStatus, Status: code}
				delete(w.handles, p.handle)
			}
		default:
			emit = &Op{Op: p.op, Path: p.path, Target: p.target, Mode: p.mode, OK: okStatus, Status: code}
		}
	}
	w.unlock()
	if emit != nil {
		w.onOp(*emit)
	}
}

// String is a compact description for logs.
func (o Op) String() string {
	s := fmt.Sprintf("%s %s", o.Op, o.Path)
	if o.Target != "" {
		s += " -> " + o.Target
	}
	return s
}
