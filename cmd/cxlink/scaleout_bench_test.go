//go:build !windows

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/natstest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// BenchmarkScaleOut measures how fast 1, 2 and 3 `cxlink process` replicas work through a
// backlog on a 3-node NATS cluster (R3 stream, 16 partitions): the stream is filled with
// CXLINK_BENCH_EVENTS events (default 60,000) of a small contact centre first, then the
// replicas start and the clock runs until every partition's progress has passed its last
// message. Every replica, NATS node and ClickHouse share the machine: on 2 cores more
// replicas compete for the same CPU, so read the curve as what this machine gives, not as
// the scaling of a cluster of machines.
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x -timeout 30m ./cmd/cxlink
func BenchmarkScaleOut(b *testing.B) {
	events := 60000
	if v := os.Getenv("CXLINK_BENCH_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	for _, replicas := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas-%d", replicas), func(b *testing.B) {
			for range b.N {
				rate := scaleOutOnce(b, replicas, events)
				b.ReportMetric(rate, "events/s")
			}
		})
	}
}

func scaleOutOnce(b *testing.B, replicas, n int) float64 {
	b.StopTimer()
	ctx := b.Context()
	natsCluster := natstest.StartCluster(b, 3)
	ch := chtest.Start(b)
	env := map[string]string{
		"NATS_URL":                 natsCluster.URL(),
		"CLICKHOUSE_ADDR":          ch.Addr(),
		"CLICKHOUSE_DATABASE":      ch.NewDatabase(b),
		"CXLINK_STREAM_PARTITIONS": "16",
		"CXLINK_STREAM_REPLICAS":   "3",
		"CXLINK_LEASE_TTL":         "5s",
		"CXLINK_WINDOWS":           "10m,1h",
		"CXLINK_ALLOWED_LATENESS":  lateness.String(),
		"CXLINK_ATTRIBUTION_WAIT":  "1m",
		"CXLINK_EMPLOYEE_ID_KEY":   testEmployeeKey,
		"CXLINK_ANALYTICS":         "off",
	}
	if err := app.Run(ctx, []string{"migrate"}, app.Options{Environ: env, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		b.Fatal(err)
	}
	nc := natsCluster.Connect(b)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		b.Fatal(err)
	}
	pub := stream.NewPublisher(js, 16, nil, stream.AtomicBatches(500))
	rng := rand.New(rand.NewPCG(uint64(replicas), 5))
	now := time.Now()
	for sent := 0; sent < n; {
		var batch []event.Event
		for _, m := range testEvents(rng, fmt.Sprintf("r%d-%d", replicas, sent), min(500, n-sent), now) {
			raw, _ := json.Marshal(m)
			var e event.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
			if errs := (event.Validator{Now: time.Now, MaxFuture: time.Hour}).Validate(&e); len(errs) == 0 {
				if e.Type == event.TypeEmployeePulse {
					e.EmployeeID = "emp-" + e.EmployeeID // pseudonymised, as ingest does
				}
				batch = append(batch, e)
			}
		}
		for _, r := range pub.Publish(ctx, batch) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		sent += 500
	}
	b.StartTimer()
	start := time.Now()
	for i := range replicas {
		e := maps.Clone(env)
		e["CXLINK_HTTP_ADDR"], e["CXLINK_REPLICA_ID"] = proc.FreeAddr(b), fmt.Sprintf("r%d", i)
		apptest.StartChild(b, fmt.Sprintf("r%d", i), e, "process")
	}
	waitPartitionsStored(b, js, 16, 20*time.Minute)
	took := time.Since(start)
	b.StopTimer()
	b.Logf("%d replicas: %d events through 16 partitions in %s (start-up included)", replicas, n, took.Round(time.Millisecond))
	return float64(n) / took.Seconds()
}
