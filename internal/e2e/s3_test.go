package e2e_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/e2e"
	"github.com/gatehouse-dev/gatehouse/internal/s3test"
)

// s3EncRoles adds to recRoles a role that may list and play sessions, for
// a bot that asks the web API for a recording.
const s3EncRoles = recRoles + `  - name: session-viewer
    allow:
      sessions: [list, play]
`

// Encryption at rest and object storage together, as a deployment runs
// them: a session through the real bastion ends up in a real S3 server
// (versitygw) only as age ciphertext, the spool lets go of it, and the
// security team's identity reads it back from the bucket.
func TestRecordingEncryptedInS3(t *testing.T) {
	e2e.RequireSystem(t)
	e2e.RequireAccount(t, "ubuntu")
	ident, keyFile := securityTeamKey(t)
	bucket := s3test.Start(t)
	gh := e2e.StartGatehouse(t, e2e.GatehouseOptions{
		Binary: builder.BuildGatehouse(t),
		Roles:  s3EncRoles,
		Nodes:  []e2e.NodeSpec{{Name: "web-1", Labels: map[string]string{"env": "staging"}}},
		Config: map[string]any{"recording": map[string]any{
			"mode":       "strict",
			"encrypt_to": []string{ident.Recipient().String()},
			"s3":         bucket.Config(bucket.SecretFile(t, t.TempDir())),
		}},
	})
	bob := e2e.NewUser(t, gh, "bob", time.Hour)

	// The shell computes the marker: only the output holds it.
	const marker = "S3-SEALED-42"
	if r := bob.SSH("ubuntu@web-1", "echo S3-SEALED-$((6*7))"); r.ExitCode != 0 || r.Stdout != marker+"\n" {
		t.Fatalf("exec session: %s", r)
	}
	id := waitSession(t, gh, "bob's ended exec", func(s sessionLine) bool { return s.User == "bob" && s.End != nil }).ID
	if !poll(30*time.Second, func() bool { return len(spooled(t, gh, id)) == 0 && len(bucketKeys(t, bucket, id)) >= 2 }) {
		t.Fatalf("session %s: the spool still holds %v; the bucket holds %v", id, spooled(t, gh, id), bucket.Keys(t))
	}

	t.Run("the bucket holds only ciphertext", func(t *testing.T) {
		keys := bucketKeys(t, bucket, id)
		for _, k := range keys {
			if !strings.HasSuffix(k, ".ages") {
				t.Errorf("object %s is not an encrypted recording file", k)
			}
		}
		// versitygw serves a folder: read what it stored, not what it
		// answers, every file under the bucket's folder.
		dir := filepath.Join(bucket.Root, bucket.Bucket)
		var objects int
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range []string{marker, `"version"`} {
				if bytes.Contains(data, []byte(m)) {
					t.Errorf("%s holds %q in plaintext", p, m)
				}
			}
			if strings.HasPrefix(d.Name(), id+".") {
				objects++
				// The spool's encrypted format (session/segment.go):
				// a magic line, then age files, one per segment.
				if !bytes.HasPrefix(data, []byte("gatehouse-ages 1\n")) || !bytes.Contains(data, []byte("age-encryption.org/v1\n")) {
					t.Errorf("%s is not a series of age files: %.40q", p, data)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if objects != len(keys) {
			t.Errorf("%d files of %s under %s, want one per object %v", objects, id, dir, keys)
		}
	})

	t.Run("the spool let go of it", func(t *testing.T) {
		if files := spooled(t, gh, id); len(files) != 0 {
			t.Errorf("the bastion still holds %v", files)
		}
	})

	t.Run("the identity reads it from the bucket", func(t *testing.T) {
		r := gh.MustRun("sessions", "export", id, "--identity", keyFile)
		if _, events := parseCast(t, []byte(r.Stdout)); !strings.Contains(outputText(events), marker) {
			t.Errorf("export --identity lacks %s:\n%s", marker, r.Stdout)
		}
		if r := gh.MustRun("sessions", "export", id, "--stream", "stdout", "--identity", keyFile); r.Stdout != marker+"\n" {
			t.Errorf("export --stream stdout --identity: %q", r.Stdout)
		}
		if r := gh.MustRun("sessions", "ls", "--json", "--grep", marker, "--identity", keyFile); !strings.Contains(r.Stdout, id) {
			t.Errorf("sessions ls --grep --identity does not find %s in the bucket: %s", id, r)
		}
	})

	t.Run("without the identity one line says how", func(t *testing.T) {
		r := gh.Run("sessions", "export", id)
		if r.ExitCode == 0 || strings.Contains(r.Stdout, marker) || len(nonEmptyLines(r.Stderr)) != 1 || !strings.Contains(r.Stderr, "--identity FILE") {
			t.Errorf("export without --identity: want one line naming --identity FILE, got %s", r)
		}
		r = gh.MustRun("sessions", "ls", "--json", "--grep", marker)
		if strings.Contains(r.Stdout, id) || !strings.Contains(r.Stderr, "encrypted recordings were not searched") {
			t.Errorf("sessions ls --grep without --identity: %s", r)
		}
	})

	t.Run("the web API refuses with the export command", func(t *testing.T) {
		tok := addBot(t, gh, "auditor", "session-viewer")
		code, body := curl(t, "-H", "Authorization: Bearer "+tok, gh.WebURL+"/api/sessions/"+id+"/recording")
		if code != "409" || strings.Contains(body, marker) {
			t.Fatalf("GET the recording: want 409 without the output, got %s %s", code, body)
		}
		if msg := oneLineError(t, body); !strings.Contains(msg, "sessions export --identity FILE "+id) {
			t.Errorf("409 says %q, want the export command", msg)
		}
	})
}
