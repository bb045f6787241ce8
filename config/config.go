// Package config loads gatehouse.yaml: where data lives, what the bastion
// listens on, which nodes exist and how to verify them. Roles live in their
// own file (see package policy) because they change far more often.
package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"gopkg.in/yaml.v3"
)

// Config is gatehouse.yaml. Key names are part of the product contract.
type Config struct {
	DataDir   string          `yaml:"data_dir"`
	BastionID string          `yaml:"bastion_id"` // names this bastion in the session index; default: hostname + ssh listen address
	SSH       SSHConfig       `yaml:"ssh"`
	Web       WebConfig       `yaml:"web"`
	OIDC      *OIDCConfig     `yaml:"oidc"`
	Storage   StorageConfig   `yaml:"storage"`
	Recording RecordingConfig `yaml:"recording"`
	Audit     AuditConfig     `yaml:"audit"`
	RolesFile string          `yaml:"roles_file"`
	Nodes     []Node          `yaml:"nodes"`
	Notify    []NotifyTarget  `yaml:"notify"`
	Requests  RequestsConfig  `yaml:"requests"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Logging   LoggingConfig   `yaml:"logging"`

	path string
}

// SSHConfig is the bastion's SSH listener.
type SSHConfig struct {
	Listen          string   `yaml:"listen"`
	LoginGraceTime  Duration `yaml:"login_grace_time"`    // pre-auth timeout, default 30s
	MaxUnauthorized int      `yaml:"max_unauthenticated"` // cap on connections still authenticating, default 100
	// MaxStartups is OpenSSH's start:rate:full (or just full): past start
	// unauthenticated connections, new ones are refused at random, rate%
	// at start rising to 100% at full. full is max_unauthenticated.
	// Default: half of max_unauthenticated, 30%.
	MaxStartups string `yaml:"max_startups"`
	// PerSourceMaxUnauthenticated caps unauthenticated connections from
	// one address (IPv6: one /64), default 10.
	PerSourceMaxUnauthenticated int `yaml:"per_source_max_unauthenticated"`
	// VersionDeadline is how long a new connection has to send its SSH
	// version line, default 10s (at most login_grace_time).
	VersionDeadline    Duration      `yaml:"version_deadline"`
	PerSourcePenalties PenaltyConfig `yaml:"per_source_penalties"`
	PenaltyExempt      []string      `yaml:"penalty_exempt"`    // addresses or CIDRs never penalised
	NodeDialTimeout    Duration      `yaml:"node_dial_timeout"` // default 10s
	NodeCertTTL        Duration      `yaml:"node_cert_ttl"`     // upstream certificate validity, default 5m
	KeyBindingTTL      Duration      `yaml:"key_binding_ttl"`   // SSH login-URL key bindings, default 12h
	HostNames          []string      `yaml:"host_names"`        // extra names the bastion is reached by (for its host certificate)
}

// PenaltyConfig is OpenSSH's PerSourcePenalties: a source whose connections
// end without authenticating is refused for a while once its penalties add
// up to min. Unset keys take the defaults below; "0s" turns one kind off.
type PenaltyConfig struct {
	Enabled       *bool     `yaml:"enabled"`        // default true
	AuthFail      *Duration `yaml:"authfail"`       // failed to authenticate, default 5s
	NoAuth        *Duration `yaml:"noauth"`         // left without trying, default 1s
	GraceExceeded *Duration `yaml:"grace_exceeded"` // login grace time or version deadline ran out, default 10s
	Invalid       *Duration `yaml:"invalid"`        // sent something that is not SSH, default 10s
	Min           *Duration `yaml:"min"`            // refused once the penalty reaches this, default 15s
	Max           *Duration `yaml:"max"`            // longest penalty, default 10m
	MaxSources    int       `yaml:"max_sources"`    // sources tracked at most, default 65536
}

// WebConfig is the HTTP UI and API listener.
type WebConfig struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"`
}

// OIDCConfig points at the company's identity provider.
type OIDCConfig struct {
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	UsernameClaim    string   `yaml:"username_claim"`
	GroupsClaim      string   `yaml:"groups_claim"`
	Scopes           []string `yaml:"scopes"`
}

// StorageConfig selects the backend.
type StorageConfig struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
}

