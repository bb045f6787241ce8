// Package jira is the Jira plugin of Gatehouse (`gatehouse plugin jira`). It
// is an ordinary client of the Workflow API: it follows request events with
// apiclient.Watch and opens one Jira issue per new request, moves the issue
// to Approved / Denied / Expired when the request is decided anywhere, and
// turns a person's status change in Jira into a review submitted on that
// person's behalf (its bot needs review_on_behalf). A Jira webhook only says
// "look at issue KEY": the plugin never trusts the body and re-reads the
// issue, its changelog and its comments over Jira's REST API. A change the
// bastion refuses is reverted with a comment carrying the refusal.
package jira
