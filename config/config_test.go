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
		{"bad notify kind", "notify: [{kind: email, url: x}]\n", `kind "email"`},
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
