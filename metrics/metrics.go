// Package metrics defines the bastion's Prometheus metrics. A Metrics owns
// its own registry (nothing is registered globally), is handed to the
// packages that observe events through the small observer interfaces they
// define (proxy.Observer, audit.Observer, notify.Observer), and reads the
// state it can read at scrape time (live sessions, open requests) from
// Sources instead of having counters threaded through the code.
//
// Every method is safe on a nil *Metrics, which records nothing, so a
// caller without metrics needs no checks of its own.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "gatehouse"

// Sources is the state read at every scrape. Each may be nil.
type Sources struct {
	// Nodes are the inventory's node names: each gets a live-session
	// series, 0 when idle, so that a gauge going to zero is seen as such.
	Nodes []string
	// LiveNodes returns the node of every live session on this bastion,
	// one entry per session.
	LiveNodes func() []string
	// Requests returns how many access requests are in each state that
	// is still open (pending, approved and unexpired).
	Requests func(ctx context.Context) (map[string]int, error)
	// Version is the build's version for gatehouse_build_info; default
	// the main module's version from the binary's build info.
	Version string
}

// Metrics is the bastion's set of collectors and the registry they live in.
type Metrics struct {
	reg *prometheus.Registry

	connections     *prometheus.CounterVec
	decisions       *prometheus.CounterVec
	nodeDial        *prometheus.HistogramVec
	relayBytes      *prometheus.CounterVec
	recordingFails  *prometheus.CounterVec
	auditLatency    prometheus.Histogram
	auditFailures   prometheus.Counter
	auditEvents     prometheus.Counter
	notifyFailures  *prometheus.CounterVec
	storeErrors     *prometheus.CounterVec
	recordingsTotal prometheus.Counter

	recMu      sync.Mutex
	recordings map[QueueReporter]struct{}
}

// QueueReporter is an open recording that can say how many bytes wait to
// be written (session.Recorder).
type QueueReporter interface {
	QueuedBytes() int
}

