// Package policy decides who may do what on the bastion. It loads roles.yaml
// (roles with allow and deny rules, static user grants and the mapping from
// OIDC claims to roles), compiles it once into an immutable *Policy, and
// answers questions the proxy and the web UI ask on every connection: may
// this subject log in as this login on this node (and with which session
// options), which logins may it use there, which roles may it request and
// review, and may it list, replay, join or terminate sessions, read the audit
// log or lock users.
//
// Deny always beats allow. Decisions are computed only from the subject's own
// roles and the target node, and every refusal carries a one-line rule that
// names nothing but the subject's own role, the login and the node's labels,
// so it can be shown to the user as is. Engine keeps the current policy behind
// an atomic pointer and swaps it on reload, keeping the last good policy when
// the file on disk is broken.
//
// Access requests meet the policy twice more. ApprovalRule says what decides
// a request (every review_requests rule covering a requested role, including
// AND-rules of several reviewer groups), and ApprovalRule.Measure counts
// approvals against it, each reviewer once, in the group a maximum matching
// gives them. A resource grant (one login on one node through one role)
// travels in Subject.Resources; ResourceAllows is the single answer to
// "does this grant allow this login here", and Decide uses it.
package policy
