package main

// End to end: a case is acknowledged and closed through the API by a credential scoped to
// its owner (others are refused), the table records when and why, the metrics count the
// time to close and the overdue cases, and `cxlink followups` lists what is still open.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

func TestFollowUpAcknowledgeAndClose(t *testing.T) {
	helpdesk, helpdeskLine, err := auth.NewToken("helpdesk", "types=survey_response,ticket")
	if err != nil {
		t.Fatal(err)
	}
	billingCRM, billingLine, _ := auth.NewToken("billing-crm", "followups=billing")
	webCRM, webLine, _ := auth.NewToken("web-crm", "followups=web")
	credentials := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(credentials, []byte(helpdeskLine+"\n"+billingLine+"\n"+webLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	env := maps.Clone(apptest.Defaults)
	maps.Copy(env, map[string]string{
		"CXLINK_DATA_DIR":       t.TempDir(),
		"CLICKHOUSE_ADDR":       ch.Addr(),
		"CLICKHOUSE_DATABASE":   database,
		"CXLINK_AUTH":           "required",
		"CXLINK_AUTH_FILE":      credentials,
		"CXLINK_OWNERS":         "category:billing=billing, category:login_problem=web, *=support",
		"CXLINK_FOLLOWUP_RULES": "ces<=2",
		// Billing's cases are overdue at once; web has a day.
		"CXLINK_FOLLOWUP_DUE": "billing=1s, *=24h",
	})
	url, _ := runCxlinkUntilStopped(t, env)
	db, err := clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	var events []map[string]any
	for i, cat := range []string{"billing", "billing", "login_problem"} {
		tk := "T-" + strconv.Itoa(i)
		events = append(events,
			map[string]any{"id": "tk-" + tk, "type": "ticket", "ticket_id": tk, "status": "solved", "category": cat, "occurred_at": at(-2 * time.Minute)},
			map[string]any{"id": "ces-" + tk, "type": "survey_response", "survey": "ces", "score": 1, "ticket_id": tk,
				"customer_id": "C-" + tk, "comment": "no answer for a week", "occurred_at": at(-time.Minute)})
	}
	if code, body := postWith(t, url+"/v1/events", helpdesk, events); code/100 != 2 {
		t.Fatalf("post: %d %s", code, body)
	}
	countCases := func(where string) uint64 {
		var n uint64
		if err := db.Conn().QueryRow(t.Context(), "SELECT count() FROM "+database+".followups FINAL WHERE "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	followUpWait(t, time.Minute, func() bool { return countCases("1") == 3 })
	billing0, web := followup.CaseID("ces-T-0"), followup.CaseID("ces-T-2")
	time.Sleep(2 * time.Second) // billing's 1s: closed overdue

	// Scopes: web's credential may not touch billing's case, nor may an ingest token.
	for _, tc := range []struct {
		token, path string
		body        any
		want        int
	}{
		{webCRM, "/v1/followups/" + billing0 + "/acknowledge", nil, http.StatusForbidden},
		{helpdesk, "/v1/followups/" + billing0 + "/close", map[string]string{"reason": "resolved"}, http.StatusForbidden},
		{"", "/v1/followups/" + billing0 + "/close", map[string]string{"reason": "resolved"}, http.StatusUnauthorized},
		{billingCRM, "/v1/followups/" + billing0 + "/close", map[string]string{"reason": "bribed"}, http.StatusBadRequest},
		{billingCRM, "/v1/followups/fu-000000000000000000000000/close", map[string]string{"reason": "resolved"}, http.StatusNotFound},
	} {
		if code, body := postWith(t, url+tc.path, tc.token, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.path, code, body, tc.want)
		}
	}

	code, body := postWith(t, url+"/v1/followups/"+billing0+"/acknowledge", billingCRM, map[string]string{"by": "alice"})
	var c records.FollowUp
	if json.Unmarshal([]byte(body), &c); code != http.StatusOK || c.State != records.FollowUpAcknowledged || c.AcknowledgedBy != "alice" {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	code, body = postWith(t, url+"/v1/followups/"+billing0+"/close", billingCRM, map[string]string{"reason": "resolved", "note": "refunded the double charge"})
	if json.Unmarshal([]byte(body), &c); code != http.StatusOK || c.State != records.FollowUpClosed || c.CloseReason != "resolved" || c.ClosedBy != "billing-crm" {
		t.Fatalf("close: %d %s", code, body)
	}
	// The same close again is answered with the case; another reason conflicts.
	if code, _ := postWith(t, url+"/v1/followups/"+billing0+"/close", billingCRM, map[string]string{"reason": "resolved"}); code != http.StatusOK {
		t.Errorf("repeated close: %d", code)
	}
	if code, _ := postWith(t, url+"/v1/followups/"+billing0+"/close", billingCRM, map[string]string{"reason": "duplicate"}); code != http.StatusConflict {
		t.Errorf("close with another reason: %d", code)
	}
	if code, _ := postWith(t, url+"/v1/followups/"+web+"/acknowledge", webCRM, nil); code != http.StatusOK {
		t.Errorf("web acknowledges its case: %d", code)
	}

	followUpWait(t, time.Minute, func() bool { return countCases("state = 'closed'") == 1 && countCases("state = 'acknowledged'") == 1 })
	var reason, note, by string
	var openedAt, closedAt time.Time
	if err := db.Conn().QueryRow(t.Context(), "SELECT close_reason, close_note, closed_by, opened_at, assumeNotNull(closed_at) FROM "+database+
		".followups FINAL WHERE id = ?", billing0).Scan(&reason, &note, &by, &openedAt, &closedAt); err != nil {
		t.Fatal(err)
	}
	if reason != "resolved" || note != "refunded the double charge" || by != "billing-crm" || closedAt.Before(openedAt) || closedAt.Sub(openedAt) > time.Minute {
		t.Fatalf("closed row: %s %q %s %s→%s", reason, note, by, openedAt, closedAt)
	}

	// Metrics: time to close, closed over due, one billing case still open and overdue.
	metrics := func() string { return get(t, url+"/metrics") }
	followUpWait(t, time.Minute, func() bool {
		m := metrics()
		return strings.Contains(m, `cxlink_followup_overdue_cases{owner="billing"} 1`) &&
			strings.Contains(m, `cxlink_followup_open_cases{owner="web"} 1`)
	})
	m := metrics()
	for _, want := range []string{
		`cxlink_followup_time_to_close_seconds_count{owner="billing"} 1`,
		`cxlink_followup_time_to_acknowledge_seconds_count{owner="billing"} 1`,
		`cxlink_followup_time_to_acknowledge_seconds_count{owner="web"} 1`,
		`cxlink_followup_closed_total{owner="billing",reason="resolved",within_due="false"} 1`,
		`cxlink_followup_overdue_cases{owner="web"} 0`,
		`cxlink_followup_decisions_total{outcome="opened"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if re := regexp.MustCompile(`cxlink_followup_open_cases\{owner="billing"\} (\d+)`).FindStringSubmatch(m); re == nil || re[1] != "1" {
		t.Errorf("billing's open cases: %v", re)
	}

	// The terminal view.
	var out bytes.Buffer
	if err := app.Run(context.Background(), []string{"followups"}, app.Options{Environ: env, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("cxlink followups:\n%s", text)
	if !strings.Contains(text, "not closed: 2, overdue: 1") || !strings.Contains(text, followup.CaseID("ces-T-1")) ||
		!strings.Contains(text, "OVERDUE") || strings.Contains(text, billing0) {
		t.Fatalf("cxlink followups:\n%s", text)
	}
	out.Reset()
	if err := app.Run(context.Background(), []string{"followups", "--overdue", "--format", "json"}, app.Options{Environ: env, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var listed []records.FollowUp
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil || len(listed) != 1 || listed[0].Owner != "billing" || listed[0].CustomerID != "C-T-1" {
		t.Fatalf("--overdue --format json: %v %s", err, out.String())
	}
}

// postWith posts body as JSON (events as NDJSON) with a bearer token ("" for none).
func postWith(t *testing.T, url, token string, body any) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	contentType := "application/json"
	if events, ok := body.([]map[string]any); ok {
		contentType = "application/x-ndjson"
		enc := json.NewEncoder(&buf)
		for _, e := range events {
			enc.Encode(e)
		}
	} else if body != nil {
		json.NewEncoder(&buf).Encode(body)
	}
	req, _ := http.NewRequest(http.MethodPost, url, &buf)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}
