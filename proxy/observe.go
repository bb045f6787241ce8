package proxy

import "time"

// Observer is told what the SSH side does, for metrics. Options.Observer
// may be nil; metrics.Metrics implements it.
type Observer interface {
	// Connection is one connection to the bastion: authenticated,
	// failed (handshake or authentication), timeout, rejected.
	Connection(outcome string)
	// Decision is the outcome of a jump's access decision: allowed,
	// denied, error.
	Decision(outcome string)
	// NodeDialed is one connection attempt to a node, err nil on success.
	NodeDialed(node string, d time.Duration, err error)
	// Relayed is the bytes of one ended session channel.
	Relayed(toNode, fromNode int64)
}

type nopObserver struct{}

func (nopObserver) Connection(string)                       {}
func (nopObserver) Decision(string)                         {}
func (nopObserver) NodeDialed(string, time.Duration, error) {}
func (nopObserver) Relayed(int64, int64)                    {}

// observer is Options.Observer, or one that does nothing.
func (s *Server) observer() Observer {
	if s.opt.Observer == nil {
		return nopObserver{}
	}
	return s.opt.Observer
}
