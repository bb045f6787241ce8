// Package notify tells people about access requests as they move through
// their life: created, approved, denied, expired, cancelled, revoked. It
// posts to Slack incoming webhooks and to generic JSON webhooks, and sends
// plain-text e-mail over SMTP (STARTTLS) to reviewers and requesters.
//
// Delivery is deliberately decoupled from the workflow: Notify only puts a
// message on a bounded per-target queue and returns, so a slow or dead
// chat service can never hold up an approval or a login. Each target has
// its own worker that retries with exponential backoff; a message that
// still fails after the last try, or that finds its queue full, is written
// to the audit log so the loss is visible rather than silent.
package notify
