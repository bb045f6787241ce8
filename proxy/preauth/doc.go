// Package preauth decides which connections the bastion takes on before
// they have authenticated, so that no one source, and no flood from many,
// can use up the handshakes everyone else needs.
//
// A Limiter admits or refuses each new connection by its source (an IPv4
// address, or an IPv6 /64, since one host usually holds a whole /64):
//
//   - a source that is serving a penalty is refused at once;
//   - a source may hold at most PerSource unauthenticated connections;
//   - past Start unauthenticated connections in all, new ones are refused
//     at random, with a probability that grows from Rate% to 100% at Full
//     (OpenSSH's MaxStartups start:rate:full);
//   - a connection that ends without authenticating earns its source a
//     penalty by how it ended (failed authentication, no attempt, grace time
//     exceeded, not SSH at all). Penalties add up; once a source's penalty
//     reaches Min it is refused until the penalty runs out, for at most Max
//     (OpenSSH's PerSourcePenalties). At most MaxSources sources are
//     tracked, so memory stays bounded whatever the attacker controls.
//
// It also keeps the counts a summary needs (what was dropped, why, from
// where), because an attacker controls the rate of drops and an audit event
// per drop would let them flood the audit log.
//
// The package does no I/O: the clock and the random source are injected, so
// every decision is table-tested.
package preauth
