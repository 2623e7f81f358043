package main

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// testEvents makes n events of a small contact centre, all inside the windows and the
// allowed lateness except about 2% that are late. Half the surveys carry only their
// ticket id; some come before their ticket. One event in 50 is invalid.
func testEvents(rng *rand.Rand, prefix string, n int, now time.Time) []map[string]any {
	teams := []string{"red", "blue", "green"}
	categories := []string{"refund_request", "billing_question", "login_problem", "plan_correction"}
	channels := []string{"phone", "chat", "email"}
	at := func() string {
		if rng.IntN(50) == 0 {
			return now.Add(-lateness - 10*time.Minute).Format(time.RFC3339Nano) // late
		}
		return now.Add(-time.Duration(rng.Int64N(int64(5 * time.Minute)))).Format(time.RFC3339Nano)
	}
	// Pulses occur at now, not at(): every pulse of a run falls in one pulse period. They
	// come in whole bursts of a team's five employees (every accepted pulse is stored
	// whatever the group: the bursts keep the groups publishable).
	pulses := func(prefix, team string) []map[string]any {
		var burst []map[string]any
		for e := range 5 {
			burst = append(burst, map[string]any{"id": fmt.Sprintf("%s-%d", prefix, e), "type": "employee_pulse",
				"occurred_at": now.Format(time.RFC3339Nano), "employee_id": fmt.Sprintf("%s-e%d", team, e),
				"team": team, "question": "engagement", "score": 1 + rng.IntN(5)})
		}
		return burst
	}
	var out []map[string]any
	for i := 0; len(out) < n; i++ {
		team := rng.IntN(len(teams))
		t := map[string]any{
			"id": fmt.Sprintf("%s-tk-%d", prefix, i), "type": "ticket", "occurred_at": at(), "source": "test",
			"ticket_id": fmt.Sprintf("%s-T%d", prefix, i), "status": "solved",
			"category": categories[rng.IntN(len(categories))], "channel": channels[rng.IntN(len(channels))],
			"team": teams[team], "agent_id": fmt.Sprintf("%s-a%d", teams[team], rng.IntN(4)),
			"handle_seconds": rng.IntN(1800), "contacts": 1 + rng.IntN(3),
		}
		var surveys []map[string]any
		for j := range 1 + rng.IntN(2) {
			kind := []string{"ces", "ces", "ces", "csat", "nps"}[rng.IntN(5)]
			s := map[string]any{"id": fmt.Sprintf("%s-sv-%d-%d", prefix, i, j), "type": "survey_response",
				"occurred_at": at(), "survey": kind, "ticket_id": t["ticket_id"]}
			switch kind {
			case "ces":
				s["score"] = 1 + rng.IntN(7)
				if rng.IntN(5) == 0 { // a 1–5 effort scale, 1 = easiest
					s["score"], s["scale_min"], s["scale_max"] = 1+rng.IntN(5), 5, 1
				}
			case "csat":
				s["score"] = 1 + rng.IntN(5)
			case "nps":
				s["score"] = rng.IntN(11)
			}
			if rng.IntN(2) == 0 { // a helpdesk rating with its own dimensions
				for _, k := range []string{"category", "channel", "team", "agent_id"} {
					s[k] = t[k]
				}
			}
			if rng.IntN(50) == 0 {
				s["score"] = 42 // invalid: off the scale
			}
			surveys = append(surveys, s)
		}
		if rng.IntN(10) == 0 { // the rating arrives before the ticket
			out = append(out, surveys...)
			out = append(out, t)
		} else {
			out = append(out, t)
			out = append(out, surveys...)
		}
		if rng.IntN(40) == 0 && len(out)+5 <= n {
			out = append(out, pulses(fmt.Sprintf("%s-ep-%d", prefix, i), teams[team])...)
		}
	}
	return out[:n]
}

// show renders query results as one string per row.
func show(rows [][]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		vals := make([]any, len(r))
		for j, v := range r {
			rv := reflect.ValueOf(v)
			for rv.Kind() == reflect.Pointer && !rv.IsNil() {
				rv = rv.Elem()
			}
			vals[j] = rv.Interface()
		}
		out[i] = fmt.Sprintln(vals...)
	}
	return out
}

