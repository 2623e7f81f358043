package main

// End to end: each vendor's documented sample payload (ingest/adapters/testdata, sources
// in its README.md: developer.zendesk.com, developers.freshdesk.com, developers.intercom.com,
// app.delighted.com/docs/api/webhooks) posted to POST /v1/sources/{vendor} of a running
// cxlink ends up as the right rows in ClickHouse; a badly signed one is refused and
// leaves nothing.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/adapters"
)

const (
	e2eZendeskSecret   = "e2e-zendesk-signing-secret"
	e2eFreshdeskSecret = "e2e-freshdesk-shared-secret"
	e2eIntercomSecret  = "e2e-intercom-client-secret"
	e2eDelightedKey    = "e2e-delighted-api-key"
)

func vendorSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "ingest", "adapters", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postSigned posts body to the vendor's endpoint, signed as the vendor signs (or with a
// wrong key when bad), and returns the status code and answer.
func postSigned(t *testing.T, base, vendor string, body []byte, bad bool) (int, string) {
	t.Helper()
	key := map[string]adapters.Secret{"zendesk": e2eZendeskSecret, "freshdesk": e2eFreshdeskSecret,
		"intercom": e2eIntercomSecret, "delighted": e2eDelightedKey}[vendor]
	if bad {
		key = "not-the-configured-secret"
	}
	req, _ := http.NewRequest("POST", base+"/v1/sources/"+vendor, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch vendor {
	case "zendesk":
		ts := time.Now().UTC().Format(time.RFC3339)
		req.Header.Set("X-Zendesk-Webhook-Signature-Timestamp", ts)
		req.Header.Set("X-Zendesk-Webhook-Signature", base64.StdEncoding.EncodeToString(adapters.HMACSHA256(key, []byte(ts), body)))
	case "freshdesk":
		req.SetBasicAuth("cxlink", string(key))
	case "intercom":
		req.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(adapters.HMACSHA1(key, body)))
	case "delighted":
		req.Header.Set("X-Delighted-Webhook-Signature", "sha256="+hex.EncodeToString(adapters.HMACSHA256(key, body)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestVendorWebhooksEndToEnd(t *testing.T) {
	in := apptest.Start(t, nil, map[string]string{
		"CXLINK_ZENDESK_SIGNING_SECRET": e2eZendeskSecret,
		"CXLINK_FRESHDESK_SECRET":       e2eFreshdeskSecret,
		"CXLINK_INTERCOM_CLIENT_SECRET": e2eIntercomSecret,
		"CXLINK_DELIGHTED_API_KEY":      e2eDelightedKey,
		"CXLINK_SOURCE_TEAMS":           "zendesk:8447320466430=billing,intercom:5017691=alpha",
	})
	db := in.Database()

	// Badly signed first: refused, and nothing of them is ever stored.
	for vendor, sample := range map[string]string{
		"zendesk": "zendesk_ticket_created.json", "freshdesk": "freshdesk_ticket_created.json",
		"intercom": "intercom_conversation_rating_added.json", "delighted": "delighted_survey_response_updated.json",
	} {
		if code, body := postSigned(t, in.URL, vendor, vendorSample(t, sample), true); code != http.StatusUnauthorized {
			t.Errorf("%s badly signed: %d %s, want 401", vendor, code, body)
		}
	}

	posts := []struct {
		vendor, sample string
		code           int
	}{
		{"zendesk", "zendesk_ticket_created.json", 202},
		{"zendesk", "zendesk_ticket_status_changed.json", 202},
		{"zendesk", "zendesk_satisfaction_rating.json", 202},
		{"freshdesk", "freshdesk_ticket_created.json", 202},
		{"freshdesk", "freshdesk_priority_changed.json", 200}, // ignored
		{"freshdesk", "freshdesk_satisfaction_ratings.json", 202},
		{"intercom", "intercom_conversation_rating_added.json", 202},
		{"intercom", "intercom_user_created.json", 200}, // ignored
		{"delighted", "delighted_survey_response_updated.json", 202},
	}
	for _, p := range posts {
		if code, body := postSigned(t, in.URL, p.vendor, vendorSample(t, p.sample), false); code != p.code {
			t.Fatalf("%s %s: %d %s, want %d", p.vendor, p.sample, code, body, p.code)
		}
	}
	in.WaitCount(4, fmt.Sprintf("SELECT count() FROM %s.survey_responses FINAL", db))
	in.WaitCount(3, fmt.Sprintf("SELECT count() FROM %s.tickets FINAL", db))

	type row = string
	got := map[string]row{}
	for _, r := range in.Query(fmt.Sprintf(`SELECT id, survey, toString(score), toString(scale_min), toString(scale_max),
		toString(standard_score), ticket_id, team, agent_id, customer_id, channel, source, toString(occurred_at), late
		FROM %s.survey_responses FINAL ORDER BY id`, db)) {
		got[r[0].(string)] = fmt.Sprint(r[1:]...)
	}
	want := map[string]row{
		"zendesk:rating:35436":    fmt.Sprint("csat", "1", "0", "1", "5", "zendesk:208", "zendesk:44", "zendesk:135", "zendesk:7881", "", "zendesk", "2011-07-20 22:55:29", uint8(1)),
		"freshdesk:rating:102":    fmt.Sprint("csat", "7", "1", "7", "5", "freshdesk:432", "", "freshdesk:1", "freshdesk:2", "", "freshdesk", "2015-08-28 09:08:16", uint8(1)),
		"intercom:rating:335":     fmt.Sprint("csat", "5", "1", "5", "5", "intercom:335", "alpha", "intercom:991267715", "intercom:5ba682d23d7cf92bef87bfd4", "conversation", "intercom", "2024-06-27 12:56:52", uint8(1)),
		"delighted:response:5435": fmt.Sprint("nps", "9", "0", "10", "9", "", "", "", "delighted:5975", "", "delighted", "2024-11-21 11:00:44", uint8(1)),
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("survey_responses %s:\n got %q\nwant %q", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("survey_responses holds %d rows, want %d: %v", len(got), len(want), got)
	}

	tickets := map[string]string{}
	for _, r := range in.Query(fmt.Sprintf(`SELECT id, ticket_id, status, team, agent_id, channel, category, source
		FROM %s.tickets FINAL ORDER BY id`, db)) {
		tickets[r[0].(string)] = fmt.Sprint(r[1:]...)
	}
	for id, w := range map[string]string{
		"zendesk:event:cbe4028c-7239-495d-b020-f22348516046": fmt.Sprint("zendesk:5158", "created", "billing", "zendesk:8447388090494", "web_service", "task", "zendesk"),
		"zendesk:event:5d2c7b1e-8f0a-4c55-9a61-2f3e4d5c6b7a": fmt.Sprint("zendesk:5158", "solved", "billing", "zendesk:8447388090494", "web_service", "task", "zendesk"),
	} {
		if tickets[id] != w {
			t.Errorf("tickets %s:\n got %q\nwant %q", id, tickets[id], w)
		}
	}
	freshdesk := 0
	for id, r := range tickets {
		if len(id) > 17 && id[:17] == "freshdesk:ticket:" {
			freshdesk++
			if r != fmt.Sprint("freshdesk:11", "created", "", "", "", "incident", "freshdesk") {
				t.Errorf("tickets %s: %q", id, r)
			}
		}
	}
	if freshdesk != 1 || len(tickets) != 3 {
		t.Errorf("tickets: %v", tickets)
	}

	// Redelivered by the vendor: duplicates, the tables do not change.
	if code, body := postSigned(t, in.URL, "intercom", vendorSample(t, "intercom_conversation_rating_added.json"), false); code != 202 || !strings.Contains(body, `"duplicates":1`) {
		t.Errorf("redelivery: %d %s, want 202 and a duplicate (JetStream did not store it again)", code, body)
	}
	if n := in.Count(fmt.Sprintf("SELECT count() FROM %s.survey_responses", db)); n != 4 {
		t.Errorf("after a redelivery survey_responses holds %d rows, want 4", n)
	}
}
