package partition

import (
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/followup"
)

// A bad answer opens its case in the message that brings it, with the ticket's
// dimensions when the ticket is known; a snapshot carries the ticket's case, so that a
// restored state decides as the full run does.
func TestFollowUpCases(t *testing.T) {
	fu, err := followup.Config{Rules: "ces<=2", Window: 24 * time.Hour, Due: "24h", MaxAge: 90 * 24 * time.Hour,
		RateLimit: "30/1m", RetryMax: time.Minute, CloseReasons: "resolved"}.Settings("category:billing=billing, *=support")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg()
	c.FollowUps = fu
	s := New(1, c)
	s.Apply(Message{Seq: 1, ReceivedAt: t0, Event: ticket("t1", "T-1", "billing", "blue", t0)})
	out, oc := s.Apply(Message{Seq: 2, ReceivedAt: t0.Add(time.Minute), Event: survey("s1", "T-1", 1, t0.Add(time.Minute))})
	if oc.FollowUp != followup.Opened || len(out.FollowUps) != 1 {
		t.Fatalf("%v, %d cases", oc.FollowUp, len(out.FollowUps))
	}
	if f := out.FollowUps[0]; f.Owner != "billing" || f.Category != "billing" || f.Team != "blue" || f.Seq != 2 || f.ID != followup.CaseID("s1") {
		t.Fatalf("case: %+v", f)
	}
	// Before its ticket: the case opens at once, owned by the default owner.
	out, _ = s.Apply(Message{Seq: 3, ReceivedAt: t0.Add(time.Minute), Event: survey("s2", "T-2", 2, t0.Add(time.Minute))})
	if len(out.FollowUps) != 1 || out.FollowUps[0].Owner != "support" {
		t.Fatalf("before the ticket: %+v", out.FollowUps)
	}

	data, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(1, c, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*State{s, restored} {
		if _, oc := st.Apply(Message{Seq: 4, ReceivedAt: t0.Add(time.Hour), Event: survey("s3", "T-1", 1, t0.Add(time.Hour))}); oc.FollowUp != followup.SameTicket {
			t.Fatalf("second bad answer on T-1: %v", oc.FollowUp)
		}
	}
	if s.ConfigFingerprint() == New(1, cfg()).ConfigFingerprint() {
		t.Fatal("the follow-up rules are not part of the fingerprint")
	}
}
