package e2e_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Ways around the recording (issue 23 §1), each attempted with the real
// OpenSSH client through the real bastion. How a session is recorded must
// not depend on anything the user chooses to make it look like: a pty
// session is recorded whole in its cast whatever its command; a session
// without a pty keeps every byte of stdin, stdout and stderr in the raw
// store, and its text (input included) in the cast. Each case states what
// must be on record afterwards, and logs what was.

// startEvasion is a bastion whose web-1 has one subsystem besides sftp, as an
// administrator might configure: a shell behind `ssh -s`.
func startEvasion(t *testing.T, cfg map[string]any) *e2e.Gatehouse {
	t.Helper()
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	return e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  recRoles,
		Nodes: []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"},
			Options: e2e.NodeOptions{Extra: []string{"Subsystem shell /bin/sh"}}}},
		Config: cfg,
	})
}

type evasion struct {
	name string
	// attack runs it and checks that the user got what they wanted.
	attack func(t *testing.T, bob *e2e.User)
	kind   string // how the session must be classed
	// grep are texts `sessions ls --grep` must find in the session (what
	// the user saw, and what they typed or fed the command).
	grep []string
	// raw are the exact contents the raw streams must hold; nil for a pty
	// session, which has no raw streams (its cast is whole).
	raw map[string]string
}

// shellTerm runs an interactive attack under a pty: the command (or
// subsystem) must give a working shell, proven by a computed marker.
func shellTerm(args []string, marker string) func(*testing.T, *e2e.User) {
	return func(t *testing.T, bob *e2e.User) {
		term := bob.Interactive(args...)
		term.Send("echo " + marker + "-$((6*7))\n")
		term.Expect(regexp.MustCompile(marker+`-42`), 60*time.Second)
		term.Send("exit\n")
		term.Wait(30 * time.Second)
	}
}

// fedShell runs an attack without a pty: stdin feeds the command, stdout
// must be want.
func fedShell(args []string, stdin, want string) func(*testing.T, *e2e.User) {
	return func(t *testing.T, bob *e2e.User) {
		r := bob.SSHInput(strings.NewReader(stdin), args...)
		if r.ExitCode != 0 || r.Stdout != want {
			t.Fatalf("ssh %q: want exit 0 and stdout %q, got %s", args, want, r)
		}
	}
}

