package proxy

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Admission is what an Authorizer read to admit one jump, kept to decide
// that jump's login, so that a new session reads the user's standing once
// rather than twice. It answers like Authorizer.Authorize, fails closed the
// same way, and is asked once: live sessions are re-checked through
// Authorizer.Authorize.
type Admission interface {
	Authorize(ctx context.Context, login string, node config.Node) (Verdict, error)
}

// JumpAdmitter is an Authorizer that can hand out an Admission when it
// admits a jump. An implementation must not let the admission answer from
// what it read once anything may have changed it: the proxy registers the
// connection for change-driven re-checks before it asks, so only changes
// from before that moment are the admission's to notice.
type JumpAdmitter interface {
	AdmitJump(ctx context.Context, id Identity) (Admission, error)
}

// admitJump admits a jump with the Authorizer's own Admission when it has
// one, else with Admit and a fresh Authorize later.
func (s *Server) admitJump(ctx context.Context, id Identity) (Admission, error) {
	if ja, ok := s.opt.Authorizer.(JumpAdmitter); ok {
		return ja.AdmitJump(ctx, id)
	}
	if err := s.opt.Authorizer.Admit(ctx, id); err != nil {
		return nil, err
	}
	return freshAdmission{az: s.opt.Authorizer, id: id}, nil
}

// freshAdmission asks the Authorizer afresh.
type freshAdmission struct {
	az Authorizer
	id Identity
}

func (f freshAdmission) Authorize(ctx context.Context, login string, node config.Node) (Verdict, error) {
	return f.az.Authorize(ctx, f.id, login, node)
}
