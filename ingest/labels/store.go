package labels

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the NATS key-value bucket of the admitted values, one key per field.
const Bucket = "CXLINK_LABELS"

// BucketConfig is the definition of the bucket, for the role that creates the stream
// next to which it lives (replicas: the stream's).
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "cxlink label values admitted at ingest, per field (hashes; see ingest/labels)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// KV is a Store on a NATS key-value bucket.
type KV struct{ kv jetstream.KeyValue }

// NewKV returns the store of bucket kv (see BucketConfig).
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

// Get implements Store.
func (s *KV) Get(ctx context.Context, field string) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, field)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// Put implements Store.
func (s *KV) Put(ctx context.Context, field string, data []byte, revision uint64) (uint64, error) {
	var (
		rev uint64
		err error
	)
	if revision == 0 {
		rev, err = s.kv.Create(ctx, field, data)
	} else {
		rev, err = s.kv.Update(ctx, field, data, revision)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrConflict
	}
	return rev, err
}

// Memory is a Store in this process, for a single ingest without NATS (tests).
type Memory struct {
	mu   sync.Mutex
	data map[string][]byte
	revs map[string]uint64
	last uint64
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{data: map[string][]byte{}, revs: map[string]uint64{}} }

// Get implements Store.
func (m *Memory) Get(_ context.Context, field string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rev, ok := m.revs[field]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return m.data[field], rev, nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, field string, data []byte, revision uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revs[field] != revision {
		return 0, ErrConflict
	}
	m.last++
	m.data[field], m.revs[field] = data, m.last
	return m.last, nil
}
