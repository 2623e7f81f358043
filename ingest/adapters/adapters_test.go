package adapters_test

// The payloads are the vendors' documented examples, in testdata/ (testdata/README.md
// names the page of each):
//   - Zendesk ticket events: https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/
//   - Zendesk satisfaction ratings: https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/
//   - Zendesk signatures: https://developer.zendesk.com/documentation/webhooks/verifying/
//   - Freshdesk webhooks: https://zulip.com/integrations/doc/freshdesk (fixtures of github.com/zulip/zulip)
//   - Freshdesk satisfaction ratings: https://developers.freshdesk.com/api/#view_all_satisfaction_ratings
//   - Intercom notifications and signatures: https://developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications
//   - Intercom conversation: github.com/intercom/Intercom-OpenAPI descriptions/2.11/api.intercom.io.yaml
//   - Delighted: https://app.delighted.com/docs/api/webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/adapters/delighted"
	"github.com/cxlink/cxlink/ingest/adapters/freshdesk"
	"github.com/cxlink/cxlink/ingest/adapters/intercom"
	"github.com/cxlink/cxlink/ingest/adapters/zendesk"
	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// now is after every documented example.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	zendeskSecret   = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
	freshdeskSecret = "freshdesk-shared-secret-0123456789"
	intercomSecret  = "intercom-client-secret"
	delightedKey    = "delighted-private-api-key"
)

type fakePublisher struct {
	mu     sync.Mutex
	stored map[string]event.Event
	fail   bool
	err    error // when set, every event fails with it
}

func (f *fakePublisher) Publish(_ context.Context, events []event.Event) []stream.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]stream.Result, len(events))
	for i, e := range events {
		switch _, dup := f.stored[e.ID]; {
		case f.err != nil:
			out[i].Err = f.err
		case f.fail:
			out[i].Err = fmt.Errorf("jetstream unavailable")
		case dup:
			out[i].Duplicate = true
		default:
			f.stored[e.ID] = e
		}
	}
	return out
}

type fixture struct {
	t   *testing.T
	srv *httptest.Server
	pub *fakePublisher
	reg *prometheus.Registry
	now func() time.Time // the clock of ingest
}

func newFixture(t *testing.T, cesScale int) *fixture {
	t.Helper()
	teams := adapters.Teams{"zendesk:8447320466430": "billing", "intercom:5017691": "alpha"}
	dcfg := delighted.Config{APIKey: delightedKey, CESScale: cesScale,
		Properties: map[string]string{"ticket_id": "Ticket ID", "team": "Team", "channel": "Channel"}, TicketPrefix: "zendesk:"}
	f := &fixture{t: t, pub: &fakePublisher{stored: map[string]event.Event{}}, reg: prometheus.NewRegistry(),
		now: func() time.Time { return now }}
	clock := func() time.Time { return f.now() }
	adm, err := admit.New(admit.Config{MaxBodyBytes: 1 << 20, MaxEvents: 1000, PublishTimeout: time.Second, MaxFuture: 5 * time.Minute,
		MaxRequests: 8, MaxUnverified: 8, UnverifiedReadTimeout: time.Second, MaxLabelValues: 100},
		admit.Options{Publisher: f.pub, Registerer: f.reg, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	h, err := adapters.New(adapters.Options{
		Adapters: []adapters.Adapter{
			zendesk.New(zendesk.Config{SigningSecret: zendeskSecret, MaxSignatureAge: 15 * time.Minute}, teams),
			freshdesk.New(freshdesk.Config{Secret: freshdeskSecret}, teams),
			intercom.New(intercom.Config{ClientSecret: intercomSecret}, teams),
			delighted.New(dcfg, teams),
		},
		Admission:  adm,
		Registerer: f.reg,
		Now:        clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sign returns the headers with which each vendor signs body.
func Sign(vendor string, body []byte, at time.Time) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	switch vendor {
	case "zendesk":
		ts := at.UTC().Format(time.RFC3339)
		h.Set(zendesk.TimestampHeader, ts)
		h.Set(zendesk.SignatureHeader, base64.StdEncoding.EncodeToString(adapters.HMACSHA256(zendeskSecret, []byte(ts), body)))
	case "freshdesk":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("cxlink:"+freshdeskSecret)))
	case "intercom":
		h.Set(intercom.SignatureHeader, "sha1="+hex.EncodeToString(adapters.HMACSHA1(intercomSecret, body)))
	case "delighted":
		h.Set(delighted.SignatureHeader, "sha256="+hex.EncodeToString(adapters.HMACSHA256(delightedKey, body)))
	}
	return h
}

func (f *fixture) post(vendor string, body []byte, h http.Header) (int, adapters.Response) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/sources/"+vendor, bytes.NewReader(body))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r adapters.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		f.t.Fatalf("%s: decode answer: %v", vendor, err)
	}
	return resp.StatusCode, r
}

