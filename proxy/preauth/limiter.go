package preauth

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reason says why a connection was refused.
type Reason uint8

// Reasons, in the order Admit checks them.
const (
	ReasonPenalty   Reason = iota // the source is serving a penalty
	ReasonPerSource               // the source holds PerSource unauthenticated connections
	ReasonEarlyDrop               // random early drop between Start and Full
	ReasonFull                    // Full unauthenticated connections in all
	numReasons
)

func (r Reason) String() string {
	switch r {
	case ReasonPenalty:
		return "penalty"
	case ReasonPerSource:
		return "per_source"
	case ReasonEarlyDrop:
		return "random_early_drop"
	case ReasonFull:
		return "full"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Outcome is how an admitted connection stopped being unauthenticated.
type Outcome uint8

// Outcomes. Every one but Authenticated can earn the source a penalty.
const (
	Authenticated  Outcome = iota
	AuthFail               // it tried to authenticate and failed
	NoAuth                 // it went away without trying to authenticate
	GraceExceeded          // the login grace time ran out
	VersionTimeout         // no SSH version line within the version deadline
	Invalid                // what it sent instead of a version line was not SSH
	numOutcomes
)

func (o Outcome) String() string {
	switch o {
	case Authenticated:
		return "authenticated"
	case AuthFail:
		return "authfail"
	case NoAuth:
		return "noauth"
	case GraceExceeded:
		return "grace_exceeded"
	case VersionTimeout:
		return "version_timeout"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Penalties configure per-source penalties. A zero duration means that
// outcome earns no penalty.
type Penalties struct {
	Disabled      bool
	AuthFail      time.Duration // per connection that failed to authenticate
	NoAuth        time.Duration // per connection that never tried
	GraceExceeded time.Duration // per connection that ran out of time (grace or version deadline)
	Invalid       time.Duration // per connection that did not speak SSH
	// Min is the penalty a source must accumulate before it is refused;
	// Max caps a source's penalty.
	Min, Max time.Duration
	// MaxSources caps how many sources' penalties are tracked. When the
	// table is full of unexpired penalties, new sources go unpenalised
	// (and are counted) rather than the table growing.
	MaxSources int
}

// Config configures a Limiter.
type Config struct {
	// Start, Rate and Full are OpenSSH's MaxStartups: below Start
	// unauthenticated connections every source is admitted; from Start, a
	// new one is refused with probability Rate%, rising linearly to 100% at
	// Full.
	Start, Rate, Full int
	// PerSource caps unauthenticated connections per source; 0: no cap.
	PerSource int
	Penalties Penalties
	// Exempt sources are never penalised.
	Exempt []netip.Prefix
	// PenaltyEvents bounds how many imposed penalties per report period
	// are flagged for an audit event of their own; the rest are counted in
	// the report.
	PenaltyEvents int

	// Now and Intn (a uniform int in [0,n)) default to the real clock and
	// math/rand/v2; tests inject their own.
	Now  func() time.Time
	Intn func(n int) int
}

// Validate checks that c can be used.
func (c Config) Validate() error {
	switch {
	case c.Full < 1:
		return errors.New("full must be at least 1")
	case c.Start < 1 || c.Start > c.Full:
		return fmt.Errorf("start %d must be between 1 and full (%d)", c.Start, c.Full)
	case c.Rate < 0 || c.Rate > 100:
		return fmt.Errorf("rate %d must be a percentage (0 to 100)", c.Rate)
	case c.PerSource < 0:
		return fmt.Errorf("per-source cap %d must not be negative", c.PerSource)
	}
	p := c.Penalties
	if p.Disabled {
		return nil
	}
	for _, d := range []time.Duration{p.AuthFail, p.NoAuth, p.GraceExceeded, p.Invalid, p.Min, p.Max} {
		if d < 0 {
			return fmt.Errorf("penalty duration %v must not be negative", d)
		}
	}
	if p.Max <= 0 || p.Min > p.Max {
		return fmt.Errorf("penalty max (%v) must be positive and at least min (%v)", p.Max, p.Min)
	}
	if p.MaxSources < 1 {
		return errors.New("penalty max_sources must be at least 1")
	}
	return nil
}

// Limiter admits unauthenticated connections. It is safe for concurrent use.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	total     int
	perSource map[netip.Prefix]int
	penalties map[netip.Prefix]penalty
	nextPrune time.Time

	admitted uint64
	dropped  [numReasons]uint64
	ended    [numOutcomes]uint64
	imposed  uint64
	overflow uint64

	period period
}

// penalty is one source's penalty; it is refused while active and until
// expiry.
type penalty struct {
	expiry time.Time
	active bool
}

// period holds what the next Report summarises.
type period struct {
	start          time.Time
	dropped        [numReasons]uint64
	sources        map[netip.Prefix]uint64
	untallied      uint64 // drops from sources beyond maxTallySources
	imposed        int
	imposedAudited int
	overflow       uint64
}

// maxTallySources bounds the per-source drop tally of one report period;
// reportSources is how many of them a report names.
const (
	maxTallySources = 64
	reportSources   = 10
)

// penaltySlack is how far below Min a penalty may be and still count as
// reaching it: penalties added up over a few seconds have partly run out
// already (OpenSSH counts whole seconds, so three 5 s failures within the
// same second reach its 15 s minimum; here, within about a second).
const penaltySlack = time.Second

// pruneEvery bounds how often a full penalty table is scanned for expired
// entries, so a flood of new sources cannot make every admission O(table).
const pruneEvery = time.Second

// New returns a Limiter, or an error if cfg is invalid.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Intn == nil {
		cfg.Intn = rand.IntN
	}
	l := &Limiter{cfg: cfg, perSource: map[netip.Prefix]int{}, penalties: map[netip.Prefix]penalty{}}
	l.period = period{start: cfg.Now(), sources: map[netip.Prefix]uint64{}}
	return l, nil
}

// SourceOf is the source a remote address is counted under: the IPv4
// address itself, or the IPv6 /64 holding it. The zero Addr (a remote that
// is not IP) is one source of its own.
func SourceOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	switch {
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	case a.Is6():
		p, _ := a.WithZone("").Prefix(64)
		return p
	}
	return netip.Prefix{}
}

