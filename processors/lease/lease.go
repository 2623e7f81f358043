// Package lease decides which replica runs what: the stream's partitions, balanced over
// the live replicas, and the singleton stages, run by one replica with the others on
// standby. Leases are keys of a JetStream KV bucket whose max age is the lease TTL, so a
// replica that stops renewing loses its keys on the server's clock; a key's revision is
// the fencing token. See docs/partitions.md.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Bucket is the KV bucket that holds the leases.
const Bucket = "CXLINK_LEASES"

// Key prefixes in the bucket.
const (
	memberPrefix    = "member."
	partitionPrefix = "partition."
	stagePrefix     = "stage."
)

// Config of the leases.
type Config struct {
	// TTL: a replica that has not renewed its leases for this long loses them, and its
	// partitions move. Shorter moves faster after a crash, but a replica stalled for
	// longer (a long GC pause, a slow disk) gives its partitions away. It is the lease
	// bucket's max age, set when the bucket is created (0: DefaultTTL); every replica
	// uses the bucket's, and a different explicit value is an error.
	TTL time.Duration `env:"CXLINK_LEASE_TTL"`
	// ReplicaID names this replica in the bucket; empty: the host name and a random
	// suffix, new at every start.
	ReplicaID string `env:"CXLINK_REPLICA_ID"`
}

// DefaultTTL of a new lease bucket.
const DefaultTTL = 10 * time.Second

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.TTL != 0 && c.TTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("CXLINK_LEASE_TTL: %s is shorter than 3s", c.TTL))
	}
	if c.ReplicaID != "" && !validToken(c.ReplicaID) {
		errs = append(errs, fmt.Errorf("CXLINK_REPLICA_ID: %q may hold only letters, digits, '-' and '_'", c.ReplicaID))
	}
	return errors.Join(errs...)
}

func validToken(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

// BucketConfig is the definition of the lease bucket, for the one role that creates it
// (ttl 0: DefaultTTL).
func BucketConfig(ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "cxlink leases: replicas, partition owners, singleton stages",
		History:     1,
		TTL:         ttl,
		// Watchers hear of a lease that expired, not only of one that was released.
		LimitMarkerTTL: ttl,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	}
}

// Lease is a key this replica holds. Its methods are safe for concurrent use.
type Lease struct {
	key   string
	token uint64 // the revision it was taken at
	rev   atomic.Uint64
	// deadline: the local monotonic instant (since the manager's start) after which the
	// lease is treated as lost even if no renewal failed yet.
	deadline atomic.Int64
	// fenced is set the first time Valid finds the deadline passed: from then on the
	// lease is lost for good, even if a renewal that was under way succeeds. Whoever saw
	// it invalid (the writer dropping a chunk of its partition, say) must never see it
	// valid again, or work done after the gap would pass over the work dropped in it.
	fenced atomic.Bool
	lost   chan struct{}
	once   sync.Once
	m      *Manager
}

// Key is the lease's key in the bucket.
func (l *Lease) Key() string { return l.key }

// Token is the revision the lease was taken at: it grows with every new holder of the
// key, so writes versioned with it order the holders.
func (l *Lease) Token() uint64 { return l.token }

// Valid reports whether the lease is still held: not lost, and renewed recently enough
// that the server cannot have given it to anybody else.
func (l *Lease) Valid() bool {
	select {
	case <-l.lost:
		return false
	default:
	}
	if l.fenced.Load() {
		return false
	}
	if l.m.clock() < time.Duration(l.deadline.Load()) {
		return true
	}
	l.fenced.Store(true)
	return false
}

// extend moves the deadline to d after a successful renewal, unless the lease was
// fenced meanwhile; it reports whether the lease is still held.
func (l *Lease) extend(d time.Duration) bool {
	l.deadline.Store(int64(d))
	return !l.fenced.Load()
}

// Lost is closed once the lease is lost or released.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

func (l *Lease) lose() { l.once.Do(func() { close(l.lost) }) }

