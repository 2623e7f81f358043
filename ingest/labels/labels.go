// Package labels bounds the distinct values of the event fields that become dimensions
// and keys downstream (rolling-window series, rollup rows, metric labels): category,
// channel, team, question, source and agent_id. A sender that makes up a new value for
// every event would otherwise grow the processors' state and the rollups without bound;
// each new agent id alone adds thousands of rollup rows over a week.
//
// The bound holds across the deployment, not per process: the admitted values of each
// field live in one entry of a NATS key-value bucket (BucketConfig), changed only with
// compare-and-set, so that every ingest replica, before and after a restart, counts the
// same values. A value counts once an event carrying it is accepted: Reserve holds the
// new values of the events about to be published (a reservation counts against the
// limit, so that concurrent requests cannot overshoot it), Confirm keeps those of the
// events JetStream stored, and a reservation nobody confirms lapses after ReserveFor.
// Values are kept as 64-bit hashes: the entry stays small (16 bytes a value) and holds no
// sender text.
package labels

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// Fields are the bounded fields, in the order their errors are reported.
var Fields = []string{"category", "channel", "team", "question", "source", "agent_id"}

// values returns e's values of Fields ("" where unset).
func values(e *event.Event) [6]string {
	return [6]string{e.Category, e.Channel, e.Team, e.Question, e.Source, e.AgentID}
}

// ReserveFor is how long a reserved value counts without being confirmed: longer than a
// request's publish (CXLINK_PUBLISH_TIMEOUT is at most 30 s).
const ReserveFor = 2 * time.Minute

// MaxLimit is the largest limit per field: its entry (16 bytes a value) must stay well
// inside NATS's default maximum message size of 1 MiB.
const MaxLimit = 20000

// Store holds one entry per field; the NATS bucket (NewKV) and memory (NewMemory) are
// the two. Revisions make writes conditional: Put with revision 0 creates the entry and
// fails with ErrConflict when it exists; otherwise it fails with ErrConflict when the
// entry changed since that revision.
type Store interface {
	Get(ctx context.Context, field string) (data []byte, revision uint64, err error) // ErrNotFound when absent
	Put(ctx context.Context, field string, data []byte, revision uint64) (uint64, error)
}

// Errors of a Store.
var (
	ErrNotFound = errors.New("labels: no entry")
	ErrConflict = errors.New("labels: entry changed meanwhile")
)

// Guard admits label values up to a limit per field. Safe for concurrent use.
type Guard struct {
	store Store
	max   int
	env   string // the variable that sets max, for messages
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]*entry // per field: the last entry read or written
}

// entry is one field's admitted values: hash → 0 (confirmed) or the Unix nanosecond
// until which a reservation counts.
type entry struct {
	values   map[uint64]int64
	revision uint64
	read     time.Time // when it was last read from the store
}

// New returns a guard that admits up to max values per field (env names the setting,
// for the message of a rejection). now defaults to time.Now.
func New(store Store, max int, env string, now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{store: store, max: max, env: env, now: now, cache: map[string]*entry{}}
}

// Reservation holds the values one Reserve admitted, to be confirmed once it is known
// which events were stored.
type Reservation struct {
	g *Guard
	// hashes[i] are the values of events[i] that must be confirmed when it is stored.
	hashes [][]fieldHash
	// added are the values this reservation made count, per field.
	added map[int]map[uint64]bool
}

type fieldHash struct {
	field int
	hash  uint64
}

