package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Session recording and replay end to end (issue 6): what a user does
// through `ssh -J` is recorded as asciicast v2 by the real bastion, found
// again with `gatehouse sessions ls`, exported, replayed with `gatehouse
// play` and read by the reference player (Debian's asciinema); a crash of
// the bastion keeps what was recorded; strict mode refuses sessions it
// cannot record; file transfers are audited with byte counts instead of
// being recorded as terminal output.

const recRoles = `
users:
  - {name: bob, roles: [dev]}
roles:
  - name: dev
    allow:
      logins: [ubuntu]
      node_labels: {env: staging}
`

// startRecording starts a bastion with one staging node, web-1, that bob
// may reach as ubuntu. cfg adds or replaces top-level gatehouse.yaml keys.
func startRecording(t *testing.T, cfg map[string]any) *e2e.Gatehouse {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	return e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  recRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
		Config: cfg,
	})
}

// sessionLine is one line of `gatehouse sessions ls --json`, with the keys
// PRODUCT.md promises plus the ones these tests read.
type sessionLine struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Login     string     `json:"login"`
	Node      string     `json:"node"`
	Kind      string     `json:"kind"`
	Command   string     `json:"command"`
	Recording string     `json:"recording"`
	Start     time.Time  `json:"start"`
	End       *time.Time `json:"end"`
	Status    string     `json:"status"`
}

// listSessions runs `gatehouse sessions ls --json` with extra args.
func listSessions(t *testing.T, gh *e2e.Gatehouse, args ...string) []sessionLine {
	t.Helper()
	r := gh.MustRun(append([]string{"sessions", "ls", "--json"}, args...)...)
	var out []sessionLine
	for _, l := range nonEmptyLines(r.Stdout) {
		var s sessionLine
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("sessions ls --json printed a line that is not a session: %q: %v", l, err)
		}
		out = append(out, s)
	}
	return out
}

// waitSession polls `sessions ls --json` until a session matching ok shows
// up and returns it.
func waitSession(t *testing.T, gh *e2e.Gatehouse, what string, ok func(sessionLine) bool) sessionLine {
	t.Helper()
	var found sessionLine
	var last []sessionLine
	if !poll(60*time.Second, func() bool {
		last = listSessions(t, gh)
		for _, s := range last {
			if ok(s) {
				found = s
				return true
			}
		}
		return false
	}) {
		t.Fatalf("sessions ls --json never listed %s; last listing: %+v", what, last)
	}
	return found
}

// auditLine is one line of `gatehouse audit ls --json`.
type auditLine struct {
	Seq     int64          `json:"seq"`
	Type    string         `json:"type"`
	Actor   string         `json:"actor"`
	Target  string         `json:"target"`
	Outcome string         `json:"outcome"`
	Fields  map[string]any `json:"fields"`
}

func listAudit(t *testing.T, gh *e2e.Gatehouse, typ string) []auditLine {
	t.Helper()
	r := gh.MustRun("audit", "ls", "--type", typ, "--json")
	var out []auditLine
	for _, l := range nonEmptyLines(r.Stdout) {
		var ev auditLine
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit ls --json printed a line that is not an event: %q: %v", l, err)
		}
		if ev.Type != typ {
			t.Fatalf("audit ls --type %s printed a %s event: %q", typ, ev.Type, l)
		}
		out = append(out, ev)
	}
	return out
}

