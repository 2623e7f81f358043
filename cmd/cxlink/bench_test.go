package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// stampingSink records when each raw row became queryable: when the insert holding it
// returned.
type stampingSink struct {
	*clickhouse.Client
	mu     sync.Mutex
	stored map[string]time.Time
	n      atomic.Int64
}

func (s *stampingSink) WriteBatch(ctx context.Context, b *records.Batch) error {
	if err := s.Client.WriteBatch(ctx, b); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	for i := range b.Surveys {
		if b.Surveys[i].Version&1 == 0 { // first revision: the survey's own message
			s.stored[b.Surveys[i].ID] = now
		}
	}
	for i := range b.Tickets {
		s.stored[b.Tickets[i].ID] = now
	}
	s.n.Store(int64(len(s.stored)))
	s.mu.Unlock()
	return nil
}

// BenchmarkWholePipeline pushes b.N events through HTTP → JetStream → processors →
// ClickHouse, with every component real and in this process except ClickHouse, once
// with the embedded server syncing before every acknowledgement (cxlink's default) and
// once with NATS's own 2-minute interval, and reports for each: sustained events/s, the
// rate at which ingest answered (publish alone), the latency from sending a request to
// its rows being queryable, the rate at which a restarted pipeline replays the stream,
// and the rate of a plain durable consumer reading the same stream (acking each
// message). The second reports the ratio of the two whole-pipeline rates. With the nats
// CLI on PATH (deploy/local/bench.sh installs it) each also runs `nats bench js pub
// async --dedup` against the same server first, for the ratio to JetStream itself.
// Run: go test -run '^$' -bench WholePipeline -benchtime 100000x ./cmd/cxlink/
func BenchmarkWholePipeline(b *testing.B) {
	var always float64
	for _, policy := range []string{broker.SyncAlways, "2m"} {
		b.Run("sync="+policy, func(b *testing.B) {
			if b.N == 1 {
				return // the sizing call: the measurement is the b.N = -benchtime call
			}
			rate := wholePipeline(b, policy)
			if policy == broker.SyncAlways {
				always = rate
			} else if always > 0 {
				b.ReportMetric(always/rate, "always/lazy")
			}
		})
	}
}

