package main

// End to end: a CES 1 answer on a billing ticket, posted to a running cxlink (embedded
// JetStream, a real ClickHouse), becomes one follow-up case for billing, with its
// context, on the follow-up stream and in the followups table; the same answer resent,
// a second bad answer on the ticket, and a replay of the whole partition after a restart
// (its progress and snapshots removed, so every row is written again) open no second.

import (
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// runCxlinkUntilStopped runs `cxlink run` with env (apptest.StartRole) until stop is
// called, and returns its API's URL. A failed stop fails the test as it ends.
func runCxlinkUntilStopped(t *testing.T, env map[string]string) (url string, stop func()) {
	t.Helper()
	r := apptest.StartRole(t, env, nil, "run")
	return r.URL, func() { _ = r.Stop() }
}

func TestFollowUpOpensOneCase(t *testing.T) {
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	dataDir := t.TempDir()
	env := maps.Clone(apptest.Defaults)
	maps.Copy(env, map[string]string{
		"CXLINK_DATA_DIR":        dataDir,
		"CLICKHOUSE_ADDR":        ch.Addr(),
		"CLICKHOUSE_DATABASE":    database,
		"CXLINK_OWNERS":          "category:billing=billing, category:*=product, *=support",
		"CXLINK_FOLLOWUP_RULES":  "ces<=2, nps<=6",
		"CXLINK_FOLLOWUP_DUE":    "billing=4h, *=24h",
		"CXLINK_FOLLOWUP_WINDOW": "24h",
	})
	url, stop := runCxlinkUntilStopped(t, env)

	now := time.Now().UTC().Truncate(time.Second)
	ticket := map[string]any{"id": "fu-ticket-1", "type": "ticket", "ticket_id": "T-100", "status": "solved",
		"occurred_at": now.Add(-2 * time.Minute).Format(time.RFC3339), "category": "billing", "channel": "phone",
		"team": "team-a", "agent_id": "agent-7"}
	answer := map[string]any{"id": "fu-ces-1", "type": "survey_response", "survey": "ces", "score": 1,
		"ticket_id": "T-100", "customer_id": "C-42", "comment": "I was charged twice and nobody called back",
		"occurred_at": now.Add(-time.Minute).Format(time.RFC3339)}
	happy := map[string]any{"id": "fu-ces-2", "type": "survey_response", "survey": "ces", "score": 6,
		"ticket_id": "T-200", "customer_id": "C-43", "occurred_at": now.Add(-time.Minute).Format(time.RFC3339)}
	if code, body := postTo(t, url, []map[string]any{ticket, answer, happy}); code/100 != 2 {
		t.Fatalf("post: %d %s", code, body)
	}

	q := func(where string) string {
		return "SELECT count() FROM " + database + ".followups FINAL WHERE " + where
	}
	db, err := clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string) uint64 {
		t.Helper()
		var n uint64
		if err := db.Conn().QueryRow(t.Context(), query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	opened := time.Now()
	followUpWait(t, time.Minute, func() bool { return count(q("1")) >= 1 })
	t.Logf("case stored %s after the answer was accepted", time.Since(opened).Round(time.Millisecond))

	var (
		id, state, owner, rule, survey, ticketID, customer, category, channel, team, agent, comment string
		score                                                                                       float64
		openedAt, dueAt                                                                             time.Time
	)
	if err := db.Conn().QueryRow(t.Context(), "SELECT id, state, owner, rule, survey, score, ticket_id, customer_id, category, channel, team, agent_id, comment, opened_at, due_at FROM "+
		database+".followups FINAL").Scan(&id, &state, &owner, &rule, &survey, &score, &ticketID, &customer, &category, &channel, &team, &agent, &comment, &openedAt, &dueAt); err != nil {
		t.Fatal(err)
	}
	if id != followup.CaseID("fu-ces-1") || state != "open" || owner != "billing" || rule != "ces<=2" || survey != "ces" || score != 1 ||
		ticketID != "T-100" || customer != "C-42" || category != "billing" || channel != "phone" || team != "team-a" ||
		agent != "agent-7" || !strings.Contains(comment, "charged twice") {
		t.Fatalf("case: id=%s state=%s owner=%s rule=%s survey=%s score=%g ticket=%s customer=%s category=%s channel=%s team=%s agent=%s comment=%q",
			id, state, owner, rule, survey, score, ticketID, customer, category, channel, team, agent, comment)
	}
	if got := dueAt.Sub(openedAt); got != 4*time.Hour {
		t.Fatalf("due %s after opening, want billing's 4h", got)
	}
	if d := time.Since(openedAt); d < 0 || d > time.Minute {
		t.Fatalf("opened at %s: %s ago", openedAt, d)
	}

	// The same answer resent, and a second bad answer on the same ticket: no new case.
	again := maps.Clone(answer)
	second := maps.Clone(answer)
	second["id"], second["score"] = "fu-ces-3", 2
	if code, body := postTo(t, url, []map[string]any{again, second}); code/100 != 2 || !strings.Contains(body, `"duplicates":1`) {
		t.Fatalf("post again: %d %s", code, body)
	}
	followUpWait(t, time.Minute, func() bool {
		return count("SELECT count() FROM "+database+".survey_responses FINAL WHERE id = 'fu-ces-3'") == 1
	})
	stop()

	// Replay every partition from the start: progress and snapshots gone, every row of
	// every message is written again, and the case is published again.
	purgeProgress(t, dataDir)
	url, _ = runCxlinkUntilStopped(t, env)
	followUpWait(t, time.Minute, func() bool {
		return count("SELECT count() FROM "+database+".survey_responses WHERE id = 'fu-ces-1'") >= 2
	})
	time.Sleep(2 * time.Second) // the follow-up stage is as quick as the partitions
	if n := count(q("1")); n != 1 {
		t.Fatalf("%d cases after the replay, want 1", n)
	}
	// Every row of the table is one message of the follow-up stream: one message.
	if n := count("SELECT count(DISTINCT version) FROM " + database + ".followups"); n != 1 {
		t.Fatalf("%d follow-up messages after the replay, want 1", n)
	}
	_ = url
}

// purgeProgress removes the partitions' progress and snapshots from a stopped embedded
// server's store, and checks that the follow-up stream holds one case.
func purgeProgress(t *testing.T, dataDir string) {
	t.Helper()
	srv, err := broker.Start(broker.Config{DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{"KV_" + checkpoint.ProgressBucket, "OBJ_" + checkpoint.SnapshotStore} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatalf("purge %s: %v", name, err)
		}
	}
	s, err := js.Stream(ctx, followup.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("follow-up stream holds %d messages, want 1", info.State.Msgs)
	}
}

func followUpWait(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