// waitAudit polls until an event of type typ matching ok is in the log.
func waitAudit(t *testing.T, gh *e2e.Gatehouse, typ, what string, ok func(auditLine) bool) auditLine {
	t.Helper()
	var found auditLine
	var last []auditLine
	if !poll(60*time.Second, func() bool {
		last = listAudit(t, gh, typ)
		for _, ev := range last {
			if ok(ev) {
				found = ev
				return true
			}
		}
		return false
	}) {
		t.Fatalf("audit log never had a %s event for %s; %s events: %+v", typ, what, typ, last)
	}
	return found
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// castEvent is one event line of an asciicast v2 file.
type castEvent struct {
	Time float64
	Code string
	Data string
}

// parseCast checks that data is asciicast v2 (a header object with version
// 2 and a size, then one [time, code, data] array per line with times that
// never go back) and returns the header and events.
func parseCast(t *testing.T, data []byte) (map[string]any, []castEvent) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	if !sc.Scan() {
		t.Fatalf("recording is empty")
	}
	var header map[string]any
	if err := json.Unmarshal(sc.Bytes(), &header); err != nil {
		t.Fatalf("first line is not a JSON object header: %q: %v", sc.Text(), err)
	}
	if v, _ := header["version"].(float64); v != 2 {
		t.Fatalf("header version %v, want 2: %q", header["version"], sc.Text())
	}
	if w, _ := header["width"].(float64); w <= 0 {
		t.Fatalf("header has no positive width: %q", sc.Text())
	}
	if h, _ := header["height"].(float64); h <= 0 {
		t.Fatalf("header has no positive height: %q", sc.Text())
	}
	var events []castEvent
	prev := 0.0
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var raw []any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil || len(raw) != 3 {
			t.Fatalf("event line is not a [time, code, data] array: %q (%v)", sc.Text(), err)
		}
		tm, ok1 := raw[0].(float64)
		code, ok2 := raw[1].(string)
		d, ok3 := raw[2].(string)
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("event line has wrong types: %q", sc.Text())
		}
		if tm < prev {
			t.Fatalf("event time %v goes back from %v: %q", tm, prev, sc.Text())
		}
		prev = tm
		events = append(events, castEvent{tm, code, d})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read recording: %v", err)
	}
	return header, events
}

// outputText is the terminal output of a recording with escape sequences
// removed, as a person would read it.
func outputText(events []castEvent) string {
	var b strings.Builder
	for _, e := range events {
		if e.Code == "o" {
			b.WriteString(e.Data)
		}
	}
	return stripANSI(b.String())
}