func (f *fixture) stored(id string) *event.Event {
	f.t.Helper()
	e, ok := f.pub.stored[id]
	if !ok {
		ids := []string{}
		for k := range f.pub.stored {
			ids = append(ids, k)
		}
		f.t.Fatalf("event %s not published; published: %v", id, ids)
	}
	return &e
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestZendesk(t *testing.T) {
	f := newFixture(t, 7)
	for _, name := range []string{"zendesk_ticket_created.json", "zendesk_ticket_status_changed.json", "zendesk_satisfaction_rating.json"} {
		body := sample(t, name)
		code, r := f.post("zendesk", body, Sign("zendesk", body, now.Add(-time.Minute)))
		if code != http.StatusAccepted || r.Accepted != 1 {
			t.Fatalf("%s: %d %+v", name, code, r)
		}
	}
	created := f.stored("zendesk:event:cbe4028c-7239-495d-b020-f22348516046")
	eq(t, "created.OccurredAt", created.OccurredAt, ts("2025-01-08T10:12:07.67271703Z"))
	eq(t, "created.Status", created.Status, event.TicketCreated)
	eq(t, "created.TicketID", created.TicketID, "zendesk:5158")
	eq(t, "created.Team (mapped group)", created.Team, "billing")
	eq(t, "created.AgentID", created.AgentID, "zendesk:8447388090494")
	eq(t, "created.Channel", created.Channel, "web_service")
	eq(t, "created.Category", created.Category, "task")
	solved := f.stored("zendesk:event:5d2c7b1e-8f0a-4c55-9a61-2f3e4d5c6b7a")
	eq(t, "solved.Status", solved.Status, event.TicketSolved)
	eq(t, "solved.TicketID", solved.TicketID, "zendesk:5158")
	rating := f.stored("zendesk:rating:35436")
	eq(t, "rating.Survey", rating.Survey, event.SurveyCSAT)
	eq(t, "rating.StandardScore (good)", rating.StandardScore(), 5)
	eq(t, "rating.TicketID", rating.TicketID, "zendesk:208")
	eq(t, "rating.Team (unmapped group)", rating.Team, "zendesk:44")
	eq(t, "rating.AgentID", rating.AgentID, "zendesk:135")
	eq(t, "rating.CustomerID", rating.CustomerID, "zendesk:7881")
	eq(t, "rating.OccurredAt", rating.OccurredAt, ts("2011-07-20T22:55:29Z"))

	// A "bad" rating is CSAT 1 on the standard scale.
	bad := bytes.Replace(bytes.Replace(sample(t, "zendesk_satisfaction_rating.json"), []byte(`"good"`), []byte(`"bad"`), 1), []byte("35436"), []byte("35437"), 1)
	if code, r := f.post("zendesk", bad, Sign("zendesk", bad, now)); code != http.StatusAccepted {
		t.Fatalf("bad rating: %d %+v", code, r)
	}
	eq(t, "bad rating", f.stored("zendesk:rating:35437").StandardScore(), 1)

	// A redelivery is a duplicate, acknowledged.
	body := sample(t, "zendesk_ticket_created.json")
	if code, r := f.post("zendesk", body, Sign("zendesk", body, now)); code != http.StatusAccepted || r.Duplicates != 1 {
		t.Errorf("redelivery: %d %+v", code, r)
	}
}

func TestZendeskSignature(t *testing.T) {
	f := newFixture(t, 7)
	body := sample(t, "zendesk_ticket_created.json")
	tampered := bytes.Replace(body, []byte(`"5158"`), []byte(`"5159"`), 1)
	wrongKey := Sign("zendesk", body, now)
	wrongKey.Set(zendesk.SignatureHeader, base64.StdEncoding.EncodeToString(adapters.HMACSHA256("another secret", []byte(wrongKey.Get(zendesk.TimestampHeader)), body)))
	stale := Sign("zendesk", body, now.Add(-time.Hour))
	for name, c := range map[string]struct {
		body []byte
		h    http.Header
		want string
	}{
		"no signature":  {body, http.Header{}, "missing"},
		"tampered body": {tampered, Sign("zendesk", body, now), "does not match"},
		"wrong secret":  {body, wrongKey, "does not match"},
		"replayed":      {body, stale, "replayed"},
	} {
		code, _ := f.post("zendesk", c.body, c.h)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if len(f.pub.stored) != 0 {
		t.Errorf("refused requests published %d events", len(f.pub.stored))
	}
	if got := testutil.ToFloat64(mustCounter(t, f.reg, "cxlink_source_auth_failures_total", "zendesk")); got != 4 {
		t.Errorf("auth failures = %v, want 4", got)
	}

	// A timestamp in Unix seconds is accepted too.
	unixTS := strconv.FormatInt(now.Unix(), 10)
	unixSigned := http.Header{zendesk.TimestampHeader: {unixTS},
		zendesk.SignatureHeader: {base64.StdEncoding.EncodeToString(adapters.HMACSHA256(zendeskSecret, []byte(unixTS), body))}}
	if code, r := f.post("zendesk", body, unixSigned); code != http.StatusAccepted {
		t.Errorf("timestamp in Unix seconds: %d %+v", code, r)
	}
}

func TestZendeskStatusAndUnknownEvents(t *testing.T) {
	f := newFixture(t, 7)
	base := sample(t, "zendesk_ticket_status_changed.json")
	cases := []struct {
		prev, cur, eventType string
		want                 string // status, or "ignored"
	}{
		{"SOLVED", "OPEN", "zen:event-type:ticket.status_changed", "reopened"},
		{"SOLVED", "CLOSED", "zen:event-type:ticket.status_changed", "ignored"},
		{"OPEN", "PENDING", "zen:event-type:ticket.status_changed", "ignored"},
		{"PENDING", "CLOSED", "zen:event-type:ticket.status_changed", "solved"},
		{"OPEN", "SOLVED", "zen:event-type:ticket.priority_changed", "ignored"},
		{"OPEN", "SOLVED", "zen:event-type:user.active_changed", "ignored"},
	}
	for i, c := range cases {
		body := bytes.Replace(base, []byte(`"current": "SOLVED",
    "previous": "OPEN"`), []byte(fmt.Sprintf(`"current": %q, "previous": %q`, c.cur, c.prev)), 1)
		body = bytes.Replace(body, []byte("zen:event-type:ticket.status_changed"), []byte(c.eventType), 1)
		body = bytes.Replace(body, []byte("5d2c7b1e"), []byte(fmt.Sprintf("0000000%d", i)), 1)
		code, r := f.post("zendesk", body, Sign("zendesk", body, now))
		if c.want == "ignored" {
			if code != http.StatusOK || r.Ignored != 1 || r.Accepted != 0 {
				t.Errorf("%+v: %d %+v, want 200 and ignored", c, code, r)
			}
			continue
		}
		if code != http.StatusAccepted {
			t.Errorf("%+v: %d %+v", c, code, r)
			continue
		}
		eq(t, fmt.Sprintf("%+v", c), f.stored(fmt.Sprintf("zendesk:event:0000000%d-8f0a-4c55-9a61-2f3e4d5c6b7a", i)).Status, c.want)
	}
	for _, reason := range []string{"status", "event_type"} {
		if got := testutil.ToFloat64(mustCounter(t, f.reg, "cxlink_source_ignored_total", "zendesk", reason)); got == 0 {
			t.Errorf("cxlink_source_ignored_total{reason=%q} is 0", reason)
		}
	}
}

func TestFreshdesk(t *testing.T) {
	f := newFixture(t, 7)
	body := sample(t, "freshdesk_ticket_created.json")
	if code, r := f.post("freshdesk", body, Sign("freshdesk", body, now)); code != http.StatusAccepted || r.Accepted != 1 {
		t.Fatalf("created: %d %+v", code, r)
	}
	// From Resolved (4) to Waiting on Customer (6): the customer reopened it.
	body = sample(t, "freshdesk_status_changed.json")
	if code, r := f.post("freshdesk", body, Sign("freshdesk", body, now)); code != http.StatusAccepted || r.Accepted != 1 {
		t.Fatalf("status changed: %d %+v", code, r)
	}
	// A priority change is acknowledged and ignored.
	body = sample(t, "freshdesk_priority_changed.json")
	if code, r := f.post("freshdesk", body, Sign("freshdesk", body, now)); code != http.StatusOK || r.Ignored != 1 {
		t.Fatalf("priority changed: %d %+v", code, r)
	}
	var created, reopened *event.Event
	for _, e := range f.pub.stored {
		e := e
		if !strings.HasPrefix(e.ID, "freshdesk:ticket:11:") {
			t.Errorf("id %q", e.ID)
		}
		switch e.Status {
		case event.TicketCreated:
			created = &e
		case event.TicketReopened:
			reopened = &e
		}
	}
	eq(t, "created.TicketID", created.TicketID, "freshdesk:11")
	eq(t, "created.Category", created.Category, "incident")
	eq(t, "created.OccurredAt (receipt)", created.OccurredAt, now)
	eq(t, "reopened.TicketID", reopened.TicketID, "freshdesk:11")

	// Ratings as the API lists them: the documentation's second rating has a malformed
	// timestamp and is rejected, naming the field; the first is stored.
	body = sample(t, "freshdesk_satisfaction_ratings.json")
	code, r := f.post("freshdesk", body, Sign("freshdesk", body, now))
	if code != http.StatusAccepted || r.Accepted != 1 || r.Rejected != 1 {
		t.Fatalf("ratings: %d %+v", code, r)
	}
	if e := r.Results[0]; e.Index != 1 || e.Errors[0].Field != "created_at" || !strings.Contains(e.Errors[0].Message, "010:08:16") {
		t.Errorf("rejected rating: %+v", e)
	}
	rating := f.stored("freshdesk:rating:102")
	eq(t, "rating.Score (103 → rank 7)", *rating.Score, 7)
	eq(t, "rating.StandardScore", rating.StandardScore(), 5)
	eq(t, "rating.TicketID", rating.TicketID, "freshdesk:432")
	eq(t, "rating.AgentID", rating.AgentID, "freshdesk:1")
	eq(t, "rating.Team (null group)", rating.Team, "")
	eq(t, "rating.Comment", rating.Comment, "Thank you for the quick action")

	// The scale by rank: 100 (neutral) is the middle of 1–5, 101 (happy) is satisfied.
	for value, want := range map[int]float64{-103: 1, -101: 2.333333, 100: 3, 101: 3.666667, 102: 4.333333} {
		one := fmt.Appendf(nil, `{"id": %d, "ticket_id": 1, "ratings": {"default_question": %d}, "created_at": "2015-08-28T09:08:16Z"}`, 1000+value, value)
		if code, r := f.post("freshdesk", one, Sign("freshdesk", one, now)); code != http.StatusAccepted {
			t.Fatalf("rating %d: %d %+v", value, code, r)
		}
		eq(t, fmt.Sprintf("standard score of %d", value), f.stored(fmt.Sprintf("freshdesk:rating:%d", 1000+value)).StandardScore(), want)
	}
	bad := []byte(`{"id": 9, "ratings": {"default_question": 5}, "created_at": "2015-08-28T09:08:16Z"}`)
	if code, r := f.post("freshdesk", bad, Sign("freshdesk", bad, now)); code != http.StatusBadRequest || r.Results[0].Errors[0].Field != "ratings.default_question" {
		t.Errorf("rating 5: %d %+v", code, r)
	}
}

func TestFreshdeskAuth(t *testing.T) {
	f := newFixture(t, 7)
	body := sample(t, "freshdesk_ticket_created.json")
	wrong := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("cxlink:guess"))}}
	for name, h := range map[string]http.Header{"none": {}, "wrong password": wrong} {
		if code, _ := f.post("freshdesk", body, h); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
}

