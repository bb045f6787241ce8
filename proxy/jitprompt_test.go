package proxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// screen is the dialogue's terminal output, safe to read while written.
type screen struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newScreen() *screen { return &screen{changed: make(chan struct{})} }

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor blocks until the output contains want.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got, ch := s.b.String(), s.changed
		s.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("terminal never showed %q; it shows %q", want, got)
		}
	}
}

// fakeDesk files requests in memory; the test decides their outcome.
type fakeDesk struct {
	mu        sync.Mutex
	filed     []string // role|reason|duration
	cancelled []string
	fileErr   error
	approvers []string
	outcome   chan RequestOutcome
	status    chan string // what Await reports as progress
}

func (f *fakeDesk) File(_ context.Context, role, reason string, d time.Duration) (FiledRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fileErr != nil {
		return FiledRequest{}, f.fileErr
	}
	f.filed = append(f.filed, role+"|"+reason+"|"+d.String())
	return FiledRequest{ID: "req1", Roles: []string{role}, Duration: d, Approvers: f.approvers}, nil
}

func (f *fakeDesk) Await(ctx context.Context, _ string, progress func(string)) (RequestOutcome, error) {
	for {
		select {
		case o := <-f.outcome:
			return o, nil
		case st := <-f.status:
			progress(st)
		case <-ctx.Done():
			return RequestOutcome{}, ctx.Err()
		}
	}
}

func (f *fakeDesk) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeDesk) calls() (filed, cancelled []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.filed...), append([]string(nil), f.cancelled...)
}

var (
	optDBA        = RequestOption{Role: "dba", DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour, ReasonRequired: true}
	optBreakglass = RequestOption{Role: "breakglass", DefaultDuration: 30 * time.Minute, MaxDuration: 30 * time.Minute}
)

// dialogue runs a requestDialog over an in-memory pipe: type into the
// returned writer, read the screen, and get run's answer from done.
type dialogue struct {
	d      *requestDialog
	keys   *io.PipeWriter
	screen *screen
	desk   *fakeDesk
	done   chan bool
}

func startDialogue(t *testing.T, opts ...RequestOption) *dialogue {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	g := &dialogue{keys: pw, screen: newScreen(), desk: &fakeDesk{outcome: make(chan RequestOutcome, 1), status: make(chan string), approvers: []string{"alice"}}, done: make(chan bool, 1)}
	g.d = &requestDialog{keys: newKeyReader(pr), out: g.screen, desk: g.desk, options: opts,
		refusal: "gatehouse: bob may not log in as root on db-1 (no role allows login root on {env: prod})",
		target:  "root@db-1", tick: 10 * time.Millisecond}
	go func() { g.done <- g.d.run(context.Background()) }()
	return g
}

func (g *dialogue) typ(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(g.keys, s); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

func (g *dialogue) result(t *testing.T) bool {
	t.Helper()
	select {
	case ok := <-g.done:
		return ok
	case <-time.After(10 * time.Second):
		t.Fatalf("the dialogue did not end; screen: %q", g.screen.String())
		return false
	}
}

func TestJITPromptApprovedThenInputGoesOn(t *testing.T) {
	g := startDialogue(t, optBreakglass, optDBA)
	g.screen.waitFor(t, "role [1-2 or its name, default 1]: ")
	for _, want := range []string{"bob may not log in as root on db-1", "1) breakglass (up to 30m)", "2) dba (up to 4h)"} {
		if !strings.Contains(g.screen.String(), want) {
			t.Errorf("screen lacks %q: %q", want, g.screen.String())
		}
	}
	g.typ(t, "7\r")
	g.screen.waitFor(t, "choose a number from the list")
	g.typ(t, "dba\r")
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "\r")
	g.screen.waitFor(t, "a reason is required")
	// Backspace and an arrow key are edited away; the answer is pasted
	// with the next one after it.
	g.typ(t, "INC-7 disk fulk\x7fl\x1b[D\r\n5h\r")
	g.screen.waitFor(t, "at most 4h")
	g.typ(t, "soon\r")
	g.screen.waitFor(t, "write a duration such as 30m")
	g.typ(t, "2h\r")
	g.screen.waitFor(t, "waiting for approval by a dba reviewer\u2026")
	if !strings.Contains(g.screen.String(), "request req1 filed for dba, 2h; who can approve: alice") {
		t.Errorf("screen lacks the filed line: %q", g.screen.String())
	}
	filed, _ := g.desk.calls()
	if len(filed) != 1 || filed[0] != "dba|INC-7 disk full|2h0m0s" {
		t.Fatalf("filed %q, want one dba request for 2h with the edited reason", filed)
	}
	g.desk.outcome <- RequestOutcome{State: "APPROVED", By: "alice"}
	if !g.result(t) {
		t.Fatalf("approved request: dialogue says no access; screen %q", g.screen.String())
	}
	g.screen.waitFor(t, "gatehouse: request req1 approved by alice; connecting to root@db-1\r\n")

	// What is typed from now on is the session's, the read in flight
	// included.
	go func() { _, _ = io.WriteString(g.keys, "id\r") }()
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(g.d.keys, buf, 3)
	if err != nil || string(buf[:n]) != "id\r" {
		t.Fatalf("input after approval: got %q, %v; want %q", buf[:n], err, "id\r")
	}
}

