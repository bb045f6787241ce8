package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse("/etc/gh/gatehouse.yaml", []byte("nodes: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "/etc/gh/data"},
		{"ssh.listen", c.SSH.Listen, "127.0.0.1:2222"},
		{"web.public_url", c.Web.PublicURL, "http://127.0.0.1:8080"},
		{"storage", c.Storage.Driver + " " + c.Storage.DSN, "sqlite /etc/gh/data/gatehouse.db"},
		{"recording.mode", c.Recording.Mode, "strict"},
		{"recording.dir", c.Recording.Dir, filepath.Join("/etc/gh/data", "recordings")},
		{"recording.max_raw_bytes", c.Recording.MaxRawBytes, int64(1 << 30)},
		{"roles_file", c.RolesFile, "/etc/gh/roles.yaml"},
		{"login_grace_time", c.SSH.LoginGraceTime.D(), 30 * time.Second},
		{"node_cert_ttl", c.SSH.NodeCertTTL.D(), 5 * time.Minute},
		{"pending_ttl", c.Requests.PendingTTL.D(), 24 * time.Hour},
		{"logging.format", c.Logging.Format, "text"},
		{"metrics.listen", c.Metrics.Listen, ""},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "sssh: {}\n", "field sssh not found"},
		{"bad driver", "storage: {driver: mysql}\n", `storage.driver "mysql"`},
		{"postgres without dsn", "storage: {driver: postgres}\n", "storage.dsn is required"},
		{"bad recording mode", "recording: {mode: sometimes}\n", `recording.mode "sometimes"`},
		{"bad duration", "ssh: {login_grace_time: soon}\n", `bad duration "soon"`},
		{"node without host key", "nodes: [{name: db-1, address: 10.0.0.5:22}]\n", "never trusts an unverified node"},
		{"node without address", "nodes: [{name: db-1, host_key: x}]\n", "name and address are required"},
		{"duplicate node", "nodes: [{name: a, address: x:22, host_key: k}, {name: a, address: y:22, host_key: k}]\n", `duplicate node name "a"`},
		{"oidc without client", "oidc: {issuer: https://idp}\n", "oidc.issuer and oidc.client_id are required"},
		{"bad logging format", "logging: {format: xml}\n", `logging.format "xml"`},
		{"bad notify kind", "notify: [{kind: pager, url: x}]\n", `kind "pager"`},
		{"s3 without endpoint", "recording: {s3: {bucket: b}}\n", "recording.s3.endpoint is required"},
		{"s3 endpoint with a path", "recording: {s3: {endpoint: http://h/b, bucket: b}}\n", `recording.s3.endpoint "http://h/b"`},
		{"s3 endpoint without scheme", "recording: {s3: {endpoint: h:9000, bucket: b}}\n", `recording.s3.endpoint "h:9000"`},
		{"s3 without bucket", "recording: {s3: {endpoint: http://h}}\n", "recording.s3.bucket is required"},
		{"s3 key without secret", "recording: {s3: {endpoint: http://h, bucket: b, access_key_id: K}}\n", "go together"},
		{"s3 prefix with slash", "recording: {s3: {endpoint: http://h, bucket: b, prefix: /x}}\n", "must not start with /"},
		{"encrypt_to not a recipient", "recording: {encrypt_to: [age1nope]}\n", `recording.encrypt_to[0] "age1nope": want an age X25519 recipient`},
		{"encrypt_to a private key", "recording: {encrypt_to: [AGE-SECRET-KEY-1QQQQ]}\n", "is an age identity (a private key)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("gatehouse.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want error containing %q, got %v", tt.want, err)
			}
		})
	}
}

