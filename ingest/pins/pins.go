// Package pins remembers, per vendor entity (a Freshdesk ticket, a Zendesk or Intercom
// rating), the state a webhook last reported and when cxlink first saw it, so that the
// event a webhook maps onto has an id and a time that depend on what happened, not on
// when it was delivered:
//
//   - a redelivery, or a webhook fired again without a change (a trigger re-firing on an
//     unrelated update), reports the state already pinned: it gets the pinned time, and
//     so the same id and occurred_at as the first delivery (a duplicate, or the same row);
//   - a real change (solved → reopened → solved again, a rating changed from bad to good)
//     reports another state: it gets a time of its own, later than the pinned one, and an
//     id that carries that time, so that every real change is kept.
//
// This is what lets such webhooks keep the argument of docs/guarantees.md ("a resend is
// a duplicate, or late") although their payloads carry no event id or no stable time.
// Pins live in a NATS key-value bucket (BucketConfig) written with compare-and-set, so
// every ingest replica sees the same ones, and are forgotten after MaxAge.
package pins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the NATS key-value bucket of the pins.
const Bucket = "CXLINK_PINS"

// MaxAge is how long a pin is kept after its last change: far longer than any vendor
// retries a delivery. A change reported after that is taken for a first state.
const MaxAge = 90 * 24 * time.Hour

// BucketConfig is the definition of the bucket, for the role that creates the stream
// next to which it lives (replicas: the stream's).
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "cxlink webhook pins: per vendor entity, the state last reported and when it was first seen",
		History:     1,
		TTL:         MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Pinned is what Resolve decided for one report.
type Pinned struct {
	// At is the time of the reported state: the pinned one for a repeat, else the
	// report's own (or one second after the previous state's, if not later).
	At time.Time
	// First is set for the first state pinned for the entity: its event keeps the
	// adapter's id. Every later state's id carries At (IDSuffix).
	First bool
}

// IDSuffix is what the id of an event of a later state ends with: its time in Unix
// seconds, so that an id always determines its occurred_at.
func (p Pinned) IDSuffix() string {
	if p.First {
		return ""
	}
	return fmt.Sprintf(":%d", p.At.Unix())
}

// Store resolves pins. Implementations are safe for concurrent use.
type Store interface {
	// Resolve pins state for key, reported at at (seconds; finer is dropped).
	Resolve(ctx context.Context, key, state string, at time.Time) (Pinned, error)
}

// pin is a key's value.
type pin struct {
	State string `json:"state"`
	At    int64  `json:"at"` // Unix seconds
	First bool   `json:"first,omitempty"`
}

// decide returns the pin for a report of state at at, given the current one (nil:
// none), and whether it changed.
func decide(cur *pin, state string, at time.Time) (pin, bool) {
	sec := at.Unix()
	switch {
	case cur == nil:
		return pin{State: state, At: sec, First: true}, true
	case cur.State == state:
		return *cur, false
	}
	return pin{State: state, At: max(sec, cur.At+1)}, true
}

func (p pin) pinned() Pinned { return Pinned{At: time.Unix(p.At, 0).UTC(), First: p.First} }

// keyOf turns a caller's key (any text) into a bucket key.
func keyOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "p." + hex.EncodeToString(sum[:16])
}

// KV is a Store on a NATS key-value bucket.
type KV struct{ kv jetstream.KeyValue }

// NewKV returns the store of bucket kv (see BucketConfig).
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

// Resolve implements Store.
func (s *KV) Resolve(ctx context.Context, key, state string, at time.Time) (Pinned, error) {
	k := keyOf(key)
	for attempt := 0; attempt < 20; attempt++ {
		var cur *pin
		var rev uint64
		e, err := s.kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Pinned{}, fmt.Errorf("pins: read %s: %w", key, err)
		default:
			cur, rev = &pin{}, e.Revision()
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return Pinned{}, fmt.Errorf("pins: %s: %w", key, err)
			}
		}
		next, changed := decide(cur, state, at)
		if !changed {
			return next.pinned(), nil
		}
		data, _ := json.Marshal(next)
		if cur == nil {
			_, err = s.kv.Create(ctx, k, data)
		} else {
			_, err = s.kv.Update(ctx, k, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another replica pinned it meanwhile: decide again on its pin
		}
		if err != nil {
			return Pinned{}, fmt.Errorf("pins: write %s: %w", key, err)
		}
		return next.pinned(), nil
	}
	return Pinned{}, fmt.Errorf("pins: %s kept changing under concurrent writers", key)
}

// Memory is a Store in this process, for a single ingest without NATS (tests).
type Memory struct {
	mu   sync.Mutex
	pins map[string]pin
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{pins: map[string]pin{}} }

// Resolve implements Store.
func (m *Memory) Resolve(_ context.Context, key, state string, at time.Time) (Pinned, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur *pin
	if p, ok := m.pins[key]; ok {
		cur = &p
	}
	next, _ := decide(cur, state, at)
	m.pins[key] = next
	return next.pinned(), nil
}
