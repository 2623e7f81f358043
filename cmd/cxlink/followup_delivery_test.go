package main

// End to end: a CES 1 on a billing ticket reaches billing's webhook, signed, with its
// context and the customer's earlier answers, well within a minute; a receiver that
// fails gets the case again with the same delivery id, also across a restart of
// cxlink; once accepted it is not sent again. A Slack target gets a Slack message, and a
// case of a Zendesk ticket becomes one internal note on that ticket.

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

const deliverySecret = "e2e-followup-webhook-secret"

// hookReceiver is an owner's webhook: it checks each request's signature and fails the
// first failFirst requests with 503.
type hookReceiver struct {
	t         *testing.T
	mu        sync.Mutex
	failFirst int
	attempts  []hookRequest
	accepted  []hookRequest
}

type hookRequest struct {
	delivery string
	body     []byte
	at       time.Time
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(followup.HeaderTimestamp)
	if got, want := r.Header.Get(followup.HeaderSignature), followup.Sign([]byte(deliverySecret), ts, body); got != want {
		h.t.Errorf("signature %q, want %q", got, want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	req := hookRequest{delivery: r.Header.Get(followup.HeaderDelivery), body: body, at: time.Now()}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts = append(h.attempts, req)
	if len(h.attempts) <= h.failFirst {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	h.accepted = append(h.accepted, req)
}

func (h *hookReceiver) counts() (attempts, accepted int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.attempts), len(h.accepted)
}

func TestFollowUpDelivery(t *testing.T) {
	billing := &hookReceiver{t: t, failFirst: 2}
	billingSrv := httptest.NewServer(billing)
	defer billingSrv.Close()
	web := &hookReceiver{t: t}
	webSrv := httptest.NewServer(web)
	defer webSrv.Close()

	// The helpdesk: web's ticket came from Zendesk, where its case becomes an internal note.
	var zdMu sync.Mutex
	var zdNotes []string
	zendesk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Ticket struct {
				Comment struct {
					Body   string `json:"body"`
					Public bool   `json:"public"`
				} `json:"comment"`
			} `json:"ticket"`
		}
		user, pass, _ := r.BasicAuth()
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPut || r.URL.Path != "/api/v2/tickets/31.json" ||
			user != "cx@example.com/token" || pass != "zd-token" || body.Ticket.Comment.Public {
			t.Errorf("Zendesk request %s %s as %s: %v %+v", r.Method, r.URL.Path, user, err, body)
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		zdMu.Lock()
		zdNotes = append(zdNotes, body.Ticket.Comment.Body)
		zdMu.Unlock()
	}))
	defer zendesk.Close()
	zdToken := filepath.Join(t.TempDir(), "zendesk-token")
	if err := os.WriteFile(zdToken, []byte("zd-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ch := chtest.Start(t)
	env := maps.Clone(apptest.Defaults)
	maps.Copy(env, map[string]string{
		"CXLINK_DATA_DIR":                    t.TempDir(),
		"CLICKHOUSE_ADDR":                    ch.Addr(),
		"CLICKHOUSE_DATABASE":                ch.NewDatabase(t),
		"CXLINK_OWNERS":                      "category:billing=billing, category:login_problem=web, *=support",
		"CXLINK_FOLLOWUP_RULES":              "ces<=2",
		"CXLINK_FOLLOWUP_WEBHOOKS":           "billing=" + billingSrv.URL + "/hooks/billing, web=slack:" + webSrv.URL + "/services/T0/B0/x",
		"CXLINK_FOLLOWUP_WEBHOOK_SECRET":     deliverySecret,
		"CXLINK_FOLLOWUP_RETRY_MAX":          "2s",
		"CXLINK_FOLLOWUP_ZENDESK_URL":        zendesk.URL,
		"CXLINK_FOLLOWUP_ZENDESK_EMAIL":      "cx@example.com",
		"CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE": zdToken,
	})
	url, stop := runCxlinkUntilStopped(t, env)

	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	events := []map[string]any{
		// The customer's earlier answer, imported (late: it opens nothing, but it is
		// history).
		{"id": "hist-1", "type": "survey_response", "survey": "csat", "score": 2, "customer_id": "C-7",
			"ticket_id": "T-old", "occurred_at": at(-72 * time.Hour)},
		{"id": "bill-ticket", "type": "ticket", "ticket_id": "T-1", "status": "solved", "category": "billing",
			"channel": "email", "team": "team-b", "agent_id": "agent-3", "occurred_at": at(-3 * time.Minute)},
		{"id": "bill-ces", "type": "survey_response", "survey": "ces", "score": 1, "ticket_id": "T-1",
			"customer_id": "C-7", "comment": "Charged twice", "occurred_at": at(-time.Minute)},
	}
	posted := time.Now()
	if code, body := postTo(t, url, events); code/100 != 2 {
		t.Fatalf("post: %d %s", code, body)
	}

	// The receiver fails the first attempt; cxlink stops after it and starts again: the
	// case is delivered all the same.
	followUpWait(t, time.Minute, func() bool { n, _ := billing.counts(); return n >= 1 })
	stop()
	url, stop = runCxlinkUntilStopped(t, env)
	followUpWait(t, time.Minute, func() bool { _, n := billing.counts(); return n >= 1 })
	billing.mu.Lock()
	first, delivered := billing.attempts[0], billing.accepted[0]
	attempts := len(billing.attempts)
	billing.mu.Unlock()
	t.Logf("delivered %s after the answer was accepted, at attempt %d", delivered.at.Sub(posted).Round(time.Millisecond), attempts)
	if d := delivered.at.Sub(posted); d > time.Minute {
		t.Errorf("delivered %s after the answer, want within a minute", d)
	}
	id := followup.CaseID("bill-ces")
	if first.delivery != id || delivered.delivery != id {
		t.Fatalf("delivery ids %q, %q; want the case id %q on every attempt", first.delivery, delivered.delivery, id)
	}
	var p followup.Payload
	if err := json.Unmarshal(delivered.body, &p); err != nil {
		t.Fatal(err)
	}
	c := p.Case
	if p.Event != "followup.opened" || p.DeliveryID != id || c.Owner != "billing" || c.CustomerID != "C-7" || c.TicketID != "T-1" ||
		c.Category != "billing" || c.Team != "team-b" || c.AgentID != "agent-3" || c.Channel != "email" || c.Comment != "Charged twice" || c.Score != 1 {
		t.Fatalf("payload: %s", delivered.body)
	}
	if len(p.History) != 1 || p.History[0].SurveyID != "hist-1" || p.History[0].Survey != "csat" {
		t.Fatalf("history: %+v", p.History)
	}

	// A login problem goes to web's Slack channel.
	more := []map[string]any{
		{"id": "web-ticket", "type": "ticket", "ticket_id": "zendesk:31", "status": "solved", "category": "login_problem",
			"channel": "chat", "team": "team-w", "agent_id": "agent-9", "occurred_at": at(-2 * time.Minute)},
		{"id": "web-ces", "type": "survey_response", "survey": "ces", "score": 2, "ticket_id": "zendesk:31",
			"customer_id": "C-8", "comment": "could not log in", "occurred_at": at(-time.Minute)},
	}
	if code, body := postTo(t, url, more); code/100 != 2 {
		t.Fatalf("post: %d %s", code, body)
	}
	followUpWait(t, time.Minute, func() bool { _, n := web.counts(); return n >= 1 })
	web.mu.Lock()
	slack := web.accepted[0]
	web.mu.Unlock()
	var msg map[string]any
	if err := json.Unmarshal(slack.body, &msg); err != nil {
		t.Fatal(err)
	}
	if text, _ := msg["text"].(string); !strings.Contains(text, "Follow-up for web") || !strings.Contains(text, "could not log in") || len(msg) != 1 {
		t.Fatalf("slack message: %s", slack.body)
	}

	followUpWait(t, time.Minute, func() bool { zdMu.Lock(); defer zdMu.Unlock(); return len(zdNotes) >= 1 })

	// Accepted cases are not sent again, not even after another restart.
	stop()
	_, stop = runCxlinkUntilStopped(t, env)
	time.Sleep(3 * time.Second)
	stop()
	if _, n := billing.counts(); n != 1 {
		t.Fatalf("billing accepted %d deliveries, want 1", n)
	}
	if n, _ := web.counts(); n != 1 {
		t.Fatalf("web got %d requests, want 1", n)
	}
	// Zendesk's ticket got its case once, as an internal note; billing's ticket is not
	// Zendesk's.
	zdMu.Lock()
	defer zdMu.Unlock()
	if len(zdNotes) != 1 || !strings.Contains(zdNotes[0], followup.CaseID("web-ces")) || !strings.Contains(zdNotes[0], "CES 2") {
		t.Fatalf("Zendesk notes: %q", zdNotes)
	}
}