func TestJITPromptDefaults(t *testing.T) {
	g := startDialogue(t, optBreakglass)
	g.screen.waitFor(t, "role: breakglass (up to 30m)")
	g.screen.waitFor(t, "reason (optional): ")
	g.typ(t, "\r\r")
	g.screen.waitFor(t, "waiting for approval")
	filed, _ := g.desk.calls()
	if len(filed) != 1 || filed[0] != "breakglass||30m0s" {
		t.Fatalf("filed %q, want breakglass with no reason for the default 30m", filed)
	}
	g.desk.outcome <- RequestOutcome{State: "APPROVED", By: "sam"}
	if !g.result(t) {
		t.Fatal("approved request: dialogue says no access")
	}
}

// Under an AND-rule the waiting user sees what is still missing, in the
// words of `requests ID`, again when a partial approval changes it.
func TestJITPromptShowsApprovalProgress(t *testing.T) {
	g := startDialogue(t, optBreakglass)
	g.typ(t, "\r\r")
	g.screen.waitFor(t, "waiting for approval by a breakglass reviewer")
	g.desk.status <- "needs 1 more approval from dba-lead and 1 more approval from manager"
	g.screen.waitFor(t, "\r\x1b[Kapproval: needs 1 more approval from dba-lead and 1 more approval from manager\r\n")
	g.screen.waitFor(t, "approval from manager\r\n\r\x1b[Kwaiting for approval by a breakglass reviewer")
	// The same status again (the next poll) prints nothing new.
	g.desk.status <- "needs 1 more approval from dba-lead and 1 more approval from manager"
	g.desk.status <- "needs 1 more approval from manager\x1b[2J"
	g.screen.waitFor(t, "approval: needs 1 more approval from manager\\x1b[2J\r\n")
	if n := strings.Count(g.screen.String(), "approval: "); n != 2 {
		t.Errorf("want two status lines, got %d: %q", n, g.screen.String())
	}
	g.desk.outcome <- RequestOutcome{State: "APPROVED", By: "bo"}
	if !g.result(t) {
		t.Fatalf("approved request: dialogue says no access; screen %q", g.screen.String())
	}
}

func TestJITPromptDeniedIsOneLine(t *testing.T) {
	g := startDialogue(t, optDBA)
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "x\r\r")
	g.screen.waitFor(t, "waiting for approval")
	g.desk.outcome <- RequestOutcome{State: "DENIED", By: "alice", Reason: "not\x1b[2J now"}
	if g.result(t) {
		t.Fatal("denied request: dialogue grants access")
	}
	out := g.screen.String()
	last := out[strings.LastIndex(out, "\x1b[K")+len("\x1b[K"):]
	if last != `gatehouse: request req1 denied by alice: not\x1b[2J now; session closed`+"\r\n" {
		t.Fatalf("after the progress line: got %q, want one line with the reviewer's words escaped", last)
	}
}

func TestJITPromptCtrlCCancelsRequest(t *testing.T) {
	for name, key := range map[string]string{"Ctrl-C": "abc\x03", "Ctrl-D": "\x04"} {
		t.Run(name, func(t *testing.T) {
			g := startDialogue(t, optDBA)
			g.screen.waitFor(t, "reason (required): ")
			g.typ(t, "x\r\r")
			g.screen.waitFor(t, "waiting for approval")
			g.typ(t, key)
			if g.result(t) {
				t.Fatalf("%s: dialogue grants access", name)
			}
			if _, cancelled := g.desk.calls(); len(cancelled) != 1 || cancelled[0] != "req1" {
				t.Fatalf("%s while waiting: cancelled %q, want [req1]", name, cancelled)
			}
			g.screen.waitFor(t, "gatehouse: request req1 cancelled\r\n")
		})
	}
}

