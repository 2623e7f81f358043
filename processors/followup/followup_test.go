package followup

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/processors/records"
)

func TestParseRules(t *testing.T) {
	r, err := ParseRules("ces<=2, csat < 2\n# detractors\nnps<=6\ncsat<=3&comment~cancel|Lawyer, comment~refund")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		survey  string
		score   float64
		comment string
		rule    string
	}{
		{"ces", 1, "", "ces<=2"},
		{"ces", 2, "", "ces<=2"},
		{"ces", 3, "", ""},
		{"csat", 1, "", "csat<2"},
		{"csat", 2, "", ""}, // strict
		{"csat", 3, "I will CANCEL", "csat<=3&comment~cancel|Lawyer"}, // the rule as written
		{"csat", 4, "I will cancel", ""},
		{"nps", 6, "", "nps<=6"},
		{"nps", 7, "", ""},
		{"nps", 9, "refund please", "comment~refund"}, // no score condition: any survey
	}
	for _, c := range cases {
		rule, ok := r.Match(c.survey, c.score, c.comment)
		if ok != (c.rule != "") || rule != c.rule {
			t.Errorf("%s %g %q: matched %q (%v), want %q", c.survey, c.score, c.comment, rule, ok, c.rule)
		}
	}
	if empty, err := ParseRules(" \n# none\n"); err != nil || !empty.Empty() {
		t.Fatalf("empty rules: %v %v", empty, err)
	}
}