// RecordingConfig controls session recording.
type RecordingConfig struct {
	Mode        string `yaml:"mode"` // strict or best-effort
	RecordInput bool   `yaml:"record_input"`
	Dir         string `yaml:"dir"` // default <data_dir>/recordings
	// MaxRawBytes caps the raw bytes stored per session without a pty
	// (stdin, stdout, stderr together, before compression); past it only
	// sizes and SHA-256 are kept. 0 means DefaultMaxRawBytes, negative
	// means no cap.
	MaxRawBytes int64 `yaml:"max_raw_bytes"`
	// S3, when set, is the bucket recordings rest in once their session
	// has ended; Dir is then only the spool they are written to.
	S3 *S3Config `yaml:"s3"`
	// EncryptTo lists age X25519 recipients (age1...). When set, every
	// recording is encrypted to them as it is written; the identities
	// (private keys) stay with whoever reads recordings, never here.
	EncryptTo  []string `yaml:"encrypt_to"`
	recipients []age.Recipient
}

// Recipients returns recording.encrypt_to parsed; empty when recordings
// are not encrypted.
func (r RecordingConfig) Recipients() []age.Recipient { return r.recipients }

// parseRecipients checks recording.encrypt_to. A private key pasted by
// mistake is refused with a message that says so, without echoing it.
func parseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, s := range list {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
			return nil, fmt.Errorf("recording.encrypt_to[%d] is an age identity (a private key): put its recipient (age-keygen -y) here and keep the identity off the bastion", i)
		}
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("recording.encrypt_to[%d] %q: want an age X25519 recipient (age1...): %w", i, s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// S3Config is an S3-compatible bucket for recordings.
type S3Config struct {
	Endpoint    string `yaml:"endpoint"` // http(s)://host[:port]
	Bucket      string `yaml:"bucket"`
	Region      string `yaml:"region"`
	Prefix      string `yaml:"prefix"` // put before every object name
	AccessKeyID string `yaml:"access_key_id"`
	// SecretAccessKeyFile holds the secret key. With neither it nor
	// AccessKeyID, credentials come from the standard AWS environment
	// (AWS_ACCESS_KEY_ID..., ~/.aws/credentials, the instance role).
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	PathStyle           bool   `yaml:"path_style"`
}

// DefaultMaxRawBytes is recording.max_raw_bytes when unset: 1 GiB.
const DefaultMaxRawBytes = 1 << 30

// AuditConfig controls the audit log's sinks and retention.
type AuditConfig struct {
	Sink          string   `yaml:"sink"`           // "" (none), "stdout", or a file path for JSON lines
	MaxAge        Duration `yaml:"max_age"`        // retention; 0 keeps everything
	CheckpointKey string   `yaml:"checkpoint_key"` // Ed25519 key file for signed checkpoints (optional)
}

// RequestsConfig controls access requests.
type RequestsConfig struct {
	PendingTTL Duration `yaml:"pending_ttl"` // default 24h
}

// MetricsConfig is the optional listener for Prometheus scrapes. /metrics
// is served on web.listen as well; a separate address lets the firewall
// keep the scraper off the public port.
type MetricsConfig struct {
	Listen string `yaml:"listen"`
}

// LoggingConfig selects the server's log format: "text" (the default) or
// "json" for log shippers.
type LoggingConfig struct {
	Format string `yaml:"format"`
}

// Node is one SSH server reachable through the bastion.
type Node struct {
	Name       string            `yaml:"name"`
	Address    string            `yaml:"address"`
	Labels     map[string]string `yaml:"labels"`
	HostKey    string            `yaml:"host_key"`     // pinned authorized_keys-format key
	NodeHostCA string            `yaml:"node_host_ca"` // or trust host certs from this CA (authorized_keys format)
}

// NotifyTarget is where access-request notifications go.
type NotifyTarget struct {
	Kind string `yaml:"kind"` // slack, webhook or email
	URL  string `yaml:"url"`  // slack and webhook

	// Email over SMTP. Addresses: a username that is an e-mail address
	// (username_claim: email) is used as is; any other gets @ToDomain.
	SMTP         string   `yaml:"smtp"` // host:port
	From         string   `yaml:"from"`
	Username     string   `yaml:"username"`      // SMTP AUTH PLAIN, only over TLS or loopback
	PasswordFile string   `yaml:"password_file"` // read at startup
	StartTLS     string   `yaml:"starttls"`      // required (default off loopback), opportunistic (default on loopback), off
	CAFile       string   `yaml:"ca_file"`       // PEM roots to trust instead of the system's
	ToDomain     string   `yaml:"to_domain"`
	ReviewersTo  []string `yaml:"reviewers_to"` // extra addresses told of every new request

	Password string `yaml:"-" json:"-"` // read from PasswordFile by Load; never printed
	CAPEM    []byte `yaml:"-"`          // read from CAFile by Load
}

// Duration is a time.Duration written as "90s", "2h".
type Duration time.Duration

// UnmarshalYAML parses Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like 90s or 2h", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: bad duration %q (use e.g. 90s, 15m, 2h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads and validates a config file. A missing default file yields the
// embedded defaults so `gatehouse serve` works out of the box.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses config data; path is used for messages and relative paths.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.fill(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) fill() error {
	base := filepath.Dir(c.path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	c.DataDir = abs(c.DataDir)
	if c.SSH.Listen == "" {
		c.SSH.Listen = "127.0.0.1:2222"
	}
	if c.SSH.LoginGraceTime == 0 {
		c.SSH.LoginGraceTime = Duration(30 * time.Second)
	}
	if err := c.SSH.fillPreAuth(); err != nil {
		return err
	}
	if c.SSH.NodeDialTimeout == 0 {
		c.SSH.NodeDialTimeout = Duration(10 * time.Second)
	}
	if c.SSH.NodeCertTTL == 0 {
		c.SSH.NodeCertTTL = Duration(5 * time.Minute)
	}
	if c.SSH.KeyBindingTTL == 0 {
		c.SSH.KeyBindingTTL = Duration(12 * time.Hour)
	}
	if c.Web.Listen == "" {
		c.Web.Listen = "127.0.0.1:8080"
	}
	if c.Web.PublicURL == "" {
		c.Web.PublicURL = "http://" + c.Web.Listen
	}
	if c.Storage.Driver == "" {
		c.Storage.Driver = "sqlite"
	}
	switch c.Storage.Driver {
	case "sqlite":
		if c.Storage.DSN == "" {
			c.Storage.DSN = filepath.Join(c.DataDir, "gatehouse.db")
		} else {
			c.Storage.DSN = abs(c.Storage.DSN)
		}
	case "postgres":
		if c.Storage.DSN == "" {
			return errors.New("storage.dsn is required for driver postgres")
		}
	default:
		return fmt.Errorf("storage.driver %q: want sqlite or postgres", c.Storage.Driver)
	}
	switch c.Recording.Mode {
	case "":
		c.Recording.Mode = "strict"
	case "strict", "best-effort":
	default:
		return fmt.Errorf("recording.mode %q: want strict or best-effort", c.Recording.Mode)
	}
	if c.Recording.Dir == "" {
		c.Recording.Dir = filepath.Join(c.DataDir, "recordings")
	}
	if c.Recording.MaxRawBytes == 0 {
		c.Recording.MaxRawBytes = DefaultMaxRawBytes
	}
	rs, err := parseRecipients(c.Recording.EncryptTo)
	if err != nil {
		return err
	}
	c.Recording.recipients = rs
	c.Recording.Dir = abs(c.Recording.Dir)
	if s3 := c.Recording.S3; s3 != nil {
		if err := s3.check(); err != nil {
			return err
		}
		if s3.SecretAccessKeyFile != "" {
			s3.SecretAccessKeyFile = abs(s3.SecretAccessKeyFile)
		}
	}
	if c.RolesFile == "" {
		c.RolesFile = "./roles.yaml"
	}
	c.RolesFile = abs(c.RolesFile)
	if c.Audit.Sink != "" && c.Audit.Sink != "stdout" {
		c.Audit.Sink = abs(c.Audit.Sink)
	}
	if c.Audit.CheckpointKey != "" {
		c.Audit.CheckpointKey = abs(c.Audit.CheckpointKey)
	}
	switch c.Logging.Format {
	case "":
		c.Logging.Format = "text"
	case "text", "json":
	default:
		return fmt.Errorf("logging.format %q: want text or json", c.Logging.Format)
	}
	if c.Requests.PendingTTL == 0 {
		c.Requests.PendingTTL = Duration(24 * time.Hour)
	}
	if c.OIDC != nil {
		o := c.OIDC
		if o.Issuer == "" || o.ClientID == "" {
			return errors.New("oidc.issuer and oidc.client_id are required when oidc is set")
		}
		if o.ClientSecretFile != "" {
			b, err := os.ReadFile(abs(o.ClientSecretFile))
			if err != nil {
				return fmt.Errorf("oidc.client_secret_file: %w", err)
			}
			o.ClientSecret = string(bytes.TrimSpace(b))
		}
		if o.UsernameClaim == "" {
			o.UsernameClaim = "email"
		}
		if o.GroupsClaim == "" {
			o.GroupsClaim = "groups"
		}
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		if n.Name == "" || n.Address == "" {
			return fmt.Errorf("nodes[%d]: name and address are required", i)
		}
		if seen[n.Name] {
			return fmt.Errorf("nodes[%d]: duplicate node name %q", i, n.Name)
		}
		seen[n.Name] = true
		if n.HostKey == "" && n.NodeHostCA == "" {
			return fmt.Errorf("node %s: set host_key (pinned) or node_host_ca; gatehouse never trusts an unverified node", n.Name)
		}
		if n.NodeHostCA != "" {
			c.Nodes[i].NodeHostCA = n.NodeHostCA
		}
	}
	for i, t := range c.Notify {
		c.Notify[i].PasswordFile = abs(t.PasswordFile)
		c.Notify[i].CAFile = abs(t.CAFile)
		switch t.Kind {
		case "slack", "webhook":
			if t.URL == "" {
				return fmt.Errorf("notify[%d]: url is required", i)
			}
		case "email":
			if err := c.Notify[i].checkEmail(); err != nil {
				return fmt.Errorf("notify[%d] (email): %w", i, err)
			}
		default:
			return fmt.Errorf("notify[%d]: kind %q: want slack, webhook or email", i, t.Kind)
		}
	}
	return nil
}

// fillPreAuth validates the pre-authentication limits and sets their
// defaults.
func (s *SSHConfig) fillPreAuth() error {
	if s.MaxUnauthorized < 0 {
		return fmt.Errorf("ssh.max_unauthenticated %d: want a positive number", s.MaxUnauthorized)
	}
	if s.MaxStartups != "" {
		_, _, full, err := parseMaxStartups(s.MaxStartups)
		if err != nil {
			return fmt.Errorf("ssh.max_startups %q: %w (want start:rate:full, e.g. 10:30:100)", s.MaxStartups, err)
		}
		if s.MaxUnauthorized != 0 && s.MaxUnauthorized != full {
			return fmt.Errorf("ssh.max_startups %q says full is %d but ssh.max_unauthenticated is %d; set one of them", s.MaxStartups, full, s.MaxUnauthorized)
		}
		s.MaxUnauthorized = full
	}
	if s.MaxUnauthorized == 0 {
		s.MaxUnauthorized = 100
	}
	switch {
	case s.PerSourceMaxUnauthenticated < 0:
		return fmt.Errorf("ssh.per_source_max_unauthenticated %d: want a positive number", s.PerSourceMaxUnauthenticated)
	case s.PerSourceMaxUnauthenticated == 0:
		s.PerSourceMaxUnauthenticated = 10
	}
	switch grace := s.LoginGraceTime.D(); {
	case s.VersionDeadline.D() > grace:
		return fmt.Errorf("ssh.version_deadline %v must not be longer than ssh.login_grace_time %v", s.VersionDeadline.D(), grace)
	case s.VersionDeadline == 0:
		s.VersionDeadline = Duration(min(10*time.Second, grace))
	}
	p := &s.PerSourcePenalties
	if p.Enabled == nil {
		on := true
		p.Enabled = &on
	}
	def := func(d **Duration, v time.Duration) {
		if *d == nil {
			dv := Duration(v)
			*d = &dv
		}
	}
	def(&p.AuthFail, 5*time.Second)
	def(&p.NoAuth, time.Second)
	def(&p.GraceExceeded, 10*time.Second)
	def(&p.Invalid, 10*time.Second)
	def(&p.Min, 15*time.Second)
	def(&p.Max, 10*time.Minute)
	switch {
	case p.MaxSources < 0:
		return fmt.Errorf("ssh.per_source_penalties.max_sources %d: want a positive number", p.MaxSources)
	case p.MaxSources == 0:
		p.MaxSources = 65536
	}
	if *p.Enabled && (p.Max.D() <= 0 || p.Min.D() > p.Max.D()) {
		return fmt.Errorf("ssh.per_source_penalties: max %v must be positive and at least min %v", p.Max.D(), p.Min.D())
	}
	for i, e := range s.PenaltyExempt {
		if _, err := parsePrefix(e); err != nil {
			return fmt.Errorf("ssh.penalty_exempt[%d] %q: want an address or a CIDR like 10.0.0.0/8", i, e)
		}
	}
	return nil
}

// Startups returns max_startups as start, rate (percent) and full.
func (s SSHConfig) Startups() (start, rate, full int) {
	if s.MaxStartups != "" {
		if start, rate, full, err := parseMaxStartups(s.MaxStartups); err == nil {
			return start, rate, full
		}
	}
	full = s.MaxUnauthorized
	return max(1, full/2), 30, full
}

// parseMaxStartups parses "start:rate:full" or "full" (no random drop).
func parseMaxStartups(v string) (start, rate, full int, err error) {
	parts := strings.Split(v, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%q is not a number", p)
		}
		nums[i] = n
	}
	switch len(nums) {
	case 1:
		start, rate, full = nums[0], 100, nums[0]
	case 3:
		start, rate, full = nums[0], nums[1], nums[2]
	default:
		return 0, 0, 0, errors.New("want one or three numbers")
	}
	switch {
	case full < 1:
		return 0, 0, 0, errors.New("full must be at least 1")
	case start < 1 || start > full:
		return 0, 0, 0, fmt.Errorf("start %d must be between 1 and full %d", start, full)
	case rate < 0 || rate > 100:
		return 0, 0, 0, fmt.Errorf("rate %d must be a percentage (0 to 100)", rate)
	}
	return start, rate, full, nil
}

