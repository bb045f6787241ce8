package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/term"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("sessions", args, stderr, "ls", "export")
	if err != nil {
		return err
	}
	fs := newFlags("sessions "+sub, stderr)
	cfgPath := configFlag(fs)
	identity := identityFlag(fs)
	if sub == "export" {
		stream := fs.String("stream", "", "the raw bytes of one stream (stdin, stdout or stderr) of a session without a pty, instead of the cast")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"usage: gatehouse sessions export --config FILE SESSION_ID [--stream stdin|stdout|stderr] [--identity FILE]"}
		}
		ids, err := readIdentities(*identity)
		if err != nil {
			return err
		}
		b, err := openBastion(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer b.Close()
		if *stream != "" {
			return exportStream(ctx, b.Store, b.Recordings(ctx), pos[0], *stream, ids, stdout, stderr)
		}
		rc, err := openRecording(ctx, b.Store, b.Recordings(ctx), pos[0], ids)
		if err != nil {
			return err
		}
		defer rc.Close()
		return truncatedNote(session.Export(stdout, rc), pos[0], stderr)
	}
	user := fs.String("user", "", "only this user's sessions")
	node := fs.String("node", "", "only sessions on this node")
	since := fs.String("since", "", "DURATION (2h, 7d) or TIME")
	grep := fs.String("grep", "", "only sessions whose recorded output or input contains TEXT (ANSI stripped, case-insensitive)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	limit := fs.Int("limit", 200, "at most this many sessions")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer b.Close()
	f := storage.SessionFilter{User: *user, Node: *node, Limit: *limit}
	if *since != "" {
		t, err := audit.ParseSince(*since, time.Now())
		if err != nil {
			return usageError{err.Error()}
		}
		f.Since = t
	}
	if *grep != "" {
		f.Limit = 0
	}
	list, err := b.Store.ListSessions(ctx, f)
	if err != nil {
		return err
	}
	lw := session.NewListWriter(stdout, *asJSON)
	recs := b.Recordings(ctx)
	shown, sealed := 0, 0
	for _, s := range list {
		if *grep != "" {
			ok, err := grepRecording(recs, s, *grep, ids)
			if errors.Is(err, session.ErrEncrypted) {
				sealed++
			}
			if err != nil || !ok {
				continue
			}
		}
		if *limit > 0 && shown >= *limit {
			break
		}
		shown++
		if err := lw.Write(s); err != nil {
			return err
		}
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	if sealed > 0 {
		fmt.Fprintf(stderr, "gatehouse: %d encrypted recordings were not searched: --grep reads them only with --identity FILE\n", sealed)
	}
	return nil
}

// identityFlag is --identity, the age identity file that reads encrypted
// recordings.
func identityFlag(fs *flag.FlagSet) *string {
	return fs.String("identity", "", "age identity `FILE` (age-keygen output) to read recordings encrypted with recording.encrypt_to")
}

// readIdentities reads an age identity file; no file, no identities.
func readIdentities(path string) ([]age.Identity, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("--identity %s: not an age identity file: %w", path, err)
	}
	return ids, nil
}

// truncatedNote turns the end of a recording cut short by a crash into
// one line on stderr: what was read before the cut has been written.
func truncatedNote(err error, id string, stderr io.Writer) error {
	if errors.Is(err, session.ErrTruncated) {
		fmt.Fprintf(stderr, "gatehouse: the recording of session %s ends early (the bastion stopped while writing it); the rest is above\n", id)
		return nil
	}
	return err
}

// openRecording finds a session's recording by its id (validated by the
// session package; ids never become raw paths).
func openRecording(ctx context.Context, st storage.SessionStore, recs fs.FS, id string, ids []age.Identity) (io.ReadCloser, error) {
	if err := session.ValidID(id); err != nil {
		return nil, usageError{fmt.Sprintf("invalid session id %q", id)}
	}
	s, err := st.GetSession(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	if s.Recording == "" {
		return nil, fmt.Errorf("session %s (%s) has no terminal recording; its bytes: sessions export --stream stdin|stdout|stderr %s", id, s.Kind, id)
	}
	return session.OpenFS(recs, id, ids...)
}

// exportStream writes the stored bytes of one raw stream of session id.
func exportStream(ctx context.Context, st storage.SessionStore, recs fs.FS, id, name string, ids []age.Identity, stdout, stderr io.Writer) error {
	if err := session.ValidID(id); err != nil {
		return usageError{fmt.Sprintf("invalid session id %q", id)}
	}
	which, err := session.ParseStream(name)
	if err != nil {
		return usageError{"--stream: " + err.Error()}
	}
	s, err := st.GetSession(ctx, id)
	if err != nil {
		return fmt.Errorf("session %s: %w", id, err)
	}
	rr, c, err := session.OpenRawFS(recs, id, ids...)
	if errors.Is(err, session.ErrNoRawRecording) {
		return fmt.Errorf("session %s (%s) has no raw streams: a session with a pty is recorded whole in its cast (sessions export without --stream)", id, s.Kind)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	capped, truncated, err := session.ExportStream(stdout, rr, which)
	if err != nil {
		return err
	}
	if capped {
		fmt.Fprintf(stderr, "gatehouse: session %s reached recording.max_raw_bytes: what was stored is a prefix; the size and sha256 of each stream are in its session.end audit event\n", id)
	}
	if truncated {
		fmt.Fprintf(stderr, "gatehouse: the raw store of session %s ends early (the bastion stopped while writing it)\n", id)
	}
	return nil
}

// grepRecording searches one session's recording, decrypting it with ids
// as it reads when it is encrypted.
func grepRecording(recs fs.FS, s storage.Session, text string, ids []age.Identity) (bool, error) {
	if s.Recording == "" {
		return strings.Contains(strings.ToLower(s.Command), strings.ToLower(text)), nil
	}
	rc, err := session.OpenFS(recs, s.ID, ids...)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return session.Grep(rc, text)
}

func runPlay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("play", stderr)
	cfgPath := configFlag(fs)
	speed := fs.Float64("speed", 1, "playback speed factor")
	idle := fs.Duration("idle-limit", 0, "cap idle pauses at this duration (0 = real pauses)")
	identity := identityFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: gatehouse play --config FILE SESSION_ID [--speed X] [--idle-limit DURATION] [--identity FILE]"}
	}
	if *speed <= 0 {
		return usageError{"--speed must be positive"}
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	b, err := openBastion(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer b.Close()
	rc, err := openRecording(ctx, b.Store, b.Recordings(ctx), pos[0], ids)
	if err != nil {
		return err
	}
	defer rc.Close()
	var keys io.Reader
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		old, err := term.MakeRaw(fd)
		if err == nil {
			defer term.Restore(fd, old)
			keys = os.Stdin
			fmt.Fprint(stderr, "space: pause/resume, q: quit\r\n")
		}
	}
	err = session.Play(ctx, rc, stdout, keys, session.PlayOptions{Speed: *speed, IdleLimit: *idle})
	return truncatedNote(err, pos[0], stderr)
}
