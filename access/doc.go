// Package access runs just-in-time access: users ask for extra roles for a
// while with a reason, reviewers approve or deny, approved requests become
// time-boxed grants, and security can revoke a grant or lock a user out.
//
// Its central answer is Effective: the roles a user holds at this moment,
// computed from the policy's static and claim-mapped roles plus active
// grants, minus everything when the user is locked. Every state change goes
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
// A request asks for whole roles, or (Ask with Node and Login) for one login
// on one node; a reviewer may approve some of the requested roles (Verdict),
// and each role is granted when the approvals that include it meet the
// policy's approval rule; Explain says where a request stands. A
// --for-session grant is bound to the first session that uses it
// (BindSession) and ends when that session ends (SessionEnded).
package access
