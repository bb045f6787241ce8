package preauth

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// clock is a settable fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

// penalties are OpenSSH 9.8's defaults, for tests that want penalties on.
var testPenalties = Penalties{AuthFail: 5 * time.Second, NoAuth: time.Second, GraceExceeded: 10 * time.Second,
	Invalid: 10 * time.Second, Min: 15 * time.Second, Max: time.Minute, MaxSources: 100}

func newLimiter(t *testing.T, cfg Config, c *clock) *Limiter {
	t.Helper()
	cfg.Now = c.now
	if cfg.Intn == nil {
		cfg.Intn = func(int) int { return 99 } // never an early drop unless a test asks
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// admit is Admit that fails the test on an unexpected decision.
func admit(t *testing.T, l *Limiter, a string) *Ticket {
	t.Helper()
	tk, r := l.Admit(addr(a))
	if tk == nil {
		t.Fatalf("%s refused (%v), want admitted", a, r)
	}
	return tk
}

func refused(t *testing.T, l *Limiter, a string, want Reason) {
	t.Helper()
	tk, r := l.Admit(addr(a))
	if tk != nil {
		t.Fatalf("%s admitted, want refused (%v)", a, want)
	}
	if r != want {
		t.Fatalf("%s refused for %v, want %v", a, r, want)
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct{ a, b string }{
		{"10.0.0.1", "::ffff:10.0.0.1"},     // IPv4-mapped is the IPv4 address
		{"2001:db8::1", "2001:db8::ffff:1"}, // one /64
		{"fe80::1%eth0", "fe80::2"},         // zones do not split a source
	}
	for _, tc := range tests {
		if SourceOf(addr(tc.a)) != SourceOf(addr(tc.b)) {
			t.Errorf("%s and %s: want one source, got %v and %v", tc.a, tc.b, SourceOf(addr(tc.a)), SourceOf(addr(tc.b)))
		}
	}
	different := [][2]string{{"10.0.0.1", "10.0.0.2"}, {"2001:db8::1", "2001:db8:0:1::1"}, {"127.0.0.1", "127.0.0.2"}}
	for _, p := range different {
		if SourceOf(addr(p[0])) == SourceOf(addr(p[1])) {
			t.Errorf("%s and %s: want two sources", p[0], p[1])
		}
	}
	if got := FormatSource(SourceOf(addr("2001:db8::7"))); got != "2001:db8::/64" {
		t.Errorf("FormatSource v6: %q", got)
	}
	if got := FormatSource(SourceOf(addr("::ffff:192.0.2.1"))); got != "192.0.2.1" {
		t.Errorf("FormatSource v4: %q", got)
	}
	if got := FormatSource(SourceOf(netip.Addr{})); got != "unknown" {
		t.Errorf("FormatSource of no address: %q", got)
	}
}

func TestPerSourceCap(t *testing.T) {
	c := newClock()
	l := newLimiter(t, Config{Start: 100, Rate: 30, Full: 100, PerSource: 2, Penalties: Penalties{Disabled: true}}, c)
	a1 := admit(t, l, "127.0.0.1")
	admit(t, l, "127.0.0.1")
	refused(t, l, "127.0.0.1", ReasonPerSource)
	refused(t, l, "::ffff:127.0.0.1", ReasonPerSource)
	// Everyone else still gets in.
	admit(t, l, "127.0.0.2")
	admit(t, l, "2001:db8::1")
	admit(t, l, "2001:db8::2")
	refused(t, l, "2001:db8::3", ReasonPerSource) // same /64
	admit(t, l, "2001:db8:0:1::1")
	// A slot given back is a slot free again.
	a1.Done(Authenticated)
	admit(t, l, "127.0.0.1")
	if s := l.Stats(); s.Unauthenticated != 6 || s.Admitted != 7 || s.Dropped["per_source"] != 3 {
		t.Errorf("stats: %+v", s)
	}
}

func TestFullAndEarlyDrop(t *testing.T) {
	// Start 2, Rate 30, Full 12: p = 30 + 70*(n-2)/10 percent with n
	// unauthenticated connections already held.
	tests := []struct {
		held int
		roll int // what Intn(100) returns
		drop bool
	}{
		{held: 0, roll: 0, drop: false}, // below Start nothing is dropped
		{held: 1, roll: 0, drop: false},
		{held: 2, roll: 29, drop: true}, // p = 30
		{held: 2, roll: 30, drop: false},
		{held: 7, roll: 64, drop: true}, // p = 65
		{held: 7, roll: 65, drop: false},
		{held: 11, roll: 92, drop: true}, // p = 93
		{held: 11, roll: 93, drop: false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("held %d roll %d", tc.held, tc.roll), func(t *testing.T) {
			c := newClock()
			roll := 99
			l := newLimiter(t, Config{Start: 2, Rate: 30, Full: 12, Penalties: Penalties{Disabled: true},
				Intn: func(n int) int {
					if n != 100 {
						t.Fatalf("Intn(%d), want Intn(100)", n)
					}
					return roll
				}}, c)
			for i := 0; i < tc.held; i++ {
				admit(t, l, fmt.Sprintf("10.0.0.%d", i+1))
			}
			roll = tc.roll
			if tc.drop {
				refused(t, l, "192.0.2.1", ReasonEarlyDrop)
			} else {
				admit(t, l, "192.0.2.1")
			}
		})
	}
	t.Run("full", func(t *testing.T) {
		c := newClock()
		l := newLimiter(t, Config{Start: 3, Rate: 30, Full: 3, Penalties: Penalties{Disabled: true}}, c)
		for i := 0; i < 3; i++ {
			admit(t, l, fmt.Sprintf("10.0.0.%d", i+1))
		}
		refused(t, l, "192.0.2.1", ReasonFull)
	})
}

func TestPenalties(t *testing.T) {
	type step struct {
		advance time.Duration
		done    Outcome // a connection from the source ends so
		imposed bool    // ...and this starts refusing it
		refused bool    // afterwards, is the source refused?
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"three failed logins reach min", []step{
			{done: AuthFail}, {done: AuthFail}, {done: AuthFail, imposed: true, refused: true},
			{advance: 14 * time.Second, refused: true},
			{advance: time.Second, refused: false}, // 15 s served
		}},
		{"authenticated earns nothing", []step{
			{done: Authenticated}, {done: Authenticated}, {done: Authenticated}, {done: Authenticated},
		}},
		{"one grace time out is below min, two are not", []step{
			{done: GraceExceeded}, {done: VersionTimeout, imposed: true, refused: true},
		}},
		{"failures a little apart still add up", []step{
			{done: AuthFail}, {advance: 400 * time.Millisecond, done: AuthFail},
			{advance: 400 * time.Millisecond, done: AuthFail, imposed: true, refused: true},
		}},
		{"penalties run out between failures", []step{
			{done: AuthFail}, {advance: 6 * time.Second, done: AuthFail}, {advance: 6 * time.Second, done: AuthFail},
			{advance: 6 * time.Second, done: AuthFail},
		}},
		{"noauth needs many", func() []step {
			// 14 of 1 s reach the 15 s minimum, less penaltySlack.
			var s []step
			for i := 0; i < 13; i++ {
				s = append(s, step{done: NoAuth})
			}
			return append(s, step{done: NoAuth, imposed: true, refused: true})
		}()},
		{"capped at max", []step{
			{done: Invalid}, {done: Invalid, imposed: true, refused: true},
			// Connections admitted before the penalty began may still end
			// and add to it, never past max (1 minute).
			{done: Invalid, refused: true}, {done: Invalid, refused: true}, {done: Invalid, refused: true},
			{done: Invalid, refused: true}, {done: Invalid, refused: true}, {done: Invalid, refused: true},
			{advance: 59 * time.Second, refused: true},
			{advance: time.Second, refused: false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			l := newLimiter(t, Config{Start: 1000, Rate: 30, Full: 1000, Penalties: testPenalties, PenaltyEvents: 10}, c)
			var open []*Ticket // the steps' connections, admitted before any penalty
			for range tc.steps {
				open = append(open, admit(t, l, "198.51.100.7"))
			}
			for i, st := range tc.steps {
				c.advance(st.advance)
				imp := open[i].Done(st.done)
				if (imp != nil) != st.imposed {
					t.Fatalf("step %d: imposed %+v, want %v", i, imp, st.imposed)
				}
				if imp != nil && (imp.Source != SourceOf(addr("198.51.100.7")) || imp.Outcome != st.done || !imp.Audit) {
					t.Fatalf("step %d: imposed %+v", i, imp)
				}
				tk, r := l.Admit(addr("198.51.100.7"))
				if got := tk == nil; got != st.refused {
					t.Fatalf("step %d: refused=%v (%v), want %v", i, got, r, st.refused)
				}
				if tk != nil {
					tk.Done(Authenticated)
				} else if r != ReasonPenalty {
					t.Fatalf("step %d: refused for %v, want penalty", i, r)
				}
				// Other sources are never touched by this one's penalty.
				admit(t, l, "198.51.100.8").Done(Authenticated)
			}
		})
	}
}

func TestPenaltyExemptAndDisabled(t *testing.T) {
	c := newClock()
	l := newLimiter(t, Config{Start: 100, Rate: 30, Full: 100, Penalties: testPenalties,
		Exempt: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8::/32")}}, c)
	for _, a := range []string{"10.1.2.3", "::ffff:10.1.2.3", "2001:db8:1:2::3"} {
		for i := 0; i < 10; i++ {
			if imp := admit(t, l, a).Done(Invalid); imp != nil {
				t.Fatalf("%s is exempt, got a penalty %+v", a, imp)
			}
		}
		admit(t, l, a).Done(Authenticated)
	}
	off := newLimiter(t, Config{Start: 100, Rate: 30, Full: 100, Penalties: Penalties{Disabled: true, AuthFail: time.Hour}}, c)
	for i := 0; i < 10; i++ {
		if imp := admit(t, off, "192.0.2.1").Done(AuthFail); imp != nil {
			t.Fatalf("penalties disabled, got %+v", imp)
		}
	}
}

func TestDoneCountsOnce(t *testing.T) {
	c := newClock()
	l := newLimiter(t, Config{Start: 10, Rate: 30, Full: 10, PerSource: 1, Penalties: testPenalties}, c)
	tk := admit(t, l, "192.0.2.1")
	tk.Done(Authenticated)
	tk.Done(Invalid) // a late Close after authentication: ignored
	tk.Done(Invalid)
	admit(t, l, "192.0.2.1")
	s := l.Stats()
	if s.Unauthenticated != 1 || s.Ended["authenticated"] != 1 || s.Ended["invalid"] != 0 || s.TrackedSources != 0 {
		t.Fatalf("stats after Done x3: %+v", s)
	}
}

func TestPenaltyTableIsBounded(t *testing.T) {
	c := newClock()
	p := testPenalties
	p.MaxSources = 3
	l := newLimiter(t, Config{Start: 100, Rate: 30, Full: 100, Penalties: p, PenaltyEvents: 100}, c)
	fail := func(a string, times int) (imposed int) {
		for i := 0; i < times; i++ {
			if admit(t, l, a).Done(AuthFail) != nil {
				imposed++
			}
		}
		return imposed
	}
	for i := 1; i <= 3; i++ {
		if fail(fmt.Sprintf("192.0.2.%d", i), 3) != 1 {
			t.Fatalf("source %d: want one penalty", i)
		}
	}
	// The table is full of live penalties: a fourth source goes untracked.
	if fail("192.0.2.4", 3) != 0 {
		t.Fatal("a fourth source was tracked past MaxSources")
	}
	if s := l.Stats(); s.TrackedSources != 3 || s.PenaltyOverflow != 3 || s.PenalisedSources != 3 {
		t.Fatalf("stats: %+v", s)
	}
	// Once they expire, room is made again.
	c.advance(16 * time.Second)
	if fail("192.0.2.4", 3) != 1 {
		t.Fatal("expired penalties were not pruned for a new source")
	}
	if s := l.Stats(); s.TrackedSources != 1 || s.PenalisedSources != 1 {
		t.Fatalf("stats after prune: %+v", s)
	}
	// And a flood of new sources cannot make every admission scan the
	// table: within pruneEvery it is not scanned again.
	for i := 1; i <= 2; i++ {
		fail(fmt.Sprintf("198.51.100.%d", i), 3)
	}
	c.advance(16 * time.Second) // all expired, but the last prune was...
	l.mu.Lock()
	l.nextPrune = c.now().Add(time.Hour) // ...pretend it was just now
	l.mu.Unlock()
	if fail("203.0.113.1", 3) != 0 {
		t.Fatal("table pruned before pruneEvery")
	}
	l.TakeReport() // a report prunes whatever the schedule
	if fail("203.0.113.1", 3) != 1 {
		t.Fatal("report did not prune expired penalties")
	}
}

func TestReport(t *testing.T) {
	c := newClock()
	p := testPenalties
	l := newLimiter(t, Config{Start: 100, Rate: 30, Full: 100, PerSource: 1, Penalties: p, PenaltyEvents: 1}, c)
	// 127.0.0.1 holds its one slot and tries 5 more times; 80 others
	// try once past a slot each of them holds.
	admit(t, l, "127.0.0.1")
	for i := 0; i < 5; i++ {
		refused(t, l, "127.0.0.1", ReasonPerSource)
	}
	for i := 0; i < 80; i++ {
		a := fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
		admit(t, l, a)
		refused(t, l, a, ReasonPerSource)
		if i < 2 {
			refused(t, l, a, ReasonPerSource) // two of them twice
		}
	}
	// Two sources are penalised; only the first gets an event.
	var imps []*Imposed
	for _, a := range []string{"192.0.2.1", "192.0.2.2"} {
		for i := 0; i < 2; i++ {
			if imp := admit(t, l, a).Done(GraceExceeded); imp != nil {
				imps = append(imps, imp)
			}
		}
	}
	if len(imps) != 2 || !imps[0].Audit || imps[1].Audit {
		t.Fatalf("imposed: %+v", imps)
	}
	refused(t, l, "192.0.2.1", ReasonPenalty)
	c.advance(time.Minute)
	r := l.TakeReport()
	if r.Total != 88 || r.Dropped["per_source"] != 87 || r.Dropped["penalty"] != 1 || len(r.Dropped) != 2 {
		t.Fatalf("report totals: %+v", r)
	}
	if r.PenaltiesImposed != 2 || r.PenaltiesUnaudited != 1 || r.End.Sub(r.Start) != time.Minute {
		t.Fatalf("report penalties/period: %+v", r)
	}
	if len(r.Sources) != reportSources || FormatSource(r.Sources[0].Source) != "127.0.0.1" || r.Sources[0].Dropped != 5 ||
		r.Sources[1].Dropped != 2 || r.Sources[2].Dropped != 2 {
		t.Fatalf("report sources: %+v", r.Sources)
	}
	var named uint64
	for _, sc := range r.Sources {
		named += sc.Dropped
	}
	if named+r.OtherSources != r.Total {
		t.Fatalf("sources %d + other %d != total %d", named, r.OtherSources, r.Total)
	}
	// The tally itself is bounded: 82 sources were seen, 64 kept.
	if r.OtherSources != r.Total-named || len(r.Sources) > maxTallySources {
		t.Fatal("unbounded tally")
	}
	// A new period starts empty, with a fresh event budget.
	if r2 := l.TakeReport(); !r2.Empty() {
		t.Fatalf("second report: %+v", r2)
	}
	for i := 0; i < 2; i++ {
		if imp := admit(t, l, "192.0.2.3").Done(GraceExceeded); imp != nil && !imp.Audit {
			t.Fatal("event budget did not reset with the period")
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Start: 10, Rate: 30, Full: 100, PerSource: 10, Penalties: testPenalties}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no full", func(c *Config) { c.Full = 0 }, "full must be at least 1"},
		{"start above full", func(c *Config) { c.Start = 101 }, "start 101 must be between 1 and full"},
		{"rate above 100", func(c *Config) { c.Rate = 101 }, "rate 101"},
		{"negative per source", func(c *Config) { c.PerSource = -1 }, "per-source cap -1"},
		{"negative penalty", func(c *Config) { c.Penalties.NoAuth = -time.Second }, "must not be negative"},
		{"min above max", func(c *Config) { c.Penalties.Min = time.Hour }, "at least min"},
		{"no sources", func(c *Config) { c.Penalties.MaxSources = 0 }, "max_sources"},
		{"disabled skips penalty checks", func(c *Config) { c.Penalties = Penalties{Disabled: true} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}
