package slack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultSlackAPIURL is Slack's Web API.
const DefaultSlackAPIURL = "https://slack.com/api/"

// Config is slack.yaml.
type Config struct {
	// GatehouseURL is the bastion's web address (web.public_url).
	GatehouseURL string `yaml:"gatehouse_url"`
	// BotToken (or BotTokenFile) is the Gatehouse bot token from
	// `gatehouse bot add`; its roles need review_on_behalf.
	BotToken     string `yaml:"bot_token"`
	BotTokenFile string `yaml:"bot_token_file"`
	// SlackBotToken (or SlackBotTokenFile) is the Slack app's xoxb- token.
	SlackBotToken     string `yaml:"slack_bot_token"`
	SlackBotTokenFile string `yaml:"slack_bot_token_file"`
	// SigningSecret (or SigningSecretFile) is the Slack app's signing secret.
	SigningSecret     string `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	// Channel is the channel id (C...) requests are posted to.
	Channel string `yaml:"channel"`
	// Listen is where POST /slack/interactions is served, e.g. :8089.
	Listen string `yaml:"listen"`
	// SlackAPIURL is the Web API base (default https://slack.com/api/).
	SlackAPIURL string `yaml:"slack_api_url"`
	// StateFile keeps the last event id and the posted messages.
	StateFile string `yaml:"state_file"`
	// UserFromEmail says how a Slack user's e-mail names the Gatehouse
	// user: local_part (alice@example.com → alice, the default) or email.
	UserFromEmail string `yaml:"user_from_email"`
	// EmailDomain is the organisation's e-mail domain. With local_part it
	// is required: only clickers whose Slack e-mail is in it are mapped (a
	// guest alice@elsewhere.example must not act as alice). It also turns a
	// requester's user name into the address to find them in Slack
	// (bob → bob@EmailDomain) for the outcome DM.
	EmailDomain string `yaml:"email_domain"`
}

// LoadConfig reads and checks slack.yaml; secrets given as files are read.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read slack plugin config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, s := range []struct {
		name      string
		val, file *string
	}{
		{"bot_token", &c.BotToken, &c.BotTokenFile},
		{"slack_bot_token", &c.SlackBotToken, &c.SlackBotTokenFile},
		{"signing_secret", &c.SigningSecret, &c.SigningSecretFile},
	} {
		if *s.val != "" && *s.file != "" {
			return Config{}, fmt.Errorf("%s: set %s or %s_file, not both", path, s.name, s.name)
		}
		if *s.file != "" {
			b, err := os.ReadFile(*s.file)
			if err != nil {
				return Config{}, fmt.Errorf("%s: read %s_file: %w", path, s.name, err)
			}
			*s.val = strings.TrimSpace(string(b))
		}
		if *s.val == "" {
			return Config{}, fmt.Errorf("%s: %s (or %s_file) is required", path, s.name, s.name)
		}
	}
	if c.SlackAPIURL == "" {
		c.SlackAPIURL = DefaultSlackAPIURL
	}
	if !strings.HasSuffix(c.SlackAPIURL, "/") {
		c.SlackAPIURL += "/"
	}
	if c.UserFromEmail == "" {
		c.UserFromEmail = "local_part"
	}
	var missing []string
	for k, v := range map[string]string{"gatehouse_url": c.GatehouseURL, "channel": c.Channel, "listen": c.Listen, "state_file": c.StateFile} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("%s: required: %s", path, strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	if c.UserFromEmail != "local_part" && c.UserFromEmail != "email" {
		return Config{}, fmt.Errorf("%s: user_from_email %q: want local_part or email", path, c.UserFromEmail)
	}
	c.EmailDomain = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(c.EmailDomain), "@"))
	if c.UserFromEmail == "local_part" && c.EmailDomain == "" {
		return Config{}, fmt.Errorf("%s: user_from_email local_part needs email_domain (whose addresses name Gatehouse users)", path)
	}
	return c, nil
}

// gatehouseUser names the Gatehouse user of a Slack user's e-mail.
func (c Config) gatehouseUser(email string) (string, error) {
	email = strings.TrimSpace(email)
	local, domain, ok := strings.Cut(strings.ToLower(email), "@")
	if !ok || local == "" || domain == "" {
		return "", errors.New("your Slack account has no e-mail address that names a Gatehouse user")
	}
	if c.UserFromEmail == "email" {
		return local + "@" + domain, nil
	}
	if domain != c.EmailDomain {
		return "", fmt.Errorf("only %s addresses name Gatehouse users", c.EmailDomain)
	}
	return local, nil
}

// requesterEmail is the e-mail of a Gatehouse user, or "" if unknown.
func (c Config) requesterEmail(user string) string {
	switch {
	case strings.HasPrefix(user, "bot:"):
		return ""
	case strings.Contains(user, "@"):
		return user
	case c.EmailDomain != "":
		return user + "@" + c.EmailDomain
	}
	return ""
}
