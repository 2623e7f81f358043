package adapters_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/stream"
)

// Freshdesk sends no event id and no time, and a second solve looks exactly like a
// retry of the first. Resolved → reopened → resolved within a minute, with Freshdesk
// retrying the first solve, is three real state changes after the creation: each is
// stored, the retry is a duplicate with the first delivery's id and time, and every id
// determines its time.
func TestFreshdeskReopenSequence(t *testing.T) {
	f := newFixture(t, 7)
	clock := now
	f.now = func() time.Time { return clock }
	send := func(triggered string) (int, int) {
		t.Helper()
		body := fmt.Appendf(nil, `{"freshdesk_webhook": {"triggered_event": %q, "ticket_id": "4711", "ticket_type": "Refund",
			"ticket_source": "Email", "ticket_group_name": "billing"}}`, triggered)
		code, r := f.post("freshdesk", body, Sign("freshdesk", body, clock))
		if code != http.StatusAccepted {
			t.Fatalf("%s: %d %+v", triggered, code, r)
		}
		return r.Accepted, r.Duplicates
	}
	steps := []struct {
		after     time.Duration
		triggered string
		accepted  int
	}{
		{0, "{ticket_action:created}", 1},
		{10 * time.Second, "{status:{from:Open,to:Resolved}}", 1},
		{15 * time.Second, "{status:{from:Open,to:Resolved}}", 0}, // Freshdesk's retry
		{20 * time.Second, "{status:{from:Resolved,to:Open}}", 1},
		{40 * time.Second, "{status:{from:Open,to:Resolved}}", 1},
	}
	for _, st := range steps {
		clock = now.Add(st.after)
		if acc, dup := send(st.triggered); acc != st.accepted || acc+dup != 1 {
			t.Fatalf("%s after %s: accepted %d duplicates %d", st.triggered, st.after, acc, dup)
		}
	}
	var got []string
	for id, e := range f.pub.stored {
		if e.TicketID == "freshdesk:4711" {
			got = append(got, fmt.Sprintf("%s %s %s", e.Status, id, e.OccurredAt.Format("15:04:05")))
		}
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("created freshdesk:ticket:4711:created %s", now.Format("15:04:05")),
		fmt.Sprintf("reopened freshdesk:ticket:4711:reopened:%d %s", now.Add(20*time.Second).Unix(), now.Add(20*time.Second).Format("15:04:05")),
		fmt.Sprintf("solved freshdesk:ticket:4711:solved:%d %s", now.Add(10*time.Second).Unix(), now.Add(10*time.Second).Format("15:04:05")),
		fmt.Sprintf("solved freshdesk:ticket:4711:solved:%d %s", now.Add(40*time.Second).Unix(), now.Add(40*time.Second).Format("15:04:05")),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A Zendesk trigger fires again on a later update of the ticket while the rating is
// unchanged: the same event, at the time of its first delivery. The customer changing
// the rating is a new answer.
func TestZendeskRatingRefiredOrChanged(t *testing.T) {
	f := newFixture(t, 7)
	rating := func(score, updated string) []byte {
		return fmt.Appendf(nil, `{"satisfaction_rating": {"score": %q, "ticket_id": 900, "assignee_id": 1,
			"group_id": 8447320466430, "requester_id": 2, "comment": "", "updated_at": %q}}`, score, updated)
	}
	for i, c := range []struct {
		body                []byte
		accepted, duplicate int
	}{
		{rating("good", "2026-11-23T10:00:00Z"), 1, 0},
		{rating("good", "2026-11-23T11:30:00Z"), 0, 1}, // the trigger fired again
		{rating("bad", "2026-11-23T11:45:00Z"), 1, 0},  // changed
	} {
		code, r := f.post("zendesk", c.body, Sign("zendesk", c.body, now))
		if code != http.StatusAccepted || r.Accepted != c.accepted || r.Duplicates != c.duplicate {
			t.Fatalf("delivery %d: %d %+v", i, code, r)
		}
	}
	first := f.stored("zendesk:rating:ticket:900")
	eq(t, "first answer's time", first.OccurredAt, ts("2026-11-23T10:00:00Z"))
	changed := f.stored(fmt.Sprintf("zendesk:rating:ticket:900:%d", ts("2026-11-23T11:45:00Z").Unix()))
	eq(t, "changed answer's score", changed.StandardScore(), 1)
}

// Webhooks take the same admission path as POST /v1/events: their label values are
// bounded (a flood of made-up Zendesk ticket types), and a full stream is answered
// with Retry-After 30.
func TestWebhookLabelsAndFullStream(t *testing.T) {
	f := newFixture(t, 7) // 100 label values per field
	base := sample(t, "zendesk_ticket_created.json")
	rejected := 0
	for i := range 150 {
		body := bytes.Replace(base, []byte(`"TASK"`), fmt.Appendf(nil, `"made-up-%d"`, i), 1)
		body = bytes.Replace(body, []byte("cbe4028c"), fmt.Appendf(nil, "%08d", i), 1)
		code, r := f.post("zendesk", body, Sign("zendesk", body, now))
		if code == http.StatusBadRequest && r.Rejected == 1 && r.Results[0].Errors[0].Field == "category" {
			rejected++
		}
	}
	// The fixture's own events already hold a category or two of the 100.
	if rejected < 50 || len(f.pub.stored) > 100 {
		t.Fatalf("150 made-up categories: %d rejected, %d stored", rejected, len(f.pub.stored))
	}

	f.pub.err = fmt.Errorf("publish: %w", errFull)
	body := sample(t, "intercom_conversation_rating_added.json")
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/sources/intercom", bytes.NewReader(body))
	req.Header = Sign("intercom", body, now)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("full stream: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

var errFull = stream.ErrFull
