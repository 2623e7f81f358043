package main

import (
	"bufio"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// rssKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status, in kB.
func rssKB(pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

// BenchmarkMemory measures the resident memory of `cxlink run` (ingest, embedded
// JetStream with its default sync policy, processors) while events stream in: at the
// demo's normal rate (20 events/s), at ten times that, at ten times that with ClickHouse
// down (the consumers stop acking, JetStream holds the backlog), as fast as a sender is
// answered with ClickHouse still down, and while the backlog drains once it is back. It
// reports each phase's peak RSS. Run:
//
//	go test -run '^$' -bench Memory -benchtime 1x ./cmd/cxlink   (CXLINK_MEASURE_PHASE=30s per phase)
func BenchmarkMemory(b *testing.B) {
	phase := 30 * time.Second
	if v := os.Getenv("CXLINK_MEASURE_PHASE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		phase = d
	}
	ch := chtest.StartPrivate(b)
	addr := proc.FreeAddr(b)
	env := map[string]string{
		"CLICKHOUSE_DIAL_TIMEOUT":   "1s",
		"CLICKHOUSE_INSERT_TIMEOUT": "5s",
		"CXLINK_DATA_DIR":           b.TempDir(),
		"CXLINK_HTTP_ADDR":          addr,
	}
	maps.Copy(env, ch.Env(ch.NewDatabase(b)))
	run := apptest.StartChild(b, "run", env, "run")
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("cxlink run not ready:\n%s", run.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := run.Pid()

	var mu sync.Mutex
	peak := 0
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			kb := rssKB(pid, "VmRSS")
			mu.Lock()
			peak = max(peak, kb)
			mu.Unlock()
		}
	}()
	rng := rand.New(rand.NewPCG(1, 1))
	var report strings.Builder
	measure := func(name string, rate, batch int, d time.Duration) {
		mu.Lock()
		peak = 0
		mu.Unlock()
		start := time.Now()
		var sent int
		if rate > 0 {
			l := startLoad("http://"+addr+"/v1/events", rng, rate, batch)
			time.Sleep(d)
			l.stop()
			l.mu.Lock()
			sent = len(l.accepted) + len(l.rejected)
			if l.failure != nil {
				b.Errorf("%s: %v", name, l.failure)
			}
			l.mu.Unlock()
		} else {
			time.Sleep(d)
		}
		mu.Lock()
		p := peak
		mu.Unlock()
		line := fmt.Sprintf("%-40s %7.0f events/s answered  peak RSS %4d MiB", name, float64(sent)/time.Since(start).Seconds(), p/1024)
		report.WriteString(line + "\n")
		b.Log(line)
		b.ReportMetric(float64(p)/1024, "MiB-peak-"+strings.NewReplacer(" ", "-", ",", "", "×", "x", "/", "", "(", "", ")", "").Replace(name))
	}
	measure("normal (20/s)", 20, 10, phase)
	measure("10× (200/s)", 200, 25, phase)
	ch.Stop()
	measure("10× (200/s), ClickHouse down", 200, 25, phase)
	measure("flat out (500/request), ClickHouse down", 100_000, 500, phase)
	ch.Start()
	measure("ClickHouse back, backlog draining", 0, 0, phase)
	report.WriteString(fmt.Sprintf("peak RSS over the whole run (VmHWM): %d MiB\n", rssKB(pid, "VmHWM")/1024))
	fmt.Print(report.String())
}