func merge(dst, src map[string]bool) {
	for k := range src {
		dst[k] = true
	}
}

func TestPipelineEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.startProcessor()
	rng := rand.New(rand.NewPCG(7, 11))
	stored, rejected := map[string]bool{}, map[string]bool{}

	t.Log("phase 1: 10,000 events over HTTP; rollups equal a recomputation from the raw tables")
	events := testEvents(rng, "p1", 10000, time.Now())
	s, r := c.postAll(events, 500)
	merge(stored, s)
	merge(rejected, r)
	if len(rejected) == 0 || len(stored) < 9000 {
		t.Fatalf("stored %d, rejected %d", len(stored), len(rejected))
	}
	c.waitProcessed()
	c.checkStored(stored, rejected)
	rows := c.waitRollups()
	t.Logf("%d rollup rows match the raw tables", rows)

	t.Log("phase 2: the same 10,000 again change no count and no rollup")
	db := c.env["CLICKHOUSE_DATABASE"]
	countRows := func() string {
		return show(c.query("SELECT (SELECT count() FROM " + db + ".survey_responses), (SELECT count() FROM " + db + ".tickets), (SELECT count() FROM " + db + "_private.employee_pulses)"))[0]
	}
	before := countRows()
	buckets := func() []string {
		return show(c.query("SELECT survey, dimension, key, bucket_start, sum(responses), sum(score_sum) FROM " + db +
			".rollup_buckets FINAL GROUP BY survey, dimension, key, bucket_start ORDER BY survey, dimension, key, bucket_start"))
	}
	snapshot := buckets()
	again := 0
	for i := 0; i < len(events); i += 500 {
		a := c.post(events[i:min(i+500, len(events))])
		if a.Accepted > 0 {
			t.Fatalf("a resent event was accepted as new: %+v", a)
		}
		again += a.Duplicates
	}
	c.waitProcessed()
	if after := countRows(); after != before {
		t.Fatalf("rows before %s, after resending %s", before, after)
	}
	after := buckets()
	if len(after) != len(snapshot) {
		t.Fatalf("%d rollup buckets before resending, %d after", len(snapshot), len(after))
	}
	for i := range after {
		if after[i] != snapshot[i] {
			t.Fatalf("rollup bucket changed after resending: %s, was %s", after[i], snapshot[i])
		}
	}
	t.Logf("resent %d events: %d duplicates, rows unchanged (%s)", len(events), again, before)

	t.Log("phase 3: the processor is killed -9 mid-stream and restarted")
	events = testEvents(rng, "p3", 6000, time.Now())
	for i := 0; i < len(events); i += 250 {
		if i == 2000 {
			c.processor.Kill()
		}
		if i == 4000 {
			c.startProcessor()
		}
		s, r := c.postAll(events[i:min(i+250, len(events))], 250)
		merge(stored, s)
		merge(rejected, r)
	}
	c.waitProcessed()
	c.checkStored(stored, rejected)
	c.waitRollups()

	t.Log("phase 4: ClickHouse stops for a while")
	events = testEvents(rng, "p4", 4000, time.Now())
	s, r = c.postAll(events[:2000], 250)
	merge(stored, s)
	merge(rejected, r)
	c.ch.Stop()
	s, r = c.postAll(events[2000:], 250)
	merge(stored, s)
	merge(rejected, r)
	time.Sleep(5 * time.Second) // the outage: the processor keeps retrying meanwhile
	c.ch.Start()
	c.waitProcessed()
	c.checkStored(stored, rejected)
	c.waitRollups()

	t.Log("phase 5: SIGTERM drains: the processor stores and acks what it took, then exits")
	if err := c.processor.Stop(); err != nil {
		t.Errorf("the process role after SIGTERM: %v", err)
	}
	c.startProcessor()
	c.waitProcessed()
	c.checkStored(stored, rejected)
	c.waitRollups()
}
