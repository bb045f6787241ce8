// Package access runs just-in-time access: users ask for extra roles for a
// while with a reason, reviewers approve or deny, approved requests become
// time-boxed grants, and security can revoke a grant or lock a user out.
//
// Its central answer is Authorize (decide.go): may this identity use this
// login on this node now. It reads the user's standing (Effective: the
// roles from users: and claims_to_roles plus active grants, minus
// everything when the user is locked) and decides on it with the policy:
// the lock's one line, the rule, the grants the access depends on (role
// grants and one-login grants, policy.ResourceAllows) and the hint on a
// refusal. The proxy's jumps and re-checks, node lists, bastion
// commands and `gatehouse policy check` all answer through it, so there is
// no second decision path to drift. Every state change goes
// through the store's compare-and-set UpdateRequest, so several bastions
// sharing one database agree on each request's fate, and every change is
// audited and announced through package notify.
//
// Sessions outlive the decisions that allowed them, so the Service also
// watches the store (Run) and tells subscribers when a grant starts or ends
// or a lock is placed, letting the proxy close sessions whose access is gone.
// The watch is driven by what is in the store, not by what this process did,
// so a revoke or lock made on another bastion ends sessions here too.
//
// API callers are bots (bots.go) or people through a user API token
// (usertokens.go), which Authenticate turns into the same Effective a web or
// SSH caller gets, so every channel runs the same checks. Every review,
// whoever submits it, passes checkReview; CanReviewOnBehalf asks the same
// check without reviewing, so a plugin can refuse a click before it asks
// the person for a reason.
// A request asks for whole roles, or (Ask with Node and Login) for one login
// on one node; a reviewer may approve some of the requested roles
// (ReviewVerdict),
// and each role is granted when the approvals that include it meet the
// policy's approval rule; Explain says where a request stands. A
// --for-session grant is bound to the first session that uses it
// (BindSession) and ends when that session ends (SessionEnded).
package access
