package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
)

// heldConn is an in-memory SSH connection whose server side is handed to
// holdSession, as a refused jump's inner connection is.
type heldConn struct {
	client *ssh.Client
	held   chan *heldSession // holdSession's answer (nil: refused)
}

func newHeldConn(t *testing.T) *heldConn {
	t.Helper()
	cc, sc := sshtest.Loopback(t)
	scfg := innerServerConfig()
	scfg.AddHostKey(sshtest.NewSigner(t))
	h := &heldConn{held: make(chan *heldSession, 1)}
	go func() {
		inner, chans, greqs, err := ssh.NewServerConn(sc, scfg)
		if err != nil {
			h.held <- nil
			return
		}
		go ssh.DiscardRequests(greqs)
		s, ok := holdSession(inner, chans, &UserError{Line: "gatehouse: refused"})
		if !ok {
			s = nil
		}
		h.held <- s
	}()
	c, chans, reqs, err := ssh.NewClientConn(cc, "db-1:22", &ssh.ClientConfig{User: "root", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.client = ssh.NewClient(c, chans, reqs)
	t.Cleanup(func() { h.client.Close() })
	return h
}

func (h *heldConn) result(t *testing.T) *heldSession {
	t.Helper()
	select {
	case s := <-h.held:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("holdSession did not answer")
		return nil
	}
}

type ptyReq struct {
	Term             string
	Cols, Rows, W, H uint32
	Modes            string
}

// A terminal session is held with its requests answered, and replayed to
// the relay as the client sent them, at the size it has now; its input
// goes on where the dialogue stopped reading.
func TestJITHeldSessionReplays(t *testing.T) {
	h := newHeldConn(t)
	ch, _, err := h.client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		typ     string
		payload []byte
	}{
		{"pty-req", ssh.Marshal(ptyReq{Term: "xterm", Cols: 80, Rows: 24})},
		{"env", ssh.Marshal(struct{ K, V string }{"LANG", "C.UTF-8"})},
		{"auth-agent-req@openssh.com", nil},
		{"shell", nil},
	} {
		if ok, err := ch.SendRequest(r.typ, true, r.payload); !ok || err != nil {
			t.Fatalf("%s: answered %v, %v; want yes", r.typ, ok, err)
		}
	}
	s := h.result(t)
	if s == nil {
		t.Fatal("a terminal session with a shell was not held")
	}
	// While the user answers prompts: a resize, and keys.
	if _, err := ch.SendRequest("window-change", false, ssh.Marshal(struct{ Cols, Rows, W, H uint32 }{120, 40, 0, 0})); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if c, err := s.keys.key(t.Context(), time.Second); err != nil || c != 'a' {
		t.Fatalf("dialogue key: %q, %v", c, err)
	}
	// The window-change is applied before the replay is taken.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		var p ptyReq
		_ = ssh.Unmarshal(s.pty, &p)
		s.mu.Unlock()
		if p.Cols == 120 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	s.reqs.open()
	rch, reqs, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		r := <-reqs
		if r.WantReply {
			t.Errorf("replayed %s wants a reply the client already had", r.Type)
		}
		if r.Type == "pty-req" {
			var p ptyReq
			if err := ssh.Unmarshal(r.Payload, &p); err != nil || p.Term != "xterm" || p.Cols != 120 || p.Rows != 40 {
				t.Errorf("replayed pty-req %+v (%v), want xterm 120x40", p, err)
			}
		}
		got = append(got, r.Type)
	}
	if strings.Join(got, ",") != "pty-req,env,auth-agent-req@openssh.com,shell" {
		t.Fatalf("replayed %v, want pty-req, env, the agent request, shell", got)
	}
	// Requests the client sends from now on follow.
	if _, err := ch.SendRequest("window-change", false, ssh.Marshal(struct{ Cols, Rows, W, H uint32 }{100, 30, 0, 0})); err != nil {
		t.Fatal(err)
	}
	if r := <-reqs; r.Type != "window-change" {
		t.Fatalf("after the replay: got %s, want the client's window-change", r.Type)
	}
	// The key the dialogue did not consume comes first, then new input.
	if _, err := ch.Write([]byte("cd")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := io.ReadAtLeast(rch, buf, 3)
	if err != nil || string(buf[:n]) != "bcd" {
		t.Fatalf("session input: %q, %v; want \"bcd\"", buf[:n], err)
	}
}

// A session without a terminal (a command, scp, sftp) gets the one-line
// refusal and exit status 1, as before.
func TestJITHeldSessionWithoutTerminalIsRefused(t *testing.T) {
	for name, start := range map[string]func(*ssh.Session) error{
		"exec":      func(s *ssh.Session) error { return s.Start("id") },
		"subsystem": func(s *ssh.Session) error { return s.RequestSubsystem("sftp") },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHeldConn(t)
			sess, err := h.client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			stderr, err := sess.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := start(sess); err != nil {
				t.Fatal(err)
			}
			if s := h.result(t); s != nil {
				t.Fatal("a session without a terminal was held")
			}
			msg, _ := io.ReadAll(stderr)
			if string(msg) != "gatehouse: refused\r\n" {
				t.Fatalf("want the refusal on stderr, got %q", msg)
			}
			if name == "exec" {
				var exit *ssh.ExitError
				if err := sess.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 1 {
					t.Fatalf("want exit status 1, got %v", err)
				}
			}
		})
	}
}
