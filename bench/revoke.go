package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// VictimUser is the Gatehouse user locked by the revocation case for n
// sessions; each n gets its own user so one lock does not leak into the
// next measurement.
func VictimUser(n int) string { return fmt.Sprintf("victim%d", n) }

// Revocation opens n interactive sessions as a user, locks the user with
// `gatehouse lock`, and times until every session has seen the end. The
// OpenSSH baseline has no such mechanism: revoking the key on the jump
// host (RevokedKeys) only refuses new logins, which the case shows by
// checking how many live sessions survive it.
func Revocation(ctx context.Context, e *Env, counts []int, parallel int) Section {
	const title = "5. Revocation latency"
	t := Table{Header: []string{"sessions", "system", "opened", "lock command (ms)", "notice p50 / p99 / max (ms)", "closed max (ms)", "still open after"}}
	var notes []string
	for _, n := range counts {
		user := VictimUser(n)
		// Gatehouse.
		j, err := e.Jumper(Gatehouse, user, "")
		if err != nil {
			return failed(title, err)
		}
		waitIdle(ctx, e, Gatehouse)
		shells, nfail, ferr := openShells(ctx, j, n, parallel)
		if ferr != nil {
			notes = append(notes, fmt.Sprintf("%d sessions via gatehouse: %d failed to open, first error `%v`", n, nfail, ferr))
		}
		settle(shells)
		t0 := time.Now()
		_, lerr := e.Gatehouse(ctx, "lock", "--user", user, "--reason", "benchmark revocation latency")
		t1 := time.Now()
		if lerr != nil {
			closeShells(shells)
			notes = append(notes, fmt.Sprintf("gatehouse lock: `%v`", lerr))
			continue
		}
		open := waitAllClosed(ctx, shells, 60*time.Second)
		var notice, closed []time.Duration
		for _, sh := range shells {
			if at := sh.eofAt.Load(); at != 0 {
				notice = append(notice, time.Unix(0, at).Sub(t0))
			}
			if at := sh.closedAt.Load(); at != 0 {
				closed = append(closed, time.Unix(0, at).Sub(t0))
			}
		}
		nm, cm := ms(notice), ms(closed)
		t.Add(fmt.Sprint(n), "gatehouse", fmt.Sprint(len(shells)), f1(float64(t1.Sub(t0))/float64(time.Millisecond)),
			fmt.Sprintf("%s / %s / %s", f1(Median(nm)), f1(Percentile(nm, 99)), f1(Percentile(nm, 100))),
			f1(Percentile(cm, 100)), fmt.Sprintf("%d of %d after 60 s", open, len(shells)))
		closeShells(shells)

		// Baseline.
		waitIdle(ctx, e, Baseline)
		bj, err := e.Jumper(Baseline, user, "")
		if err != nil {
			return failed(title, err)
		}
		bshells, bfail, berr := openShells(ctx, bj, n, parallel)
		if berr != nil {
			notes = append(notes, fmt.Sprintf("%d sessions via openssh: %d failed to open, first error `%v`", n, bfail, berr))
		}
		settle(bshells)
		t0 = time.Now()
		rerr := e.RevokeBaselineKey(true)
		t1 = time.Now()
		const watch = 5 * time.Second
		bopen := waitAllClosed(ctx, bshells, watch)
		// The revocation must be real: a new login has to fail.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, derr := bj.Dial(dctx)
		cancel()
		if derr == nil {
			c.Close()
			notes = append(notes, "openssh: a new login still succeeded after RevokedKeys listed the key; the baseline revocation did not take")
		}
		if err := e.RevokeBaselineKey(false); err != nil && rerr == nil {
			rerr = err
		}
		if rerr != nil {
			notes = append(notes, fmt.Sprintf("openssh revocation: `%v`", rerr))
		}
		t.Add(fmt.Sprint(n), "openssh", fmt.Sprint(len(bshells)), f1(float64(t1.Sub(t0))/float64(time.Millisecond))+" (write RevokedKeys)",
			"never", "never", fmt.Sprintf("%d of %d after %s", bopen, len(bshells), watch))
		closeShells(bshells)
	}
	text := "N interactive sessions (pty + shell, as in case 3) are opened for one user; then `gatehouse lock --user U` runs as a " +
		"separate process against the same database, as an operator would run it. Times are from the start of the lock " +
		"command: *notice* is when the session's output ends (Gatehouse writes the notice, exit status 255 and EOF), " +
		"*closed* is when the client sees the channel closed (Gatehouse closes the connection once every channel's notice " +
		"is sent, or after one second for a client that stopped reading). The lock command's own run time (process start, opening the store, the write) is in the figure. " +
		"Baseline: OpenSSH has no live revocation; the closest it has is listing the key in the jump host's RevokedKeys, " +
		"which refuses new logins (checked) and leaves live sessions running, so the ratio is not defined.\n\n" + t.Markdown()
	for _, n := range notes {
		text += "\n- " + n
	}
	return Section{Title: title, Text: text}
}

// settle lets every shell print its prompt, so the sessions are really live
// (recording open, index row written) before the revocation.
func settle(shells []*shell) {
	for i, sh := range shells {
		_, _ = sh.probe(tokenFor(i, 0), 30*time.Second)
	}
}

// waitAllClosed waits up to limit for every shell to close and returns how
// many are still open.
func waitAllClosed(ctx context.Context, shells []*shell, limit time.Duration) int {
	deadline := time.After(limit)
	for _, sh := range shells {
		select {
		case <-sh.done:
		case <-deadline:
			return countOpen(shells)
		case <-ctx.Done():
			return countOpen(shells)
		}
	}
	return 0
}

func countOpen(shells []*shell) int {
	n := 0
	for _, sh := range shells {
		select {
		case <-sh.done:
		default:
			n++
		}
	}
	return n
}

// RevokeBaselineKey lists (or unlists) the client key in the baseline jump
// host's RevokedKeys file, which sshd reads on every authentication.
func (e *Env) RevokeBaselineKey(revoke bool) error {
	var data []byte
	if revoke {
		pub, err := os.ReadFile(e.KeyPath + ".pub")
		if err != nil {
			return fmt.Errorf("read client key: %w", err)
		}
		data = pub
	}
	path := e.revokedKeysPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write RevokedKeys: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace RevokedKeys: %w", err)
	}
	return nil
}

func (e *Env) revokedKeysPath() string { return filepath.Join(e.Dir, "jump_revoked_keys") }
