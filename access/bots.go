package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// Bots are API identities for plugins and automation. A bot named slack acts
// as "bot:slack" everywhere a user name appears (audit actor, reviewer,
// requester, lock target). User names can never contain a colon (they must
// be usable as SSH principals), so the two namespaces cannot meet.
const BotPrefix = "bot:"

// DefaultTokenTTL is how long a bot token lasts when --ttl is not given.
const DefaultTokenTTL = 720 * time.Hour

// tokenPrefix marks Gatehouse bot tokens, so secret scanners and people can
// tell what a leaked string is.
const tokenPrefix = "ghbot_"

// validBotName keeps bot names short, lowercase and free of anything that
// would need quoting in a log line, a URL or a shell.
var validBotName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// ErrBadToken is returned by Authenticate for a token that is malformed,
// unknown, expired or belongs to a removed bot. Its message is the one line
// an API client gets; it does not say which of these it was.
var ErrBadToken = errors.New("the API token is not valid (unknown, expired or revoked)")

// BotUser is the actor name of bot name.
func BotUser(name string) string { return BotPrefix + name }

// IsBot reports whether user names a bot.
func IsBot(user string) bool { return strings.HasPrefix(user, BotPrefix) }

// HashToken is what the store keeps of a token: hex SHA-256. Tokens carry 256
// random bits, so a plain hash resists guessing as well as a slow one would.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// newToken is prefix and 256 random bits.
func newToken(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// AddBot creates bot name with roles and returns it with its token, which
// exists nowhere else: only its hash is stored. Only the admin identity (the
// server-side CLI, which holds the config file) may add bots; every role
// must be defined in the roles file now, so a typo cannot leave a bot
// silently without rights.
func (s *Service) AddBot(ctx context.Context, actor Effective, name string, roles []string, ttl time.Duration) (storage.Bot, string, error) {
	if !actor.admin {
		return storage.Bot{}, "", refuse("only the operator (gatehouse bot add) may add bots")
	}
	name = strings.TrimSpace(name)
	if !validBotName.MatchString(name) {
		return storage.Bot{}, "", refuse("bot name %q is not valid: use 1-40 lowercase letters, digits and dashes, starting with a letter or digit", name)
	}
	roles = cleanRoles(roles)
	if len(roles) == 0 {
		return storage.Bot{}, "", refuse("name at least one role for the bot")
	}
	p, err := s.policy()
	if err != nil {
		return storage.Bot{}, "", fmt.Errorf("add bot %s: %w", name, err)
	}
	for _, r := range roles {
		if !p.HasRole(r) {
			return storage.Bot{}, "", refuse("role %q is not defined in %s", r, p.Source())
		}
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 {
		return storage.Bot{}, "", refuse("token ttl must be positive")
	}
	tok, err := newToken(tokenPrefix)
	if err != nil {
		return storage.Bot{}, "", err
	}
	now := s.now()
	b := storage.Bot{Name: name, Roles: roles, Created: now, By: actor.User()}
	t := storage.Token{Hash: HashToken(tok), Bot: name, Created: now, Expires: now.Add(ttl)}
	if err := s.store.CreateBot(ctx, b, t); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return storage.Bot{}, "", &Refusal{Msg: fmt.Sprintf("bot %s already exists; remove it first (gatehouse bot rm)", name), Cause: err}
		}
		return storage.Bot{}, "", fmt.Errorf("add bot %s: %w", name, err)
	}
	// A bot that holds rights off the record must not exist: undo it when
	// its creation cannot be audited.
	ev := storage.Event{Time: now, Type: audit.TypeBotAdd, Actor: actor.User(), Target: BotUser(name), Outcome: "success",
		Fields: map[string]any{"roles": roles, "token_expires": t.Expires, "token_sha256": t.Hash[:16]}}
	if err := audit.Append(ctx, s.aud, s.log, ev); err != nil {
		if derr := s.store.DeleteBot(context.WithoutCancel(ctx), name); derr != nil {
			s.log.ErrorContext(ctx, "bot added but neither audited nor removed", "bot", name, "err", derr)
		}
		return storage.Bot{}, "", fmt.Errorf("add bot %s: audit: %w", name, err)
	}
	s.log.InfoContext(ctx, "bot added", "bot", name, "roles", roles, "expires", t.Expires)
	return b, tok, nil
}

// RemoveBot deletes bot name and every token of it. Tokens are checked
// against the store on every use, so they stop working at once on every
// bastion sharing it.
func (s *Service) RemoveBot(ctx context.Context, actor Effective, name string) error {
	if !actor.admin {
		return refuse("only the operator (gatehouse bot rm) may remove bots")
	}
	name = strings.TrimPrefix(strings.TrimSpace(name), BotPrefix)
	if err := s.store.DeleteBot(ctx, name); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return &Refusal{Msg: fmt.Sprintf("no bot named %s", name), Cause: err}
		}
		return fmt.Errorf("remove bot %s: %w", name, err)
	}
	s.log.InfoContext(ctx, "bot removed", "bot", name)
	s.audit(ctx, audit.TypeBotRemove, actor.User(), BotUser(name), "success", nil)
	return nil
}

// ListBots returns every bot, by name.
func (s *Service) ListBots(ctx context.Context) ([]storage.Bot, error) {
	bots, err := s.store.ListBots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	return bots, nil
}

// Authenticate returns the standing of the bot whose token this is, read
// from the store now (so a removed bot or an expired token is refused on
// every bastion at once): its roles from the bot record, or none while the
// bot is locked (gatehouse lock --user bot:NAME). A user API token
// (IssueUserToken) gives its person's standing now instead. It returns
// ErrBadToken for any token that names no current bot or unrevoked user
// token.
func (s *Service) Authenticate(ctx context.Context, token string) (Effective, error) {
	if len(token) > 128 {
		return Effective{}, ErrBadToken
	}
	if strings.HasPrefix(token, userTokenPrefix) {
		return s.authenticateUser(ctx, token)
	}
	if !strings.HasPrefix(token, tokenPrefix) {
		return Effective{}, ErrBadToken
	}
	b, _, err := s.store.BotByToken(ctx, HashToken(token), s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return Effective{}, ErrBadToken
	}
	if err != nil {
		return Effective{}, fmt.Errorf("check API token: %w", err)
	}
	return s.botEffective(ctx, b)
}

func (s *Service) botEffective(ctx context.Context, b storage.Bot) (Effective, error) {
	user := BotUser(b.Name)
	e := Effective{Subject: policy.Subject{User: user}, Base: slices.Clone(b.Roles), pol: s.pol.Current()}
	l, err := s.store.ActiveLock(ctx, user, s.now())
	switch {
	case err == nil:
		e.Lock = &l
		return e, nil
	case errors.Is(err, storage.ErrNotFound):
	default:
		return Effective{}, fmt.Errorf("look up lock of %s: %w", user, err)
	}
	// A bot may request roles for itself like anyone; its grants count.
	e.Grants, err = s.store.ActiveGrants(ctx, user, s.now())
	if err != nil {
		return Effective{}, fmt.Errorf("look up grants of %s: %w", user, err)
	}
	e.Subject.Roles = withGranted(e.Base, e.Grants)
	return e, nil
}
