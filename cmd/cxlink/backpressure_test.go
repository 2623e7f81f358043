package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
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
	defer ns.Shutdown()
	env := map[string]string{"NATS_URL": ns.ClientURL(), "CXLINK_HTTP_ADDR": "127.0.0.1:0", "CXLINK_STREAM_MAX_BYTES": "200000"}
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"ingest"}, app.Options{Environ: env, Stderr: testWriter{t, "ingest"}, Listening: func(a string) { addr <- a }})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	url := "http://" + <-addr + "/v1/events"

	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	var full *http.Response
	var fullBody string
	for i := 0; i < 200 && full == nil; i++ {
		var body bytes.Buffer
		enc := json.NewEncoder(&body)
		for _, e := range testEvents(rng, fmt.Sprintf("full%d", i), 50, time.Now()) {
			enc.Encode(e)
		}
		resp, err := http.Post(url, "application/x-ndjson", &body)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
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