// hash of a value of a field; the field is part of it so that "alpha" as a team and as a
// category are two values.
func hash(field int, value string) uint64 {
	h := sha256.New()
	h.Write([]byte{byte(field)})
	h.Write([]byte(value))
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// Reserve checks the label values of events, in order. An event whose new value of some
// field would exceed the limit is rejected, naming the field (errs[i]), and none of its
// values is held; the new values of the others are reserved. An error means the store
// could not be reached: nothing can be said about any event.
func (g *Guard) Reserve(ctx context.Context, events []*event.Event) (errs []event.Errors, res *Reservation, err error) {
	res = &Reservation{g: g, hashes: make([][]fieldHash, len(events))}
	for i, e := range events {
		for f, v := range values(e) {
			if v != "" {
				res.hashes[i] = append(res.hashes[i], fieldHash{f, hash(f, v)})
			}
		}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		now := g.now()
		v := g.newView(now)
		errs = make([]event.Errors, len(events))
		added := map[int]map[uint64]bool{}
		for i, e := range events {
			var fresh []fieldHash
			for _, fh := range res.hashes[i] {
				en, err := v.entry(ctx, fh)
				if err != nil {
					return nil, nil, err
				}
				if known(en, fh.hash, now) || added[fh.field][fh.hash] {
					continue
				}
				if live(en.values, now)+len(added[fh.field]) >= g.max {
					errs[i] = append(errs[i], event.FieldError{Field: Fields[fh.field], Message: fmt.Sprintf(
						"%q would be a new value beyond the %d distinct values of %s that this deployment accepts (%s)",
						values(e)[fh.field], g.max, Fields[fh.field], g.env)})
					continue
				}
				fresh = append(fresh, fh)
			}
			if len(errs[i]) > 0 {
				continue // none of its values is held
			}
			for _, fh := range fresh {
				if added[fh.field] == nil {
					added[fh.field] = map[uint64]bool{}
				}
				added[fh.field][fh.hash] = true
			}
		}
		conflict, err := v.write(ctx, added, now.Add(ReserveFor).UnixNano(), nil)
		if err != nil {
			return nil, nil, err
		}
		if !conflict {
			res.added = added
			return errs, res, nil
		}
		backOff(attempt)
	}
	return nil, nil, errBusy
}

// maxAttempts bounds the rounds of compare-and-set lost to other writers. Writes are
// rare (a value is written when it is new, and once more when confirmed), so a round is
// lost only while several replicas learn new values at the same moment.
const maxAttempts = 50

// backOff pauses after a lost compare-and-set, a random time whose bound doubles with
// each attempt (up to 50 ms), so that writers that collided spread out.
func backOff(attempt int) {
	limit := min(time.Millisecond<<min(attempt, 10), 50*time.Millisecond)
	time.Sleep(time.Duration(rand.Int64N(int64(limit))))
}

var errBusy = errors.New("labels: the entries kept changing under concurrent writers; try again")

// Confirm keeps the values of the events that were stored (stored[i] for the i-th
// event given to Reserve), so that they count for good, and gives back the values this
// reservation added for events that were not. An error leaves them reserved until they
// lapse; the next event with such a value reserves it again.
func (r *Reservation) Confirm(ctx context.Context, stored []bool) error {
	g := r.g
	var want []fieldHash
	keep := map[fieldHash]bool{}
	for i, hs := range r.hashes {
		if i < len(stored) && stored[i] {
			want = append(want, hs...)
			for _, fh := range hs {
				keep[fh] = true
			}
		}
	}
	drop := map[int]map[uint64]bool{}
	for f, hs := range r.added {
		for h := range hs {
			if !keep[fieldHash{f, h}] {
				if drop[f] == nil {
					drop[f] = map[uint64]bool{}
				}
				drop[f][h] = true
			}
		}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		now := g.now()
		v := g.newView(now)
		pending := map[int]map[uint64]bool{}
		for _, fh := range want {
			en, err := v.entry(ctx, fh)
			if err != nil {
				return err
			}
			if until, ok := en.values[fh.hash]; ok && until == 0 {
				continue // confirmed already
			}
			if pending[fh.field] == nil {
				pending[fh.field] = map[uint64]bool{}
			}
			pending[fh.field][fh.hash] = true
		}
		for f := range drop {
			if _, err := v.entry(ctx, fieldHash{field: f}); err != nil {
				return err
			}
			if pending[f] == nil {
				pending[f] = map[uint64]bool{}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		conflict, err := v.write(ctx, pending, 0, drop)
		if err != nil || !conflict {
			return err
		}
		backOff(attempt)
	}
	return errBusy
}

// known reports whether h counts in en now.
func known(en *entry, h uint64, now time.Time) bool {
	until, ok := en.values[h]
	return ok && (until == 0 || until > now.UnixNano())
}

// live counts the confirmed values and the reservations that have not lapsed.
func live(values map[uint64]int64, now time.Time) int {
	n := 0
	for _, until := range values {
		if until == 0 || until > now.UnixNano() {
			n++
		}
	}
	return n
}

// refreshFull is how long a full field's cached entry is trusted before a value it does
// not know is looked up again: a flood of new values must not read the store each time.
const refreshFull = time.Second

// view is one round's entries: every decision of the round and its write are made
// against the same entry of each field, whose revision the write is conditional on.
type view struct {
	g       *Guard
	now     time.Time
	entries map[int]*entry
	fresh   map[int]bool // read from the store in this round
}

func (g *Guard) newView(now time.Time) *view {
	return &view{g: g, now: now, entries: map[int]*entry{}, fresh: map[int]bool{}}
}

// entry returns the round's entry of fh's field. A value the cached entry does not know
// may have been admitted by another replica: the entry is read again, once a round,
// unless the field was full a moment ago.
func (v *view) entry(ctx context.Context, fh fieldHash) (*entry, error) {
	en := v.entries[fh.field]
	if en == nil {
		v.g.mu.Lock()
		en = v.g.cache[Fields[fh.field]]
		v.g.mu.Unlock()
	}
	stale := en == nil || (!v.fresh[fh.field] && !known(en, fh.hash, v.now) &&
		(live(en.values, v.now) < v.g.max || v.now.Sub(en.read) >= refreshFull))
	if stale {
		var err error
		if en, err = v.g.read(ctx, fh.field, v.now); err != nil {
			return nil, err
		}
		v.fresh[fh.field] = true
	}
	v.entries[fh.field] = en
	return en, nil
}

func (g *Guard) read(ctx context.Context, field int, now time.Time) (*entry, error) {
	data, rev, err := g.store.Get(ctx, Fields[field])
	en := &entry{values: map[uint64]int64{}, read: now}
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("labels: read the values of %s: %w", Fields[field], err)
	default:
		if en.values, err = decode(data); err != nil {
			return nil, fmt.Errorf("labels: the values of %s: %w", Fields[field], err)
		}
		en.revision = rev
	}
	g.remember(field, en)
	return en, nil
}

func (g *Guard) remember(field int, en *entry) {
	g.mu.Lock()
	if cur := g.cache[Fields[field]]; cur == nil || cur.revision <= en.revision {
		g.cache[Fields[field]] = en
	}
	g.mu.Unlock()
}

// write adds hashes to each field's entry (reserved until the Unix nanosecond until, or
// confirmed when until is 0) and removes the reservations of drop, with compare-and-set
// against the round's revision. It reports a conflict when an entry changed meanwhile:
// the caller decides again in a new round. Lapsed reservations are dropped on the way.
func (v *view) write(ctx context.Context, add map[int]map[uint64]bool, until int64, drop map[int]map[uint64]bool) (conflict bool, err error) {
	fields := make([]int, 0, len(add))
	for f := range add {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		cur := v.entries[f]
		next := make(map[uint64]int64, len(cur.values)+len(add[f]))
		for h, u := range cur.values {
			if u == 0 || u > v.now.UnixNano() {
				next[h] = u
			}
		}
		for h := range add[f] {
			if u, ok := next[h]; !ok || until == 0 || u != 0 {
				next[h] = until
			}
		}
		changed := len(add[f]) > 0
		for h := range drop[f] {
			if u, ok := next[h]; ok && u != 0 {
				delete(next, h)
				changed = true
			}
		}
		if !changed {
			continue
		}
		rev, err := v.g.store.Put(ctx, Fields[f], encode(next), cur.revision)
		if errors.Is(err, ErrConflict) {
			// The next round starts from the entry as it is now.
			if _, err := v.g.read(ctx, f, v.now); err != nil {
				return false, err
			}
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("labels: write the values of %s: %w", Fields[f], err)
		}
		v.g.remember(f, &entry{values: next, revision: rev, read: v.now})
	}
	return false, nil
}

// Counts returns, per field, the values that count now (confirmed or reserved), as this
// process last saw them; for metrics and tests.
func (g *Guard) Counts() map[string]int {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for f, en := range g.cache {
		out[f] = live(en.values, now)
	}
	return out
}

// encode writes an entry as 16-byte records: hash, then until (0: confirmed), sorted by
// hash so that equal sets encode equally.
func encode(values map[uint64]int64) []byte {
	hs := make([]uint64, 0, len(values))
	for h := range values {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	b := make([]byte, 0, 16*len(hs))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
		b = binary.BigEndian.AppendUint64(b, uint64(values[h]))
	}
	return b
}

func decode(b []byte) (map[uint64]int64, error) {
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("entry of %d bytes is not a list of 16-byte records", len(b))
	}
	out := make(map[uint64]int64, len(b)/16)
	for i := 0; i < len(b); i += 16 {
		out[binary.BigEndian.Uint64(b[i:])] = int64(binary.BigEndian.Uint64(b[i+8:]))
	}
	return out, nil
}