// New builds the collectors and registers them, with the Go runtime and
// process collectors, in a registry of their own.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), recordings: map[QueueReporter]struct{}{}}
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ssh_connections_total",
		Help: "Connections to the bastion's SSH listener by outcome: authenticated, failed (handshake or authentication), timeout (login grace time), rejected (too many unauthenticated).",
	}, []string{"outcome"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "access_decisions_total",
		Help: "Decisions on a jump to a node by outcome: allowed, denied, error (no decision could be made; refused).",
	}, []string{"outcome"})
	m.nodeDial = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "node_dial_duration_seconds",
		Help:    "Time to connect and authenticate to a node (TCP, SSH handshake, certificate login) by node and outcome (ok, error).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"node", "outcome"})
	m.relayBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "relay_bytes_total",
		Help: "Session bytes relayed, by direction (to_node, from_node), counted when each session channel ends.",
	}, []string{"direction"})
	m.recordingsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "recordings_started_total", Help: "Session recordings opened.",
	})
	m.recordingFails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "recording_failures_total",
		Help: "Session recording failures by stage: open (the recording could not be created), write (it failed while the session ran).",
	}, []string{"stage"})
	m.auditLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "audit_append_duration_seconds",
		Help:    "Time from an audit append call to its durable commit (or failure), queueing included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	})
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "audit_append_failures_total",
		Help: "Audit append calls that failed: the event may not be on record.",
	})
	m.auditEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "audit_events_total", Help: "Audit events appended successfully.",
	})
	m.notifyFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "notify_failures_total",
		Help: "Access-request notifications not delivered, by target kind and reason (failed after retries, dropped on a full queue).",
	}, []string{"kind", "reason"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "store_errors_total",
		Help: "Store calls that failed, by operation: ping (the /readyz store check), list_requests (reading open requests for a scrape). Other store errors are logged, not counted here.",
	}, []string{"op"})

	version := src.Version
	if version == "" {
		version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "Always 1; the labels name the running build.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	m.reg.MustRegister(
		m.connections, m.decisions, m.nodeDial, m.relayBytes, m.recordingsTotal, m.recordingFails,
		m.auditLatency, m.auditFailures, m.auditEvents, m.notifyFailures, m.storeErrors, buildInfo,
		&scrapeCollector{m: m, src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry every collector lives in (for tests and for
// adding collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Connection counts one connection to the bastion's SSH listener.
func (m *Metrics) Connection(outcome string) {
	if m != nil {
		m.connections.WithLabelValues(outcome).Inc()
	}
}

// Decision counts one access decision on a jump.
func (m *Metrics) Decision(outcome string) {
	if m != nil {
		m.decisions.WithLabelValues(outcome).Inc()
	}
}

// NodeDialed observes one connection attempt to a node.
func (m *Metrics) NodeDialed(node string, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.nodeDial.WithLabelValues(node, outcome).Observe(d.Seconds())
}

// Relayed counts the bytes of one ended session channel.
func (m *Metrics) Relayed(toNode, fromNode int64) {
	if m == nil {
		return
	}
	if toNode > 0 {
		m.relayBytes.WithLabelValues("to_node").Add(float64(toNode))
	}
	if fromNode > 0 {
		m.relayBytes.WithLabelValues("from_node").Add(float64(fromNode))
	}
}

// AuditAppended observes one audit append call of n events.
func (m *Metrics) AuditAppended(n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.auditLatency.Observe(d.Seconds())
	if err != nil {
		m.auditFailures.Inc()
		return
	}
	m.auditEvents.Add(float64(n))
}

// NotifyFailed counts one notification that did not reach its target.
func (m *Metrics) NotifyFailed(kind, reason string) {
	if m != nil {
		m.notifyFailures.WithLabelValues(kind, reason).Inc()
	}
}

// StoreError counts one failed store call. op is one of the operations
// the help text names; TestStoreErrorOpsDocumented keeps the callers, the
// help and the README's table in step.
func (m *Metrics) StoreError(op string) {
	if m != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// RecordingOpened tracks an open recording until the returned function is
// called; its queued bytes count towards gatehouse_recording_queued_bytes.
func (m *Metrics) RecordingOpened(r QueueReporter) (closed func()) {
	if m == nil {
		return func() {}
	}
	m.recordingsTotal.Inc()
	m.recMu.Lock()
	m.recordings[r] = struct{}{}
	m.recMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.recMu.Lock()
			delete(m.recordings, r)
			m.recMu.Unlock()
		})
	}
}

// RecordingFailed counts a recording failure at stage (open, write).
func (m *Metrics) RecordingFailed(stage string) {
	if m != nil {
		m.recordingFails.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) recordingQueue() (open, queued int) {
	m.recMu.Lock()
	list := make([]QueueReporter, 0, len(m.recordings))
	for r := range m.recordings {
		list = append(list, r)
	}
	m.recMu.Unlock()
	for _, r := range list {
		queued += r.QueuedBytes()
	}
	return len(list), queued
}

// scrapeTimeout bounds the store query a scrape makes.
const scrapeTimeout = 5 * time.Second

// scrapeCollector reads state at scrape time.
type scrapeCollector struct {
	m   *Metrics
	src Sources
}

var (
	descLive = prometheus.NewDesc(namespace+"_sessions_live", "Live sessions on this bastion, by node.", []string{"node"}, nil)
	descReqs = prometheus.NewDesc(namespace+"_requests", "Open access requests by state (PENDING; APPROVED and not yet expired).", []string{"state"}, nil)
	descOpen = prometheus.NewDesc(namespace+"_recordings_open", "Session recordings being written.", nil, nil)
	descQueu = prometheus.NewDesc(namespace+"_recording_queued_bytes", "Bytes of session output waiting to be written to recordings.", nil, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLive
	ch <- descReqs
	ch <- descOpen
	ch <- descQueu
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.LiveNodes != nil {
		byNode := map[string]int{}
		for _, n := range c.src.Nodes {
			byNode[n] = 0
		}
		for _, n := range c.src.LiveNodes() {
			byNode[n]++
		}
		for n, v := range byNode {
			ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(v), n)
		}
	}
	if c.src.Requests != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		counts, err := c.src.Requests(ctx)
		cancel()
		if err != nil {
			c.m.StoreError("list_requests")
			ch <- prometheus.NewInvalidMetric(descReqs, err)
		} else {
			for state, v := range counts {
				ch <- prometheus.MustNewConstMetric(descReqs, prometheus.GaugeValue, float64(v), state)
			}
		}
	}
	open, queued := c.m.recordingQueue()
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(open))
	ch <- prometheus.MustNewConstMetric(descQueu, prometheus.GaugeValue, float64(queued))
}
