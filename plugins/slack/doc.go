// Package slack is the Slack plugin (`gatehouse plugin slack`): a separate
// process that relays access requests between Gatehouse and a Slack channel
// using only the public Workflow API (apiclient) with a bot token that holds
// review_on_behalf. It posts each new request with Approve / Deny buttons,
// keeps the message in step with the request wherever it is reviewed, tells
// the requester the outcome, and turns a verified button click into a review
// on behalf of the Gatehouse user whose e-mail the clicking Slack user has.
// The last event id and the request→message map live in a state file, so a
// restarted plugin resumes the watch where it stopped.
package slack