func TestIntercom(t *testing.T) {
	f := newFixture(t, 7)
	body := sample(t, "intercom_conversation_rating_added.json")
	if code, r := f.post("intercom", body, Sign("intercom", body, now)); code != http.StatusAccepted || r.Accepted != 1 {
		t.Fatalf("rating: %d %+v", code, r)
	}
	e := f.stored("intercom:rating:335")
	eq(t, "Survey", e.Survey, event.SurveyCSAT)
	eq(t, "Score", *e.Score, 5)
	eq(t, "StandardScore", e.StandardScore(), 5)
	eq(t, "TicketID", e.TicketID, "intercom:335")
	eq(t, "Team (mapped)", e.Team, "alpha")
	eq(t, "AgentID", e.AgentID, "intercom:991267715")
	eq(t, "CustomerID", e.CustomerID, "intercom:5ba682d23d7cf92bef87bfd4")
	eq(t, "Channel", e.Channel, "conversation")
	eq(t, "OccurredAt", e.OccurredAt, time.Unix(1719493012, 0).UTC())

	// The documented signed example is a user.created notification: acknowledged, ignored.
	body = sample(t, "intercom_user_created.json")
	if code, r := f.post("intercom", body, Sign("intercom", body, now)); code != http.StatusOK || r.Ignored != 1 {
		t.Errorf("user.created: %d %+v", code, r)
	}
	// The documentation's own signature was made with a secret we do not have.
	h := http.Header{intercom.SignatureHeader: {"sha1=21ff2e149e0fdcac6f947740f6177f6434bda921"}}
	if code, _ := f.post("intercom", body, h); code != http.StatusUnauthorized {
		t.Errorf("foreign signature: %d, want 401", code)
	}
	if code, _ := f.post("intercom", body, http.Header{}); code != http.StatusUnauthorized {
		t.Errorf("no signature: %d, want 401", code)
	}
}

