package metrics

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type fakeQueue int

func (q *fakeQueue) QueuedBytes() int { return int(*q) }

// scrape fetches the handler's output and parses it with Prometheus' own
// text parser, as a Prometheus server would.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, rec.Body)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want, or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetricsExposition(t *testing.T) {
	live := []string{"web-1", "web-1", "db-1"}
	reqErr := error(nil)
	m := New(Sources{
		Nodes:     []string{"web-1", "db-1", "idle-1"},
		LiveNodes: func() []string { return live },
		Requests: func(context.Context) (map[string]int, error) {
			return map[string]int{"PENDING": 2, "APPROVED": 1}, reqErr
		},
		Version: "v1.2.3",
	})
	m.Connection("authenticated")
	m.Connection("authenticated")
	m.Connection("failed")
	m.Decision("allowed")
	m.Decision("denied")
	m.NodeDialed("web-1", 20*time.Millisecond, nil)
	m.NodeDialed("db-1", time.Second, errors.New("refused"))
	m.Relayed(10, 2000)
	m.AuditAppended(3, time.Millisecond, nil)
	m.AuditAppended(1, time.Millisecond, errors.New("disk full"))
	m.NotifyFailed("slack", "failed")
	q := fakeQueue(4096)
	closed := m.RecordingOpened(&q)
	m.RecordingFailed("write")

	fams := scrape(t, m)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gatehouse_sessions_live", map[string]string{"node": "web-1"}, 2},
		{"gatehouse_sessions_live", map[string]string{"node": "db-1"}, 1},
		{"gatehouse_sessions_live", map[string]string{"node": "idle-1"}, 0},
		{"gatehouse_ssh_connections_total", map[string]string{"outcome": "authenticated"}, 2},
		{"gatehouse_ssh_connections_total", map[string]string{"outcome": "failed"}, 1},
		{"gatehouse_access_decisions_total", map[string]string{"outcome": "denied"}, 1},
		{"gatehouse_node_dial_duration_seconds", map[string]string{"node": "db-1", "outcome": "error"}, 1},
		{"gatehouse_relay_bytes_total", map[string]string{"direction": "from_node"}, 2000},
		{"gatehouse_relay_bytes_total", map[string]string{"direction": "to_node"}, 10},
		{"gatehouse_audit_append_duration_seconds", nil, 2},
		{"gatehouse_audit_append_failures_total", nil, 1},
		{"gatehouse_audit_events_total", nil, 3},
		{"gatehouse_notify_failures_total", map[string]string{"kind": "slack", "reason": "failed"}, 1},
		{"gatehouse_requests", map[string]string{"state": "PENDING"}, 2},
		{"gatehouse_recordings_open", nil, 1},
		{"gatehouse_recording_queued_bytes", nil, 4096},
		{"gatehouse_recording_failures_total", map[string]string{"stage": "write"}, 1},
		{"gatehouse_build_info", map[string]string{"version": "v1.2.3"}, 1},
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("Go runtime and process collectors are missing")
	}

	// Gauges follow the state they read; a closed recording leaves.
	live = nil
	closed()
	closed()
	fams = scrape(t, m)
	if got := value(fams, "gatehouse_sessions_live", map[string]string{"node": "web-1"}); got != 0 {
		t.Errorf("live sessions on web-1 after they ended = %v, want 0", got)
	}
	if got := value(fams, "gatehouse_recordings_open", nil); got != 0 {
		t.Errorf("open recordings after close = %v, want 0", got)
	}

	// A store that fails is counted and the rest is still served.
	reqErr = errors.New("connection refused")
	fams = scrape(t, m)
	if fams["gatehouse_ssh_connections_total"] == nil {
		t.Error("a failing source must not hide the other metrics")
	}
	// The error is counted while this scrape is gathered, so the next one
	// is sure to show it.
	reqErr = nil
	fams = scrape(t, m)
	if got := value(fams, "gatehouse_store_errors_total", map[string]string{"op": "list_requests"}); got != 1 {
		t.Errorf("store errors after a failed scrape query = %v, want 1", got)
	}
}

