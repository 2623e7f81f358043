package lease

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/broker"
)

const ttl = 3 * time.Second

// bucket starts an in-process JetStream and creates the lease bucket; each call of
// the returned function connects a new client, as a replica would.
func bucket(t *testing.T) func() jetstream.KeyValue {
	t.Helper()
	srv, err := broker.Start(broker.Config{DataDir: t.TempDir(), Sync: "1s"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	connect := func() jetstream.KeyValue {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.CreateOrUpdateKeyValue(context.Background(), BucketConfig(ttl, 1))
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	return connect
}

// replica is a Manager taking part in the partitions, with the partitions it owns.
type replica struct {
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	owned  map[int]*Lease
}

func startReplica(t *testing.T, kv jetstream.KeyValue, id string, n int) *replica {
	t.Helper()
	m := New(kv, Config{TTL: ttl, ReplicaID: id}, nil, prometheus.NewRegistry())
	changes := m.Partitions(n, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{m: m, cancel: cancel, done: make(chan struct{}), owned: map[int]*Lease{}}
	go func() {
		defer close(r.done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-changes:
				r.mu.Lock()
				if c.Lease != nil {
					r.owned[c.Partition] = c.Lease
				} else {
					delete(r.owned, c.Partition)
					c.Release()
				}
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// valid lists the partitions the replica owns with a valid lease.
func (r *replica) valid() map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]bool{}
	for p, l := range r.owned {
		if l.Valid() {
			out[p] = true
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// coverage reports whether every partition has exactly one valid owner among rs, and
// how many each owns.
func coverage(n int, rs ...*replica) (bool, []int) {
	counts := make([]int, len(rs))
	owners := make([]int, n)
	for i, r := range rs {
		for p := range r.valid() {
			owners[p]++
			counts[i]++
		}
	}
	for _, c := range owners {
		if c != 1 {
			return false, counts
		}
	}
	return true, counts
}

func TestPartitionsBalanceAndMove(t *testing.T) {
	connect := bucket(t)
	const n = 16
	a := startReplica(t, connect(), "a", n)
	waitFor(t, 10*time.Second, "one replica owns every partition", func() bool { ok, _ := coverage(n, a); return ok })

	b := startReplica(t, connect(), "b", n)
	c := startReplica(t, connect(), "c", n)
	// Settled: each replica owns the partitions rendezvous hashing gives it (while
	// partitions move, one may own a single partition for a moment).
	want := make([]int, 3)
	for p := range n {
		want[map[string]int{"a": 0, "b": 1, "c": 2}[owner([]string{"a", "b", "c"}, p)]]++
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("three replicas share the partitions as %v", want), func() bool {
		ok, counts := coverage(n, a, b, c)
		return ok && slices.Equal(counts, want)
	})
	_, counts := coverage(n, a, b, c)
	t.Logf("partitions per replica: %v", counts)
	for i, k := range counts {
		if k < 2 || k > 9 {
			t.Errorf("replica %d owns %d of %d partitions: not balanced", i, k, n)
		}
	}

	// A clean stop hands its partitions over at once.
	b.stop()
	took := waitFor(t, 10*time.Second, "the stopped replica's partitions move", func() bool { ok, _ := coverage(n, a, c); return ok })
	t.Logf("partitions moved %s after a clean stop", took.Round(10*time.Millisecond))
}

// A replica that stops renewing (frozen, or cut off from NATS) treats its leases as lost
// before the server gives them to anyone else, and the others take them after the TTL.
func TestFrozenReplicaStopsBeforeOthersTakeOver(t *testing.T) {
	connect := bucket(t)
	const n = 4
	kvA := connect()
	a := startReplica(t, kvA, "a", n)
	waitFor(t, 10*time.Second, "a owns every partition", func() bool { ok, _ := coverage(n, a); return ok })
	a.mu.Lock()
	leases := make([]*Lease, 0, n)
	for _, l := range a.owned {
		leases = append(leases, l)
	}
	a.mu.Unlock()

	// Freeze a: its manager stops (no renewal, no release) while its leases stay in the
	// bucket, as when the process is stopped with SIGSTOP.
	frozenAt := time.Now()
	a.m.mu.Lock()
	a.m.held = map[string]*Lease{} // nothing is released when Run returns
	a.m.mu.Unlock()
	a.cancel()
	<-a.done

	b := startReplica(t, connect(), "b", n)
	var selfFenced time.Duration
	waitFor(t, 3*ttl, "b owns every partition", func() bool {
		ok, _ := coverage(n, b)
		if ok || selfFenced == 0 {
			for _, l := range leases {
				if l.Valid() {
					return false
				}
			}
			if selfFenced == 0 {
				selfFenced = time.Since(frozenAt)
			}
		}
		return ok
	})
	takeover := time.Since(frozenAt)
	t.Logf("frozen replica's leases invalid after %s; taken over after %s (TTL %s)", selfFenced.Round(10*time.Millisecond), takeover.Round(10*time.Millisecond), ttl)
	if selfFenced > takeover {
		t.Errorf("the frozen replica still held valid leases (%s) when another took over (%s)", selfFenced, takeover)
	}
	for _, l := range leases {
		if l.Valid() {
			t.Errorf("lease %s still valid after the takeover", l.Key())
		}
	}
	// The new holder's token is higher than the old one's: writes fenced by it win.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, old := range leases {
		var p int
		fmt.Sscanf(old.Key(), "partition.%d", &p)
		if nl := b.owned[p]; nl == nil || nl.Token() <= old.Token() {
			t.Errorf("partition %d: new token %v not above %d", p, nl, old.Token())
		}
	}
}

func TestSingletonHasOneRunnerAndAStandby(t *testing.T) {
	connect := bucket(t)
	type runner struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	runners := map[string]*runner{}
	var mu sync.Mutex
	running := map[string]int{}
	tokens := map[string]uint64{}
	start := func(id string) *runner {
		m := New(connect(), Config{TTL: ttl, ReplicaID: id}, nil, prometheus.NewRegistry())
		ctx, cancel := context.WithCancel(context.Background())
		r := &runner{cancel: cancel, done: make(chan struct{})}
		go func() { _ = m.Run(ctx) }()
		go func() {
			defer close(r.done)
			_ = m.Singleton(ctx, "drift", func(ctx context.Context, l *Lease) error {
				mu.Lock()
				running[id]++
				tokens[id] = l.Token()
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				running[id]--
				mu.Unlock()
				return nil
			})
		}()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	active := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for id, n := range running {
			if n > 0 {
				out = append(out, id)
			}
		}
		return out
	}
	runners["a"], runners["b"] = start("a"), start("b")
	waitFor(t, 10*time.Second, "one runner", func() bool { return len(active()) == 1 })
	time.Sleep(ttl) // a standby never starts while the first runs
	if got := active(); len(got) != 1 {
		t.Fatalf("runners: %v", got)
	}
	first, second := active()[0], "a"
	if first == "a" {
		second = "b"
	}
	runners[first].cancel()
	<-runners[first].done
	took := waitFor(t, 3*ttl, "the standby takes over", func() bool { got := active(); return len(got) == 1 && got[0] == second })
	t.Logf("standby took over %s after the runner stopped", took.Round(10*time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	if tokens[second] <= tokens[first] {
		t.Errorf("token of the second runner %d not above the first's %d", tokens[second], tokens[first])
	}
}

// A lease seen invalid stays lost, even when a renewal that was under way then succeeds:
// the writer drops the chunks of a partition whose lease it finds invalid, and if the
// worker then went on (its lease valid again) its next stored chunk would carry the
// partition's progress past the dropped one.
func TestLeaseSeenExpiredStaysLost(t *testing.T) {
	kv := bucket(t)()
	m := New(kv, Config{TTL: ttl, ReplicaID: "a"}, nil, prometheus.NewRegistry())
	ctx := t.Context()
	l, err := m.acquire(ctx, partitionKey(0))
	if err != nil {
		t.Fatal(err)
	}
	sent := m.clock()
	m.renewOne(ctx, l, sent)
	if !l.Valid() {
		t.Fatal("a lease renewed in time is not valid")
	}
	l.deadline.Store(int64(m.clock())) // the renewals stalled past the fence
	if l.Valid() {
		t.Fatal("a lease past its deadline is valid")
	}
	m.renewOne(ctx, l, m.clock()) // the server still had it: the update succeeds
	if l.Valid() {
		t.Fatal("a lease seen expired is valid again after a late renewal")
	}
	select {
	case <-l.Lost():
	default:
		t.Fatal("a lease renewed after it was seen expired is not lost")
	}
}
