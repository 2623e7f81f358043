// Package checkpoint keeps where each partition stands: its progress (every row of every
// message up to a sequence is stored; every message received before a watermark is
// stored) in a JetStream KV bucket, and the newest snapshot of its state in a JetStream
// object store. Both are shared by the replicas: a partition that moves starts from them.
// See docs/partitions.md.
package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bucket and the object store.
const (
	ProgressBucket = "CXLINK_PROGRESS"
	SnapshotStore  = "CXLINK_SNAPSHOTS"
)

// Progress of one partition.
type Progress struct {
	// Seq: every row of every message of the partition up to this stream sequence is
	// stored in the sink.
	Seq uint64 `json:"seq"`
	// Watermark: every message of the partition received (JetStream timestamp) before it
	// is stored.
	Watermark time.Time `json:"watermark"`
}

// ProgressBucketConfig is the definition of the progress bucket, for the one role that
// creates it.
func ProgressBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ProgressBucket,
		Description: "cxlink partition progress: stored through a sequence, watermark",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// SnapshotStoreConfig is the definition of the snapshot store, for the one role that
// creates it.
func SnapshotStoreConfig(replicas int) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      SnapshotStore,
		Description: "cxlink partition state snapshots",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Compression: false, // snapshots are compressed already (s2)
	}
}

// Store reads and writes progress and snapshots. It is safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore
}

// Open looks up the bucket and the object store (see ProgressBucketConfig and
// SnapshotStoreConfig for who creates them).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, ProgressBucket)
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", ProgressBucket, err)
	}
	obj, err := js.ObjectStore(ctx, SnapshotStore)
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", SnapshotStore, err)
	}
	return &Store{kv: kv, obj: obj}, nil
}

func progressKey(p int) string { return "p." + strconv.Itoa(p) }

// Progress reads a partition's progress; false when it has none yet.
func (s *Store) Progress(ctx context.Context, p int) (Progress, bool, error) {
	e, err := s.kv.Get(ctx, progressKey(p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Progress{}, false, nil
	}
	if err != nil {
		return Progress{}, false, fmt.Errorf("read progress of partition %d: %w", p, err)
	}
	var pr Progress
	if err := json.Unmarshal(e.Value(), &pr); err != nil {
		return Progress{}, false, fmt.Errorf("read progress of partition %d: %w", p, err)
	}
	return pr, true, nil
}

// Advance records pr unless the stored progress is already further (a replica that lost
// the partition may still write an older one): each field only moves forward.
func (s *Store) Advance(ctx context.Context, p int, pr Progress) error {
	key := progressKey(p)
	for attempt := 0; ; attempt++ {
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("advance progress of partition %d: %w", p, err)
		default:
			var cur Progress
			if err := json.Unmarshal(e.Value(), &cur); err == nil {
				if cur.Seq >= pr.Seq && !cur.Watermark.Before(pr.Watermark) {
					return nil
				}
				pr.Seq = max(pr.Seq, cur.Seq)
				if cur.Watermark.After(pr.Watermark) {
					pr.Watermark = cur.Watermark
				}
			}
			rev = e.Revision()
		}
		b, _ := json.Marshal(pr)
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		conflict := errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
		if !conflict || attempt == 3 {
			return fmt.Errorf("advance progress of partition %d: %w", p, err)
		}
	}
}

// Watermarks reads the watermark of partitions 0…n−1; zero for a partition without
// progress.
func (s *Store) Watermarks(ctx context.Context, n int) ([]time.Time, error) {
	out := make([]time.Time, n)
	for p := range n {
		pr, _, err := s.Progress(ctx, p)
		if err != nil {
			return nil, err
		}
		out[p] = pr.Watermark
	}
	return out, nil
}

// Snapshot is a partition's state after one message.
type Snapshot struct {
	// Seq is the stream sequence of the last message applied to the state.
	Seq uint64
	// Format names the encoding and its version; Config the state's configuration
	// (windows, step, lateness…): a reader refuses a snapshot whose either differs.
	Format, Config string
	Data           []byte
}

const (
	headerSeq    = "Cxlink-Seq"
	headerFormat = "Cxlink-Format"
	headerConfig = "Cxlink-Config"
)

func snapshotName(p int) string { return "partition-" + strconv.Itoa(p) }

// PutSnapshot replaces a partition's snapshot. The object store publishes an object's
// description only after all of its chunks, so a reader sees the old snapshot or the
// new one, never a part.
func (s *Store) PutSnapshot(ctx context.Context, p int, snap Snapshot) error {
	meta := jetstream.ObjectMeta{
		Name: snapshotName(p),
		Headers: nats.Header{
			headerSeq:    {strconv.FormatUint(snap.Seq, 10)},
			headerFormat: {snap.Format},
			headerConfig: {snap.Config},
		},
	}
	if _, err := s.obj.Put(ctx, meta, bytes.NewReader(snap.Data)); err != nil {
		return fmt.Errorf("put snapshot of partition %d: %w", p, err)
	}
	return nil
}

// Snapshot reads a partition's snapshot; false when there is none.
func (s *Store) Snapshot(ctx context.Context, p int) (Snapshot, bool, error) {
	res, err := s.obj.Get(ctx, snapshotName(p))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("read snapshot of partition %d: %w", p, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("read snapshot of partition %d: %w", p, err)
	}
	data, err := io.ReadAll(res)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("read snapshot of partition %d: %w", p, err)
	}
	seq, err := strconv.ParseUint(info.Headers.Get(headerSeq), 10, 64)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("read snapshot of partition %d: header %s: %w", p, headerSeq, err)
	}
	return Snapshot{Seq: seq, Format: info.Headers.Get(headerFormat), Config: info.Headers.Get(headerConfig), Data: data}, true, nil
}
