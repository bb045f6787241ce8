package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/browser"
	"github.com/gatehouse-dev/gatehouse/internal/e2e"
)

// Recordings encrypted at rest (recording.encrypt_to): what a user does
// through the real bastion is on disk only as ciphertext, the bastion
// cannot read it back, and the security team's age identity, given to the
// CLI, can, including after the bastion was killed mid-session.
func TestRecordingEncrypted(t *testing.T) {
	ident, keyFile := securityTeamKey(t)
	gh := startRecording(t, map[string]any{"recording": map[string]any{
		"mode": "strict", "encrypt_to": []string{ident.Recipient().String()},
	}})
	recDir := filepath.Join(gh.DataDir, "recordings")
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	// The shell computes the markers, so no command line typed or echoed
	// contains them: only the output does.
	term := bob.Interactive("ubuntu@web-1")
	term.Send("echo SEALED-$((6*7))-PTY\n")
	term.Expect(regexp.MustCompile(`SEALED-42-PTY`), 60*time.Second)
	term.Send("exit\n")
	if code := term.Wait(30 * time.Second); code != 0 {
		t.Fatalf("interactive session exit status %d", code)
	}
	r := bob.SSH("ubuntu@web-1", "echo SEALED-$((6*7))-EXEC")
	if r.ExitCode != 0 || r.Stdout != "SEALED-42-EXEC\n" {
		t.Fatalf("exec session: %s", r)
	}
	shell := waitSession(t, gh, "bob's ended shell", func(s sessionLine) bool {
		return s.Kind == "shell" && s.End != nil
	})
	exec := waitSession(t, gh, "bob's ended exec", func(s sessionLine) bool {
		return s.Kind == "exec" && s.End != nil
	})

	// Everything under the recordings folder, whatever its name.
	noPlaintext := func(t *testing.T, markers ...string) {
		t.Helper()
		n := 0
		err := filepath.WalkDir(recDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			if !strings.HasSuffix(path, ".ages") {
				t.Errorf("%s: not an encrypted recording file", path)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range markers {
				if bytes.Contains(data, []byte(m)) {
					t.Errorf("%s holds %q in plaintext", path, m)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 3 { // two casts and the exec session's raw store
			t.Errorf("%d files under %s, want the casts and raw store of both sessions", n, recDir)
		}
	}
	t.Run("no plaintext on disk", func(t *testing.T) {
		noPlaintext(t, "SEALED-42", "ubuntu", `"version"`)
	})

	t.Run("export needs the identity", func(t *testing.T) {
		r := gh.Run("sessions", "export", shell.ID)
		if r.ExitCode == 0 || strings.Contains(r.Stdout, "SEALED") || !strings.Contains(r.Stderr, "--identity FILE") {
			t.Fatalf("export without --identity: %s", r)
		}
		wrong, _ := age.GenerateX25519Identity()
		wrongFile := filepath.Join(t.TempDir(), "wrong.key")
		os.WriteFile(wrongFile, []byte(wrong.String()+"\n"), 0o600)
		r = gh.Run("sessions", "export", shell.ID, "--identity", wrongFile)
		if r.ExitCode == 0 || strings.Contains(r.Stdout, "SEALED") {
			t.Fatalf("export with a stranger's identity: %s", r)
		}
	})

	t.Run("export with the identity", func(t *testing.T) {
		r := gh.MustRun("sessions", "export", shell.ID, "--identity", keyFile)
		_, events := parseCast(t, []byte(r.Stdout))
		if !strings.Contains(outputText(events), "SEALED-42-PTY") {
			t.Fatalf("export --identity lacks the marker:\n%s", r.Stdout)
		}
		file := filepath.Join(t.TempDir(), "sealed.cast")
		os.WriteFile(file, []byte(r.Stdout), 0o600)
		if out := stripANSI(asciinemaCat(t, file)); !strings.Contains(out, "SEALED-42-PTY") {
			t.Fatalf("asciinema cat of the decrypted export lacks the marker:\n%q", out)
		}
		r = gh.MustRun("sessions", "export", exec.ID, "--stream", "stdout", "--identity", keyFile)
		if r.Stdout != "SEALED-42-EXEC\n" {
			t.Fatalf("export --stream stdout --identity: %q", r.Stdout)
		}
		r = gh.MustRun("play", shell.ID, "--speed", "100", "--identity", keyFile)
		if !strings.Contains(stripANSI(r.Stdout), "SEALED-42-PTY") {
			t.Fatalf("play --identity: %s", r)
		}
	})

	t.Run("sizes and hashes stay in the audit log", func(t *testing.T) {
		sum := sha256.Sum256([]byte("SEALED-42-EXEC\n"))
		for _, ev := range listAudit(t, gh, "session.end") {
			if ev.Fields["session"] != exec.ID {
				continue
			}
			if ev.Fields["stdout_bytes"] != float64(len("SEALED-42-EXEC\n")) || ev.Fields["stdout_sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("session.end of the encrypted exec: %+v", ev.Fields)
			}
			return
		}
		t.Errorf("no session.end for %s", exec.ID)
	})

	t.Run("grep decrypts only with the identity", func(t *testing.T) {
		r := gh.MustRun("sessions", "ls", "--json", "--grep", "sealed-42-pty")
		if strings.Contains(r.Stdout, shell.ID) || !strings.Contains(r.Stderr, "encrypted recordings were not searched") {
			t.Errorf("grep without --identity: %s", r)
		}
		r = gh.MustRun("sessions", "ls", "--json", "--grep", "sealed-42-pty", "--identity", keyFile)
		if !strings.Contains(r.Stdout, shell.ID) || strings.Contains(r.Stdout, exec.ID) {
			t.Errorf("grep --identity: %s", r)
		}
	})

	t.Run("a file cut short exports up to the cut", func(t *testing.T) {
		path := castFile(t, recDir, shell.ID, ".cast.ages")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes, %d segments", path, len(data), bytes.Count(data, []byte("age-encryption.org")))
		// The last segment loses its end, as a write cut by a crash would.
		if err := os.WriteFile(path, data[:len(data)-10], 0o600); err != nil {
			t.Fatal(err)
		}
		// What decrypts (here the header, the first segment) is exported,
		// and one line says the recording ends early.
		r := gh.MustRun("sessions", "export", shell.ID, "--identity", keyFile)
		if header, _ := parseCast(t, []byte(r.Stdout)); header["version"] != float64(2) || !strings.Contains(r.Stderr, "ends early") ||
			len(nonEmptyLines(r.Stderr)) != 1 {
			t.Errorf("export of a cut recording: want what decrypts and one line on stderr, got %s", r)
		}
	})

	t.Run("killed mid-session", func(t *testing.T) {
		term := bob.Interactive("ubuntu@web-1")
		term.Send("echo BEFORE-KILL-$((6*7))\n")
		term.Expect(regexp.MustCompile(`BEFORE-KILL-42`), 60*time.Second)
		live := waitSession(t, gh, "bob's live shell", func(s sessionLine) bool {
			return s.Kind == "shell" && s.Status == "live"
		})
		// Segments end on a short timer: the marker becomes readable,
		// with the key, while the session still runs.
		if !poll(30*time.Second, func() bool {
			r := gh.Run("sessions", "export", live.ID, "--identity", keyFile)
			return strings.Contains(r.Stdout, "BEFORE-KILL-42")
		}) {
			t.Fatal("the live encrypted recording never showed BEFORE-KILL-42")
		}
		gh.Kill()
		term.Wait(60 * time.Second)
		noPlaintext(t, "BEFORE-KILL-42", "SEALED-42")
		gh.Restart()
		waitSession(t, gh, "the killed session marked interrupted", func(s sessionLine) bool {
			return s.ID == live.ID && s.Status == "interrupted"
		})
		r := gh.MustRun("sessions", "export", live.ID, "--identity", keyFile)
		if !strings.Contains(r.Stdout, "BEFORE-KILL-42") {
			t.Fatalf("export after the kill lacks BEFORE-KILL-42: %s", r)
		}
		noPlaintext(t, "BEFORE-KILL-42", "SEALED-42")
	})
}

// securityTeamKey makes an age identity and writes it to a file, as the
// security team keeps it, away from the bastion's data.
func securityTeamKey(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	ident, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "security-team.key")
	if err := os.WriteFile(keyFile, []byte("# the security team's key, never on the bastion\n"+ident.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return ident, keyFile
}

// The web player of an encrypted recording, in a real browser: the page
// says the recording is encrypted and how to export it, and no player
// loads (the bastion holds no key).
func TestWebEncryptedRecording(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	bin := builder.BuildGatehouse(t)
	roles, err := os.ReadFile(filepath.Join("..", "..", "configs", "roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ident, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2e.FreePort(t)))
	webURL := "http://" + webAddr
	const secret = "e2e-web-secret"
	startDevIDP(t, bin, idpAddr, webURL, secret)
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: bin,
		Roles:  string(roles),
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging", "team": "web"}}},
		Config: map[string]any{
			"web":       map[string]any{"listen": webAddr, "public_url": webURL},
			"oidc":      map[string]any{"issuer": "http://" + idpAddr, "client_id": "gatehouse", "client_secret": secret},
			"recording": map[string]any{"mode": "strict", "encrypt_to": []string{ident.Recipient().String()}},
		},
	})
	bob := e2e.NewUser(t, gh, "bob", time.Hour)
	if r := bob.SSH("ubuntu@web-1", "echo web-sealed-$((6*7))"); r.ExitCode != 0 {
		t.Fatalf("ssh: %s", r)
	}
	s := waitSession(t, gh, "bob's ended exec", func(s sessionLine) bool { return s.User == "bob" && s.End != nil })

	shots := browser.ArtifactsDir(t)
	samB := newContext(t, browser.New(t))
	signIn(t, samB, webURL, "/sessions/"+s.ID, "sam")
	waitText(t, samB, "#encrypted", "--identity KEYFILE "+s.ID, 15*time.Second)
	if n, err := chromedp.Run(samB, chromedp.Evaluate[int](`document.querySelectorAll("#player").length`)); err != nil || n != 0 {
		t.Errorf("the page of an encrypted recording has %d players (%v), want none", n, err)
	}
	browser.ScreenshotAtWidths(t, samB, shots, "encrypted-player-sam")
	run(t, samB, "search", chromedp.Navigate(webURL+"/sessions?grep=web-sealed-42"))
	waitText(t, samB, "#unsearched", "encrypted recordings were not searched", 15*time.Second)
	browser.ScreenshotAtWidths(t, samB, shots, "encrypted-search-sam")
}
