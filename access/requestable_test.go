package access

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/storage"
)

func TestRequestableFor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := policy.Node{Name: "db-1", Labels: map[string]string{"team": "data"}}
	web := policy.Node{Name: "www-1", Labels: map[string]string{"team": "web"}}
	staging := policy.Node{Name: "stage-1", Labels: map[string]string{"env": "staging"}}
	dba := RequestOption{Role: "dba", DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour, ReasonRequired: true}

	// carol already holds dba through an approved request.
	granted := e.create(t, "carol", "dba")
	e.review(t, "alice", granted.ID, true)
	e.review(t, "ivy", granted.ID, true)
	// ivy, who could request dba, is locked.
	if _, err := e.svc.Lock(ctx, Admin(), "ivy", "investigation", 0); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, user, login string
		node              policy.Node
		want              []RequestOption
	}{
		{"the role that grants the login", "bob", "postgres", data, []RequestOption{dba}},
		{"another login, another role", "bob", "www", web, []RequestOption{{Role: "web", DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour, ReasonRequired: true}}},
		{"no requestable role grants it", "bob", "root", data, nil},
		{"allowed already: nothing to request", "bob", "ubuntu", staging, nil},
		{"held through a grant: nothing to request", "carol", "postgres", data, nil},
		{"may request nothing", "alice", "postgres", data, nil},
		{"locked", "ivy", "postgres", data, nil},
		{"unknown user", "nobody", "postgres", data, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.svc.RequestableFor(ctx, tc.user, nil, tc.login, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("RequestableFor(%s, %s, %s) = %+v, want %+v", tc.user, tc.login, tc.node.Name, got, tc.want)
			}
		})
	}
}

// The bastion's own cap on grants bounds what is offered.
func TestRequestableForCappedByMaxGrant(t *testing.T) {
	e := newEnv(t)
	svc := New(e.store, e.pol, e.aud, nil, Options{Clock: e.clock.Now, MaxGrant: 30 * time.Minute})
	got, err := svc.RequestableFor(context.Background(), "bob", nil, "postgres", policy.Node{Name: "db-1", Labels: map[string]string{"team": "data"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].MaxDuration != 30*time.Minute || got[0].DefaultDuration != 30*time.Minute {
		t.Fatalf("want dba capped at 30m, got %+v", got)
	}
}

func TestApprovers(t *testing.T) {
	e := newEnv(t)
	got := e.svc.Approvers(context.Background(), storage.Request{User: "bob", Roles: []string{"dba"}})
	if !reflect.DeepEqual(got, []string{"alice", "ivy"}) {
		t.Fatalf("approvers of bob's dba request: got %v, want [alice ivy]", got)
	}
}

// A request that names no duration gets the policy's default_duration, the
// same one the refused-connection prompt offers; the smallest default of the
// roles that allow the request wins, and the bastion's cap still bounds it.
func TestDefaultDurationFromPolicy(t *testing.T) {
	roles := strings.Replace(testRoles, "        max_duration: 4h\n", "        max_duration: 4h\n        default_duration: 2h\n", 1) + `
  - name: oncall
    allow:
      request: {roles: [dba], max_duration: 8h, default_duration: 30m}
`
	roles = strings.Replace(roles, "{name: carol, roles: [dev]}", "{name: carol, roles: [dev, oncall]}", 1)
	ctx := context.Background()
	data := policy.Node{Name: "db-1", Labels: map[string]string{"team": "data"}}
	for _, tc := range []struct {
		user     string
		maxGrant time.Duration
		want     time.Duration
	}{
		{"bob", 0, 2 * time.Hour},
		{"carol", 0, 30 * time.Minute},
		{"bob", 90 * time.Minute, 90 * time.Minute},
	} {
		e := newEnvRoles(t, roles)
		svc := e.svc
		if tc.maxGrant > 0 {
			svc = New(e.store, e.pol, e.aud, nil, Options{Clock: e.clock.Now, MaxGrant: tc.maxGrant})
		}
		opts, err := svc.RequestableFor(ctx, tc.user, nil, "postgres", data)
		if err != nil || len(opts) != 1 || opts[0].DefaultDuration != tc.want {
			t.Errorf("%s (cap %v): offered %+v %v, want default %v", tc.user, tc.maxGrant, opts, err, tc.want)
		}
		r, err := svc.Create(ctx, e.who(t, tc.user), []string{"dba"}, "incident", 0)
		if err != nil || r.Duration != tc.want {
			t.Errorf("%s (cap %v): created %v %v, want %v", tc.user, tc.maxGrant, r.Duration, err, tc.want)
		}
	}
}
