// Package proxy is Gatehouse's SSH front door. It authenticates users on the
// bastion's listener, terminates `ssh -J` jumps with an SSH server of its own
// (presenting a host certificate for the requested node name), asks an
// Authorizer whether the authenticated user may use the requested login on
// that node, dials the node with a freshly minted short-lived certificate,
// and relays every channel both ways through composable taps (recording,
// byte counting, live viewing). It also answers the bastion's own commands
// (`ssh bob@bastion whoami`) and ends live sessions when the decision that
// allowed them no longer holds. A terminal session refused for want of a
// role the user may request is held open instead: the bastion asks for an
// access request on the user's terminal and, once it is approved, replays
// the session to the node on the same connection (jitrequest.go,
// jitprompt.go). Before a connection authenticates, package
// preauth decides whether it is taken on at all (per-source caps, random
// early drop, penalties), so no one source can lock everyone else out.
//
// Identity is derived only from what the final, successful authentication
// proved: the public-key callback returns fresh Permissions per key and the
// handlers read ServerConn.Permissions, never state left over from earlier
// callback invocations (see CVE-2024-45337).
package proxy
