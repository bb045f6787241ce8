package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/termsafe"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// This file is the terminal dialogue of a request on a refused connection:
// which role, the reason, the duration, then the wait for a decision. It
// talks to a raw terminal (the client's pty is in raw mode, so the bastion
// echoes and edits lines itself) and knows nothing of SSH: jitrequest.go
// connects it to the held session channel.

// requestDesk is what the dialogue needs from the access service, bound
// to the refused user.
type requestDesk interface {
	File(ctx context.Context, role, reason string, d time.Duration) (FiledRequest, error)
	Await(ctx context.Context, id string, progress func(status string)) (RequestOutcome, error)
	Cancel(ctx context.Context, id string) error
}

// Request states as the access service names them.
const (
	requestApproved  = "APPROVED"
	requestCancelled = "CANCELLED"
)

// Keys the line editor acts on.
const (
	keyCtrlC     = 0x03
	keyCtrlD     = 0x04
	keyBackspace = 0x08
	keyCtrlU     = 0x15
	keyEscape    = 0x1b
	keyDelete    = 0x7f
)

// errInterrupted is Ctrl-C (or Ctrl-D on an empty line, or the end of
// input) during the dialogue.
var errInterrupted = errors.New("interrupted")

// errIdle is a prompt left unanswered for too long.
var errIdle = errors.New("no answer")

// maxAnswer bounds one typed answer; a reason longer than this is cut.
const maxAnswer = 500

// readResult is one Read of the terminal's input.
type readResult struct {
	b   []byte
	err error
}

// keyReader reads the terminal's input one key at a time while the
// dialogue runs, and afterwards is the session's input: what was typed
// but not consumed, and a read still in flight, reach the shell first, so
// no keystroke is lost when the session goes on. Only its owner calls it.
type keyReader struct {
	r    io.Reader
	buf  []byte
	err  error
	res  chan readResult // the result of the read in flight
	busy bool            // a read is in flight
}

func newKeyReader(r io.Reader) *keyReader {
	return &keyReader{r: r, res: make(chan readResult, 1)}
}

// ready returns a channel that delivers the next chunk of input, starting
// a read if none is in flight; hand what it delivers to got.
func (k *keyReader) ready() <-chan readResult {
	if !k.busy {
		k.busy = true
		go func() {
			b := make([]byte, 256)
			n, err := k.r.Read(b)
			k.res <- readResult{b[:n], err}
		}()
	}
	return k.res
}

func (k *keyReader) got(r readResult) {
	k.busy = false
	k.buf = append(k.buf, r.b...)
	if r.err != nil {
		k.err = r.err
	}
}

