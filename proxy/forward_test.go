package proxy_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// allowForwarding is allowUbuntu with port forwarding allowed.
type allowForwarding struct{ allowUbuntu }

func (allowForwarding) Authorize(ctx context.Context, id proxy.Identity, login string, n config.Node) (proxy.Verdict, error) {
	v, err := allowUbuntu{}.Authorize(ctx, id, login, n)
	v.PortForwarding = v.Allowed
	return v, err
}

// failingForward is an audit log that cannot take a port forward.
type failingForward struct{ memAudit }

func (f *failingForward) Append(ctx context.Context, ev storage.Event) error {
	if ev.Type == "port_forward" {
		return errors.New("disk full")
	}
	return f.memAudit.Append(ctx, ev)
}

// A tunnel's content is not recorded, so its target is on record while it
// is open, and a tunnel whose opening cannot be audited is refused.
func TestPortForwardAuditedWhenItOpens(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			// Left open: the tunnel must be on record while it is.
			t.Cleanup(func() { c.Close() })
			_, _ = c.Write([]byte("hello\n"))
		}
	}()
	host, port, _ := net.SplitHostPort(target.Addr().String())

	t.Run("on record while open", func(t *testing.T) {
		aud := &memAudit{}
		b := startBastionFull(t, allowForwarding{}, nil, nil, aud, aud)
		inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		c, err := inner.Dial("tcp", target.Addr().String())
		if err != nil {
			t.Fatalf("forward to %s: %v", target.Addr(), err)
		}
		defer c.Close()
		buf := make([]byte, 6)
		if _, err := c.Read(buf); err != nil || string(buf) != "hello\n" {
			t.Fatalf("read through the tunnel: %q, %v", buf, err)
		}
		open := aud.Events("port_forward")
		if len(open) != 1 || open[0].Fields["state"] != "open" || open[0].Fields["host"] != host ||
			strconv.Itoa(int(open[0].Fields["port"].(uint32))) != port || open[0].Actor != "bob" || open[0].Target != "web-1" {
			t.Fatalf("while the tunnel is open, want one port_forward event (state open, bob, web-1, %s:%s), got %+v", host, port, open)
		}
	})

	t.Run("refused without a record", func(t *testing.T) {
		aud := &failingForward{}
		b := startBastionFull(t, allowForwarding{}, nil, nil, aud, &aud.memAudit)
		inner, closeAll, err := b.dialInner(t, "bob", "ubuntu")
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		c, err := inner.Dial("tcp", target.Addr().String())
		if err == nil {
			c.Close()
			t.Fatal("a tunnel opened although its opening could not be audited")
		}
		if !strings.Contains(err.Error(), "audit log is unavailable") {
			t.Errorf("want the refusal to say the audit log is unavailable, got %v", err)
		}
	})
}
