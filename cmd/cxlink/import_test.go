package main

// `cxlink import` of a public helpdesk export (testdata/customer_support_tickets.csv,
// 2,769 rows, 1,365 of them with a resolution before their first response) into a running
// cxlink: importing it twice gives the same rows as importing it once, and the bad rows
// are reported with their line numbers and reasons.

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
)

func TestImportSupportTicketsTwice(t *testing.T) {
	// The export's tickets are of 2023: kept whatever their age, or the retention of raw
	// events (400 days by default) would drop them as they arrive.
	in := apptest.Start(t, nil, map[string]string{"CXLINK_RETENTION_RAW": "0"})
	db := in.Database()
	src := filepath.Join("testdata", "customer_support_tickets.csv")
	dir := t.TempDir()
	report := filepath.Join(dir, "errors.csv")
	state := filepath.Join(dir, "state.json")

	run := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		err := app.Run(t.Context(), []string{"import", "--target", in.URL, "--mapping", "../../deploy/import/customer_support_tickets.yml",
			"--batch", "500", "--state", state, "--report", report, src}, app.Options{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatalf("import: %v\n%s\n%s", err, out.String(), errOut.String())
		}
		if !strings.Contains(errOut.String(), "rows/s") || !strings.Contains(errOut.String(), "ETA") || !strings.Contains(errOut.String(), "100%") {
			t.Errorf("no progress bar on stderr:\n%s", errOut.String())
		}
		return out.String()
	}
	snapshot := func() string {
		t.Helper()
		var b strings.Builder
		for _, table := range []string{"survey_responses", "tickets"} {
			// Every row as stored, with its version and received_at: a second copy of an
			// event, or the same event stored again, changes the sum.
			q := "SELECT count(), uniqExact(id), sum(cityHash64(id, ticket_id, occurred_at, received_at, channel, category, version, partition, seq)) FROM %s.%s"
			for _, r := range in.Query(fmt.Sprintf(q, db, table)) {
				fmt.Fprintf(&b, "%s %v; ", table, r)
			}
		}
		return b.String()
	}

	first := run()
	t.Logf("first import: %s", first)
	if !strings.Contains(first, "2769 rows (0 unreadable), 5538 events: 4173 accepted, 0 duplicates, 1365 rejected") {
		t.Errorf("first import: %s", first)
	}
	in.WaitCount(2769, fmt.Sprintf("SELECT count() FROM %s.survey_responses FINAL", db))
	in.WaitCount(1404, fmt.Sprintf("SELECT count() FROM %s.tickets FINAL", db))
	once := snapshot()

	second := run()
	t.Logf("second import: %s", second)
	if !strings.Contains(second, "4173 duplicates") || !strings.Contains(second, "0 accepted") {
		t.Errorf("second import: %s", second)
	}
	if twice := snapshot(); twice != once {
		t.Errorf("importing twice changed the tables:\n once %s\ntwice %s", once, twice)
	}
	t.Logf("tables after one and after two imports: %s", once)

	// Every dirty row is reported by line; line 2 is the first data row, so a row's line is
	// its Ticket_ID's position in the file + 1.
	f, err := os.Open(report)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+1365 || strings.Join(rows[0], ",") != "line,event,id,field,reason" {
		t.Fatalf("report: %d rows, header %v", len(rows), rows[0])
	}
	// Ticket 4 is on line 3 of the export: resolved at 1:57 after a first response at 7:29.
	if r := rows[1]; r[0] != "3" || r[1] != "solved" || r[3] != "handle_seconds" || !strings.Contains(r[4], "-19920 is not a handle time") {
		t.Errorf("first reported row: %v", r)
	}
	if n := in.Count(fmt.Sprintf("SELECT count() FROM %s.survey_responses FINAL WHERE late = 1", db)); n != 2769 {
		t.Errorf("%d imported ratings are marked late, want all 2769 (history lands in the raw tables)", n)
	}
}
