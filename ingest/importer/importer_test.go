package importer_test

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/importer"
	"github.com/cxlink/cxlink/ingest/stream"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// mappings is deploy/import, found before any test changes directory.
var mappings, _ = filepath.Abs(filepath.Join("..", "..", "deploy", "import"))

// store is a publisher that keeps one event per id, as JetStream's deduplication does.
type store struct {
	mu     sync.Mutex
	events map[string]event.Event
	calls  int
	// arrived counts the calls begun, busy those in progress and maxBusy their most.
	arrived, busy, maxBusy int
	// before is called as each Publish begins with the number of calls begun so far.
	before func(arrived int)
	// after is called after each Publish with the number of calls so far.
	after func(calls int)
	// refuse answers every later call "failed" without storing (a server that stopped).
	refuse bool
}

func (s *store) Publish(_ context.Context, events []event.Event) []stream.Result {
	s.mu.Lock()
	if s.refuse {
		s.mu.Unlock()
		out := make([]stream.Result, len(events))
		for i := range out {
			out[i].Err = errors.New("stopped")
		}
		return out
	}
	s.arrived++
	s.busy++
	s.maxBusy = max(s.maxBusy, s.busy)
	arrived, before, after := s.arrived, s.before, s.after
	s.mu.Unlock()
	if before != nil {
		before(arrived)
	}
	s.mu.Lock()
	s.busy--
	out := make([]stream.Result, len(events))
	for i, e := range events {
		if _, dup := s.events[e.ID]; dup {
			out[i].Duplicate = true
			continue
		}
		s.events[e.ID] = e
	}
	s.calls++
	calls := s.calls
	s.mu.Unlock()
	if after != nil {
		after(calls)
	}
	return out
}

// waitBusy waits until n requests are at the API at once, or d has passed.
func (s *store) waitBusy(n int, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		busy := s.busy
		s.mu.Unlock()
		if busy >= n {
			return
		}
	}
}