// Change is a decision about one partition.
type Change struct {
	Partition int
	// Lease is set when this replica now owns the partition.
	Lease *Lease
	// Release is set when the partition should move to another replica: stop working
	// on it, then call Release, which gives the key up.
	Release func()
}

// Manager keeps this replica's membership and leases. Run drives it.
type Manager struct {
	kv     jetstream.KeyValue
	id     string
	ttl    time.Duration
	logger *slog.Logger
	start  time.Time

	mu   sync.Mutex
	held map[string]*Lease
	// expired keeps the last revision of leases this replica stopped using because it
	// could not renew them in time: if the key still has that revision, nobody took it
	// since, and the replica may take it back at once instead of waiting for it to expire.
	expired map[string]uint64
	holders map[string]string // key → holder, as last seen by the watch
	// members maps each replica to when its membership was last seen (local clock): it
	// is live for a TTL after that.
	members map[string]time.Duration
	poke    chan struct{} // something changed: rebalance

	// partitions, when set, is the balancing this replica takes part in.
	partitions *partitionSet

	metrics *metrics
}

type partitionSet struct {
	n         int
	only      map[int]bool // nil: every partition, balanced; else just these
	changes   chan Change
	releasing map[int]bool
}

type metrics struct {
	held      *prometheus.GaugeVec
	acquired  *prometheus.CounterVec
	lost      *prometheus.CounterVec
	members   prometheus.Gauge
	renewals  *prometheus.CounterVec
	renewTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		held: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_leases_held",
			Help: "Leases this replica holds, by kind (partition, stage).",
		}, []string{"kind"}),
		acquired: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_leases_acquired_total",
			Help: "Leases taken by this replica, by kind.",
		}, []string{"kind"}),
		lost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_leases_lost_total",
			Help: "Leases that ended, by kind and reason: released (handed over), revoked (renewal refused: someone else may hold it), expired (not renewed in time).",
		}, []string{"kind", "reason"}),
		members: f.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_lease_members",
			Help: "Live replicas this replica sees.",
		}),
		renewals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_lease_renewals_total",
			Help: "Lease renewals, by result: ok; late (the lease had expired locally meanwhile, so it is given up); refused; error.",
		}, []string{"result"}),
		renewTime: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_lease_renewal_duration_seconds",
			Help:    "Time to renew this replica's membership and leases.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
}

// Open prepares a manager over the lease bucket, with the bucket's TTL.
func Open(ctx context.Context, kv jetstream.KeyValue, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", Bucket, err)
	}
	if cfg.TTL != 0 && cfg.TTL != st.TTL() {
		return nil, fmt.Errorf("CXLINK_LEASE_TTL is %s but the lease bucket %s has %s (change it with `cxlink migrate`, or unset it)", cfg.TTL, Bucket, st.TTL())
	}
	cfg.TTL = st.TTL()
	return New(kv, cfg, logger, reg), nil
}

// New prepares a manager over the lease bucket; cfg.TTL must be the bucket's.
func New(kv jetstream.KeyValue, cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Manager {
	id := cfg.ReplicaID
	if id == "" {
		id = defaultID()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		kv: kv, id: id, ttl: cfg.TTL, start: time.Now(),
		logger:  logger.With("component", "lease", "replica", id),
		held:    map[string]*Lease{},
		expired: map[string]uint64{},
		holders: map[string]string{},
		members: map[string]time.Duration{},
		poke:    make(chan struct{}, 1),
		metrics: newMetrics(reg),
	}
}

func defaultID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	var clean strings.Builder
	for _, r := range host {
		if validToken(string(r)) {
			clean.WriteRune(r)
		}
	}
	if clean.Len() == 0 {
		clean.WriteString("replica")
	}
	return clean.String() + "-" + hex.EncodeToString(b[:])
}

// ID is this replica's name in the bucket.
func (m *Manager) ID() string { return m.id }

