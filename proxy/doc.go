// Package proxy is Gatehouse's SSH front door. It authenticates users on the
// bastion's listener, terminates `ssh -J` jumps with an SSH server of its own
// (presenting a host certificate for the requested node name), asks its
// Authorizer (in the bastion, access.Service.Authorize) once per jump
// whether the authenticated user may use the requested login on that node,
// after registering the connection for re-checks so no change is missed
// between the decision and the session, dials the node with a freshly minted short-lived certificate,
// and relays every channel both ways through composable taps (recording,
// byte counting, live viewing). It also answers the bastion's own commands
// (`ssh bob@bastion whoami`) and ends live sessions when the same question,
// asked again by the re-check, no longer allows them. Before a connection authenticates, package
// preauth decides whether it is taken on at all (per-source caps, random
// early drop, penalties), so no one source can lock everyone else out.
//
// Identity is derived only from what the final, successful authentication
// proved: the public-key callback returns fresh Permissions per key and the
// handlers read ServerConn.Permissions, never state left over from earlier
// callback invocations (see CVE-2024-45337).
package proxy