func TestRecordingEvasions(t *testing.T) {
	gh := startEvasion(t, nil)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	const dest = "ubuntu@web-1"
	nulShell := `printf '\000'; bash`

	cases := []evasion{
		{
			name:   "scp-prefixed interactive shell with -tt",
			attack: shellTerm([]string{dest, "scp 2>/dev/null; bash -i"}, "SCPTT"),
			kind:   "exec", grep: []string{"SCPTT-42"},
		},
		{
			name:   "scp-prefixed command without pty",
			attack: fedShell([]string{dest, "scp 2>/dev/null; echo SCP-$((6*7))"}, "", "SCP-42\n"),
			kind:   "exec", grep: []string{"SCP-42"},
			raw: map[string]string{"stdout": "SCP-42\n", "stdin": ""},
		},
		{
			name:   "scp-prefixed shell fed on stdin without pty",
			attack: fedShell([]string{dest, "scp 2>/dev/null; bash"}, "echo SCPBASH-$((6*7))\n", "SCPBASH-42\n"),
			kind:   "exec", grep: []string{"SCPBASH-42", "echo SCPBASH-$((6*7))"},
			raw: map[string]string{"stdout": "SCPBASH-42\n", "stdin": "echo SCPBASH-$((6*7))\n"},
		},
		{
			name:   "scp server invocation followed by a shell without pty",
			attack: fedShell([]string{dest, "scp -t /tmp </dev/null >/dev/null; bash"}, "echo SCPT-$((6*7))\n", "SCPT-42\n"),
			kind:   "exec", grep: []string{"SCPT-42", "echo SCPT-$((6*7))"},
			raw: map[string]string{"stdout": "SCPT-42\n", "stdin": "echo SCPT-$((6*7))\n"},
		},
		{
			name:   "rsync-prefixed interactive shell with -tt",
			attack: shellTerm([]string{dest, "rsync --server 2>/dev/null; bash -i"}, "RSYNCTT"),
			kind:   "exec", grep: []string{"RSYNCTT-42"},
		},
		{
			name:   "rsync-prefixed shell fed on stdin without pty",
			attack: fedShell([]string{dest, "rsync --server 2>/dev/null; bash"}, "echo RSYNC-$((6*7))\n", "RSYNC-42\n"),
			kind:   "exec", grep: []string{"RSYNC-42", "echo RSYNC-$((6*7))"},
			raw: map[string]string{"stdout": "RSYNC-42\n", "stdin": "echo RSYNC-$((6*7))\n"},
		},
		{
			name:   "leading NUL then a shell without pty",
			attack: fedShell([]string{dest, nulShell}, "echo NUL-$((6*7))\n", "\x00NUL-42\n"),
			kind:   "exec", grep: []string{"echo NUL-$((6*7))"},
			raw: map[string]string{"stdout": "\x00NUL-42\n", "stdin": "echo NUL-$((6*7))\n", "stderr": ""},
		},
		{
			name:   "leading NUL then an interactive shell with -tt",
			attack: shellTerm([]string{dest, `printf '\000'; bash -i`}, "NULTT"),
			kind:   "exec", grep: []string{"NULTT-42"},
		},
		{
			name:   "ssh -s with another subsystem, NUL first, without pty",
			attack: fedShell([]string{"-s", dest, "shell"}, "printf '\\000'; echo SUB-$((6*7))\n", "\x00SUB-42\n"),
			kind:   "subsystem", grep: []string{"echo SUB-$((6*7))"},
			raw: map[string]string{"stdout": "\x00SUB-42\n", "stdin": "printf '\\000'; echo SUB-$((6*7))\n"},
		},
		{
			name:   "ssh -s with another subsystem with -tt",
			attack: shellTerm([]string{"-s", dest, "shell"}, "SUBTT"),
			kind:   "subsystem", grep: []string{"SUBTT-42"},
		},
		{
			name:   "a shell behind env, NUL first",
			attack: fedShell([]string{dest, `env printf '\000'; env bash`}, "echo ENV-$((6*7))\n", "\x00ENV-42\n"),
			kind:   "exec", grep: []string{"echo ENV-$((6*7))"},
			raw: map[string]string{"stdout": "\x00ENV-42\n", "stdin": "echo ENV-$((6*7))\n"},
		},
		{
			name:   "a shell behind exec and sh -c, NUL first",
			attack: fedShell([]string{dest, `exec sh -c "printf '\\000'; exec bash"`}, "echo EXEC-$((6*7))\n", "\x00EXEC-42\n"),
			kind:   "exec", grep: []string{"echo EXEC-$((6*7))"},
			raw: map[string]string{"stdout": "\x00EXEC-42\n", "stdin": "echo EXEC-$((6*7))\n"},
		},
		{
			name:   "a shell behind sh -c with an scp prefix",
			attack: fedShell([]string{dest, `sh -c 'scp 2>/dev/null; bash'`}, "echo SHC-$((6*7))\n", "SHC-42\n"),
			kind:   "exec", grep: []string{"SHC-42", "echo SHC-$((6*7))"},
			raw: map[string]string{"stdout": "SHC-42\n", "stdin": "echo SHC-$((6*7))\n"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := sessionIDs(t, gh)
			tc.attack(t, bob)
			s := waitSession(t, gh, "the session of the attack", func(s sessionLine) bool {
				return !before[s.ID] && s.User == "bob" && s.End != nil
			})
			end := waitAudit(t, gh, "session.end", "the attack", func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
			var found []string
			for _, text := range tc.grep {
				if grepFinds(t, gh, text, s.ID) {
					found = append(found, text)
				}
			}
			streams := map[string]string{}
			for _, name := range []string{"stdin", "stdout", "stderr"} {
				if r := gh.Run("sessions", "export", s.ID, "--stream", name); r.ExitCode == 0 {
					streams[name] = r.Stdout
				}
			}
			t.Logf("recorded: kind %s, cast %v, --grep found %q, raw streams %q", s.Kind, s.Recording != "", found, streams)

			if s.Kind != tc.kind {
				t.Errorf("session classed %q, want %q", s.Kind, tc.kind)
			}
			if s.Recording == "" {
				t.Errorf("the session has no cast: %+v", s)
			}
			if len(found) != len(tc.grep) {
				t.Errorf("sessions ls --grep found %q of %q in the session", found, tc.grep)
			}
			if tc.raw == nil {
				if len(streams) != 0 {
					t.Errorf("a pty session has raw streams %q; its cast is the record", streams)
				}
				if r := gh.Run("sessions", "export", s.ID, "--stream", "stdout"); !strings.Contains(r.Stderr, "no raw streams") {
					t.Errorf("sessions export --stream of a pty session: want a refusal saying it has no raw streams, got %s", r)
				}
				return
			}
			for name, want := range tc.raw {
				got, ok := streams[name]
				if !ok || got != want {
					t.Errorf("raw %s = %q (exported: %v), want %q", name, got, ok, want)
				}
				if ok {
					sum := sha256.Sum256([]byte(got))
					if end.Fields[name+"_sha256"] != hex.EncodeToString(sum[:]) || end.Fields[name+"_bytes"] != float64(len(got)) {
						t.Errorf("session.end %s_bytes %v, %s_sha256 %v; want %d and the SHA-256 of the exported stream", name, end.Fields[name+"_bytes"], name, end.Fields[name+"_sha256"], len(got))
					}
				}
			}
		})
	}
}

// TestRecordingForwardToNodeSSHD: with port forwarding allowed, a tunnel to
// the node's own sshd carries an SSH session the bastion cannot record;
// the tunnel and its target are on record from the moment it opens.
func TestRecordingForwardToNodeSSHD(t *testing.T) {
	gh := startEvasion(t, nil)
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	target := gh.Node("web-1").Addr // the node's sshd, as the node itself reaches it
	host, port, _ := net.SplitHostPort(target)
	local := startLocalForward(t, bob, "ubuntu@web-1", target)
	conn, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatalf("dial the forwarded port: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Fatalf("want the node's SSH banner through the tunnel, got %q, %v", banner, err)
	}
	isTunnel := func(state string) func(auditLine) bool {
		return func(ev auditLine) bool {
			return ev.Actor == "bob" && ev.Target == "web-1" && ev.Fields["state"] == state &&
				ev.Fields["host"] == host && fmt.Sprint(ev.Fields["port"]) == port && ev.Fields["direction"] == "local"
		}
	}
	// The tunnel is still open: its target must already be on record.
	open := waitAudit(t, gh, "port_forward", "the open tunnel to web-1's sshd", isTunnel("open"))
	t.Logf("recorded while open: %+v", open)
	conn.Close()
	closed := waitAudit(t, gh, "port_forward", "the closed tunnel to web-1's sshd", isTunnel("closed"))
	if n, _ := closed.Fields["bytes_out"].(float64); n < float64(len(banner)) {
		t.Errorf("closed tunnel's bytes_out %v, want at least the banner's %d bytes", closed.Fields["bytes_out"], len(banner))
	}
}

// TestRecordingRawCap: past recording.max_raw_bytes a session's bytes are
// no longer stored, the cap is audited, and sizes and hashes go on.
func TestRecordingRawCap(t *testing.T) {
	const max, size = 100000, 300000
	gh := startEvasion(t, map[string]any{"recording": map[string]any{"mode": "strict", "max_raw_bytes": max}})
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	remote := e2e.RemoteDir(t, "ubuntu")
	src := writeRandom(t, filepath.Join(remote, "big.bin"), size)
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cmd := "cat " + src
	if r := bob.SSH("ubuntu@web-1", cmd); r.ExitCode != 0 || r.Stdout != string(want) {
		t.Fatalf("ssh %q: exit %d, %d bytes; want the %d bytes of the file", cmd, r.ExitCode, len(r.Stdout), size)
	}
	s := waitSession(t, gh, "the download", func(s sessionLine) bool { return s.Command == cmd && s.End != nil })
	capEv := waitAudit(t, gh, "recording.cap_reached", "the download", func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
	if capEv.Actor != "bob" || capEv.Fields["stored_bytes"] != float64(max) || capEv.Fields["max_raw_bytes"] != float64(max) {
		t.Errorf("recording.cap_reached: want bob, stored_bytes and max_raw_bytes %d, got %+v", max, capEv)
	}
	end := waitAudit(t, gh, "session.end", "the download", func(ev auditLine) bool { return ev.Fields["session"] == s.ID })
	sum := sha256.Sum256(want)
	if end.Fields["stdout_bytes"] != float64(size) || end.Fields["stdout_sha256"] != hex.EncodeToString(sum[:]) ||
		end.Fields["raw_capped"] != true || end.Fields["raw_stored_bytes"] != float64(max) {
		t.Errorf("session.end: want stdout_bytes %d, the file's sha256, raw_capped and raw_stored_bytes %d; got %+v", size, max, end.Fields)
	}
	r := gh.MustRun("sessions", "export", s.ID, "--stream", "stdout")
	if r.Stdout != string(want[:max]) {
		t.Errorf("export --stream stdout: %d bytes, want the first %d bytes of the file", len(r.Stdout), max)
	}
	if !strings.Contains(r.Stderr, "max_raw_bytes") {
		t.Errorf("export of a capped stream should say so on stderr, got %q", r.Stderr)
	}
}

func sessionIDs(t *testing.T, gh *e2e.Gatehouse) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range listSessions(t, gh) {
		ids[s.ID] = true
	}
	return ids
}

// grepFinds reports whether `sessions ls --grep text` lists session id.
func grepFinds(t *testing.T, gh *e2e.Gatehouse, text, id string) bool {
	t.Helper()
	for _, l := range listSessions(t, gh, "--grep", text) {
		if l.ID == id {
			return true
		}
	}
	return false
}