func (m *Manager) clock() time.Duration { return time.Since(m.start) }

// Partitions makes this replica take part in sharing partitions 0…n−1 (only those in
// only, when not empty) and returns the decisions about them. Call it before Run.
func (m *Manager) Partitions(n int, only []int) <-chan Change {
	ps := &partitionSet{n: n, changes: make(chan Change, 4*n), releasing: map[int]bool{}}
	if len(only) > 0 {
		ps.only = map[int]bool{}
		for _, p := range only {
			ps.only[p] = true
		}
	}
	m.partitions = ps
	return ps.changes
}

// Run keeps the membership and the leases until ctx ends, then releases every lease.
func (m *Manager) Run(ctx context.Context) error {
	period := m.ttl / 3
	renew := time.NewTicker(period)
	defer renew.Stop()
	m.renew(ctx)
	var updates <-chan jetstream.KeyValueEntry
	var watcher jetstream.KeyWatcher
	watch := true // start a watch at the top of the loop
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	for {
		if updates == nil && watch {
			watch = false
			// The watch only speeds decisions up (renewals decide too), so a watch that
			// cannot start or ends is started again at the next renewal.
			w, err := m.kv.WatchAll(ctx)
			if err == nil {
				watcher, updates = w, w.Updates()
			} else if ctx.Err() == nil {
				m.logger.Warn("watch leases; trying again", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			m.releaseAll()
			return nil
		case e, ok := <-updates:
			if !ok {
				_ = watcher.Stop()
				watcher, updates = nil, nil
				continue
			}
			if e != nil {
				m.observe(e)
			}
		case <-renew.C:
			m.renew(ctx)
			watch = true
		case <-m.poke:
			m.balance(ctx)
		}
	}
}

func (m *Manager) signal() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// observe records what the watch says about a key.
func (m *Manager) observe(e jetstream.KeyValueEntry) {
	m.mu.Lock()
	key := e.Key()
	gone := e.Operation() != jetstream.KeyValuePut
	if id, ok := strings.CutPrefix(key, memberPrefix); ok {
		if gone {
			delete(m.members, id)
		} else {
			m.members[id] = m.clock()
		}
	} else if gone {
		delete(m.holders, key)
	} else {
		m.holders[key] = string(e.Value())
	}
	// An entry older than a lease's own acquisition (the previous holder's release, seen
	// late) says nothing about it.
	if l := m.held[key]; l != nil && e.Revision() > l.token && (gone || string(e.Value()) != m.id) {
		// Somebody else's write, or the key expired: it is not ours any more.
		m.dropLocked(l, "revoked")
	}
	m.mu.Unlock()
	m.signal()
}

// renew writes this replica's membership and renews every lease it holds; a lease
// whose renewal is refused is lost, and one not renewed within two thirds of the TTL is
// treated as lost, before the server can give it away.
func (m *Manager) renew(ctx context.Context) {
	start := time.Now()
	defer func() { m.metrics.renewTime.Observe(time.Since(start).Seconds()) }()
	sent := m.clock()
	rctx, cancel := context.WithTimeout(ctx, m.ttl/3)
	defer cancel()
	// Only replicas that share the partitions are members: a replica running a
	// singleton stage alone must not be given partitions.
	if m.partitions != nil {
		if _, err := m.kv.Put(rctx, memberPrefix+m.id, []byte(m.id)); err != nil {
			m.logger.Warn("renew membership", "err", err)
		}
	}
	m.mu.Lock()
	leases := make([]*Lease, 0, len(m.held))
	for _, l := range m.held {
		leases = append(leases, l)
	}
	m.mu.Unlock()
	// All at once: one round trip for all of them, however many partitions this replica
	// holds, so that a slow cluster delays every renewal a little rather than the last
	// ones a lot.
	var wg sync.WaitGroup
	for _, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.renewOne(rctx, l, sent)
		}()
	}
	wg.Wait()
	m.balance(ctx)
}