func TestParseRulesErrors(t *testing.T) {
	_, err := ParseRules("ces<=9, cex<=2, ces>=2, nps<=6&nps<=5, comment~, ces<=2, ces<=2")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`rule "ces<=9"`, `"cex" is not ces, csat or nps`, `rule "ces>=2"`, "two score conditions",
		"comment~ needs words", `rule "ces<=2" is given twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	c := DefaultConfig()
	c.Rules, c.Owners, c.Window, c.Due, c.MaxAge = "ces<=2", "billing", 0, "billing=4h", time.Hour
	err := c.Validate("*=support")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CXLINK_FOLLOWUP_OWNERS", "CXLINK_FOLLOWUP_WINDOW", "CXLINK_FOLLOWUP_DUE: no value for everybody else", "CXLINK_FOLLOWUP_MAX_AGE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	ok := DefaultConfig()
	ok.Rules, ok.Due = "ces<=2", "billing=4h, *=2d"
	s, err := ok.Settings("category:billing=billing, *=support")
	if err != nil {
		t.Fatal(err)
	}
	if s.Due.For("billing") != 4*time.Hour || s.Due.For("web") != 48*time.Hour {
		t.Fatalf("due: %s %s", s.Due.For("billing"), s.Due.For("web"))
	}
	if DefaultConfig().Validate("*=x") != nil {
		t.Fatal("no rules must be valid: follow-ups are off")
	}
}

func settings(t *testing.T, rules string) *Settings {
	t.Helper()
	c := DefaultConfig()
	c.Rules, c.Window, c.Due = rules, 24*time.Hour, "billing=4h, *=24h"
	s, err := c.Settings("category:billing=billing, channel:chat=chat, team:*=support, *=cx")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecider(t *testing.T) {
	s := settings(t, "ces<=2")
	d := NewDecider(s)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	survey := func(id, ticket string, score float64, at time.Time) *records.Survey {
		return &records.Survey{ID: id, Survey: "ces", Score: score, StandardScore: score, TicketID: ticket,
			Category: "billing", Channel: "chat", Team: "t1", Origin: records.Origin{ReceivedAt: at}, OccurredAt: at.Add(-time.Minute)}
	}
	c, v := d.Survey(survey("a", "T1", 1, t0))
	if v != Opened || c.ID != CaseID("a") || c.Owner != "billing" || !c.DueAt.Equal(t0.Add(4*time.Hour)) || c.State != records.FollowUpOpen {
		t.Fatalf("first: %v %+v", v, c)
	}
	if _, v := d.Survey(survey("b", "T1", 2, t0.Add(time.Hour))); v != SameTicket {
		t.Fatalf("same ticket within the window: %v", v)
	}
	if _, v := d.Survey(survey("c", "T2", 5, t0)); v != NoCase {
		t.Fatalf("a good answer: %v", v)
	}
	late := survey("d", "T3", 1, t0)
	late.Late = true
	if _, v := d.Survey(late); v != Late {
		t.Fatalf("late: %v", v)
	}
	// Owner precedence: category, then channel, then team.
	other := survey("e", "T4", 1, t0)
	other.Category = "login"
	if c, _ := d.Survey(other); c.Owner != "chat" || !c.DueAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("owner %s due %s", c.Owner, c.DueAt)
	}

	// Forgetting and restoring change no decision.
	snap := d.Snapshot()
	restored := NewDecider(s)
	restored.Restore(snap)
	d.Forget(t0.Add(2 * time.Hour))
	for _, dd := range []*Decider{d, restored} {
		if _, v := dd.Survey(survey("f", "T1", 1, t0.Add(2*time.Hour))); v != SameTicket {
			t.Fatalf("within the window after forget/restore: %v", v)
		}
		if c, v := dd.Survey(survey("g", "T1", 1, t0.Add(25*time.Hour))); v != Opened || c.ID != CaseID("g") {
			t.Fatalf("after the window: %v", v)
		}
	}
	d.Forget(t0.Add(50 * time.Hour))
	if d.Len() != 0 {
		t.Fatalf("%d tickets remembered after every window ended", d.Len())
	}
}

// Publishing a case again, however long after, stores nothing; acknowledging appends.
func TestOpenedOnce(t *testing.T) {
	srv, err := broker.Start(broker.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	s := settings(t, "ces<=2")
	st, err := Define(ctx, js, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A duplicate window of 100 ms, set before anything is published (the server arms
	// its purge of message ids with the window it has then): past it the message id no
	// longer helps, and the subject check must.
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: StreamName, Subjects: []string{SubjectPrefix + "*"},
		MaxAge: s.MaxAge, Duplicates: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(js)
	c := records.FollowUp{ID: CaseID("x"), State: records.FollowUpOpen, Owner: "billing"}
	sink := OpeningSink{Next: nopSink{}, Cases: pub}
	for range 2 {
		if err := sink.WriteBatch(ctx, &records.Batch{FollowUps: []records.FollowUp{c}}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server forgot the message ids: a probe's id is stored again.
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		ack, err := js.Publish(ctx, Subject("probe"), nil, jetstream.WithMsgID("probe"))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !ack.Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server kept the probe's message id for a minute past a duplicate window of 100 ms")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := pub.Opened(ctx, []records.FollowUp{c}); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(SubjectPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[Subject(c.ID)]; n != 1 {
		t.Fatalf("%d messages of the case, want 1", n)
	}
	msg, err := st.GetLastMsgForSubject(ctx, Subject(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(msg.Data)
	if err != nil || got.ID != c.ID || got.Owner != "billing" || msg.Header.Get(HeaderChange) != "opened" {
		t.Fatalf("%+v %v %v", got, err, msg.Header)
	}
}

type nopSink struct{}

func (nopSink) WriteBatch(context.Context, *records.Batch) error { return nil }

func TestRateLimitAndBackoff(t *testing.T) {
	c := DefaultConfig()
	c.Rules, c.RateLimit, c.RetryMax = "ces<=2", "billing=2/1m, *=1/10s", time.Minute
	s, err := c.Settings("*=support")
	if err != nil {
		t.Fatal(err)
	}
	d := &deliverer{s: s, limits: map[string][]time.Time{}}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if d.reserve("billing", t0) != 0 || d.reserve("billing", t0.Add(10*time.Second)) != 0 {
		t.Fatal("billing's first two must go at once")
	}
	if w := d.reserve("billing", t0.Add(20*time.Second)); w != 40*time.Second {
		t.Fatalf("third waits %s, want 40s", w)
	}
	if d.reserve("web", t0) != 0 || d.reserve("web", t0.Add(5*time.Second)) != 5*time.Second {
		t.Fatal("web: 1 per 10s")
	}
	if d.reserve("billing", t0.Add(time.Minute)) != 0 {
		t.Fatal("billing: a minute later, one more")
	}
	for n, want := range map[uint64]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := backoff(n, s.RetryMax); got != want {
			t.Errorf("backoff after attempt %d: %s, want %s", n, got, want)
		}
	}
}

func TestWebhookConfig(t *testing.T) {
	base := DefaultConfig()
	base.Rules = "ces<=2"
	c := base
	c.Webhooks = "billing=https://hooks.example.com/b?token=abc, web=slack:https://hooks.slack.com/services/T/B/x"
	c.WebhookSecret = "0123456789abcdef"
	s, err := c.Settings("*=support")
	if err != nil {
		t.Fatal(err)
	}
	if tg, ok := s.Target("web"); !ok || !tg.Slack || tg.URL != "https://hooks.slack.com/services/T/B/x" {
		t.Fatalf("web: %+v %v", tg, ok)
	}
	if _, ok := s.Target("support"); ok {
		t.Fatal("support has no webhook")
	}
	bad := base
	bad.Webhooks = "billing=ftp://x, Bad Owner=https://secret.example.com/tok"
	bad.WebhookSecret = "short"
	bad.RateLimit = "30"
	err = bad.Validate("*=support")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CXLINK_FOLLOWUP_WEBHOOKS: billing: not an http(s) URL", "CXLINK_FOLLOWUP_WEBHOOK_SECRET", "CXLINK_FOLLOWUP_RATE_LIMIT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret.example.com") {
		t.Errorf("the error shows a webhook URL: %v", err)
	}
}