// FormatSource writes a source for people: the address for IPv4, the /64
// for IPv6.
func FormatSource(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "unknown"
	case p.Addr().Is4():
		return p.Addr().String()
	}
	return p.String()
}

// Ticket is an admitted connection's place; Done gives it back.
type Ticket struct {
	l    *Limiter
	addr netip.Addr
	src  netip.Prefix
	done atomic.Bool
}

// Source is the source the connection is counted under.
func (t *Ticket) Source() netip.Prefix { return t.src }

// Admit decides whether a new connection from addr is taken on. It returns
// a Ticket to hand back with Done when the connection authenticates or
// ends, or nil and the reason it was refused.
func (l *Limiter) Admit(addr netip.Addr) (*Ticket, Reason) {
	addr = addr.Unmap()
	src := SourceOf(addr)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.penalties[src]; ok {
		if !now.Before(p.expiry) {
			delete(l.penalties, src)
		} else if p.active {
			return nil, l.dropLocked(src, ReasonPenalty)
		}
	}
	if l.cfg.PerSource > 0 && l.perSource[src] >= l.cfg.PerSource {
		return nil, l.dropLocked(src, ReasonPerSource)
	}
	if l.total >= l.cfg.Full {
		return nil, l.dropLocked(src, ReasonFull)
	}
	if l.total >= l.cfg.Start {
		// OpenSSH's MaxStartups: Rate% at Start, rising linearly to
		// 100% at Full (Full > total >= Start here, so no division by 0).
		p := l.cfg.Rate + (100-l.cfg.Rate)*(l.total-l.cfg.Start)/(l.cfg.Full-l.cfg.Start)
		if l.cfg.Intn(100) < p {
			return nil, l.dropLocked(src, ReasonEarlyDrop)
		}
	}
	l.total++
	l.perSource[src]++
	l.admitted++
	return &Ticket{l: l, addr: addr, src: src}, 0
}

func (l *Limiter) dropLocked(src netip.Prefix, r Reason) Reason {
	l.dropped[r]++
	l.period.dropped[r]++
	if _, ok := l.period.sources[src]; ok || len(l.period.sources) < maxTallySources {
		l.period.sources[src]++
	} else {
		l.period.untallied++
	}
	return r
}

// Imposed is a penalty that has just started refusing a source.
type Imposed struct {
	Source netip.Prefix
	// Outcome is the connection ending that tipped the source over.
	Outcome Outcome
	Until   time.Time
	// Audit is false once this report period's PenaltyEvents are used
	// up; the penalty is then only counted in the report.
	Audit bool
}

// Done gives the ticket back: the connection authenticated or ended, as o
// says. Only the first call counts. It returns the penalty this imposed on
// the source, if the source is now refused and was not before.
func (t *Ticket) Done(o Outcome) *Imposed {
	if t.done.Swap(true) {
		return nil
	}
	l := t.l
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perSource[t.src] - 1; n > 0 {
		l.perSource[t.src] = n
	} else {
		delete(l.perSource, t.src)
	}
	if o < numOutcomes {
		l.ended[o]++
	}
	d := l.penaltyFor(o)
	if d <= 0 || l.exempt(t.addr) {
		return nil
	}
	return l.penaliseLocked(t.src, o, d, now)
}

func (l *Limiter) penaltyFor(o Outcome) time.Duration {
	p := l.cfg.Penalties
	if p.Disabled {
		return 0
	}
	switch o {
	case AuthFail:
		return p.AuthFail
	case NoAuth:
		return p.NoAuth
	case GraceExceeded, VersionTimeout:
		return p.GraceExceeded
	case Invalid:
		return p.Invalid
	}
	return 0
}