// key returns the next input byte, waiting at most idle for it.
func (k *keyReader) key(ctx context.Context, idle time.Duration) (byte, error) {
	var timeout <-chan time.Time
	for len(k.buf) == 0 {
		if k.err != nil {
			return 0, k.err
		}
		if timeout == nil {
			t := time.NewTimer(idle)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case r := <-k.ready():
			k.got(r)
		case <-timeout:
			return 0, errIdle
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	c := k.buf[0]
	k.buf = k.buf[1:]
	return c, nil
}

// Read hands the input on once the dialogue is over.
func (k *keyReader) Read(p []byte) (int, error) {
	for len(k.buf) == 0 {
		if k.err != nil {
			return 0, k.err
		}
		if !k.busy {
			return k.r.Read(p)
		}
		k.got(<-k.res)
	}
	n := copy(p, k.buf)
	k.buf = k.buf[n:]
	return n, nil
}

// requestDialog asks a refused user on their terminal for an access
// request, files it and waits for the decision.
type requestDialog struct {
	keys    *keyReader
	out     io.Writer
	desk    requestDesk
	options []RequestOption
	refusal string // the refusal line, shown first
	target  string // login@node, for the line that says the session goes on
	idle    time.Duration
	tick    time.Duration

	lastCR bool // the previous line ended with \r: a \n right after it is part of it
}

// Defaults of the dialogue's timing.
const (
	promptIdle    = 5 * time.Minute // a prompt nobody answers ends the dialogue
	progressEvery = time.Second
)

// run holds the dialogue and reports whether access was granted; when it
// was not, the one line that says why has been written.
func (d *requestDialog) run(ctx context.Context) bool {
	if d.idle <= 0 {
		d.idle = promptIdle
	}
	if d.tick <= 0 {
		d.tick = progressEvery
	}
	d.println(d.refusal)
	d.println("gatehouse: you may request access now (Ctrl-C to give up)")
	opt, reason, dur, err := d.ask(ctx)
	if err != nil {
		switch {
		case errors.Is(err, errIdle):
			d.println("\r\ngatehouse: no answer; no request filed")
		case errors.Is(err, errInterrupted):
			d.println("\r\ngatehouse: no request filed")
		}
		return false
	}
	req, err := d.desk.File(ctx, opt.Role, reason, dur)
	if err != nil {
		d.println(userLine(err, "gatehouse: the request could not be filed; try again"))
		return false
	}
	who := "anyone who may review " + termsafe.String(opt.Role) + " requests"
	if len(req.Approvers) > 0 {
		who = strings.Join(termsafe.Strings(req.Approvers), ", ")
	}
	d.println(fmt.Sprintf("gatehouse: request %s filed for %s, %s; who can approve: %s",
		termsafe.String(req.ID), strings.Join(termsafe.Strings(req.Roles), ","), policy.FormatDuration(req.Duration), who))
	return d.wait(ctx, req)
}

// ask runs the prompts: the role (when several would do), the reason and
// the duration.
func (d *requestDialog) ask(ctx context.Context) (RequestOption, string, time.Duration, error) {
	opt := d.options[0]
	if len(d.options) == 1 {
		d.println(fmt.Sprintf("role: %s (up to %s)", termsafe.String(opt.Role), policy.FormatDuration(opt.MaxDuration)))
	} else {
		d.println("roles that would let you in:")
		for i, o := range d.options {
			d.println(fmt.Sprintf("  %d) %s (up to %s)", i+1, termsafe.String(o.Role), policy.FormatDuration(o.MaxDuration)))
		}
		for {
			ans, err := d.readLine(ctx, fmt.Sprintf("role [1-%d or its name, default 1]: ", len(d.options)))
			if err != nil {
				return opt, "", 0, err
			}
			if o, ok := d.choose(ans); ok {
				opt = o
				break
			}
			d.println("gatehouse: choose a number from the list or a role's name")
		}
	}
	reasonPrompt := "reason (optional): "
	if opt.ReasonRequired {
		reasonPrompt = "reason (required): "
	}
	var reason string
	for {
		ans, err := d.readLine(ctx, reasonPrompt)
		if err != nil {
			return opt, "", 0, err
		}
		if reason = strings.TrimSpace(ans); reason != "" || !opt.ReasonRequired {
			break
		}
		d.println("gatehouse: a reason is required")
	}
	for {
		ans, err := d.readLine(ctx, fmt.Sprintf("duration [%s, at most %s]: ", policy.FormatDuration(opt.DefaultDuration), policy.FormatDuration(opt.MaxDuration)))
		if err != nil {
			return opt, "", 0, err
		}
		ans = strings.TrimSpace(ans)
		if ans == "" {
			return opt, reason, opt.DefaultDuration, nil
		}
		dur, perr := time.ParseDuration(ans)
		switch {
		case perr != nil || dur <= 0:
			d.println("gatehouse: write a duration such as 30m or 2h")
		case dur > opt.MaxDuration:
			d.println("gatehouse: at most " + policy.FormatDuration(opt.MaxDuration))
		default:
			return opt, reason, dur, nil
		}
	}
}

// choose maps an answer to the role prompt to an option.
func (d *requestDialog) choose(ans string) (RequestOption, bool) {
	ans = strings.TrimSpace(ans)
	if ans == "" {
		return d.options[0], true
	}
	if n, err := strconv.Atoi(ans); err == nil {
		if n >= 1 && n <= len(d.options) {
			return d.options[n-1], true
		}
		return RequestOption{}, false
	}
	for _, o := range d.options {
		if o.Role == ans {
			return o, true
		}
	}
	return RequestOption{}, false
}

// wait shows progress until the request is decided; Ctrl-C cancels it.
// Where the request stands against its approval rule gets a line of its
// own, printed again when an approval changes it: under an AND-rule it
// runs to some 70 characters, and a line redrawn with \r must not wrap.
func (d *requestDialog) wait(ctx context.Context, req FiledRequest) bool {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	decided := make(chan awaited, 1)
	// Only the latest status matters; the one sender replaces an unread one.
	status := make(chan string, 1)
	go func() {
		o, err := d.desk.Await(wctx, req.ID, func(st string) {
			select {
			case <-status:
			default:
			}
			status <- st
		})
		decided <- awaited{o, err}
	}()
	shown := ""
	progress := fmt.Sprintf("waiting for approval by a %s reviewer\u2026", strings.Join(termsafe.Strings(req.Roles), ","))
	start := time.Now()
	tick := time.NewTicker(d.tick)
	defer tick.Stop()
	draw := func() {
		d.print(fmt.Sprintf("\r\x1b[K%s %s (Ctrl-C cancels the request)", progress, time.Since(start).Round(time.Second)))
	}
	draw()
	for {
		select {
		case a := <-decided:
			d.print("\r\x1b[K")
			return d.decided(req, a)
		case <-tick.C:
			draw()
		case st := <-status:
			if st != "" && st != shown {
				shown = st
				d.print("\r\x1b[K")
				d.println("approval: " + termsafe.String(st))
				draw()
			}
		case r := <-d.keys.ready():
			d.keys.got(r)
			// Typed ahead while waiting: nothing to do with it but Ctrl-C.
			interrupted := strings.ContainsAny(string(d.keys.buf), "\x03\x04")
			d.keys.buf = d.keys.buf[:0]
			if d.keys.err != nil {
				// The client is gone; the request stays, like one filed
				// with `request`, for a later connection to use.
				return false
			}
			if interrupted {
				d.print("\r\x1b[K")
				return d.cancel(ctx, req)
			}
		case <-ctx.Done():
			return false
		}
	}
}

type awaited struct {
	o   RequestOutcome
	err error
}

// decided writes the outcome of the wait.
func (d *requestDialog) decided(req FiledRequest, a awaited) bool {
	id := termsafe.String(req.ID)
	if a.err != nil {
		d.println(userLine(a.err, "gatehouse: the request's state could not be read; see: ssh bastion requests "+id))
		return false
	}
	by := ""
	if a.o.By != "" {
		by = " by " + termsafe.String(a.o.By)
	}
	if a.o.State == requestApproved {
		d.println(fmt.Sprintf("gatehouse: request %s approved%s; connecting to %s", id, by, termsafe.String(d.target)))
		return true
	}
	why := ""
	if a.o.Reason != "" {
		why = ": " + termsafe.String(a.o.Reason)
	}
	d.println(fmt.Sprintf("gatehouse: request %s %s%s%s; session closed", id, strings.ToLower(termsafe.String(a.o.State)), by, why))
	return false
}

// cancel withdraws the request after Ctrl-C.
func (d *requestDialog) cancel(ctx context.Context, req FiledRequest) bool {
	id := termsafe.String(req.ID)
	if err := d.desk.Cancel(context.WithoutCancel(ctx), req.ID); err != nil {
		d.println(userLine(err, fmt.Sprintf("gatehouse: request %s not cancelled; try: ssh bastion cancel %s", id, id)))
		return false
	}
	d.println(fmt.Sprintf("gatehouse: request %s cancelled", id))
	return false
}

// readLine shows prompt and reads one line with echo, backspace and
// Ctrl-U; escape sequences (arrow keys) are ignored.
func (d *requestDialog) readLine(ctx context.Context, prompt string) (string, error) {
	d.print(prompt)
	var line, partial []byte
	for {
		c, err := d.keys.key(ctx, d.idle)
		if err != nil {
			if errors.Is(err, errIdle) || ctx.Err() != nil {
				return "", err
			}
			return "", errInterrupted // the end of input
		}
		lastCR := d.lastCR
		d.lastCR = false
		if c < utf8.RuneSelf {
			partial = partial[:0] // a character cut short is dropped
		}
		switch {
		case c == '\r':
			d.lastCR = true
			d.print("\r\n")
			return string(line), nil
		case c == '\n':
			if lastCR {
				continue
			}
			d.print("\r\n")
			return string(line), nil
		case c == keyCtrlC, c == keyCtrlD && len(line) == 0:
			return "", errInterrupted
		case c == keyDelete, c == keyBackspace:
			if len(line) > 0 {
				_, size := utf8.DecodeLastRune(line)
				line = line[:len(line)-size]
				d.print("\b \b")
			}
		case c == keyCtrlU:
			d.print(strings.Repeat("\b \b", utf8.RuneCount(line)))
			line = line[:0]
		case c == keyEscape:
			if err := d.skipEscape(ctx); err != nil {
				return "", errInterrupted
			}
		case c < 0x20:
		case len(line)+len(partial) < maxAnswer:
			// Echoed a whole character at a time, and only one that
			// cannot act on the terminal (a pasted C1 control, an invalid
			// sequence): the user sees what the reviewers will read.
			partial = append(partial, c)
			if !utf8.FullRune(partial) {
				continue
			}
			if r, _ := utf8.DecodeRune(partial); r != utf8.RuneError && termsafe.Safe(string(partial)) {
				line = append(line, partial...)
				d.print(string(partial))
			}
			partial = partial[:0]
		}
	}
}

// skipEscape consumes the rest of an escape sequence: ESC [ params final,
// ESC O final, or ESC and one byte.
func (d *requestDialog) skipEscape(ctx context.Context) error {
	c, err := d.keys.key(ctx, d.idle)
	if err != nil || (c != '[' && c != 'O') {
		return err
	}
	for {
		c, err := d.keys.key(ctx, d.idle)
		if err != nil || c >= 0x40 && c <= 0x7e {
			return err
		}
	}
}

func (d *requestDialog) print(s string) { _, _ = io.WriteString(d.out, s) }

func (d *requestDialog) println(s string) { d.print(s + "\r\n") }

// userLine is err's line when it is meant for the user (a UserError),
// else fallback: internal detail goes to the log.
func userLine(err error, fallback string) string {
	var ue *UserError
	if errors.As(err, &ue) {
		return ue.Line
	}
	return fallback
}