func TestDelighted(t *testing.T) {
	body := sample(t, "delighted_survey_response_updated.json")
	f := newFixture(t, 7)
	if code, r := f.post("delighted", body, Sign("delighted", body, now)); code != http.StatusAccepted || r.Accepted != 1 {
		t.Fatalf("nps: %d %+v", code, r)
	}
	e := f.stored("delighted:response:5435")
	eq(t, "Survey", e.Survey, event.SurveyNPS)
	eq(t, "Score", *e.Score, 9)
	eq(t, "CustomerID", e.CustomerID, "delighted:5975")
	eq(t, "OccurredAt", e.OccurredAt, time.Unix(1732186844, 0).UTC())
	eq(t, "Comment", e.Comment, "Your service is fast and flawless!")
	if code, _ := f.post("delighted", body, http.Header{delighted.SignatureHeader: {"sha256=00"}}); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d", code)
	}
	if code, _ := f.post("delighted", body, http.Header{}); code != http.StatusUnauthorized {
		t.Errorf("no signature: %d, want 401", code)
	}

	// CES with person properties, on each configured scale.
	ces := func(id, score int) []byte {
		b := bytes.Replace(body, []byte(`"survey_type": "nps"`), []byte(`"survey_type": "ces"`), 1)
		b = bytes.Replace(b, []byte(`"score": 9`), fmt.Appendf(nil, `"score": %d`, score), 1)
		b = bytes.Replace(b, []byte(`"id": "5435"`), fmt.Appendf(nil, `"id": "%d"`, id), 1)
		return bytes.Replace(b, []byte(`"person_properties": null`), []byte(`"person_properties": {"Ticket ID": "5158", "Team": "billing", "Channel": "Web chat"}`), 1)
	}
	b := ces(1, 6)
	if code, r := f.post("delighted", b, Sign("delighted", b, now)); code != http.StatusAccepted {
		t.Fatalf("ces 6/7: %d %+v", code, r)
	}
	e = f.stored("delighted:response:1")
	eq(t, "ces 6 on 1–7", e.StandardScore(), 6)
	eq(t, "TicketID (prefixed)", e.TicketID, "zendesk:5158")
	eq(t, "Team", e.Team, "billing")
	eq(t, "Channel", e.Channel, "web_chat")

	f5 := newFixture(t, 5)
	for score, want := range map[int]float64{1: 1, 3: 4, 5: 7} {
		b := ces(10+score, score)
		if code, r := f5.post("delighted", b, Sign("delighted", b, now)); code != http.StatusAccepted {
			t.Fatalf("ces %d/5: %d %+v", score, code, r)
		}
		eq(t, fmt.Sprintf("ces %d on 1–5", score), f5.stored(fmt.Sprintf("delighted:response:%d", 10+score)).StandardScore(), want)
	}
	b = ces(20, 6)
	if code, r := f5.post("delighted", b, Sign("delighted", b, now)); code != http.StatusBadRequest || r.Results[0].Errors[0].Field != "score" {
		t.Errorf("ces 6 on a 1–5 scale: %d %+v", code, r)
	}
	// Other survey types and event types are acknowledged and ignored.
	for _, b := range [][]byte{
		bytes.Replace(body, []byte(`"survey_type": "nps"`), []byte(`"survey_type": "enps"`), 1),
		[]byte(`{"event_type": "unsubscribe.created", "event_id": "x", "event_data": {}}`),
	} {
		if code, r := f.post("delighted", b, Sign("delighted", b, now)); code != http.StatusOK || r.Ignored != 1 {
			t.Errorf("%s: %d %+v", b[:40], code, r)
		}
	}
}

