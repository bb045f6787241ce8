package server

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/preauth"
)

// Every gatehouse.yaml key the proxy obeys reaches proxy.Options, and the
// defaults are the file's defaults.
func TestProxyOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	parse := func(yaml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(fmt.Sprintf("data_dir: %s\n%s", dir, yaml)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	opt := proxyOptions(parse(`
bastion_id: b-1
ssh:
  listen: 0.0.0.0:2222
  host_names: [bastion.example.com]
  login_grace_time: 20s
  version_deadline: 5s
  node_dial_timeout: 3s
  node_cert_ttl: 2m
  max_startups: "4:50:8"
  per_source_max_unauthenticated: 2
  penalty_exempt: [10.0.0.0/8]
  per_source_penalties: {authfail: 7s, min: 30s}
web: {public_url: "https://gate.example.com/"}
recording: {mode: best-effort}
nodes:
  - {name: web-1, address: "10.0.0.5:22", host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6yN6AQtNW1ylj5MV6qVq0BoY8FsnxfqdxG4dZz2Ygc"}
`))
	if n, ok := opt.Nodes.Node("web-1"); !ok || n.Address != "10.0.0.5:22" {
		t.Errorf("inventory %+v", opt.Nodes)
	}
	if _, ok := opt.Nodes.Node("db-1"); ok {
		t.Error("inventory has a node the file does not")
	}
	if want := []string{"0.0.0.0", "gate.example.com", "bastion.example.com"}; !slices.Equal(opt.HostNames, want) {
		t.Errorf("host names %v, want %v", opt.HostNames, want)
	}
	if opt.Address != "0.0.0.0:2222" || opt.BastionID != "b-1" || opt.RecordingMode != proxy.RecordingBestEffort {
		t.Errorf("address %q, bastion id %q, recording %q", opt.Address, opt.BastionID, opt.RecordingMode)
	}
	if want := (proxy.Timeouts{LoginGrace: 20 * time.Second, Version: 5 * time.Second, NodeDial: 3 * time.Second, NodeCertTTL: 2 * time.Minute}); opt.Timeouts != want {
		t.Errorf("timeouts %+v, want %+v", opt.Timeouts, want)
	}
	p := opt.PreAuth
	if p.Start != 4 || p.Rate != 50 || p.Full != 8 || p.PerSource != 2 || p.Penalties.AuthFail != 7*time.Second ||
		p.Penalties.Min != 30*time.Second || p.Penalties.Max != 10*time.Minute || p.Penalties.Disabled ||
		!slices.Equal(p.Exempt, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}) {
		t.Errorf("pre-auth %+v", p)
	}

	def := proxyOptions(parse(""))
	if want := (proxy.Timeouts{LoginGrace: 30 * time.Second, Version: 10 * time.Second, NodeDial: 10 * time.Second, NodeCertTTL: 5 * time.Minute}); def.Timeouts != want {
		t.Errorf("default timeouts %+v, want %+v", def.Timeouts, want)
	}
	wantPre := preauth.Config{Start: 50, Rate: 30, Full: 100, PerSource: 10, Penalties: preauth.Penalties{AuthFail: 5 * time.Second,
		NoAuth: time.Second, GraceExceeded: 10 * time.Second, Invalid: 10 * time.Second, Min: 15 * time.Second, Max: 10 * time.Minute, MaxSources: 65536}}
	if fmt.Sprint(def.PreAuth) != fmt.Sprint(wantPre) {
		t.Errorf("default pre-auth %+v, want %+v", def.PreAuth, wantPre)
	}
	if def.RecordingMode != "" && def.RecordingMode != proxy.RecordingStrict {
		t.Errorf("default recording mode %q", def.RecordingMode)
	}
	off := proxyOptions(parse("ssh: {per_source_penalties: {enabled: false}}\n"))
	if !off.PreAuth.Penalties.Disabled {
		t.Error("per_source_penalties.enabled: false did not reach the proxy")
	}
}
