package app

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/stream"
)

type memPublisher struct {
	mu     sync.Mutex
	events map[string]event.Event
}

func (p *memPublisher) Publish(_ context.Context, events []event.Event) []stream.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]stream.Result, len(events))
	for i, e := range events {
		_, out[i].Duplicate = p.events[e.ID]
		p.events[e.ID] = e
	}
	return out
}

// An HR pulse export imported with a one-event mapping given as flags.
func TestImportWithFieldFlags(t *testing.T) {
	pub := &memPublisher{events: map[string]event.Event{}}
	h, err := httpapi.New(apiConfig(t),
		httpapi.Options{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	t.Chdir(dir)
	csv := "response_id,submitted,employee,team,q1\nr-1,16/11/2026 09:12,e-17,alpha,4\nr-2,16/11/2026 09:13,e-18,alpha,6\nr-3,16/11/2026 09:14,e-19,beta,\n"
	if err := os.WriteFile(filepath.Join(dir, "pulse.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"import", "--target", srv.URL, "--source", "hr", "--type", "employee_pulse", "--key", "response_id",
		"--time-format", "02/01/2006 15:04", "--time-zone", "Europe/Paris",
		"--field", "occurred_at={submitted}", "--field", "employee_id={employee}", "--field", "team={team}",
		"--field", "question=engagement", "--field", "score={q1}", "pulse.csv"}
	var out bytes.Buffer
	if err := Run(t.Context(), args, Options{Stdout: &out}); err == nil || !strings.Contains(err.Error(), "CXLINK_IMPORT_ID_KEY") {
		t.Fatalf("derived pulse ids without a key: %v", err)
	}
	if err := Run(t.Context(), args, Options{Stdout: &out, Environ: map[string]string{"CXLINK_IMPORT_ID_KEY": "import-test-key-0123456789"}}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "3 rows (0 unreadable), 3 events: 1 accepted, 0 duplicates, 2 rejected") {
		t.Errorf("summary: %s", out.String())
	}
	if len(pub.events) != 1 {
		t.Fatalf("stored %v", pub.events)
	}
	for _, e := range pub.events {
		if e.EmployeeID != "e-17" || e.OccurredAt != time.Date(2026, 11, 16, 8, 12, 0, 0, time.UTC) || !strings.HasPrefix(e.ID, "hr:employee_pulse:") {
			t.Errorf("event %+v", e)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "pulse.csv.import-errors.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3,employee_pulse,", ",score,6 is outside the scale 1–5", "4,employee_pulse,", ",score,is required"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// Flags that cannot make a mapping are refused before anything is read.
	err = Run(t.Context(), []string{"import", "--target", srv.URL, "--type", "ticket", "--field", "stauts=solved", "pulse.csv"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "--source") {
		t.Errorf("missing --source: %v", err)
	}
	err = Run(t.Context(), []string{"import", "--target", srv.URL, "--source", "x", "--type", "ticket", "--field", "stauts=solved", "pulse.csv"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "stauts") || !strings.Contains(err.Error(), "occurred_at") {
		t.Errorf("bad field: %v", err)
	}
}

// apiConfig is the ingest API's default configuration, with a short publish timeout.
func apiConfig(t *testing.T) httpapi.Config {
	t.Helper()
	cfg := httpapi.DefaultConfig()
	cfg.PublishTimeout = 5 * time.Second
	return cfg
}