func TestHandlerFailuresAndBadBodies(t *testing.T) {
	f := newFixture(t, 7)
	body := sample(t, "intercom_conversation_rating_added.json")
	f.pub.fail = true
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/sources/intercom", bytes.NewReader(body))
	req.Header = Sign("intercom", body, now)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("publish failure: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for vendor, b := range map[string][]byte{"zendesk": []byte(`{"hello": 1}`), "freshdesk": []byte(`not json`), "intercom": []byte(`{}`), "delighted": []byte(`[]`)} {
		if code, _ := f.post(vendor, b, Sign(vendor, b, now)); code != http.StatusBadRequest {
			t.Errorf("%s %s: %d, want 400", vendor, b, code)
		}
	}
	resp, err = http.Post(f.srv.URL+"/v1/sources/salesforce", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown source: %d", resp.StatusCode)
	}
	if problems, err := testutil.GatherAndLint(f.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg := zendesk.Config{SigningSecret: "s3cr3t-value"}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg.SigningSecret)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("secret printed: %s", s)
		}
	}
	b, _ := json.Marshal(cfg)
	if strings.Contains(string(b), "s3cr3t") {
		t.Errorf("secret marshalled: %s", b)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			vals := []string{}
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			for _, want := range labels {
				if !strings.Contains(strings.Join(vals, "\x00")+"\x00", want+"\x00") {
					continue metric
				}
			}
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
			c.Add(m.GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}

func TestZendeskRatingFromTrigger(t *testing.T) {
	f := newFixture(t, 7)
	// The README's trigger body, rendered: no rating id; the ticket identifies the rating.
	body := []byte(`{"satisfaction_rating": {"score": "Good", "ticket_id": 5158, "assignee_id": 8447388090494,
		"group_id": 8447320466430, "requester_id": 8447388090494, "comment": "", "updated_at": "2025-01-09T08:00:00Z"}}`)
	if code, r := f.post("zendesk", body, Sign("zendesk", body, now)); code != http.StatusAccepted {
		t.Fatalf("%d %+v", code, r)
	}
	e := f.stored("zendesk:rating:ticket:5158")
	eq(t, "StandardScore", e.StandardScore(), 5)
	eq(t, "TicketID", e.TicketID, "zendesk:5158")
	eq(t, "Team", e.Team, "billing")
}
