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

// gatedAuthorizer admits every jump with an admission that holds its
// decision until released, and re-checks from a lock flag.
type gatedAuthorizer struct {
	allowUbuntu
	locked   atomic.Bool
	deciding chan struct{} // an admission is deciding
	release  chan struct{} // let it answer
	admitted atomic.Int32
}

func (g *gatedAuthorizer) AdmitJump(ctx context.Context, id proxy.Identity) (proxy.Admission, error) {
	g.admitted.Add(1)
	return gatedAdmission{g: g, id: id}, nil
}

func (g *gatedAuthorizer) Authorize(ctx context.Context, id proxy.Identity, login string, n config.Node) (proxy.Verdict, error) {
	if g.locked.Load() {
		return proxy.Verdict{Reason: id.User + " is locked", Rule: "lock"}, nil
	}
	return g.allowUbuntu.Authorize(ctx, id, login, n)
}

type gatedAdmission struct {
	g  *gatedAuthorizer
	id proxy.Identity
}

// Authorize answers from what was read at admission time: allowed.
func (a gatedAdmission) Authorize(ctx context.Context, login string, n config.Node) (proxy.Verdict, error) {
	a.g.deciding <- struct{}{}
	<-a.g.release
	return a.g.allowUbuntu.Authorize(ctx, a.id, login, n)
}

// A lock announced while a new connection is still being decided must end
// that connection: it is registered for re-checks before its first
// decision, which may rest on what was read before the lock.
func TestLockDuringSetupEndsConnection(t *testing.T) {
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
	if n := g.admitted.Load(); n != 1 {
		t.Errorf("AdmitJump called %d times, want once", n)
	}
}