// renewOne renews one lease whose renewal was sent at sent (local clock).
func (m *Manager) renewOne(ctx context.Context, l *Lease, sent time.Duration) {
	rev, err := m.kv.Update(ctx, l.key, []byte(m.id), l.rev.Load())
	switch {
	case err == nil:
		l.rev.Store(rev)
		if !l.extend(sent + 2*m.ttl/3) {
			// Renewed too late: somebody may have seen the lease lost.
			m.metrics.renewals.WithLabelValues("late").Inc()
			m.drop(l, "expired")
			return
		}
		m.metrics.renewals.WithLabelValues("ok").Inc()
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.Is(err, jetstream.ErrKeyDeleted):
		m.metrics.renewals.WithLabelValues("refused").Inc()
		m.drop(l, "revoked")
	default:
		m.metrics.renewals.WithLabelValues("error").Inc()
		m.logger.Warn("renew lease", "key", l.key, "err", err)
		if !l.Valid() {
			m.drop(l, "expired")
		}
	}
}

func (m *Manager) drop(l *Lease, reason string) {
	m.mu.Lock()
	m.dropLocked(l, reason)
	m.mu.Unlock()
}

func (m *Manager) dropLocked(l *Lease, reason string) {
	if m.held[l.key] != l {
		return
	}
	delete(m.held, l.key)
	if reason == "expired" {
		m.expired[l.key] = l.rev.Load()
	}
	kind := kindOf(l.key)
	m.metrics.held.WithLabelValues(kind).Dec()
	m.metrics.lost.WithLabelValues(kind, reason).Inc()
	if reason != "released" {
		m.logger.Warn("lease lost", "key", l.key, "reason", reason)
	}
	l.lose()
}

func kindOf(key string) string {
	if strings.HasPrefix(key, stagePrefix) {
		return "stage"
	}
	return "partition"
}

// acquire takes key if nobody holds it, or back if this replica let it expire and
// nobody wrote it since.
func (m *Manager) acquire(ctx context.Context, key string) (*Lease, error) {
	sent := m.clock()
	m.mu.Lock()
	last, stale := m.expired[key]
	delete(m.expired, key)
	m.mu.Unlock()
	var rev uint64
	var err error
	if stale {
		rev, err = m.kv.Update(ctx, key, []byte(m.id), last)
	}
	if !stale || err != nil {
		rev, err = m.kv.Create(ctx, key, []byte(m.id))
	}
	if err != nil {
		return nil, err
	}
	l := &Lease{key: key, token: rev, lost: make(chan struct{}), m: m}
	l.rev.Store(rev)
	l.deadline.Store(int64(sent + 2*m.ttl/3))
	m.mu.Lock()
	m.held[key] = l
	m.holders[key] = m.id
	m.mu.Unlock()
	m.metrics.held.WithLabelValues(kindOf(key)).Inc()
	m.metrics.acquired.WithLabelValues(kindOf(key)).Inc()
	m.logger.Info("lease taken", "key", key, "token", rev)
	return l, nil
}

// release gives a lease up: the key is deleted if it is still ours, so the next holder
// need not wait for it to expire.
func (m *Manager) release(l *Lease) {
	m.drop(l, "released")
	ctx, cancel := context.WithTimeout(context.Background(), m.ttl/3)
	defer cancel()
	if err := m.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev.Load())); err != nil {
		m.logger.Info("release lease: it expires instead", "key", l.key, "err", err)
	}
}

func (m *Manager) releaseAll() {
	m.mu.Lock()
	leases := make([]*Lease, 0, len(m.held))
	for _, l := range m.held {
		leases = append(leases, l)
	}
	m.mu.Unlock()
	for _, l := range leases {
		m.release(l)
	}
	if m.partitions != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ttl/3)
		defer cancel()
		_ = m.kv.Delete(ctx, memberPrefix+m.id)
	}
}

