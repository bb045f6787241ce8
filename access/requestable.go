package access

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

// RequestOption is one role a user may request right now that would let
// them log in where they were just refused, with the limits the policy
// sets on asking for it alone.
type RequestOption struct {
	Role            string
	DefaultDuration time.Duration // what Ask grants when no duration is named: the policy's default
	MaxDuration     time.Duration
	ReasonRequired  bool
}

// RequestableFor answers "which roles may user request that would allow
// login on node": each role the user's roles allow requesting (and none
// denies), not held already, that together with the roles held now would
// make the policy allow the login. A deny of a role held now still beats
// it, so no option is offered that would not open the door. None for a
// locked user, the admin identity, or a login that is allowed already.
// Options are sorted by role name. A store error is returned, never
// guessed around.
func (s *Service) RequestableFor(ctx context.Context, user string, claims map[string][]string, login string, node policy.Node) ([]RequestOption, error) {
	p, err := s.policy()
	if err != nil {
		return nil, fmt.Errorf("requestable roles of %s: %w", user, err)
	}
	eff, err := s.Effective(ctx, user, claims)
	if err != nil {
		return nil, err
	}
	if eff.admin || eff.Lock != nil || p.Decide(eff.Subject, login, node).Allowed {
		return nil, nil
	}
	roles, _, _ := p.Requestable(eff.Subject)
	var out []RequestOption
	for _, role := range roles {
		if slices.Contains(eff.Subject.Roles, role) {
			continue
		}
		with := eff.Subject
		with.Roles = append(slices.Clone(eff.Subject.Roles), role)
		if !p.Decide(with, login, node).Allowed {
			continue
		}
		maxD, reasonReq, ok := p.RequestLimit(eff.Subject, role)
		if !ok {
			continue
		}
		maxD = min(maxD, s.opts.MaxGrant)
		def, _ := p.DefaultRequestDuration(eff.Subject, []string{role})
		out = append(out, RequestOption{Role: role, DefaultDuration: min(def, maxD), MaxDuration: maxD, ReasonRequired: reasonReq})
	}
	return out, nil
}

// Approvers lists the people roles.yaml names who may review r and are
// not locked: who a requester can tell to look at it. Reviewers who hold
// their rights through claims of a login are not known in advance.
func (s *Service) Approvers(ctx context.Context, r storage.Request) []string {
	return s.reviewers(ctx, r)
}
