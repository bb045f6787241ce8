package proxy_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// gatedAuthorizer holds a jump's decision until released, and answers
// every later question (the re-checks) from a lock flag.
type gatedAuthorizer struct {
	allowUbuntu
	locked   atomic.Bool
	asked    atomic.Int32
	deciding chan struct{} // the jump's decision is being made
	release  chan struct{} // let it answer
}

func (g *gatedAuthorizer) Authorize(ctx context.Context, id proxy.Identity, login string, n config.Node) (proxy.Verdict, error) {
	if g.asked.Add(1) == 1 {
		// The jump's decision, read before the lock: allowed.
		g.deciding <- struct{}{}
		<-g.release
		return g.allowUbuntu.Authorize(ctx, id, login, n)
	}
	if g.locked.Load() {
		return proxy.Verdict{Reason: id.User + " is locked", Rule: proxy.RuleLock, Notice: id.User + " is locked; contact your security team"}, nil
	}
	return g.allowUbuntu.Authorize(ctx, id, login, n)
}

// A lock announced while a new connection is still being decided must end
// that connection: it is registered for re-checks before its decision,
// which may rest on what was read before the lock.
func TestLockDuringDecisionEndsConnection(t *testing.T) {
	g := &gatedAuthorizer{deciding: make(chan struct{}), release: make(chan struct{})}
	b := startBastionWith(t, g, nil, nil)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := b.jump(t, "bob", "ubuntu", "echo ran")
		done <- result{out, err}
	}()
	select {
	case <-g.deciding:
	case <-time.After(30 * time.Second):
		t.Fatal("the jump never reached its decision")
	}
	g.locked.Store(true)
	if n := b.srv.Recheck(context.Background(), "bob", "gatehouse: your access was locked; session closed"); n != 1 {
		t.Errorf("Recheck closed %d connections, want the one being set up", n)
	}
	close(g.release)
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the jump did not finish")
	}
	if r.err == nil || strings.Contains(r.out, "ran") {
		t.Errorf("command ran on a connection locked during setup: %q, %v", r.out, r.err)
	}
	if n := b.audit.Count("session.start"); n != 0 {
		t.Errorf("%d session.start events for a connection locked during setup", n)
	}
	if n := b.audit.Count("session.terminated"); n != 1 {
		t.Errorf("%d session.terminated events, want 1", n)
	}
}

// A locked user's jump is refused with the lock's own line, audited as a
// denied session with the rule that refused it.
func TestLockedJumpIsRefusedWithTheNotice(t *testing.T) {
	g := &gatedAuthorizer{deciding: make(chan struct{}, 1), release: make(chan struct{})}
	g.asked.Store(1) // no jump decision to hold
	g.locked.Store(true)
	b := startBastionWith(t, g, nil, nil)
	out, err := b.jump(t, "bob", "ubuntu", "echo ran")
	if err == nil || strings.Contains(out, "ran") {
		t.Fatalf("locked bob ran a command: %q, %v", out, err)
	}
	if !strings.Contains(out+err.Error(), "gatehouse: bob is locked; contact your security team") {
		t.Errorf("refusal: %q, %v; want the lock's line", out, err)
	}
	if n := b.audit.Count("session.denied"); n != 1 {
		t.Errorf("%d session.denied events, want 1", n)
	}
}