// A client that goes away while waiting leaves its request pending.
func TestJITPromptClientGoneWhileWaiting(t *testing.T) {
	g := startDialogue(t, optDBA)
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "x\r\r")
	g.screen.waitFor(t, "waiting for approval")
	g.keys.Close()
	if g.result(t) {
		t.Fatal("client gone: dialogue grants access")
	}
	if filed, cancelled := g.desk.calls(); len(filed) != 1 || len(cancelled) != 0 {
		t.Fatalf("client gone: filed %q, cancelled %q; want the request filed and left pending", filed, cancelled)
	}
}

func TestJITPromptCtrlCBeforeFiling(t *testing.T) {
	for name, key := range map[string]string{"Ctrl-C": "half a reason\x03", "Ctrl-D": "\x04"} {
		t.Run(name, func(t *testing.T) {
			g := startDialogue(t, optDBA)
			g.screen.waitFor(t, "reason (required): ")
			g.typ(t, key)
			if g.result(t) {
				t.Fatal("dialogue grants access")
			}
			if filed, _ := g.desk.calls(); len(filed) != 0 {
				t.Fatalf("filed %q after %s", filed, name)
			}
			g.screen.waitFor(t, "gatehouse: no request filed\r\n")
		})
	}
}

func TestJITPromptEndOfInput(t *testing.T) {
	g := startDialogue(t, optDBA)
	g.screen.waitFor(t, "reason (required): ")
	g.keys.Close()
	if g.result(t) {
		t.Fatal("closed input: dialogue grants access")
	}
}

func TestJITPromptIdle(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	scr := newScreen()
	d := &requestDialog{keys: newKeyReader(pr), out: scr, desk: &fakeDesk{}, options: []RequestOption{optDBA}, idle: 20 * time.Millisecond}
	if d.run(context.Background()) {
		t.Fatal("nobody answered: dialogue grants access")
	}
	scr.waitFor(t, "gatehouse: no answer; no request filed")
}

func TestJITPromptFilingRefused(t *testing.T) {
	g := startDialogue(t, optDBA)
	g.desk.fileErr = &UserError{Line: "gatehouse: you are locked and may not request roles"}
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "x\r\r")
	if g.result(t) {
		t.Fatal("refused filing: dialogue grants access")
	}
	g.screen.waitFor(t, "gatehouse: you are locked and may not request roles\r\n")

	g = startDialogue(t, optDBA)
	g.desk.fileErr = errors.New("database is down at 10.0.0.9")
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "x\r\r")
	g.result(t)
	if out := g.screen.String(); strings.Contains(out, "10.0.0.9") || !strings.Contains(out, "could not be filed; try again") {
		t.Fatalf("an internal error must not reach the user: %q", out)
	}
}

// Names that reach the terminal are escaped.
func TestJITPromptEscapesNames(t *testing.T) {
	g := startDialogue(t, RequestOption{Role: "dba\x1b]0;pwned\x07", DefaultDuration: time.Hour, MaxDuration: time.Hour})
	g.desk.approvers = []string{"eve\x1b[31m"}
	g.screen.waitFor(t, "reason (optional): ")
	g.typ(t, "\r\r")
	g.screen.waitFor(t, "waiting for approval")
	if out := g.screen.String(); strings.Contains(out, "\x1b]0;") || strings.Contains(out, "\x1b[31m") {
		t.Fatalf("a raw escape sequence reached the terminal: %q", out)
	}
}

// What the user types is echoed a whole character at a time, and a
// character that could act on the terminal is dropped, not echoed.
func TestJITPromptEchoesOnlySafeCharacters(t *testing.T) {
	g := startDialogue(t, optDBA)
	g.screen.waitFor(t, "reason (required): ")
	g.typ(t, "caf\xc3\xa9 \xc2\x9b2J\xe2\x80\xaeok\xff\r\r")
	g.screen.waitFor(t, "waiting for approval")
	if filed, _ := g.desk.calls(); len(filed) != 1 || filed[0] != "dba|café 2Jok|1h0m0s" {
		t.Fatalf("filed %q, want the reason without the C1 CSI, the bidi override and the invalid byte", filed)
	}
	if out := g.screen.String(); strings.Contains(out, "\xc2\x9b") || strings.Contains(out, "\u202e") || !strings.Contains(out, "café 2Jok") {
		t.Fatalf("echo: %q", out)
	}
}