func wholePipeline(b *testing.B, policy string) float64 {
	ctx := b.Context()
	logger := slog.New(slog.DiscardHandler)
	ns, err := broker.Start(broker.Config{DataDir: b.TempDir(), Listen: "127.0.0.1:-1", Sync: policy}, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	// A sync per message makes nats bench slow: fewer messages give its rate as well.
	natsRate := natsBench(b, ns.ClientURL(), map[string]int{broker.SyncAlways: 5000}[policy])

	ch := chtest.Start(b)
	var cfg struct {
		HTTP    httpapi.Config
		Process pipeline.Config
		Stream  stream.Config
	}
	cfg.HTTP, cfg.Process, cfg.Stream = httpapi.DefaultConfig(), pipeline.DefaultConfig(), stream.DefaultConfig()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.HTTP.MaxBatchEvents))
	if err != nil {
		b.Fatal(err)
	}
	s, info, err := stream.Define(ctx, js, cfg.Stream, cfg.Process.DuplicateWindow(cfg.HTTP.MaxFuture))
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	pub := stream.NewPublisher(js, info.Partitions, reg, stream.AtomicBatches(cfg.Stream.PublishBatch))
	h, err := httpapi.New(cfg.HTTP, httpapi.Options{Publisher: pub, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	db, err := clickhouse.Open(ctx, ch.Config(ch.NewDatabase(b)), logger, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	sink := &stampingSink{Client: db, stored: make(map[string]time.Time, b.N)}
	startPipeline := func(sink pipeline.Sink, reg prometheus.Registerer) (*pipeline.Pipeline, func()) {
		p, err := pipeline.New(cfg.Process, pipeline.Options{
			Stream: s, Partitions: info.Partitions, Sink: sink, MaxFuture: cfg.HTTP.MaxFuture,
			Logger: logger, Registerer: reg,
		})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		return p, func() { stop(); <-done }
	}
	p, stopPipeline := startPipeline(sink, reg)
	defer func() { stopPipeline() }()

	// Realistic bodies, built before the clock starts: 500 events per request, tickets
	// with their surveys, about 300 bytes an event.
	const perRequest = 500
	now := time.Now().UTC()
	var bodies [][]byte
	var ids [][]string
	var body bytes.Buffer
	var batchIDs []string
	enc := json.NewEncoder(&body)
	for i := 0; i < b.N; i++ {
		ticket := fmt.Sprintf("T%d", i/2)
		e := map[string]any{"id": fmt.Sprintf("ev-%d", i), "occurred_at": now.Add(-time.Duration(i%600) * time.Second).Format(time.RFC3339), "ticket_id": ticket, "source": "bench"}
		if i%2 == 0 {
			e["type"], e["status"], e["category"], e["channel"] = "ticket", "solved", fmt.Sprintf("category-%d", i%7), "chat"
			e["team"], e["agent_id"], e["handle_seconds"], e["contacts"] = fmt.Sprintf("team-%d", i%6), fmt.Sprintf("agent-%d", i%48), 300+i%900, 1+i%3
		} else {
			e["type"], e["survey"], e["score"] = "survey_response", "ces", 1+i%7
			e["customer_id"], e["comment"] = fmt.Sprintf("c%d", i), "quick and friendly"
		}
		enc.Encode(e)
		batchIDs = append(batchIDs, e["id"].(string))
		if len(batchIDs) == perRequest || i == b.N-1 {
			bodies = append(bodies, slices.Clone(body.Bytes()))
			ids = append(ids, batchIDs)
			body.Reset()
			batchIDs = nil
		}
	}
	for p.Ready() != nil {
		time.Sleep(10 * time.Millisecond)
	}

	sent := make([]time.Time, len(bodies))
	var next atomic.Int64
	var wg sync.WaitGroup
	stopProfile := cpuProfile(b, policy)
	b.ResetTimer()
	start := time.Now()
	for range 4 { // concurrent senders, as several helpdesk connectors would be
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				sent[i] = time.Now()
				resp, err := http.Post(srv.URL+"/v1/events", "application/x-ndjson", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	ingested := time.Since(start)
	for sink.n.Load() < int64(b.N) {
		if b.Failed() {
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()

	var lat []time.Duration
	sink.mu.Lock()
	for i, batch := range ids {
		for _, id := range batch {
			lat = append(lat, sink.stored[id].Sub(sent[i]))
		}
	}
	sink.mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))].Seconds() * 1000 }
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(b.N)/ingested.Seconds(), "ingest-events/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	if natsRate > 0 {
		b.ReportMetric(natsRate, "nats-bench-msgs/s")
		b.ReportMetric(rate/natsRate, "ratio")
	}

	// A restart: a new pipeline rebuilds its partitions' state from the stream, which
	// holds the b.N events, all inside the replay horizon.
	stopPipeline()
	stopPipeline = func() {}
	restart := time.Now()
	p, stopReplayed := startPipeline(&stampingSink{Client: db, stored: map[string]time.Time{}}, prometheus.NewRegistry())
	for p.Ready() != nil {
		if time.Since(restart) > 10*time.Minute {
			b.Fatal("the restarted pipeline did not replay the stream in 10 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(restart).Seconds(), "replay-events/s")
	stopReplayed()
	b.ReportMetric(durableConsume(b, s, b.N), "consume-msgs/s")
	return rate
}

// cpuProfile writes the CPU profile of the measured stretch alone (not of nats bench,
// whose server runs in this process) to $CXLINK_BENCH_PROFILE_DIR/cpu-sync=<policy>.pprof,
// when that variable is set; the returned function stops it.
func cpuProfile(b *testing.B, policy string) func() {
	dir := os.Getenv("CXLINK_BENCH_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "cpu-sync="+policy+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// durableConsume reads n messages of s with a new durable consumer that acks each, as
// the processors' consumers do, and returns its msgs/s: what JetStream itself delivers.
func durableConsume(b *testing.B, s jetstream.Stream, n int) float64 {
	ctx := b.Context()
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench-consume", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	start := time.Now()
	for range n {
		msg, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := msg.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// natsBench runs `nats bench js pub async --dedup` (300-byte messages, file storage,
// msgs of them, 0: 100,000) against url and returns its msgs/s, or 0 without the nats CLI.
func natsBench(b *testing.B, url string, msgs int) float64 {
	cli, err := exec.LookPath("nats")
	if err != nil {
		b.Log("nats CLI not on PATH (go install github.com/nats-io/natscli/nats@v0.5.0): no JetStream baseline")
		return 0
	}
	csv := filepath.Join(b.TempDir(), "bench.csv")
	out, err := exec.Command(cli, "-s", url, "bench", "js", "pub", "async", "bench.dedup",
		"--create", "--dedup", "--storage=file", "--size=300", "--no-progress",
		"--msgs", strconv.Itoa(cmp.Or(msgs, 100000)), "--csv", csv).CombinedOutput()
	if err != nil {
		b.Fatalf("nats bench: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`([\d,]+) msgs/sec`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("nats bench: no rate in its output:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(strings.ReplaceAll(string(m[1]), ",", ""), 64)
	b.Logf("nats bench js pub async --dedup: %.0f msgs/s", rate)
	return rate
}