// balance takes the partitions this replica should own that nobody holds, and asks for
// the release of those it holds that another live replica should own. The owner a
// partition should have is the live member with the highest hash of (member, partition)
// (rendezvous hashing): every replica computes the same answer alone, and a member
// joining or leaving moves only its own share.
func (m *Manager) balance(ctx context.Context) {
	ps := m.partitions
	if ps == nil {
		return
	}
	m.mu.Lock()
	now := m.clock()
	live := map[string]bool{m.id: true}
	for id, seen := range m.members {
		if now-seen < m.ttl {
			live[id] = true
		}
	}
	members := make([]string, 0, len(live))
	for id := range live {
		members = append(members, id)
	}
	m.metrics.members.Set(float64(len(members)))
	var take []int
	var give []*Lease
	var giveP []int
	for p := range ps.n {
		if ps.only != nil && !ps.only[p] {
			continue
		}
		key := partitionKey(p)
		want := m.id
		if ps.only == nil {
			want = owner(members, p)
		}
		l, mine := m.held[key]
		switch {
		// A key held by nobody, by a replica no longer live, or by this replica before it
		// lost the lease (a NATS outage, a pause) is worth a try: Create fails while the
		// server still holds it, and the watch is only a shortcut, not the authority.
		case !mine && want == m.id && (m.holders[key] == "" || m.holders[key] == m.id || !live[m.holders[key]]):
			take = append(take, p)
		case mine && want != m.id && !ps.releasing[p]:
			ps.releasing[p] = true
			give = append(give, l)
			giveP = append(giveP, p)
		}
	}
	m.mu.Unlock()
	for i, l := range give {
		p, l := giveP[i], l
		ps.changes <- Change{Partition: p, Release: func() {
			m.release(l)
			m.mu.Lock()
			delete(ps.releasing, p)
			m.mu.Unlock()
			m.signal()
		}}
	}
	for _, p := range take {
		l, err := m.acquire(ctx, partitionKey(p))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				m.logger.Warn("take partition", "partition", p, "err", err)
			}
			continue
		}
		ps.changes <- Change{Partition: p, Lease: l}
	}
}

func partitionKey(p int) string { return partitionPrefix + strconv.Itoa(p) }

// owner is the member with the highest rendezvous hash for partition p.
func owner(members []string, p int) string {
	var best string
	var bestScore uint64
	for _, id := range members {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{'/'})
		h.Write([]byte(strconv.Itoa(p)))
		// fnv's low bits mix poorly for similar inputs; a final avalanche spreads them.
		s := mix(h.Sum64())
		if best == "" || s > bestScore || s == bestScore && id < best {
			best, bestScore = id, s
		}
	}
	return best
}

// mix is the finaliser of SplitMix64.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Singleton runs run while this replica holds the lease of stage name, and contends for
// it again when it is lost, until ctx ends. run must return soon after its context ends
// (the lease is lost, or ctx ended).
func (m *Manager) Singleton(ctx context.Context, name string, run func(ctx context.Context, l *Lease) error) error {
	key := stagePrefix + name
	logger := m.logger.With("stage", name)
	for {
		l, err := m.acquire(ctx, key)
		if err == nil {
			logger.Info("running the stage")
			runCtx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-l.Lost():
				case <-runCtx.Done():
				}
				cancel()
			}()
			err := run(runCtx, l)
			cancel()
			m.release(l)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				logger.Warn("stage stopped", "err", err)
			} else {
				logger.Warn("stage stopped: its lease was lost; standing by")
			}
		} else if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			logger.Warn("take stage lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(m.ttl / 3):
		}
	}
}

// Version is the version of a row a singleton stage writes for its evaluation at t (a
// whole second) while holding a lease taken at token: later evaluations win, and of two
// holders evaluating the same instant, the later holder wins. It stays on the scale of
// UnixNano, which versions of earlier releases used.
func Version(t time.Time, token uint64) uint64 {
	return uint64(t.Truncate(time.Second).UnixNano()) + token%uint64(time.Second)
}
