package server

import (
	"net"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/preauth"
)

// proxyOptions is the part of proxy.Options that gatehouse.yaml decides;
// the caller adds the CA, the stores and the hooks.
func proxyOptions(cfg *config.Config) proxy.Options {
	return proxy.Options{
		Nodes:         proxy.Inventory(cfg.Nodes),
		HostNames:     bastionHostNames(cfg),
		Address:       cfg.SSH.Listen,
		BastionID:     cfg.BastionID,
		RecordingMode: cfg.Recording.Mode,
		Timeouts: proxy.Timeouts{
			LoginGrace:  cfg.SSH.LoginGraceTime.D(),
			Version:     cfg.SSH.VersionDeadline.D(),
			NodeDial:    cfg.SSH.NodeDialTimeout.D(),
			NodeCertTTL: cfg.SSH.NodeCertTTL.D(),
		},
		PreAuth: preAuthConfig(cfg.SSH),
	}
}

// bastionHostNames are the names users reach the bastion by: the SSH
// listener's host, the web address's host and ssh.host_names. OpenSSH
// matches the name the user typed against the host certificate.
func bastionHostNames(cfg *config.Config) []string {
	var out []string
	if h, _, err := net.SplitHostPort(cfg.SSH.Listen); err == nil {
		out = append(out, h)
	}
	if u := cfg.Web.PublicURL; u != "" {
		u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		u, _, _ = strings.Cut(u, "/")
		if h, _, err := net.SplitHostPort(u); err == nil {
			out = append(out, h)
		} else {
			out = append(out, u)
		}
	}
	return append(out, cfg.SSH.HostNames...)
}

// preAuthConfig maps the ssh: limits on unauthenticated connections.
func preAuthConfig(c config.SSHConfig) preauth.Config {
	start, rate, full := c.Startups()
	pc := c.PerSourcePenalties
	d := func(v *config.Duration) time.Duration {
		if v == nil {
			return 0
		}
		return v.D()
	}
	return preauth.Config{
		Start: start, Rate: rate, Full: full,
		PerSource: c.PerSourceMaxUnauthenticated,
		Penalties: preauth.Penalties{
			Disabled: pc.Enabled != nil && !*pc.Enabled,
			AuthFail: d(pc.AuthFail), NoAuth: d(pc.NoAuth), GraceExceeded: d(pc.GraceExceeded), Invalid: d(pc.Invalid),
			Min: d(pc.Min), Max: d(pc.Max), MaxSources: pc.MaxSources,
		},
		Exempt: c.ExemptPrefixes(),
	}
}