// TestMetricNamesFollowConventions runs Prometheus' own linter (promlint)
// over every metric: counters end in _total, units are base units named
// in the suffix, help text is present.
func TestMetricNamesFollowConventions(t *testing.T) {
	m := New(Sources{Nodes: []string{"n"}, LiveNodes: func() []string { return nil },
		Requests: func(context.Context) (map[string]int, error) { return map[string]int{"PENDING": 0}, nil }})
	// Vectors appear in the output only once they have a series.
	m.Connection("x")
	m.Decision("x")
	m.NodeDialed("n", time.Millisecond, nil)
	m.Relayed(1, 1)
	m.NotifyFailed("webhook", "dropped")
	m.StoreError("ping")
	m.RecordingFailed("open")
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gatehouse_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *Metrics
	m.Connection("authenticated")
	m.Decision("allowed")
	m.NodeDialed("n", time.Second, nil)
	m.Relayed(1, 2)
	m.AuditAppended(1, time.Second, nil)
	m.NotifyFailed("slack", "failed")
	m.StoreError("ping")
	m.RecordingFailed("open")
	q := fakeQueue(1)
	m.RecordingOpened(&q)()
}

// TestReadmeNamesExist checks that every gatehouse_* metric the README's
// "Operating Gatehouse" section names (in the table and the alert rules)
// is one this package exposes.
func TestReadmeNamesExist(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n## Operating Gatehouse\n")
	if !ok {
		t.Fatal("README.md has no Operating Gatehouse section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	m := New(Sources{Nodes: []string{"n"}, LiveNodes: func() []string { return nil },
		Requests: func(context.Context) (map[string]int, error) { return map[string]int{"PENDING": 0}, nil }})
	m.Connection("x")
	m.Decision("x")
	m.NodeDialed("n", time.Millisecond, nil)
	m.Relayed(1, 1)
	m.NotifyFailed("webhook", "dropped")
	m.StoreError("ping")
	m.RecordingFailed("open")
	fams := scrape(t, m)
	names := regexp.MustCompile(`gatehouse_[a-z_]+`).FindAllString(sec, -1)
	if len(names) < 15 {
		t.Fatalf("found only %d metric names in the README section", len(names))
	}
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_count", "_bucket", "_sum"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && fams[b] != nil {
				base = b
			}
		}
		if fams[base] == nil {
			t.Errorf("README names %s, which /metrics does not expose", n)
		}
	}
}

// TestStoreErrorOpsDocumented: the operations the bastion counts in
// gatehouse_store_errors_total (every StoreError("OP") outside tests) are
// exactly those the README's table lists, and the help text names each.
func TestStoreErrorOpsDocumented(t *testing.T) {
	call := regexp.MustCompile(`StoreError\("([a-z_]+)"\)`)
	inCode := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range call.FindAllStringSubmatch(string(data), -1) {
			inCode[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inCode) == 0 {
		t.Fatal("found no StoreError calls; the scan is broken")
	}

	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `gatehouse_store_errors_total` \\| counter \\| `op`: ([^|]+)\\|").FindStringSubmatch(string(data))
	if row == nil {
		t.Fatal("README.md has no gatehouse_store_errors_total row with its op labels")
	}
	inReadme := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(row[1], -1) {
		inReadme[m[1]] = true
	}
	if !maps.Equal(inCode, inReadme) {
		t.Errorf("the code counts store errors for ops %v, the README lists %v", slices.Sorted(maps.Keys(inCode)), slices.Sorted(maps.Keys(inReadme)))
	}

	m := New(Sources{})
	m.StoreError("ping")
	fams := scrape(t, m)
	help := fams["gatehouse_store_errors_total"].GetHelp()
	for op := range inCode {
		if !strings.Contains(help, op+" (") {
			t.Errorf("the help text does not name op %s: %q", op, help)
		}
	}
	if strings.Contains(help, "authorize") {
		t.Errorf("the help text names an op nothing records: %q", help)
	}
}
