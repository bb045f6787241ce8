package slack

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/gatehouse-dev/gatehouse/apiclient"
)

// Action ids of the buttons; the button value is the request id.
const (
	actionApprove = "gatehouse_approve"
	actionDeny    = "gatehouse_deny"
)

// The modal that asks for a review reason: its callback id, and the block
// and action ids of its one text field.
const (
	reasonCallback = "gatehouse_review_reason"
	reasonBlock    = "reason"
	reasonAction   = "reason"
)

// reasonMeta is the modal's private_metadata: which review it completes and
// which message to update. Who reviews is not in it: that is the Slack user
// who submits the modal.
type reasonMeta struct {
	Request string `json:"request"`
	Approve bool   `json:"approve"`
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// reasonModal asks for the reason to approve or deny r.
func reasonModal(r apiclient.Request, approve bool, msg message) slack.ModalViewRequest {
	verb := "Deny"
	if approve {
		verb = "Approve"
	}
	meta, _ := json.Marshal(reasonMeta{Request: r.ID, Approve: approve, Channel: msg.Channel, TS: msg.TS})
	text := fmt.Sprintf("*%s* requests *%s* for %s\n>%s\nReviews of this request need a reason.",
		esc(r.User), esc(strings.Join(r.Roles, ", ")), durationText(r), esc(r.Reason))
	input := slack.NewPlainTextInputBlockElement(slack.NewTextBlockObject(slack.PlainTextType, "why you "+strings.ToLower(verb)+" it", false, false), reasonAction)
	input.Multiline = true
	input.MaxLength = 500
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      reasonCallback,
		PrivateMetadata: string(meta),
		Title:           slack.NewTextBlockObject(slack.PlainTextType, verb+" request", false, false),
		Submit:          slack.NewTextBlockObject(slack.PlainTextType, verb, false, false),
		Close:           slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil),
			slack.NewInputBlock(reasonBlock, slack.NewTextBlockObject(slack.PlainTextType, "Reason", false, false), nil, input),
		}},
	}
}

// esc escapes user-chosen text for Slack mrkdwn, so a reason cannot forge
// links or mentions.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// summary is the one-line text of a request (also the notification text).
func summary(r apiclient.Request) string {
	return fmt.Sprintf("%s requests %s for %s (request %s)", esc(r.User), esc(strings.Join(r.Roles, ", ")), durationText(r), esc(r.ID))
}

// blocks renders a request: what is asked, its reviews, its state, and the
// buttons while it is pending.
func blocks(r apiclient.Request) []slack.Block {
	text := fmt.Sprintf("*%s* requests *%s* for %s\n>%s", esc(r.User), esc(strings.Join(r.Roles, ", ")),
		durationText(r), esc(r.Reason))
	out := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)}
	for _, rv := range r.Reviews {
		verdict := "denied"
		if rv.Approve {
			verdict = "approved"
		}
		line := fmt.Sprintf("%s by *%s*", verdict, esc(rv.Reviewer))
		if rv.Via != "" {
			line += " via " + esc(rv.Via)
		}
		if rv.Reason != "" {
			line += ": " + esc(rv.Reason)
		}
		out = append(out, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, line, false, false)))
	}
	state := fmt.Sprintf("Request `%s`: *%s*", esc(r.ID), esc(r.State))
	if r.StateBy != "" && r.State != "PENDING" {
		state += " by " + esc(r.StateBy)
	}
	out = append(out, slack.NewContextBlock("state", slack.NewTextBlockObject(slack.MarkdownType, state, false, false)))
	if r.State == "PENDING" {
		approve := slack.NewButtonBlockElement(actionApprove, r.ID, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
		approve.Style = slack.StylePrimary
		deny := slack.NewButtonBlockElement(actionDeny, r.ID, slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false))
		deny.Style = slack.StyleDanger
		out = append(out, slack.NewActionBlock("review", approve, deny))
	}
	return out
}

func durationText(r apiclient.Request) string {
	if r.Duration > 0 {
		return r.Duration.String()
	}
	return "the default duration"
}

// final reports whether a request can change no more, so its message need
// not be remembered. An approved request can still be revoked or dropped.
func final(state string) bool {
	switch state {
	case "DENIED", "EXPIRED", "CANCELLED", "REVOKED":
		return true
	}
	return false
}
