package partition

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// randomStream is a partition's messages: surveys that carry their dimensions, surveys
// that carry only a ticket id (some before their ticket, some after, some never
// attributed), tickets, late events and employee pulses, received over several hours.
func randomStream(seed uint64, n int) []Message {
	rng := rand.New(rand.NewPCG(seed, 3))
	cats := []string{"billing", "refund", "login", "plan"}
	teams := []string{"red", "blue", "green"}
	var out []Message
	received := t0
	for i := range n {
		received = received.Add(time.Duration(rng.IntN(20)) * time.Second)
		occurred := received.Add(-time.Duration(rng.IntN(50)) * time.Minute)
		if rng.IntN(40) == 0 {
			occurred = received.Add(-2 * time.Hour) // late
		}
		ticketID := fmt.Sprintf("T-%d", rng.IntN(n/3+1))
		var e event.Event
		switch k := rng.IntN(10); {
		case k < 4:
			e = survey(fmt.Sprintf("s%d", i), ticketID, float64(1+rng.IntN(7)), occurred)
		case k < 6:
			e = survey(fmt.Sprintf("s%d", i), "", float64(1+rng.IntN(7)), occurred)
			e.Category, e.Team, e.Channel, e.AgentID = cats[rng.IntN(len(cats))], teams[rng.IntN(len(teams))], "chat", fmt.Sprintf("a%d", rng.IntN(9))
		case k < 9:
			e = ticket(fmt.Sprintf("t%d", i), ticketID, cats[rng.IntN(len(cats))], teams[rng.IntN(len(teams))], occurred)
		default:
			score := float64(1 + rng.IntN(5))
			e = event.Event{ID: fmt.Sprintf("p%d", i), Type: event.TypeEmployeePulse, OccurredAt: occurred,
				EmployeeID: fmt.Sprintf("emp-%d", rng.IntN(12)), Team: teams[rng.IntN(len(teams))], Question: "engagement",
				Score: &score, ScaleMin: ptr(1.0), ScaleMax: ptr(5.0)}
		}
		out = append(out, Message{Seq: uint64(i + 1), ReceivedAt: received, Event: e})
	}
	return out
}

// output collects what a state writes: raw rows in order, and the latest version of
// every bucket, as ClickHouse keeps it.
type output struct {
	raw     []string
	buckets map[string]records.Bucket
}

func (o *output) add(b records.Batch) {
	for _, r := range b.Surveys {
		o.raw = append(o.raw, fmt.Sprintf("%+v", r))
	}
	for _, r := range b.Tickets {
		o.raw = append(o.raw, fmt.Sprintf("%+v", r))
	}
	for _, r := range b.Pulses {
		o.raw = append(o.raw, fmt.Sprintf("%+v", r))
	}
	for _, r := range b.FollowUps {
		o.raw = append(o.raw, fmt.Sprintf("%+v", r))
	}
	o.addBuckets(b.Buckets)
}

func (o *output) addBuckets(rows []records.Bucket) {
	if o.buckets == nil {
		o.buckets = map[string]records.Bucket{}
	}
	for _, r := range rows {
		k := fmt.Sprintf("%s/%s/%s/%d", r.Survey, r.Dimension, r.Key, r.Start.Unix())
		if old, ok := o.buckets[k]; !ok || r.Version > old.Version {
			o.buckets[k] = r
		}
	}
}

// run applies msgs to s, ticking the wall clock at every tickEvery-th message (at
// the message's received_at plus skew) and taking the bucket rows at every takeEvery-th.
func run(s *State, msgs []Message, tickEvery, takeEvery int, skew time.Duration) output {
	var o output
	for i, m := range msgs {
		b, _ := s.Apply(m)
		o.add(b)
		if tickEvery > 0 && i%tickEvery == 0 {
			s.Tick(m.ReceivedAt.Add(skew).Truncate(time.Minute))
		}
		if i%takeEvery == 0 {
			o.addBuckets(s.TakeBuckets())
		}
	}
	o.addBuckets(s.TakeBuckets())
	return o
}