// hooks sets before and after while requests may still be at the API.
func (s *store) hooks(before func(arrived int), after func(calls int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before, s.after = before, after
}

func (s *store) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func newAPI(t *testing.T) (*store, string) {
	t.Helper()
	s := &store{events: map[string]event.Event{}}
	h, err := httpapi.New(apiConfig(t),
		httpapi.Options{Publisher: s, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

const tickets = `Ticket_ID,Ticket_Type,Ticket_Channel,First_Response_Time,Time_to_Resolution,Customer_Satisfaction_Rating
3,Technical issue,Social media,2023-06-01 11:14,2023-06-01 18:05,3
4,Billing inquiry,Social media,2023-06-01 7:29,2023-06-01 1:57,3
5,Billing inquiry,Email,2023-06-01 0:12,2023-06-01 19:53,
11,Cancellation request,Phone,2023-06-01 17:46,2023-06-01 23:51,9
12,Refund request,Chat,2023-06-01 17:46
15,"Product
inquiry",Chat,2023-06-01 10:00,2023-06-01 11:00,5
16,Refund request,Chat,yesterday,2023-06-01 11:00,5
`

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mapping(t *testing.T) *importer.Mapping {
	t.Helper()
	m, err := importer.LoadMapping(filepath.Join(mappings, "customer_support_tickets.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readReport(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows[1:]
}

func TestImportCSVReportsBadRowsByLine(t *testing.T) {
	s, url := newAPI(t)
	dir := t.TempDir()
	t.Chdir(dir) // the state and the report go to the current directory
	path := write(t, dir, "tickets.csv", tickets)
	stats, err := importer.Run(t.Context(), importer.Options{Path: path, Mapping: mapping(t), Target: url, BatchSize: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Rows != 7 || stats.BadRows != 1 || stats.Skipped != 1 {
		t.Errorf("stats %+v", stats)
	}
	report := readReport(t, path+".import-errors.csv")
	got := []string{}
	for _, r := range report {
		got = append(got, strings.Join([]string{r[0], r[1], r[3]}, " "))
	}
	want := []string{
		"3 solved handle_seconds", // resolution before first response: -19920 s
		"5 csat score",            // 9 on a 1–5 scale
		"6  (row)",                // too few fields
		"7 solved category",       // a line break inside a label (the row spans lines 7-8)
		"9 solved handle_seconds", // "yesterday" is not a timestamp
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("report:\n got %q\nwant %q\n%v", got, want, report)
	}
	for _, r := range report {
		if r[0] == "3" && !strings.Contains(r[4], "-19920 is not a handle time") {
			t.Errorf("line 3 reason: %q", r[4])
		}
		if r[0] == "9" && !strings.Contains(r[4], `"yesterday"`) {
			t.Errorf("line 9 reason: %q", r[4])
		}
	}
	// Rows 3 (ticket + rating), 4 (rating only), 5 (ticket, no rating), 11 (ticket), the
	// multi-line row 15 (rating only) and 16 (rating only).
	if n := len(s.ids()); n != 7 || stats.Accepted != 7 || stats.Rejected != 4 {
		t.Errorf("stored %d, stats %+v: %v", n, stats, s.ids())
	}
	e := s.events[findID(t, s, "csat", "support-csv:15")]
	if e.Channel != "chat" || *e.Score != 5 || e.OccurredAt != time.Date(2023, 6, 1, 11, 0, 0, 0, time.UTC) {
		t.Errorf("row 15 csat: %+v", e)
	}
	if _, err := os.Stat(path + ".import-state.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after a complete import: %v", err)
	}
}

func findID(t *testing.T, s *store, name, ticket string) string {
	t.Helper()
	for id, e := range s.events {
		if strings.Contains(id, ":"+name+":") && e.TicketID == ticket {
			return id
		}
	}
	t.Fatalf("no %s event of %s", name, ticket)
	return ""
}

func TestImportTwiceStoresNothingTwice(t *testing.T) {
	s, url := newAPI(t)
	dir := t.TempDir()
	t.Chdir(dir)
	path := write(t, dir, "tickets.csv", tickets)
	opts := importer.Options{Path: path, Mapping: mapping(t), Target: url, Now: func() time.Time { return now }}
	first, err := importer.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := s.ids()
	second, err := importer.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Accepted != 0 || second.Duplicates != first.Accepted || !slices.Equal(s.ids(), ids) {
		t.Errorf("second import %+v after %+v; ids before %d, after %d", second, first, len(ids), len(s.ids()))
	}
}

func TestImportResumesAfterInterruption(t *testing.T) {
	var b strings.Builder
	b.WriteString("response_id,submitted_at,employee,team,engagement,enps\n")
	for i := range 250 {
		fmt.Fprintf(&b, "r-%d,2026-11-16T09:%02d:00Z,e-%d,team-%d,%d,%d\n", i, i%60, i, i%5, 1+i%5, i%11)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	path := write(t, dir, "pulse.csv", b.String())
	m, err := importer.LoadMapping(filepath.Join(mappings, "hr_pulse.yml"))
	if err != nil {
		t.Fatal(err)
	}

	// The reference: one uninterrupted import.
	ref, url := newAPI(t)
	if _, err := importer.Run(t.Context(), importer.Options{Path: path, Mapping: m, Target: url, BatchSize: 40, StatePath: filepath.Join(dir, "ref.json"), ReportPath: filepath.Join(dir, "ref.csv"), Now: func() time.Time { return now }, IDKey: idKey}); err != nil {
		t.Fatal(err)
	}
	if len(ref.ids()) != 500 {
		t.Fatalf("reference import stored %d events", len(ref.ids()))
	}

	// Interrupted after the third batch was acknowledged. One request at a time, so that
	// the first three batches are the three acknowledged (with several in flight the
	// first may still be unanswered, and nothing is committed: the test with several in
	// flight holds a request to check that).
	s, url := newAPI(t)
	ctx, cancel := context.WithCancel(t.Context())
	s.after = func(calls int) {
		if calls == 3 {
			cancel()
		}
	}
	opts := importer.Options{Path: path, Mapping: m, Target: url, BatchSize: 40, InFlight: 1, Now: func() time.Time { return now }, IDKey: idKey}
	stats, err := importer.Run(ctx, opts)
	if !errors.Is(err, importer.ErrInterrupted) && !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v (%+v)", err, stats)
	}
	partial := len(s.ids())
	if partial == 0 || partial >= 500 {
		t.Fatalf("interrupted import stored %d events", partial)
	}
	if _, err := os.Stat(path + ".import-state.json"); err != nil {
		t.Fatalf("no state file after an interruption: %v", err)
	}
	s.hooks(nil, nil)
	stats, err = importer.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if stats.ResumedAt < 2 {
		t.Errorf("not resumed: %+v", stats)
	}
	if !slices.Equal(s.ids(), ref.ids()) {
		t.Errorf("after resuming: %d events, want the %d of an uninterrupted import", len(s.ids()), len(ref.ids()))
	}
	if stats.Rows != 250 || stats.Accepted+stats.Duplicates < 500 {
		t.Errorf("resumed stats %+v", stats)
	}

	// A changed file is not resumed into.
	write(t, dir, "pulse.csv.import-state.json", fmt.Sprintf(`{"path": %q, "size": 1, "offset": 10, "line": 2}`, path))
	if _, err := importer.Run(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "--restart") {
		t.Errorf("state of another file: %v", err)
	}
}

// Answers that come in any order, and a stop while several batches are in flight, leave
// the counts, the report and the stored events exactly as one import in one go: the
// state only passes batches answered with all before them, and a resumed import sends
// again the rest, which then count as duplicates.
func TestImportResumesWithSeveralBatchesInFlight(t *testing.T) {
	var b strings.Builder
	b.WriteString("response_id,submitted_at,employee,team,engagement,enps\n")
	for i := range 250 {
		switch {
		case i%31 == 5:
			fmt.Fprintf(&b, "r-%d,2026-11-16T09:00:00Z\n", i) // too few fields
		case i%17 == 3:
			fmt.Fprintf(&b, "r-%d,2026-11-16T09:%02d:00Z,e-%d,team-%d,9,%d\n", i, i%60, i, i%5, i%11) // engagement out of 1–5
		case i%13 == 7:
			fmt.Fprintf(&b, "r-%d,2026-11-16T09:%02d:00Z,e-%d,team-%d,,%d\n", i, i%60, i, i%5, i%11) // no engagement answer
		default:
			fmt.Fprintf(&b, "r-%d,2026-11-16T09:%02d:00Z,e-%d,team-%d,%d,%d\n", i, i%60, i, i%5, 1+i%5, i%11)
		}
	}
	dir := t.TempDir()
	t.Chdir(dir)
	path := write(t, dir, "pulse.csv", b.String())
	m, err := importer.LoadMapping(filepath.Join(mappings, "hr_pulse.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sortedReport := func(p string) []string {
		var out []string
		for _, r := range readReport(t, p) {
			out = append(out, strings.Join(r, "|"))
		}
		slices.Sort(out)
		return out
	}

	// The reference: one request at a time, in one go.
	ref, url := newAPI(t)
	refOpts := importer.Options{Path: path, Mapping: m, Target: url, BatchSize: 40, InFlight: 1, StatePath: filepath.Join(dir, "ref.json"),
		ReportPath: filepath.Join(dir, "ref.csv"), Now: func() time.Time { return now }, IDKey: idKey}
	want, err := importer.Run(t.Context(), refOpts)
	if err != nil {
		t.Fatal(err)
	}
	wantReport := sortedReport(refOpts.ReportPath)
	if want.Rows != 250 || want.BadRows == 0 || want.Rejected == 0 || want.Skipped == 0 || want.Accepted != len(ref.ids()) {
		t.Fatalf("reference import %+v, stored %d", want, len(ref.ids()))
	}

	// Four in flight, the odd requests answered late: the same counts and report.
	shuffled, url := newAPI(t)
	shuffled.before = func(arrived int) {
		switch {
		case arrived == 1:
			// Held until a second request is in flight: an importer that sends one at
			// a time never gets there, however fast or slow the machine.
			shuffled.waitBusy(2, 10*time.Second)
		case arrived%2 == 1:
			time.Sleep(30 * time.Millisecond)
		}
	}
	o := refOpts
	o.Target, o.InFlight, o.ReportPath, o.StatePath = url, 4, filepath.Join(dir, "shuffled.csv"), filepath.Join(dir, "shuffled.json")
	got, err := importer.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || !slices.Equal(shuffled.ids(), ref.ids()) || !slices.Equal(sortedReport(o.ReportPath), wantReport) {
		t.Errorf("answers out of order: %+v, want %+v", got, want)
	}
	if shuffled.maxBusy < 2 {
		t.Errorf("at most %d requests were in flight at once", shuffled.maxBusy)
	}

	// Stopped while the second request to arrive is held and three later ones were
	// answered: those may not be committed past the held one.
	s, url := newAPI(t)
	ctx, cancel := context.WithCancel(t.Context())
	held := make(chan struct{})
	s.before = func(arrived int) {
		if arrived == 2 {
			<-held
		}
	}
	s.after = func(calls int) {
		if calls == 3 {
			// A request the client gives up on may still reach the API after that: what
			// it stores would count among the duplicates or not, depending on timing.
			s.mu.Lock()
			s.refuse = true
			s.mu.Unlock()
			cancel()
		}
	}
	opts := importer.Options{Path: path, Mapping: m, Target: url, BatchSize: 40, InFlight: 4, Now: func() time.Time { return now }, IDKey: idKey}
	first, err := importer.Run(ctx, opts)
	if !errors.Is(err, importer.ErrInterrupted) {
		t.Fatalf("interrupted import: %v (%+v)", err, first)
	}
	close(held) // the held batch is stored now, its answer lost
	// Wait for the calls begun before the stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		settled := s.calls == s.arrived
		s.mu.Unlock()
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held request did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stored := len(s.ids())
	if s.maxBusy < 2 || first.Accepted >= stored || first.Rows >= 250 {
		t.Fatalf("stopped import: %+v, %d stored, at most %d requests at once", first, stored, s.maxBusy)
	}

	s.hooks(nil, nil)
	s.mu.Lock()
	s.refuse = false
	s.mu.Unlock()
	got, err = importer.Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.ids(), ref.ids()) {
		t.Errorf("after resuming: %d events, want the %d of the reference", len(s.ids()), len(ref.ids()))
	}
	// Every row counted once; the events stored before the stop but after the state are
	// the duplicates.
	if got.Rows != want.Rows || got.BadRows != want.BadRows || got.Events != want.Events || got.Rejected != want.Rejected ||
		got.Skipped != want.Skipped || got.Accepted+got.Duplicates != want.Accepted || got.Duplicates != stored-first.Accepted {
		t.Errorf("resumed %+v after %+v (%d stored), want %+v with %d duplicates", got, first, stored, want, stored-first.Accepted)
	}
	if r := sortedReport(path + ".import-errors.csv"); !slices.Equal(r, wantReport) {
		t.Errorf("report after resuming:\n%q\nwant\n%q", r, wantReport)
	}
}

func TestImportContractEvents(t *testing.T) {
	s, url := newAPI(t)
	dir := t.TempDir()
	t.Chdir(dir)
	nd := write(t, dir, "events.ndjson", `{"id":"p-1","type":"employee_pulse","occurred_at":"2026-11-20T09:00:00Z","employee_id":"e1","team":"alpha","question":"engagement","score":4}

{"id":"p-2","type":"employee_pulse","occurred_at":"2026-11-20T09:00:00Z","employee_id":"e2","team":"alpha","question":"engagement","score":7}
not json
`)
	stats, err := importer.Run(t.Context(), importer.Options{Path: nd, Target: url, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Accepted != 1 || stats.Rejected != 1 || stats.BadRows != 1 {
		t.Errorf("ndjson stats %+v", stats)
	}
	report := readReport(t, nd+".import-errors.csv")
	if len(report) != 2 || report[0][0] != "3" || report[0][3] != "score" || report[1][0] != "4" {
		t.Errorf("ndjson report %q", report)
	}
	c := write(t, dir, "events.csv", "id,type,occurred_at,survey,score,ticket_id\nc-1,survey_response,2026-11-20T09:00:00Z,ces,6,t-1\nc-2,survey_response,2026-11-20T09:00:00Z,ces,,t-1\n")
	stats, err = importer.Run(t.Context(), importer.Options{Path: c, Target: url, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Accepted != 1 || stats.Rejected != 1 || s.events["c-1"].TicketID != "t-1" {
		t.Errorf("csv stats %+v, %v", stats, s.ids())
	}
	if _, err := importer.Run(t.Context(), importer.Options{Path: write(t, dir, "x.csv", "Ticket,Rating\n1,2\n"), Target: url}); err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Errorf("unmapped CSV: %v", err)
	}
}

func TestMappingErrorsAreReportedTogether(t *testing.T) {
	p := write(t, t.TempDir(), "m.yml", "events:\n  - type: ticket\n    fields: {stauts: solved}\n  - type: chat\n")
	_, err := importer.LoadMapping(p)
	for _, want := range []string{"source", "stauts", "occurred_at", `"chat"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mapping error does not mention %s: %v", want, err)
		}
	}
}

// apiConfig is the ingest API's default configuration, with a short publish timeout.
func apiConfig(t *testing.T) httpapi.Config {
	t.Helper()
	cfg := httpapi.DefaultConfig()
	cfg.PublishTimeout = 5 * time.Second
	return cfg
}

// idKey keys the derived ids of the tests' pulse imports.
var idKey = []byte("importer-test-id-key-0123456789")

// Pulse ids derived from rows are keyed: without the key an import is refused; with it,
// nobody holding the employee directory and the export's layout can recompute an id,
// not even knowing every column of the row (the unkeyed SHA-256 of the row could be);
// and an id template naming the employee column is refused.
func TestPulseIDsAreKeyed(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	row := []string{"r-1", "2026-11-16T09:12:00Z", "e-17", "alpha", "4", "9"}
	path := write(t, dir, "pulse.csv", "response_id,submitted_at,employee,team,engagement,enps\n"+strings.Join(row, ",")+"\n")
	m, err := importer.LoadMapping(filepath.Join(mappings, "hr_pulse.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, url := newAPI(t)
	if _, err := importer.Run(t.Context(), importer.Options{Path: path, Mapping: m, Target: url, Now: func() time.Time { return now }}); !errors.Is(err, importer.ErrNoIDKey) {
		t.Fatalf("a pulse import without a key: %v", err)
	}
	s, url := newAPI(t)
	if _, err := importer.Run(t.Context(), importer.Options{Path: path, Mapping: m, Target: url, Now: func() time.Time { return now }, IDKey: idKey}); err != nil {
		t.Fatal(err)
	}
	ids := s.ids()
	if len(ids) != 2 {
		t.Fatalf("ids %v", ids)
	}
	// The attacker's guesses: the unkeyed derivation over the key column, and over every
	// column, for each question.
	for _, name := range []string{"engagement", "enps"} {
		for _, cols := range [][]string{{"r-1"}, row} {
			h := sha256.New()
			h.Write([]byte("hr-pulse\x00" + name))
			for _, c := range cols {
				h.Write([]byte{0})
				h.Write([]byte(c))
			}
			guess := "hr-pulse:" + name + ":" + hex.EncodeToString(h.Sum(nil)[:12])
			if slices.Contains(ids, guess) {
				t.Errorf("id %s recomputed without the key", guess)
			}
		}
	}
	bad := *m
	bad.Events = slices.Clone(m.Events)
	bad.Events[0].Fields = maps.Clone(m.Events[0].Fields)
	bad.Events[0].Fields["id"] = importer.Value{Text: "pulse-{employee}-{submitted_at}"}
	if err := bad.Compile(); err == nil || !strings.Contains(err.Error(), "would name the employee") {
		t.Errorf("an id template with the employee column: %v", err)
	}
}
