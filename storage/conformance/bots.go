package conformance

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/storage"
)

func runBots(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	now := us(10 * time.Hour)
	slack := storage.Bot{Name: "slack", Roles: []string{"slack-plugin", "auditor"}, Created: now, By: "admin"}
	tok := storage.Token{Hash: "h-slack", Bot: "slack", Created: now, Expires: now.Add(time.Hour)}

	t.Run("CreateListDelete", func(t *testing.T) {
		s := open(t)
		if bots, err := s.ListBots(ctx); err != nil || len(bots) != 0 {
			t.Fatalf("ListBots on empty store = %v, %v", bots, err)
		}
		if err := s.CreateBot(ctx, slack, tok); err != nil {
			t.Fatalf("CreateBot: %v", err)
		}
		jira := storage.Bot{Name: "jira", Created: now, By: "admin"}
		if err := s.CreateBot(ctx, jira, storage.Token{Hash: "h-jira", Bot: "jira", Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatalf("CreateBot jira: %v", err)
		}
		// Same name: conflict, and the failed attempt's token must not
		// have been stored (the two inserts are one transaction).
		err := s.CreateBot(ctx, slack, storage.Token{Hash: "h-dup", Bot: "slack", Created: now, Expires: now.Add(time.Hour)})
		if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("CreateBot(duplicate) = %v, want ErrConflict", err)
		}
		if _, _, err := s.BotByToken(ctx, "h-dup", now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("token of the refused duplicate works: %v", err)
		}
		bots, err := s.ListBots(ctx)
		if err != nil {
			t.Fatalf("ListBots: %v", err)
		}
		names := []string{}
		for _, b := range bots {
			names = append(names, b.Name)
		}
		if !slices.Equal(names, []string{"jira", "slack"}) {
			t.Fatalf("ListBots names = %v, want [jira slack] (by name)", names)
		}
		got := bots[1]
		got.Created = got.Created.UTC()
		if !reflect.DeepEqual(got, slack) {
			t.Fatalf("ListBots slack = %+v, want %+v", got, slack)
		}
		if len(bots[0].Roles) != 0 {
			t.Fatalf("bot without roles came back with %v", bots[0].Roles)
		}
		if err := s.DeleteBot(ctx, "slack"); err != nil {
			t.Fatalf("DeleteBot: %v", err)
		}
		if err := s.DeleteBot(ctx, "slack"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("DeleteBot(again) = %v, want ErrNotFound", err)
		}
		if _, _, err := s.BotByToken(ctx, "h-slack", now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("BotByToken after DeleteBot = %v, want ErrNotFound", err)
		}
		// The name is free again, and its old token stays dead.
		if err := s.CreateBot(ctx, slack, storage.Token{Hash: "h-slack-2", Bot: "slack", Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatalf("CreateBot after DeleteBot: %v", err)
		}
		if _, _, err := s.BotByToken(ctx, "h-slack", now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("old token works for the re-created bot: %v", err)
		}
		if _, _, err := s.BotByToken(ctx, "h-jira", now); err != nil {
			t.Fatalf("the other bot's token stopped working: %v", err)
		}
	})

	t.Run("TokenLookup", func(t *testing.T) {
		s := open(t)
		if err := s.CreateBot(ctx, slack, tok); err != nil {
			t.Fatalf("CreateBot: %v", err)
		}
		b, got, err := s.BotByToken(ctx, "h-slack", now)
		if err != nil {
			t.Fatalf("BotByToken: %v", err)
		}
		b.Created, got.Created, got.Expires = b.Created.UTC(), got.Created.UTC(), got.Expires.UTC()
		if !reflect.DeepEqual(b, slack) || !reflect.DeepEqual(got, tok) {
			t.Fatalf("BotByToken = %+v %+v, want %+v %+v", b, got, slack, tok)
		}
		tests := []struct {
			name, hash string
			at         time.Time
			ok         bool
		}{
			{"just before expiry", "h-slack", tok.Expires.Add(-time.Microsecond), true},
			{"at expiry (exclusive)", "h-slack", tok.Expires, false},
			{"after expiry", "h-slack", tok.Expires.Add(time.Hour), false},
			{"unknown hash", "h-other", now, false},
			{"empty hash", "", now, false},
		}
		for _, tc := range tests {
			_, _, err := s.BotByToken(ctx, tc.hash, tc.at)
			if tc.ok && err != nil {
				t.Errorf("%s: BotByToken = %v, want the bot", tc.name, err)
			}
			if !tc.ok && !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: BotByToken = %v, want ErrNotFound", tc.name, err)
			}
		}
	})
}

// runAuditTypePrefix checks EventFilter.TypePrefix, which the API's watch
// stream uses to read request.* events after a sequence number.
func runAuditTypePrefix(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	s := open(t)
	mustAppend(t, s,
		storage.Event{Time: at(0), Type: "request.create", Actor: "bob"},
		storage.Event{Time: at(1), Type: "session.start", Actor: "bob"},
		storage.Event{Time: at(2), Type: "request.review", Actor: "alice"},
		storage.Event{Time: at(3), Type: "requests", Actor: "x"}, // not "request." + something
		storage.Event{Time: at(4), Type: "request/", Actor: "x"},
		storage.Event{Time: at(5), Type: "request.approve", Actor: "alice"},
		storage.Event{Time: at(6), Type: "bot.add", Actor: "admin"})
	tests := []struct {
		name string
		f    storage.EventFilter
		want []int64
	}{
		{"all request events", storage.EventFilter{TypePrefix: "request."}, []int64{1, 3, 6}},
		{"after a seq", storage.EventFilter{TypePrefix: "request.", After: 3}, []int64{6}},
		{"limit", storage.EventFilter{TypePrefix: "request.", Limit: 2}, []int64{1, 3}},
		{"with user", storage.EventFilter{TypePrefix: "request.", User: "alice"}, []int64{3, 6}},
		{"nothing after the last", storage.EventFilter{TypePrefix: "request.", After: 6}, []int64{}},
	}
	for _, tc := range tests {
		evs, err := s.ListEvents(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: ListEvents: %v", tc.name, err)
		}
		if got := seqs(evs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: seqs %v, want %v", tc.name, got, tc.want)
		}
	}
}