func current(s *State, at time.Time) []string {
	s.Tick(at)
	var out []string
	s.Current(func(k effort.SeriesKey, w effort.Window, a effort.Aggregate) {
		out = append(out, fmt.Sprintf("%v %s %+v", k, w.Name, a))
	})
	sort.Strings(out)
	return out
}

// The rows a partition writes depend on its messages alone: not on when the clock ticks
// (ticks evict old buckets), nor on where the rows are cut into chunks.
func TestRowsDependOnTheStreamAlone(t *testing.T) {
	msgs := randomStream(1, 3000)
	a := run(New(0, cfg()), msgs, 0, 1, 0)
	for _, c := range []struct {
		tickEvery, takeEvery int
		skew                 time.Duration
	}{{1, 7, 0}, {5, 100, 30 * time.Minute}, {50, 3, 3 * time.Hour}, {2, 1000, 24 * time.Hour}} {
		b := run(New(0, cfg()), msgs, c.tickEvery, c.takeEvery, c.skew)
		if !reflect.DeepEqual(a.raw, b.raw) {
			t.Fatalf("%+v: raw rows differ", c)
		}
		if !reflect.DeepEqual(a.buckets, b.buckets) {
			t.Fatalf("%+v: buckets differ: %d against %d", c, len(a.buckets), len(b.buckets))
		}
	}
}

// withFollowUps is cfg with follow-up rules: bad answers open cases, and the state
// remembers their tickets.
func withFollowUps(t *testing.T) Config {
	fu, err := followup.Config{Rules: "ces<=2", Window: 24 * time.Hour, Due: "24h", MaxAge: 90 * 24 * time.Hour,
		RateLimit: "30/1m", RetryMax: time.Minute, CloseReasons: "resolved"}.Settings("*=support")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg()
	c.FollowUps = fu
	return c
}

// A state restored from a snapshot carries on exactly as the state it was taken of, and
// as a state rebuilt from the start of the stream; with and without follow-ups.
func TestSnapshotGivesWhatAFullReplayGives(t *testing.T) {
	for name, c := range map[string]Config{"without follow-ups": cfg(), "with follow-ups": withFollowUps(t)} {
		t.Run(name, func(t *testing.T) { testSnapshotGivesWhatAFullReplayGives(t, c) })
	}
}

func testSnapshotGivesWhatAFullReplayGives(t *testing.T, c Config) {
	msgs := randomStream(2, 4000)
	for _, cut := range []int{1, 700, 2500, 3999} {
		full := New(0, c)
		whole := run(full, msgs, 3, 17, 0)

		saved := New(0, c)
		first := run(saved, msgs[:cut], 3, 17, 0)
		data, err := saved.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		restored, err := Restore(0, c, data)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing is lost or changed by the encoding: the restored state encodes to the
		// same bytes (snapshots of equal states are equal).
		if again, err := restored.Snapshot(); err != nil || !bytes.Equal(again, data) {
			t.Fatalf("cut %d: the restored state encodes to other bytes (%v)", cut, err)
		}
		if restored.ConfigFingerprint() != full.ConfigFingerprint() {
			t.Fatal("fingerprint changed by a restore")
		}
		rest := run(restored, msgs[cut:], 3, 17, 0)

		// Raw rows of the messages after the cut are the same.
		if got, want := rest.raw, whole.raw[len(first.raw):]; !reflect.DeepEqual(got, want) {
			t.Fatalf("cut %d: %d raw rows after the restore, want %d", cut, len(got), len(want))
		}
		// Buckets: the first part's rows, then the restored state's, give the full run's.
		merged := output{}
		merged.addBuckets(values(first.buckets))
		merged.addBuckets(values(rest.buckets))
		if !reflect.DeepEqual(merged.buckets, whole.buckets) {
			t.Fatalf("cut %d: buckets differ from a full replay", cut)
		}
		at := msgs[len(msgs)-1].ReceivedAt.Truncate(time.Minute)
		if got, want := current(restored, at), current(full, at); !reflect.DeepEqual(got, want) {
			t.Fatalf("cut %d: windows differ:\n%v\n%v", cut, got, want)
		}
		if a, b := sizes(restored), sizes(full); a != b {
			t.Fatalf("cut %d: sizes %s, want %s", cut, a, b)
		}
	}
}