func TestNodeLookup(t *testing.T) {
	c, err := Parse("g.yaml", []byte("nodes: [{name: db-1, address: 10.0.0.5:22, host_key: k, labels: {env: prod}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := c.Node("db-1"); !ok || n.Labels["env"] != "prod" {
		t.Fatalf("Node(db-1) = %+v, %v", n, ok)
	}
	if _, ok := c.Node("db-2"); ok {
		t.Fatal("Node(db-2) found")
	}
}

func TestPreAuthLimits(t *testing.T) {
	type want struct {
		start, rate, full, perSource int
		version                      time.Duration
		penalties                    bool
		authfail, noauth             time.Duration
		exempt                       string
	}
	tests := []struct {
		name, yaml string
		want       want
	}{
		{"defaults", "ssh: {}\n", want{50, 30, 100, 10, 10 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"max_unauthenticated alone is full", "ssh: {max_unauthenticated: 40}\n", want{20, 30, 40, 10, 10 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"max_startups", "ssh: {max_startups: \"10:30:60\", per_source_max_unauthenticated: 3}\n", want{10, 30, 60, 3, 10 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"max_startups agreeing with max_unauthenticated", "ssh: {max_startups: \"5:50:20\", max_unauthenticated: 20}\n", want{5, 50, 20, 10, 10 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"max_startups full only", "ssh: {max_startups: \"20\"}\n", want{20, 100, 20, 10, 10 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"short grace shortens the version deadline", "ssh: {login_grace_time: 3s}\n", want{50, 30, 100, 10, 3 * time.Second, true, 5 * time.Second, time.Second, ""}},
		{"penalties tuned", "ssh: {version_deadline: 2s, per_source_penalties: {authfail: 30s, noauth: 0s}, penalty_exempt: [10.0.0.0/8, \"2001:db8::1\"]}\n",
			want{50, 30, 100, 10, 2 * time.Second, true, 30 * time.Second, 0, "10.0.0.0/8 2001:db8::1/128"}},
		{"penalties off", "ssh: {per_source_penalties: {enabled: false}}\n", want{50, 30, 100, 10, 10 * time.Second, false, 5 * time.Second, time.Second, ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("g.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			s := c.SSH
			start, rate, full := s.Startups()
			var ex []string
			for _, p := range s.ExemptPrefixes() {
				ex = append(ex, p.String())
			}
			p := s.PerSourcePenalties
			got := want{start, rate, full, s.PerSourceMaxUnauthenticated, s.VersionDeadline.D(), *p.Enabled,
				p.AuthFail.D(), p.NoAuth.D(), strings.Join(ex, " ")}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if full != s.MaxUnauthorized {
				t.Fatalf("full %d != max_unauthenticated %d", full, s.MaxUnauthorized)
			}
			if p.GraceExceeded.D() != 10*time.Second || p.Min.D() != 15*time.Second || p.Max.D() != 10*time.Minute || p.MaxSources != 65536 {
				t.Fatalf("penalty defaults: %+v", p)
			}
		})
	}
}

func TestPreAuthLimitErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"max_startups not numbers", "ssh: {max_startups: \"a:b:c\"}\n", `ssh.max_startups "a:b:c": "a" is not a number (want start:rate:full`},
		{"max_startups two numbers", "ssh: {max_startups: \"10:30\"}\n", "want one or three numbers"},
		{"max_startups start above full", "ssh: {max_startups: \"50:30:10\"}\n", "start 50 must be between 1 and full 10"},
		{"max_startups rate", "ssh: {max_startups: \"10:130:100\"}\n", "rate 130 must be a percentage"},
		{"max_startups and max_unauthenticated disagree", "ssh: {max_startups: \"10:30:60\", max_unauthenticated: 100}\n", "says full is 60 but ssh.max_unauthenticated is 100"},
		{"negative max_unauthenticated", "ssh: {max_unauthenticated: -1}\n", "ssh.max_unauthenticated -1"},
		{"negative per source", "ssh: {per_source_max_unauthenticated: -2}\n", "ssh.per_source_max_unauthenticated -2"},
		{"version deadline past grace", "ssh: {login_grace_time: 5s, version_deadline: 6s}\n", "ssh.version_deadline 6s must not be longer than ssh.login_grace_time 5s"},
		{"penalty min above max", "ssh: {per_source_penalties: {min: 1h, max: 10m}}\n", "max 10m0s must be positive and at least min 1h0m0s"},
		{"penalty bad duration", "ssh: {per_source_penalties: {authfail: often}}\n", `bad duration "often"`},
		{"penalty unknown key", "ssh: {per_source_penalties: {crash: 90s}}\n", "field crash not found"},
		{"bad exempt", "ssh: {penalty_exempt: [10.0.0.0/33]}\n", `ssh.penalty_exempt[0] "10.0.0.0/33": want an address or a CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gatehouse.yaml", []byte(tc.yaml))
			// yaml.v3's own decode errors span lines; ours are one line.
			multi := err != nil && strings.Contains(err.Error(), "\n") && !strings.Contains(err.Error(), "unmarshal errors")
			if err == nil || !strings.Contains(err.Error(), tc.want) || multi {
				t.Fatalf("want one-line error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestParseS3(t *testing.T) {
	yaml := "recording:\n  s3: {endpoint: 'http://127.0.0.1:7070', bucket: gatehouse-recordings, region: us-east-1, prefix: prod/, access_key_id: KEY, secret_access_key_file: ./s3-secret, path_style: true}\n"
	c, err := Parse("/etc/gh/gatehouse.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Recording.S3
	if s == nil || s.Endpoint != "http://127.0.0.1:7070" || s.Bucket != "gatehouse-recordings" || s.Region != "us-east-1" ||
		s.Prefix != "prod/" || s.AccessKeyID != "KEY" || s.SecretAccessKeyFile != "/etc/gh/s3-secret" || !s.PathStyle {
		t.Fatalf("recording.s3 parsed as %+v", s)
	}
	// Neither key nor file: the AWS environment.
	c, err = Parse("/etc/gh/gatehouse.yaml", []byte("recording: {s3: {endpoint: 'https://s3.example.com', bucket: b}}\n"))
	if err != nil || c.Recording.S3.AccessKeyID != "" {
		t.Fatalf("s3 with the AWS environment: %+v, %v", c.Recording.S3, err)
	}
}

func TestEncryptTo(t *testing.T) {
	const rcpt = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	c, err := Parse("gatehouse.yaml", []byte("recording: {encrypt_to: ["+rcpt+"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rs := c.Recording.Recipients(); len(rs) != 1 {
		t.Fatalf("recipients = %v, want one", rs)
	}
	c, err = Parse("gatehouse.yaml", []byte("nodes: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rs := c.Recording.Recipients(); len(rs) != 0 {
		t.Errorf("recipients without encrypt_to = %v", rs)
	}
}

// An age identity pasted into recording.encrypt_to by mistake is refused in
// one line that does not repeat the secret.
func TestEncryptToIdentityNotEchoed(t *testing.T) {
	const secret = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
	for _, yaml := range []string{
		"recording: {encrypt_to: [" + secret + "]}\n",
		"recording:\n  encrypt_to:\n    - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n    - " + strings.ToLower(secret) + "\n",
	} {
		_, err := Parse("gatehouse.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), "is an age identity (a private key)") {
			t.Fatalf("want a refusal of the identity, got %v", err)
		}
		if msg := err.Error(); strings.Contains(strings.ToUpper(msg), "GFPYYSJZ") || strings.Contains(msg, "\n") {
			t.Errorf("refusal echoes the secret or is not one line: %q", msg)
		}
	}
}
