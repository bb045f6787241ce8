package jira

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is jira.yaml.
type Config struct {
	// Listen is the address of POST /jira/webhook.
	Listen string `yaml:"listen"`
	// StateFile keeps the request→issue map and the last event id.
	StateFile string `yaml:"state_file"`
	Gatehouse struct {
		URL       string `yaml:"url"` // the bastion's web.public_url
		Token     string `yaml:"token"`
		TokenFile string `yaml:"token_file"`
	} `yaml:"gatehouse"`
	Jira struct {
		URL string `yaml:"url"` // https://example.atlassian.net
		// Email and APIToken: Jira Cloud basic auth. Without Email the
		// token is sent as a bearer token (Data Center personal token).
		Email        string `yaml:"email"`
		APIToken     string `yaml:"api_token"`
		APITokenFile string `yaml:"api_token_file"`
		Project      string `yaml:"project"`
		IssueType    string `yaml:"issue_type"`
		Statuses     struct {
			Open     string `yaml:"open"`
			Approved string `yaml:"approved"`
			Denied   string `yaml:"denied"`
			Expired  string `yaml:"expired"`
		} `yaml:"statuses"`
	} `yaml:"jira"`
	Webhook struct {
		// Secret must come as ?secret= or X-Gatehouse-Webhook-Secret.
		Secret     string `yaml:"secret"`
		SecretFile string `yaml:"secret_file"`
		// SigningSecret checks X-Hub-Signature: sha256=HMAC(body).
		SigningSecret     string `yaml:"signing_secret"`
		SigningSecretFile string `yaml:"signing_secret_file"`
	} `yaml:"webhook"`
	Users struct {
		// Match is local_part (alice@example.com is alice) or email.
		Match string `yaml:"match"`
		// Domain: with local_part, only e-mails of this domain map, and
		// a Gatehouse user NAME is NAME@Domain in Jira.
		Domain string `yaml:"domain"`
	} `yaml:"users"`
}

// LoadConfig reads and checks jira.yaml; secrets in *_file keys are read.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read jira plugin config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, s := range []struct {
		val  *string
		file string
	}{
		{&c.Gatehouse.Token, c.Gatehouse.TokenFile},
		{&c.Jira.APIToken, c.Jira.APITokenFile},
		{&c.Webhook.Secret, c.Webhook.SecretFile},
		{&c.Webhook.SigningSecret, c.Webhook.SigningSecretFile},
	} {
		if s.file == "" {
			continue
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("read secret file: %w", err)
		}
		*s.val = strings.TrimSpace(string(b))
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Listen, "127.0.0.1:8092")
	def(&c.StateFile, "./jira-state.json")
	def(&c.Jira.IssueType, "Task")
	def(&c.Jira.Statuses.Open, "Open")
	def(&c.Jira.Statuses.Approved, "Approved")
	def(&c.Jira.Statuses.Denied, "Denied")
	def(&c.Jira.Statuses.Expired, "Expired")
	def(&c.Users.Match, "local_part")
	var errs []error
	need := func(v, key string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", key))
		}
	}
	need(c.Gatehouse.URL, "gatehouse.url")
	need(c.Gatehouse.Token, "gatehouse.token (or token_file)")
	need(c.Jira.URL, "jira.url")
	need(c.Jira.APIToken, "jira.api_token (or api_token_file)")
	need(c.Jira.Project, "jira.project")
	// Fail closed: an unauthenticated webhook could approve access.
	if c.Webhook.Secret == "" && c.Webhook.SigningSecret == "" {
		errs = append(errs, errors.New("webhook.secret or webhook.signing_secret is required"))
	}
	if c.Users.Match != "local_part" && c.Users.Match != "email" {
		errs = append(errs, fmt.Errorf("users.match %q: want local_part or email", c.Users.Match))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; ")) // one line for the operator
}

// gatehouseUser maps a Jira account's e-mail to a Gatehouse user name, or
// "" when it does not map.
func (c *Config) gatehouseUser(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" {
		return ""
	}
	if c.Users.Match == "email" {
		return email
	}
	if c.Users.Domain != "" && !strings.EqualFold(domain, c.Users.Domain) {
		return ""
	}
	return local
}

// email is the Jira e-mail of Gatehouse user name, or "" when unknown.
func (c *Config) email(name string) string {
	if strings.Contains(name, "@") {
		return name
	}
	if c.Users.Match == "local_part" && c.Users.Domain != "" && !strings.Contains(name, ":") {
		return name + "@" + c.Users.Domain
	}
	return ""
}