func (l *Limiter) exempt(a netip.Addr) bool {
	for _, p := range l.cfg.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// penaliseLocked adds d to src's penalty. Penalties add up from now (an
// expired one starts afresh) and never reach past now+Max.
func (l *Limiter) penaliseLocked(src netip.Prefix, o Outcome, d time.Duration, now time.Time) *Imposed {
	pc := l.cfg.Penalties
	p, ok := l.penalties[src]
	if ok && !now.Before(p.expiry) {
		ok = false
	}
	if !ok {
		if len(l.penalties) >= pc.MaxSources {
			l.pruneLocked(now)
		}
		if len(l.penalties) >= pc.MaxSources {
			// Permissive, like OpenSSH's default overflow mode: an
			// attacker with more sources than the table holds is not
			// tracked rather than everyone being refused.
			l.overflow++
			l.period.overflow++
			return nil
		}
		p = penalty{expiry: now}
	}
	p.expiry = p.expiry.Add(d)
	if limit := now.Add(pc.Max); p.expiry.After(limit) {
		p.expiry = limit
	}
	var imp *Imposed
	if !p.active && p.expiry.Sub(now)+penaltySlack >= pc.Min {
		p.active = true
		l.imposed++
		l.period.imposed++
		imp = &Imposed{Source: src, Outcome: o, Until: p.expiry}
		if l.period.imposedAudited < l.cfg.PenaltyEvents {
			l.period.imposedAudited++
			imp.Audit = true
		}
	}
	l.penalties[src] = p
	return imp
}

// pruneLocked drops expired penalties, at most once per pruneEvery.
func (l *Limiter) pruneLocked(now time.Time) {
	if now.Before(l.nextPrune) {
		return
	}
	l.nextPrune = now.Add(pruneEvery)
	for src, p := range l.penalties {
		if !now.Before(p.expiry) {
			delete(l.penalties, src)
		}
	}
}

// Stats are the Limiter's counters since it was made, and its state now.
type Stats struct {
	Unauthenticated  int               // connections admitted and not yet done
	Admitted         uint64            // connections admitted
	Dropped          map[string]uint64 // refused connections by Reason
	Ended            map[string]uint64 // admitted connections by Outcome
	PenaltiesImposed uint64            // times a source started being refused
	PenalisedSources int               // sources being refused now
	TrackedSources   int               // penalty records held (at most MaxSources)
	PenaltyOverflow  uint64            // penalties not recorded: the table was full
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{
		Unauthenticated: l.total, Admitted: l.admitted, PenaltiesImposed: l.imposed,
		TrackedSources: len(l.penalties), PenaltyOverflow: l.overflow,
		Dropped: map[string]uint64{}, Ended: map[string]uint64{},
	}
	for r := Reason(0); r < numReasons; r++ {
		s.Dropped[r.String()] = l.dropped[r]
	}
	for o := Outcome(0); o < numOutcomes; o++ {
		s.Ended[o.String()] = l.ended[o]
	}
	for _, p := range l.penalties {
		if p.active && now.Before(p.expiry) {
			s.PenalisedSources++
		}
	}
	return s
}

// SourceCount is how many connections from one source were refused.
type SourceCount struct {
	Source  netip.Prefix
	Dropped uint64
}

// Report summarises one period: what was refused, why and from where.
type Report struct {
	Start, End time.Time
	Dropped    map[string]uint64 // by Reason; only reasons that occurred
	Total      uint64
	// Sources are the sources with the most refusals, most first.
	Sources []SourceCount
	// OtherSources counts refusals from sources the period's tally had no
	// room for.
	OtherSources uint64
	// PenaltiesImposed counts sources that started being refused;
	// PenaltiesUnaudited those of them without an event of their own.
	PenaltiesImposed   int
	PenaltiesUnaudited int
	PenaltyOverflow    uint64
}

// Empty reports whether nothing happened worth a summary.
func (r Report) Empty() bool {
	return r.Total == 0 && r.PenaltiesImposed == 0 && r.PenaltyOverflow == 0
}

// TakeReport returns the report of the period since the last call and
// starts a new one. It also drops expired penalties, so a table that
// filled up during a flood empties again once the flood is over.
func (l *Limiter) TakeReport() Report {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.period
	l.period = period{start: now, sources: map[netip.Prefix]uint64{}}
	l.nextPrune = time.Time{}
	l.pruneLocked(now)

	r := Report{Start: p.start, End: now, Dropped: map[string]uint64{}, OtherSources: p.untallied,
		PenaltiesImposed: p.imposed, PenaltiesUnaudited: p.imposed - p.imposedAudited, PenaltyOverflow: p.overflow}
	for reason := Reason(0); reason < numReasons; reason++ {
		if n := p.dropped[reason]; n > 0 {
			r.Dropped[reason.String()] = n
			r.Total += n
		}
	}
	for src, n := range p.sources {
		r.Sources = append(r.Sources, SourceCount{Source: src, Dropped: n})
	}
	slices.SortFunc(r.Sources, func(a, b SourceCount) int {
		if c := cmp.Compare(b.Dropped, a.Dropped); c != 0 {
			return c
		}
		return a.Source.Addr().Compare(b.Source.Addr())
	})
	if len(r.Sources) > reportSources {
		for _, sc := range r.Sources[reportSources:] {
			r.OtherSources += sc.Dropped
		}
		r.Sources = r.Sources[:reportSources]
	}
	return r
}
