package partition

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/simulator"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/effort"
)

// The contact centre of cmd/cxlink's soak (BenchmarkSoak): 50 teams of 20 agents, the
// simulator's 6 categories split five ways by ticket, ~60,000 customer events a day over
// 16 partitions, received 10 s apart at most, ticked every 10 simulated minutes.
const (
	benchPartitions = stream.DefaultPartitions
	benchPartition  = 5
)

func benchConfig() Config {
	return Config{Step: time.Minute, Windows: effort.MustParseWindows("1h,24h,7d"),
		AllowedLateness: time.Hour, AttributionWait: 10 * time.Minute}
}

// soakState is the state of one partition after days of the soak's contact centre.
func soakState(b *testing.B, days int) *State {
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	g, err := simulator.NewGenerator(simulator.Config{
		Rate: 60000 / 86400.0, Teams: 50, AgentsPerTeam: 20, Seed: 11,
		PulseEvery: 7 * 24 * time.Hour, History: time.Duration(days) * 24 * time.Hour,
	}, end)
	if err != nil {
		b.Fatal(err)
	}
	s := New(benchPartition, benchConfig())
	var seq uint64
	for t := g.Start().Add(10 * time.Second); !t.After(end); t = t.Add(10 * time.Second) {
		received := t
		v := event.Validator{Now: func() time.Time { return received }, MaxFuture: 5 * time.Minute}
		for _, e := range g.Next(t, 0) {
			seq++
			if stream.Partition(e.RoutingKey(), benchPartitions) != benchPartition {
				continue
			}
			if errs := v.Validate(&e); len(errs) > 0 {
				b.Fatalf("simulated event %s: %v", e.ID, errs)
			}
			if e.Category != "" {
				h := fnv.New32a()
				h.Write([]byte(e.TicketID))
				e.Category += "_" + strconv.Itoa(int(h.Sum32()%5))
			}
			s.Apply(Message{Seq: seq, ReceivedAt: t, Event: e})
			s.TakeBuckets()
		}
		if t.Unix()%600 == 0 {
			s.Tick(t)
		}
	}
	return s
}

// BenchmarkRestore encodes and decodes the state of one partition of the soak's contact
// centre after 1 and 5 days, and reports the snapshot's size and the state's content.
//
//	go test -run '^$' -bench Restore -benchmem ./processors/partition/
func BenchmarkRestore(b *testing.B) {
	for _, days := range []int{1, 5} {
		s := soakState(b, days)
		data, err := s.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		series, tickets, _ := s.Size()
		buckets := len(s.windows.Snapshot().Index)
		report := func(b *testing.B) {
			b.ReportMetric(float64(len(data)), "bytes")
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(float64(buckets), "buckets")
			b.ReportMetric(float64(tickets), "tickets")
		}
		b.Run(fmt.Sprintf("days=%d/snapshot", days), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Snapshot(); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(fmt.Sprintf("days=%d/restore", days), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Restore(benchPartition, benchConfig(), data); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}