func TestSnapshotOfAnotherPartitionIsRefused(t *testing.T) {
	s := New(3, cfg())
	data, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(4, cfg(), data); err == nil {
		t.Fatal("partition 3's snapshot restored as partition 4")
	}
	if _, err := Restore(3, cfg(), []byte("not a snapshot")); err == nil {
		t.Fatal("garbage restored")
	}
}

// An empty state, and one whose buckets and instants lie before the Unix epoch (negative
// indexes and gaps), come back as they were.
func TestSnapshotOfEmptyAndEarlyStates(t *testing.T) {
	early := time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)
	for name, msgs := range map[string][]Message{
		"empty": nil,
		"before the epoch": {
			{Seq: 1, ReceivedAt: early, Event: ticket("t1", "T-1", "billing", "red", early)},
			{Seq: 2, ReceivedAt: early.Add(time.Minute), Event: survey("s1", "T-1", 2, early)},
			{Seq: 3, ReceivedAt: early.Add(2 * time.Minute), Event: survey("s2", "T-2", 6, early.Add(time.Minute))},
			{Seq: 4, ReceivedAt: early.Add(3 * time.Minute), Event: survey("s3", "", 4, early.Add(-3*time.Minute))},
		},
	} {
		c := withFollowUps(t)
		s := New(2, c)
		run(s, msgs, 0, 1, 0)
		data, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		restored, err := Restore(2, c, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again, _ := restored.Snapshot(); !bytes.Equal(again, data) {
			t.Fatalf("%s: the restored state encodes to other bytes", name)
		}
		at := early.Add(10 * time.Minute)
		if got, want := current(restored, at), current(s, at); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: windows differ:\n%v\n%v", name, got, want)
		}
		if a, b := sizes(restored), sizes(s); a != b {
			t.Fatalf("%s: sizes %s, want %s", name, a, b)
		}
	}
}

// A snapshot whose columns do not fit together is refused with the column named, not
// restored into a state that would fail later.
func TestSnapshotWithInconsistentColumnsIsRefused(t *testing.T) {
	s := New(0, cfg())
	run(s, randomStream(4, 300), 0, 1, 0)
	for _, c := range []struct {
		field string
		spoil func(*snapshot)
	}{
		{"SeriesLens", func(x *snapshot) { x.SeriesLens[0] += uint32(len(x.BucketGaps)) }},
		{"SeriesKeys", func(x *snapshot) { x.SeriesKeys = x.SeriesKeys[1:] }},
		{"TicketDims", func(x *snapshot) { x.TicketDims = x.TicketDims[4:] }},
		{"Ends", func(x *snapshot) { x.Ends[0] = uint32(len(x.Strings) + 1) }},
		{"string 1000000", func(x *snapshot) { x.TicketIDs[0] = 1000000 }},
		{"sums", func(x *snapshot) { x.SqMicro = x.SqMicro[1:] }},
	} {
		data, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s2.Decode(nil, data)
		if err != nil {
			t.Fatal(err)
		}
		var x snapshot
		if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&x); err != nil {
			t.Fatal(err)
		}
		c.spoil(&x)
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(&x); err != nil {
			t.Fatal(err)
		}
		_, err = Restore(0, cfg(), s2.Encode(nil, buf.Bytes()))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s spoilt: %v", c.field, err)
		}
	}
}

// sizes are what a state holds: series, tickets, waiting surveys, follow-up tickets.
func sizes(s *State) string {
	series, tickets, waiting := s.Size()
	return fmt.Sprint(series, tickets, waiting, s.FollowUpTickets())
}

func values(m map[string]records.Bucket) []records.Bucket {
	out := make([]records.Bucket, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	return out
}
