package server

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// KnownUser reports whether Gatehouse has heard of user: listed in the roles
// file's users:, or seen in the store (a login, a session or an access
// request), or a bot that exists. `gatehouse lock` refuses other names unless forced, so a typo
// does not lock nobody while the intended person keeps their access.
func (b *Bastion) KnownUser(ctx context.Context, user string) (bool, error) {
	if p := b.Policy.Current(); p != nil && p.HasUser(user) {
		return true, nil
	}
	if access.IsBot(user) {
		bots, err := b.Store.ListBots(ctx)
		if err != nil {
			return false, fmt.Errorf("look up bots: %w", err)
		}
		for _, bot := range bots {
			if access.BotUser(bot.Name) == user {
				return true, nil
			}
		}
		return false, nil
	}
	reqs, err := b.Store.ListRequests(ctx, storage.RequestFilter{User: user, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("look up requests of %s: %w", user, err)
	}
	if len(reqs) > 0 {
		return true, nil
	}
	sess, err := b.Store.ListSessions(ctx, storage.SessionFilter{User: user, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("look up sessions of %s: %w", user, err)
	}
	if len(sess) > 0 {
		return true, nil
	}
	for _, typ := range []string{audit.TypeOIDCLogin, audit.TypeAuthSuccess} {
		evs, err := b.Store.ListEvents(ctx, storage.EventFilter{Type: typ, User: user, Limit: 1})
		if err != nil {
			return false, fmt.Errorf("look up logins of %s: %w", user, err)
		}
		if len(evs) > 0 {
			return true, nil
		}
	}
	return false, nil
}
