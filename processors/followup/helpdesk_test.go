package followup

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/processors/records"
)

// fakeZendesk answers the two documented requests the notes use, checking them as
// Zendesk's API reference describes them:
//
//	PUT /api/v2/tickets/{id}.json            {"ticket": {"comment": {"body": "…", "public": false}}}
//	GET /api/v2/tickets/{id}/comments.json   {"comments": [{"body": "…", "public": false}, …]}
//
// both with API-token basic auth ({email}/token:{token}). Ticket 208 loses the answer to
// its first note (stored, then a 503), 209 fails its first (500, not stored), 404 does
// not exist.
type fakeZendesk struct {
	mu    sync.Mutex
	notes map[string][]string // ticket → private comment bodies
	puts  map[string]int
	gets  int
	bad   []string
}

func (z *fakeZendesk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	defer z.mu.Unlock()
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("agent@example.com/token:zd-api-token"))
	if r.Header.Get("Authorization") != wantAuth {
		z.bad = append(z.bad, "authorization "+r.Header.Get("Authorization"))
		http.Error(w, `{"error":"Couldn't authenticate you"}`, http.StatusUnauthorized)
		return
	}
	if ticket, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/api/v2/tickets/"), "/comments.json"); ok && r.Method == http.MethodGet {
		z.gets++
		if r.URL.Query().Get("sort_order") != "desc" {
			z.bad = append(z.bad, "comments without sort_order=desc: "+r.URL.RawQuery)
		}
		var page struct {
			Comments []map[string]any `json:"comments"`
		}
		page.Comments = []map[string]any{}
		for i := len(z.notes[ticket]) - 1; i >= 0; i-- {
			page.Comments = append(page.Comments, map[string]any{"id": i + 1, "body": z.notes[ticket][i], "public": false})
		}
		page.Comments = append(page.Comments, map[string]any{"id": 1000, "body": "The customer's first message", "public": true})
		json.NewEncoder(w).Encode(page)
		return
	}
	ticket, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/api/v2/tickets/"), ".json")
	if r.Method != http.MethodPut || !ok || strings.Contains(ticket, "/") {
		z.bad = append(z.bad, r.Method+" "+r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		z.bad = append(z.bad, "content type "+ct)
	}
	var body struct {
		Ticket struct {
			Comment *struct {
				Body   string `json:"body"`
				Public *bool  `json:"public"`
			} `json:"comment"`
		} `json:"ticket"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Ticket.Comment == nil || body.Ticket.Comment.Body == "" ||
		body.Ticket.Comment.Public == nil || *body.Ticket.Comment.Public {
		z.bad = append(z.bad, "body: not a private comment")
		http.Error(w, `{"error":"RecordInvalid"}`, http.StatusUnprocessableEntity)
		return
	}
	z.puts[ticket]++
	switch {
	case ticket == "404":
		http.Error(w, `{"error":"RecordNotFound"}`, http.StatusNotFound)
	case ticket == "209" && z.puts[ticket] == 1:
		http.Error(w, "", http.StatusInternalServerError)
	case ticket == "208" && z.puts[ticket] == 1:
		z.notes[ticket] = append(z.notes[ticket], body.Ticket.Comment.Body)
		http.Error(w, "", http.StatusServiceUnavailable)
	default:
		z.notes[ticket] = append(z.notes[ticket], body.Ticket.Comment.Body)
		w.Write([]byte(`{"ticket": {"id": ` + ticket + `}, "audit": {}}`))
	}
}

// A new case of a Zendesk ticket becomes one internal note on that ticket: retried
// after a failure, not added again when an attempt whose answer was lost had added it,
// not retried for a ticket Zendesk does not know; other tickets' cases are left alone.
func TestZendeskNotes(t *testing.T) {
	zd := &fakeZendesk{notes: map[string][]string{}, puts: map[string]int{}}
	srv := httptest.NewServer(zd)
	t.Cleanup(srv.Close)

	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("zd-api-token\n"), 0o600)
	c := DefaultConfig()
	c.Rules, c.RetryMax = "ces<=2", time.Second
	c.ZendeskURL, c.ZendeskEmail, c.ZendeskTokenFile = srv.URL+"/", "agent@example.com", token
	s, err := c.Settings("*=support")
	if err != nil {
		t.Fatal(err)
	}

	nats, err := broker.Start(broker.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Shutdown)
	nc, err := nats.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	st, err := Define(ctx, js, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	var cases []records.FollowUp
	for _, tk := range []string{"zendesk:208", "zendesk:209", "zendesk:404", "freshdesk:208", "T-208"} {
		cases = append(cases, records.FollowUp{ID: CaseID("ces-" + tk), State: records.FollowUpOpen, Owner: "support", Rule: "ces<=2",
			Survey: "ces", Score: 1, TicketID: tk, Comment: "charged twice", DueAt: time.Now().Add(time.Hour)})
	}
	if err := NewPublisher(js).Opened(ctx, cases); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	n := &noter{z: s.Zendesk, retryMax: s.RetryMax, stream: st, client: &http.Client{Timeout: 5 * time.Second},
		logger: slog.New(slog.DiscardHandler), outcomes: newNoteMetrics(reg)}
	outcome := func(o string) float64 { return testutil.ToFloat64(n.outcomes.WithLabelValues(o)) }
	run := func() {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.run(runCtx) }()
		deadline := time.Now().Add(time.Minute)
		for outcome("added") < 1 || outcome("already_there") < 1 || outcome("refused") < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("outcomes after a minute: added %v, already_there %v, refused %v, failed %v",
					outcome("added"), outcome("already_there"), outcome("refused"), outcome("failed"))
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // anything more would come now
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run()
	// Again from the consumer's state, as after a restart: nothing is noted twice.
	run()

	zd.mu.Lock()
	defer zd.mu.Unlock()
	if len(zd.bad) > 0 {
		t.Errorf("requests not as documented: %q", zd.bad)
	}
	for _, tk := range []string{"208", "209"} {
		id := CaseID("ces-zendesk:" + tk)
		if len(zd.notes[tk]) != 1 || !strings.Contains(zd.notes[tk][0], id) || !strings.Contains(zd.notes[tk][0], "CES 1") ||
			!strings.Contains(zd.notes[tk][0], "charged twice") {
			t.Errorf("ticket %s's notes: %q", tk, zd.notes[tk])
		}
	}
	// 208: one PUT, its answer lost, then found on the ticket; 209: failed, then added;
	// 404: refused once; the Freshdesk and plain tickets: nothing.
	if zd.puts["208"] != 1 || zd.puts["209"] != 2 || zd.puts["404"] != 1 || len(zd.puts) != 3 || zd.gets != 2 {
		t.Errorf("PUTs %v, GETs %d", zd.puts, zd.gets)
	}
	if outcome("added") != 1 || outcome("already_there") != 1 || outcome("refused") != 1 || outcome("failed") != 2 {
		t.Errorf("outcomes: added %v, already_there %v, refused %v, failed %v",
			outcome("added"), outcome("already_there"), outcome("refused"), outcome("failed"))
	}
}

func TestZendeskConfig(t *testing.T) {
	c := DefaultConfig()
	c.ZendeskURL, c.ZendeskEmail, c.ZendeskTokenFile = "acme.zendesk.com", "agent", filepath.Join(t.TempDir(), "missing")
	err := c.Validate("*=support")
	for _, want := range []string{"CXLINK_FOLLOWUP_ZENDESK_URL", "CXLINK_FOLLOWUP_ZENDESK_EMAIL", "CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	c = DefaultConfig()
	c.ZendeskEmail = "agent@example.com"
	if err := c.Validate("*=support"); err == nil || !strings.Contains(err.Error(), "CXLINK_FOLLOWUP_ZENDESK_URL: required") {
		t.Errorf("an e-mail without a URL: %v", err)
	}
	if s, err := DefaultConfig().Settings("*=support"); err != nil || s.Zendesk != nil {
		t.Errorf("off by default: %v %+v", err, s)
	}
}