// ExemptPrefixes returns penalty_exempt parsed (entries that do not parse
// were refused by Load).
func (s SSHConfig) ExemptPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, e := range s.PenaltyExempt {
		if p, err := parsePrefix(e); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Path is the file the config was read from.
func (c *Config) Path() string { return c.path }

// Node returns the inventory entry named name.
func (c *Config) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// checkEmail validates an email target. Addresses go into mail headers, so
// any with a line break is refused here rather than sanitised later.
func (t *NotifyTarget) checkEmail() error {
	host, port, err := net.SplitHostPort(t.SMTP)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("smtp %q: want host:port, e.g. smtp.example.com:587", t.SMTP)
	}
	if _, err := mail.ParseAddress(t.From); err != nil || strings.ContainsAny(t.From, "\r\n") {
		return fmt.Errorf("from %q: want an e-mail address", t.From)
	}
	switch t.StartTLS {
	case "", "required", "opportunistic", "off":
	default:
		return fmt.Errorf("starttls %q: want required, opportunistic or off", t.StartTLS)
	}
	if t.Username != "" && t.PasswordFile == "" {
		return errors.New("username needs password_file")
	}
	if t.PasswordFile != "" {
		b, err := os.ReadFile(t.PasswordFile)
		if err != nil {
			return fmt.Errorf("read password_file: %w", err)
		}
		t.Password = strings.TrimRight(string(b), "\r\n")
	}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("read ca_file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return fmt.Errorf("ca_file %s: no PEM certificates in it", t.CAFile)
		}
		t.CAPEM = b
	}
	if strings.ContainsAny(t.ToDomain, "@ \r\n") {
		return fmt.Errorf("to_domain %q: want a bare domain like example.com", t.ToDomain)
	}
	for _, a := range t.ReviewersTo {
		if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n") {
			return fmt.Errorf("reviewers_to %q: want an e-mail address", a)
		}
	}
	return nil
}

// check refuses an S3 section that cannot name a bucket or whose
// credentials are half given.
func (s *S3Config) check() error {
	u, err := url.Parse(s.Endpoint)
	switch {
	case s.Endpoint == "":
		return errors.New("recording.s3.endpoint is required (http(s)://host[:port])")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("recording.s3.endpoint %q: want http(s)://host[:port]", s.Endpoint)
	case s.Bucket == "":
		return errors.New("recording.s3.bucket is required")
	case (s.AccessKeyID == "") != (s.SecretAccessKeyFile == ""):
		return errors.New("recording.s3: access_key_id and secret_access_key_file go together (or set neither and use the AWS environment)")
	case strings.HasPrefix(s.Prefix, "/"):
		return fmt.Errorf("recording.s3.prefix %q: must not start with /", s.Prefix)
	}
	return nil
}
