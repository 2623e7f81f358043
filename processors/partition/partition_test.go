package partition

import (
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{
		Step:            time.Minute,
		Windows:         []effort.Window{{Name: "1h", Length: time.Hour}},
		AllowedLateness: time.Hour,
		AttributionWait: 10 * time.Minute,
	}
}

func ptr[T any](v T) *T { return &v }

func survey(id, ticket string, score float64, occurred time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeSurveyResponse, OccurredAt: occurred, Survey: event.SurveyCES,
		Score: ptr(score), ScaleMin: ptr(1.0), ScaleMax: ptr(7.0), TicketID: ticket}
}

func ticket(id, ticketID, category, team string, occurred time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeTicket, OccurredAt: occurred, TicketID: ticketID,
		Status: event.TicketSolved, Category: category, Team: team, AgentID: "a1", Channel: "chat"}
}

func window(s *State, dim, key string) effort.Aggregate {
	var got effort.Aggregate
	s.Current(func(k effort.SeriesKey, w effort.Window, a effort.Aggregate) {
		if k.Dimension == dim && k.Key == key {
			got = a
		}
	})
	return got
}

func TestSurveyAfterTicketIsAttributedAtOnce(t *testing.T) {
	s := New(1, cfg())
	s.Apply(Message{Seq: 1, ReceivedAt: t0, Event: ticket("t1", "T-1", "billing", "blue", t0)})
	out, oc := s.Apply(Message{Seq: 2, ReceivedAt: t0.Add(time.Minute), Event: survey("s1", "T-1", 2, t0.Add(time.Minute))})
	row := out.Surveys[0]
	if !oc.Attributed || !row.Attributed || row.Category != "billing" || row.Team != "blue" || row.AgentID != "a1" {
		t.Fatalf("not attributed: %+v %+v", oc, row)
	}
	if row.Version != records.Version(2, 0) || row.Seq != 2 || row.Partition != 1 {
		t.Fatalf("origin: %+v", row.Origin)
	}
	s.Tick(t0.Add(2 * time.Minute))
	if a := window(s, effort.Category, "billing"); a.Responses != 1 || a.Negative != 1 {
		t.Fatalf("category window: %+v", a)
	}
}

func TestSurveyBeforeTicketWaitsAndIsRewritten(t *testing.T) {
	s := New(0, cfg())
	out, oc := s.Apply(Message{Seq: 1, ReceivedAt: t0, Event: survey("s1", "T-1", 6, t0)})
	if !oc.Waiting || out.Surveys[0].Attributed || out.Surveys[0].Category != "" {
		t.Fatalf("first row: %+v %+v", oc, out.Surveys[0])
	}
	s.Tick(t0.Add(time.Minute))
	if rows := s.TakeBuckets(); len(rows) != 1 || rows[0].Dimension != effort.Overall || rows[0].Version != 1 {
		t.Fatalf("buckets of the waiting survey: %+v", rows)
	}
	// The ticket arrives within the wait: the survey is written again, attributed.
	out, oc = s.Apply(Message{Seq: 2, ReceivedAt: t0.Add(5 * time.Minute), Event: ticket("t1", "T-1", "refund", "red", t0)})
	if oc.LateAttributed != 1 || len(out.Surveys) != 1 || len(out.Tickets) != 1 {
		t.Fatalf("ticket outcome %+v, rows %+v", oc, out)
	}
	row := out.Surveys[0]
	if row.ID != "s1" || row.Category != "refund" || !row.Attributed || row.Version != records.Version(1, 1) || row.Seq != 1 {
		t.Fatalf("rewritten row: %+v", row)
	}
	if row.Version <= records.Version(1, 0) || records.Version(1, 0) <= records.Version(2, 1) {
		t.Fatal("version order: a revision must beat its first row, and the first copy any resend")
	}
	// The survey joins its ticket's series in the survey's bucket, stamped with the
	// ticket's sequence; overall, written before, is not written again.
	rows := s.TakeBuckets()
	dims := map[string]bool{}
	for _, r := range rows {
		if !r.Start.Equal(t0) || r.Version != 2 || r.Responses != 1 {
			t.Fatalf("bucket row: %+v", r)
		}
		dims[r.Dimension+"="+r.Key] = true
	}
	if len(rows) != 4 || !dims["category=refund"] || !dims["team=red"] || !dims["agent=a1"] || !dims["channel=chat"] {
		t.Fatalf("bucket rows after attribution: %+v", rows)
	}
	s.Tick(t0.Add(6 * time.Minute))
	if a := window(s, effort.Overall, ""); a.Responses != 1 {
		t.Fatalf("overall counted %d times", a.Responses)
	}
}

func TestSurveyWaitsNoLongerThanTheWait(t *testing.T) {
	s := New(0, cfg())
	s.Apply(Message{Seq: 1, ReceivedAt: t0, Event: survey("s1", "T-1", 6, t0)})
	_, oc := s.Apply(Message{Seq: 2, ReceivedAt: t0.Add(11 * time.Minute), Event: ticket("t1", "T-1", "refund", "red", t0)})
	if oc.Unattributed != 1 || oc.LateAttributed != 0 {
		t.Fatalf("outcome: %+v", oc)
	}
}

func TestLateEventsStayOutOfWindows(t *testing.T) {
	s := New(0, cfg())
	out, oc := s.Apply(Message{Seq: 1, ReceivedAt: t0.Add(61 * time.Minute), Event: survey("s1", "", 6, t0.Add(30*time.Second))})
	if !oc.Late || !out.Surveys[0].Late {
		t.Fatal("not marked late")
	}
	s.Tick(t0.Add(62 * time.Minute))
	if rows := s.TakeBuckets(); len(rows) != 0 {
		t.Fatalf("late event in buckets: %+v", rows)
	}
	if a := window(s, effort.Overall, ""); a.Responses != 0 {
		t.Fatalf("late event counted: %+v", a)
	}
}

func TestScalesAreStandardised(t *testing.T) {
	e := survey("s1", "", 4, t0)
	e.ScaleMin, e.ScaleMax = ptr(5.0), ptr(1.0) // a reversed 1–5 effort scale: 1 = easiest
	s := New(0, cfg())
	out, _ := s.Apply(Message{Seq: 1, ReceivedAt: t0, Event: e})
	// 4 on 5→1 is a quarter of the way from worst to best: 1 + 0.25·6 = 2.5 on 1–7.
	if got := out.Surveys[0].StandardScore; got != 2.5 {
		t.Fatalf("standard score %v, want 2.5", got)
	}
}
