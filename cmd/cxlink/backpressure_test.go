package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/stream"
)

// When the stream reaches its limit, ingest accepts nothing it cannot keep: it answers
// 503 with a Retry-After, says the stream is full, drops no stored event to make room,
// and every event it reported accepted is in the stream.
func TestStreamFullIsRefused(t *testing.T) {
	ns, err := broker.Start(broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	env := map[string]string{"NATS_URL": ns.ClientURL(), "CXLINK_HTTP_ADDR": "127.0.0.1:0", "CXLINK_STREAM_MAX_BYTES": "200000"}
	url := apptest.StartRole(t, env, nil, "ingest").URL + "/v1/events"

	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	var full *http.Response
	var fullBody string
	for i := 0; i < 200 && full == nil; i++ {
		resp, raw, err := apptest.PostNDJSON(nil, url, testEvents(rng, fmt.Sprintf("full%d", i), 50, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		var a postAnswer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
		accepted += a.Accepted
		if resp.StatusCode == http.StatusServiceUnavailable {
			full, fullBody = resp, string(raw)
		}
	}
	if full == nil {
		t.Fatal("the stream never filled up")
	}
	if got := full.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want 30", got)
	}
	if !strings.Contains(fullBody, "the stream is full") {
		t.Errorf("the answer does not say the stream is full: %s", fullBody)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events accepted, the stream holds %d messages in %d bytes (first seq %d)", accepted, info.State.Msgs, info.State.Bytes, info.State.FirstSeq)
	if int(info.State.Msgs) != accepted || info.State.FirstSeq != 1 {
		t.Fatalf("accepted %d, but the stream holds %d from seq %d", accepted, info.State.Msgs, info.State.FirstSeq)
	}
}
