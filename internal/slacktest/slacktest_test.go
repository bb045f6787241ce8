package slacktest

import (
	"context"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

// TestOpenView: views.open answers as Slack does: a modal with a short
// title opens once per trigger id; a reused trigger, a long title or
// another token are refused.
func TestOpenView(t *testing.T) {
	s := New("xoxb-t")
	t.Cleanup(s.Close)
	api := slack.New("xoxb-t", slack.OptionAPIURL(s.APIURL()))
	modal := func(title string) slack.ModalViewRequest {
		return slack.ModalViewRequest{Type: slack.VTModal, CallbackID: "cb", PrivateMetadata: "meta",
			Title: slack.NewTextBlockObject(slack.PlainTextType, title, false, false),
			Blocks: slack.Blocks{BlockSet: []slack.Block{
				slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "hi", false, false), nil, nil),
			}}}
	}
	ctx := context.Background()
	v, err := api.OpenViewContext(ctx, "trig-1", modal("Approve request"))
	if err != nil || v.ID == "" || v.CallbackID != "cb" {
		t.Fatalf("views.open: %+v %v", v, err)
	}
	views := s.Views()
	if len(views) != 1 || views[0].ID != v.ID || views[0].TriggerID != "trig-1" || views[0].PrivateMetadata != "meta" || !strings.Contains(string(views[0].Blocks), `"hi"`) {
		t.Fatalf("recorded views %+v", views)
	}
	for name, tc := range map[string]struct {
		trigger, title, want string
		api                  *slack.Client
	}{
		"trigger used twice": {"trig-1", "Approve request", "expired_trigger_id", api},
		"title too long":     {"trig-2", strings.Repeat("x", 25), "invalid_arguments", api},
		"wrong token":        {"trig-3", "Approve request", "invalid_auth", slack.New("xoxb-other", slack.OptionAPIURL(s.APIURL()))},
	} {
		if _, err := tc.api.OpenViewContext(ctx, tc.trigger, modal(tc.title)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	if n := len(s.Views()); n != 1 {
		t.Fatalf("%d views recorded, want only the one opened", n)
	}
}
