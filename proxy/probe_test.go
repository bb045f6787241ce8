package proxy_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/sshtest"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// ProbeNode names the stage a node fails at: reachable, host key (pinned
// or from a host CA), login.
func TestProbeNodeStages(t *testing.T) {
	auth, err := ca.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hostCA, otherCA := sshtest.NewSigner(t), sshtest.NewSigner(t)
	pinned := sshtest.Start(t, sshtest.Options{UserCA: auth.UserCAKey(), Logins: []string{"ubuntu"}})
	certified := sshtest.Start(t, sshtest.Options{UserCA: auth.UserCAKey(), HostCA: hostCA, HostNames: []string{"db-1"}})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	line := func(k ssh.PublicKey) string { return ca.AuthorizedLine(k, "") }

	tests := []struct {
		name  string
		node  config.Node
		login string
		stage string // "" for success
	}{
		{"pinned key", config.Node{Name: "web-1", Address: pinned.Addr, HostKey: pinned.HostKeyLine}, "ubuntu", ""},
		{"host CA names the node", config.Node{Name: "db-1", Address: certified.Addr, NodeHostCA: line(hostCA.PublicKey())}, "ubuntu", ""},
		{"pinned key differs", config.Node{Name: "web-1", Address: pinned.Addr, HostKey: line(sshtest.NewSigner(t).PublicKey())}, "ubuntu", proxy.ProbeHostKey},
		{"host CA certificate for another name", config.Node{Name: "db-2", Address: certified.Addr, NodeHostCA: line(hostCA.PublicKey())}, "ubuntu", proxy.ProbeHostKey},
		{"another host CA", config.Node{Name: "db-1", Address: certified.Addr, NodeHostCA: line(otherCA.PublicKey())}, "ubuntu", proxy.ProbeHostKey},
		{"no such login", config.Node{Name: "web-1", Address: pinned.Addr, HostKey: pinned.HostKeyLine}, "root", proxy.ProbeLogin},
		{"nothing listening", config.Node{Name: "web-9", Address: closedAddr, HostKey: pinned.HostKeyLine}, "ubuntu", proxy.ProbeReach},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := proxy.ProbeNode(context.Background(), auth, tc.node, tc.login, 5*time.Second)
			var pe *proxy.ProbeError
			switch {
			case tc.stage == "" && err != nil:
				t.Fatalf("probe failed: %v", err)
			case tc.stage != "" && (!errors.As(err, &pe) || pe.Stage != tc.stage):
				t.Fatalf("probe: %v, want a failure at stage %q", err, tc.stage)
			}
		})
	}
}