var ansiRE = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>])`)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// asciinemaCat runs Debian's `asciinema cat FILE`, the reference reader of
// the format. It opens /dev/tty, so it runs as a session leader on a pty of
// its own; its standard output is a plain pipe we read.
func asciinemaCat(t *testing.T, file string) string {
	t.Helper()
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Fatalf("asciinema is not installed (apt-get install asciinema): %v", err)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, "cat", file)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start asciinema cat: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("asciinema cat %s did not finish", file)
	}
	if err != nil {
		t.Fatalf("asciinema cat %s: %v\n%s", file, err, stderr.Bytes())
	}
	return out.String()
}

// exportTo runs `gatehouse sessions export ID` into a file and returns its
// path and contents.
func exportTo(t *testing.T, gh *e2e.Gatehouse, id string) (string, []byte) {
	t.Helper()
	r := gh.MustRun("sessions", "export", id)
	path := filepath.Join(t.TempDir(), id+".cast")
	if err := os.WriteFile(path, []byte(r.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, []byte(r.Stdout)
}

func TestRecordingInteractiveReplay(t *testing.T) {
	gh := startRecording(t, nil)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	term := bob.Interactive("ubuntu@web-1")
	// The shell computes the marker, so the echoed command line alone
	// cannot satisfy a search for it.
	term.Send("echo MARKER-$((6*7))\n")
	term.Expect(regexp.MustCompile(`MARKER-42`), 60*time.Second)
	term.Resize(30, 100)
	checkTermSize(t, term, 30, 100)
	term.Send("exit\n")
	if code := term.Wait(30 * time.Second); code != 0 {
		t.Fatalf("interactive session exit status %d, want 0", code)
	}

	s := waitSession(t, gh, "bob's ended shell on web-1", func(s sessionLine) bool {
		return s.User == "bob" && s.Node == "web-1" && s.Kind == "shell" && s.End != nil
	})
	if s.ID == "" || s.Login != "ubuntu" || s.Start.IsZero() || s.End.Before(s.Start) || s.Status != "ended" {
		t.Fatalf("session entry: want id, login ubuntu, start <= end and status ended, got %+v", s)
	}

	t.Run("grep", func(t *testing.T) {
		tests := []struct {
			text string
			want bool
		}{
			{"MARKER-42", true},
			{"marker-42", true}, // case-insensitive
			{"NOPE-NOT-THERE", false},
		}
		for _, tc := range tests {
			got := false
			for _, l := range listSessions(t, gh, "--grep", tc.text) {
				if l.ID == s.ID {
					got = true
				}
			}
			if got != tc.want {
				t.Errorf("sessions ls --grep %s lists session %s: %v, want %v", tc.text, s.ID, got, tc.want)
			}
		}
	})

	file, data := exportTo(t, gh, s.ID)
	header, events := parseCast(t, data)
	t.Run("export", func(t *testing.T) {
		if w, h := header["width"].(float64), header["height"].(float64); w != 80 || h != 24 {
			t.Errorf("header size %vx%v, want the pty's 80x24 at the start", w, h)
		}
		outputs := 0
		for _, e := range events {
			if e.Code == "o" {
				outputs++
			}
		}
		if outputs == 0 {
			t.Fatalf("export has no \"o\" events:\n%s", data)
		}
		if text := outputText(events); !strings.Contains(text, "MARKER-42") {
			t.Fatalf("exported output does not contain MARKER-42:\n%q", text)
		}
	})
	t.Run("resize event", func(t *testing.T) {
		for _, e := range events {
			if e.Code == "r" && e.Data == "100x30" {
				return
			}
		}
		t.Fatalf("no \"r\" event 100x30 for the resize to 30 rows x 100 columns; events: %+v", events)
	})
	t.Run("asciinema cat", func(t *testing.T) {
		if out := stripANSI(asciinemaCat(t, file)); !strings.Contains(out, "MARKER-42") {
			t.Fatalf("asciinema cat of the export does not show MARKER-42:\n%q", out)
		}
	})
	t.Run("play", func(t *testing.T) {
		r := gh.MustRun("play", "--speed", "100", s.ID)
		if out := stripANSI(r.Stdout); !strings.Contains(out, "MARKER-42") {
			t.Fatalf("gatehouse play --speed 100 does not reproduce MARKER-42: %s", r)
		}
	})
}

// castFile finds the recording of session id under dir: ID.cast.zst, or
// ID.cast.ages when it is encrypted.
func castFile(t *testing.T, dir, id, ext string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*", id+ext))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 {
		all, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
		t.Fatalf("want one %s%s under %s, found %v (all files: %v)", id, ext, dir, m, all)
	}
	return m[0]
}

// zstdCat decompresses a recording with the reference zstd tool. A file
// left by a crash may end inside a frame: zstd then fails at the cut,
// after writing everything before it, which is what is returned.
func zstdCat(t *testing.T, path string) []byte {
	t.Helper()
	out, err := exec.Command("zstd", "-dc", path).Output()
	if err != nil {
		t.Logf("zstd -dc %s: %v (a cut at the end is expected after a crash)", path, err)
	}
	return out
}

func TestRecordingSurvivesBastionKill(t *testing.T) {
	gh := startRecording(t, nil)
	recDir := filepath.Join(gh.DataDir, "recordings")
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	term := bob.Interactive("ubuntu@web-1")
	term.Send("echo BEFORE-CRASH-$((6*7))\n")
	term.Expect(regexp.MustCompile(`BEFORE-CRASH-42`), 60*time.Second)
	s := waitSession(t, gh, "bob's live shell", func(s sessionLine) bool {
		return s.User == "bob" && s.Kind == "shell" && s.Status == "live"
	})
	live := castFile(t, recDir, s.ID, ".cast.zst")
	// The recorder ends a compressed segment on a short timer; kill only
	// once what the user saw is on disk, which is the promise under test.
	if !poll(30*time.Second, func() bool {
		return strings.Contains(string(zstdCat(t, live)), "BEFORE-CRASH-42")
	}) {
		t.Fatalf("live recording %s never contained BEFORE-CRASH-42:\n%s", live, zstdCat(t, live))
	}

	gh.Kill()
	// The client loses its connection with the bastion.
	term.Wait(60 * time.Second)

	t.Run("cast plays up to the kill", func(t *testing.T) {
		if _, err := os.Stat(live); err != nil {
			t.Fatalf("the crash left no recording: %v", err)
		}
		data := zstdCat(t, live)
		// A crash may cut the last line short; everything before it must
		// parse, which is what a player needs.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		}
		_, events := parseCast(t, data)
		if text := outputText(events); !strings.Contains(text, "BEFORE-CRASH-42") {
			t.Fatalf("recording left by the crash lacks BEFORE-CRASH-42:\n%q", text)
		}
		plain := filepath.Join(t.TempDir(), "crash.cast")
		if err := os.WriteFile(plain, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := stripANSI(asciinemaCat(t, plain)); !strings.Contains(out, "BEFORE-CRASH-42") {
			t.Fatalf("asciinema cat of the crash's recording does not show BEFORE-CRASH-42:\n%q", out)
		}
	})

	gh.Restart()
	after := waitSession(t, gh, "the killed session marked interrupted", func(l sessionLine) bool {
		return l.ID == s.ID && l.Status == "interrupted"
	})
	if after.End == nil || after.End.Before(after.Start) {
		t.Errorf("interrupted session should have an end not before its start: %+v", after)
	}
	_, data := exportTo(t, gh, s.ID)
	_, events := parseCast(t, data)
	if text := outputText(events); !strings.Contains(text, "BEFORE-CRASH-42") {
		t.Fatalf("export after restart lacks BEFORE-CRASH-42:\n%q", text)
	}

	// The restarted bastion records new sessions as before.
	r := bob.SSH("ubuntu@web-1", "echo after-restart")
	if r.ExitCode != 0 || r.Stdout != "after-restart\n" {
		t.Fatalf("ssh -J after the restart: %s", r)
	}
}

func TestRecordingUnavailable(t *testing.T) {
	tests := []struct {
		mode   string
		wantOK bool
	}{
		{"strict", false},
		{"best-effort", true},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			gh := startRecording(t, map[string]any{"recording": map[string]any{"mode": tc.mode}})
			bob := e2e.NewUser(t, gh, "bob", time.Hour)
			// Replace the recordings folder with a file. Making it
			// read-only would not do: the bastion runs as root here, and
			// root writes through directory permissions.
			recDir := filepath.Join(gh.DataDir, "recordings")
			if err := os.RemoveAll(recDir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(recDir, []byte("not a directory\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			r := bob.SSH("ubuntu@web-1", "echo hi")
			if tc.wantOK {
				if r.ExitCode != 0 || r.Stdout != "hi\n" {
					t.Fatalf("best-effort: session without recording should run, got %s", r)
				}
			} else {
				if r.ExitCode == 0 || strings.Contains(r.Stdout, "hi") {
					t.Fatalf("strict: session should be refused, got %s", r)
				}
				if !strings.Contains(r.Stderr, "gatehouse: session recording is unavailable") {
					t.Fatalf("strict: refusal should say the recording is unavailable, got %s", r)
				}
			}
			ev := waitAudit(t, gh, "recording.failure", "bob on web-1", func(ev auditLine) bool {
				return ev.Actor == "bob" && ev.Target == "web-1"
			})
			if ev.Outcome != "failure" || ev.Fields["mode"] != tc.mode || ev.Fields["session"] == "" {
				t.Errorf("recording.failure event: want outcome failure, mode %s and a session id, got %+v", tc.mode, ev)
			}
			if tc.wantOK {
				return
			}
			t.Run("refused session leaves no session record", func(t *testing.T) {
				// A refused session never started: it is neither in
				// the session index nor started or ended in the audit log.
				for _, s := range listSessions(t, gh) {
					if s.ID == ev.Fields["session"] {
						t.Errorf("refused session is in the index: %+v", s)
					}
				}
				for _, typ := range []string{"session.start", "session.end"} {
					for _, e := range listAudit(t, gh, typ) {
						if e.Fields["session"] == ev.Fields["session"] {
							t.Errorf("refused session has a %s event: %+v", typ, e)
						}
					}
				}
			})
		})
	}
}

func TestRecordingTransfers(t *testing.T) {
	gh := startRecording(t, nil)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	dest := "ubuntu@web-1"
	remote, local := e2e.RemoteDir(t, "ubuntu"), t.TempDir()
	const size = 700 << 10
	src := writeRandom(t, filepath.Join(local, "up.bin"), size)

	// Each transfer's file_transfer event is written when its session ends,
	// which may be just after the client exits: wait for it by session.
	transfer := func(t *testing.T, kind, what string, run func() e2e.Result) auditLine {
		t.Helper()
		before := map[string]bool{}
		for _, s := range listSessions(t, gh) {
			before[s.ID] = true
		}
		if r := run(); r.ExitCode != 0 {
			t.Fatalf("%s: %s", what, r)
		}
		s := waitSession(t, gh, "the "+kind+" session of "+what, func(s sessionLine) bool {
			return !before[s.ID] && s.Kind == kind && s.End != nil
		})
		if s.User != "bob" || s.Login != "ubuntu" || s.Node != "web-1" || s.Recording != "" {
			t.Errorf("%s session: want bob as ubuntu on web-1 with no recording, got %+v", kind, s)
		}
		// Transfers are not terminal sessions: there is nothing to export.
		r := gh.Run("sessions", "export", s.ID)
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "no terminal recording") {
			t.Errorf("sessions export of a %s session: want a refusal saying it has no terminal recording, got %s", kind, r)
		}
		return waitAudit(t, gh, "file_transfer", what, func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
	}
	bytesField := func(ev auditLine, k string) int64 {
		n, _ := ev.Fields[k].(float64)
		return int64(n)
	}
	check := func(t *testing.T, ev auditLine, kind, dir string, toNode, fromNode int64) {
		t.Helper()
		if ev.Actor != "bob" || ev.Target != "web-1" || ev.Fields["kind"] != kind || ev.Fields["direction"] != dir {
			t.Errorf("file_transfer event: want bob, web-1, kind %s, direction %s; got %+v", kind, dir, ev)
		}
		// The counts include the protocol around the file, never less
		// than the file.
		if got := bytesField(ev, "bytes_to_node"); got < toNode {
			t.Errorf("%s %s: bytes_to_node %d, want >= %d", kind, dir, got, toNode)
		}
		if got := bytesField(ev, "bytes_from_node"); got < fromNode {
			t.Errorf("%s %s: bytes_from_node %d, want >= %d", kind, dir, got, fromNode)
		}
	}

	t.Run("scp", func(t *testing.T) {
		// -O: the classic scp protocol, an `scp -t`/`scp -f` exec on the
		// node (without it OpenSSH's scp speaks SFTP).
		up := transfer(t, "scp", "scp upload", func() e2e.Result {
			return bob.SCP("-O", src, dest+":"+remote+"/scp.bin")
		})
		check(t, up, "scp", "upload", size, 0)
		sameFile(t, src, filepath.Join(remote, "scp.bin"))
		// The uploaded file itself is on record: in the scp protocol
		// stream the client sent, and hashed with it.
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		sid, _ := up.Fields["session"].(string)
		in := gh.MustRun("sessions", "export", sid, "--stream", "stdin").Stdout
		if !strings.Contains(in, string(want)) {
			t.Errorf("export --stream stdin of the scp upload (%d bytes) does not hold the %d bytes of the file", len(in), size)
		}
		if sum := sha256.Sum256([]byte(in)); up.Fields["sha256_to_node"] != hex.EncodeToString(sum[:]) {
			t.Errorf("file_transfer sha256_to_node = %v, want the SHA-256 of the exported stdin", up.Fields["sha256_to_node"])
		}
		back := filepath.Join(local, "scp-back.bin")
		down := transfer(t, "scp", "scp download", func() e2e.Result {
			return bob.SCP("-O", dest+":"+remote+"/scp.bin", back)
		})
		check(t, down, "scp", "download", 0, size)
		sameFile(t, src, back)
	})

	t.Run("sftp", func(t *testing.T) {
		back := filepath.Join(local, "sftp-back.bin")
		ev := transfer(t, "sftp", "sftp batch", func() e2e.Result {
			return bob.SFTP(dest,
				"put "+src+" "+remote+"/s.bin",
				"get "+remote+"/s.bin "+back,
				"rename "+remote+"/s.bin "+remote+"/t.bin",
				"mkdir "+remote+"/newdir",
				"rm "+remote+"/t.bin",
			)
		})
		check(t, ev, "sftp", "both", size, size)
		sameFile(t, src, back)
		if _, err := os.Stat(filepath.Join(remote, "newdir")); err != nil {
			t.Errorf("sftp mkdir did not happen: %v", err)
		}

		ops := listAudit(t, gh, "sftp.op")
		type opKey struct{ op, path, target string }
		seen := map[opKey]auditLine{}
		for _, o := range ops {
			if o.Fields["session"] != ev.Fields["session"] {
				continue
			}
			target, _ := o.Fields["target"].(string)
			path, _ := o.Fields["path"].(string)
			op, _ := o.Fields["op"].(string)
			seen[opKey{op, path, target}] = o
		}
		want := []opKey{
			{"open", remote + "/s.bin", ""},
			{"close", remote + "/s.bin", ""},
			{"rename", remote + "/s.bin", remote + "/t.bin"},
			{"mkdir", remote + "/newdir", ""},
			{"remove", remote + "/t.bin", ""},
		}
		for _, w := range want {
			o, ok := seen[w]
			if !ok {
				t.Errorf("no sftp.op event %s %s %s for the batch; got %v", w.op, w.path, w.target, seen)
				continue
			}
			if o.Outcome != "success" || o.Actor != "bob" || o.Target != "web-1" {
				t.Errorf("sftp.op %s %s: want a success by bob on web-1, got %+v", w.op, w.path, o)
			}
		}
		// The put and the get each opened and closed s.bin; between them
		// they moved the whole file both ways.
		var written, read int64
		for _, o := range ops {
			if o.Fields["session"] == ev.Fields["session"] && o.Fields["op"] == "close" && o.Fields["path"] == remote+"/s.bin" {
				written += bytesField(o, "bytes_written")
				read += bytesField(o, "bytes_read")
			}
		}
		if written != size || read != size {
			t.Errorf("sftp close events of s.bin: bytes_written %d and bytes_read %d, want %d each", written, read, size)
		}
	})

	t.Run("rsync", func(t *testing.T) {
		up := transfer(t, "rsync", "rsync upload", func() e2e.Result {
			return bob.Rsync(src, dest+":"+remote+"/rsync.bin")
		})
		check(t, up, "rsync", "upload", size, 0)
		sameFile(t, src, filepath.Join(remote, "rsync.bin"))
		back := filepath.Join(local, "rsync-back.bin")
		down := transfer(t, "rsync", "rsync download", func() e2e.Result {
			return bob.Rsync(dest+":"+remote+"/rsync.bin", back)
		})
		check(t, down, "rsync", "download", 0, size)
		sameFile(t, src, back)
	})

	// None of the transfers left a terminal recording behind; each kept
	// its raw bytes.
	for _, s := range listSessions(t, gh, "--user", "bob") {
		if s.Recording != "" {
			t.Errorf("session %s (%s) has a recording; transfers must not be recorded as terminal output", s.ID, s.Kind)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(gh.DataDir, "recordings", "*", "*.cast*")); len(m) != 0 {
		t.Errorf("transfers wrote recordings: %v", m)
	}
	if m, _ := filepath.Glob(filepath.Join(gh.DataDir, "recordings", "*", "*.raw.zst")); len(m) != 5 {
		t.Errorf("want the raw store of each of the 5 transfer sessions, found %v", m)
	}
}

// TestRecordingBinaryExecOutput: `ssh -J bastion node 'cat file'` with
// binary output is a download by another name. The text before it stays in
// the recording, a marker shows where the binary starts, and the audit log
// has its byte count and SHA-256, which match what the client received.
func TestRecordingBinaryExecOutput(t *testing.T) {
	gh := startRecording(t, nil)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	remote := e2e.RemoteDir(t, "ubuntu")
	const size = 3 << 20
	src := writeRandom(t, filepath.Join(remote, "db.dump"), size)
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := "echo dumping the database; cat " + src
	r := bob.SSH("ubuntu@web-1", cmd)
	if r.ExitCode != 0 {
		t.Fatalf("ssh %q: %s", cmd, r)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "dumping the database\n"
	if !strings.HasPrefix(r.Stdout, prefix) || r.Stdout[len(prefix):] != string(want) {
		t.Fatalf("the client received %d bytes, want %q then the %d bytes of the file unchanged", len(r.Stdout), prefix, size)
	}
	sum := sha256.Sum256(want)

	s := waitSession(t, gh, "the exec session", func(s sessionLine) bool { return s.Command == cmd && s.End != nil })
	end := waitAudit(t, gh, "session.end", "the exec session", func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
	if n, _ := end.Fields["binary_output_bytes"].(float64); int64(n) != size {
		t.Errorf("session.end binary_output_bytes = %v, want %d (the file; the text line came before the binary)", end.Fields["binary_output_bytes"], size)
	}
	if got := end.Fields["binary_output_sha256"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("session.end binary_output_sha256 = %v, want the file's %x", got, sum)
	}
	ft := waitAudit(t, gh, "file_transfer", "the binary exec output", func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
	if ft.Actor != "bob" || ft.Target != "web-1" || ft.Fields["direction"] != "download" || ft.Fields["command"] != cmd ||
		ft.Fields["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("file_transfer event for the binary output: want bob, web-1, download, the command and the sha256; got %+v", ft)
	}

	// The recording keeps the text, shows where the binary began, and
	// holds none of the binary (no U+FFFD flood): it stays small.
	path, data := exportTo(t, gh, s.ID)
	_, events := parseCast(t, data)
	var markers []string
	for _, e := range events {
		if e.Code == "m" {
			markers = append(markers, e.Data)
		}
	}
	if got := outputText(events); got != "dumping the database\r\n" {
		t.Errorf("recorded output = %q, want only the text line (as the terminal showed it, ONLCR)", got)
	}
	if len(markers) != 1 || !strings.Contains(markers[0], "binary output") {
		t.Errorf("markers = %q, want one saying the binary output is not recorded as text", markers)
	}
	if len(data) > 64<<10 {
		t.Errorf("the recording is %d bytes for %d bytes of binary output; the binary went into it", len(data), size)
	}
	if got := asciinemaCat(t, path); got != "dumping the database\r\n" {
		t.Errorf("asciinema cat = %q, want the text line", got)
	}
	// What the cast leaves out is in the raw store, byte for byte.
	if out := gh.MustRun("sessions", "export", s.ID, "--stream", "stdout").Stdout; out != prefix+string(want) {
		t.Errorf("export --stream stdout: %d bytes, want the text line and the %d bytes of the file", len(out), size)
	}
}

// BenchmarkSessionsGrep measures what a security engineer waits for when
// searching recorded output: `gatehouse sessions ls --grep` over recorded
// sessions of about 100 KiB of output each, one of which matches. Every
// recording is decompressed and scanned, so this grows with the archive.
func BenchmarkSessionsGrep(b *testing.B) {
	e2e.RequireSystem(b)
	e2e.RequireAccount(b, "ubuntu")
	gh := e2e.StartGatehouse(b, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(b),
		Roles:  recRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
	})
	bob := e2e.NewUser(b, gh, "bob", time.Hour)
	const sessions = 20
	for i := 0; i < sessions; i++ {
		cmd := "seq 1 20000"
		if i == sessions/2 {
			cmd += "; echo NEEDLE-$((6*7))"
		}
		if r := bob.SSH("ubuntu@web-1", cmd); r.ExitCode != 0 {
			b.Fatalf("ssh -J: %s", r)
		}
	}
	// "ls" is the cost of the command without searching (process start,
	// opening the store), the baseline for "grep".
	for _, bc := range []struct {
		name string
		args []string
		want int
	}{
		{"ls", nil, sessions},
		{"grep", []string{"--grep", "NEEDLE-42"}, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				r := gh.MustRun(append([]string{"sessions", "ls", "--json"}, bc.args...)...)
				if n := len(nonEmptyLines(r.Stdout)); n != bc.want {
					b.Fatalf("sessions ls %v listed %d sessions, want %d:\n%s", bc.args, n, bc.want, r.Stdout)
				}
			}
			b.ReportMetric(sessions, "sessions")
		})
	}
}
