// Package stream defines the JetStream stream that carries accepted events from ingest
// to the processors: its name, its partitioned subjects, its limits, and the publisher.
package stream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Name of the stream, and the prefix of its subjects: cxlink.events.<partition>.
const (
	Name          = "CXLINK_EVENTS"
	SubjectPrefix = "cxlink.events."
	partitionsKey = "cxlink_partitions"
)

// Config of the stream. The partition count is fixed when the stream is created: it is
// the most processor instances that can share the work, and every partition writes its
// own partial rollup rows, so more partitions than processes only costs rows.
type Config struct {
	Partitions int           `env:"CXLINK_PARTITIONS" envDefault:"4"`
	Replicas   int           `env:"CXLINK_STREAM_REPLICAS" envDefault:"1"`
	MaxAge     time.Duration `env:"CXLINK_STREAM_MAX_AGE" envDefault:"336h"`
	// MaxBytes bounds the stream's disk use (-1: unbounded). When full, publishing fails
	// and ingest answers 503 rather than dropping old, possibly unprocessed, events.
	MaxBytes int64 `env:"CXLINK_STREAM_MAX_BYTES" envDefault:"-1"`
	// PublishBatch is the most events ingest stores as one atomic batch, with one sync
	// (at most MaxAtomicBatch, the server's limit); 1 publishes each event on its own.
	PublishBatch int `env:"CXLINK_PUBLISH_BATCH" envDefault:"1000"`
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("CXLINK_PARTITIONS: %d is not between 1 and 1024", c.Partitions))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_REPLICAS: %d is not 1, 3 or 5", c.Replicas))
	}
	if c.MaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_AGE: %s is shorter than an hour", c.MaxAge))
	}
	if c.MaxBytes == 0 || c.MaxBytes < -1 {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_BYTES: %d is neither -1 nor positive", c.MaxBytes))
	}
	if c.PublishBatch < 1 || c.PublishBatch > MaxAtomicBatch {
		errs = append(errs, fmt.Errorf("CXLINK_PUBLISH_BATCH: %d is not between 1 and %d", c.PublishBatch, MaxAtomicBatch))
	}
	return errors.Join(errs...)
}

// Subject is the subject of a partition.
func Subject(partition int) string { return SubjectPrefix + strconv.Itoa(partition) }

// Partition maps a routing key onto one of n partitions.
func Partition(routingKey string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(routingKey))
	return int(h.Sum32() % uint32(n))
}

// Ensure creates the stream or updates it to cfg; it is safe to call from every process
// at every start. duplicates is the dedup window for Nats-Msg-Id.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config, duplicates time.Duration) (jetstream.Stream, error) {
	if s, err := js.Stream(ctx, Name); err == nil {
		info := s.CachedInfo()
		if p := info.Config.Metadata[partitionsKey]; p != "" && p != strconv.Itoa(cfg.Partitions) {
			return nil, fmt.Errorf("stream %s has %s partitions but CXLINK_PARTITIONS is %d: partitions cannot change once events are stored", Name, p, cfg.Partitions)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("look up stream %s: %w", Name, err)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Name,
		Description: "cxlink events accepted by ingest, partitioned by ticket, team or id",
		Subjects:    []string{SubjectPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  duplicates,
		Replicas:    cfg.Replicas,
		Metadata:    map[string]string{partitionsKey: strconv.Itoa(cfg.Partitions)},
		// Lets the publisher store a request's events as one atomic batch, with one
		// sync (nats-server 2.12+; an older server ignores the field, see Atomic).
		AllowAtomicPublish: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", Name, err)
	}
	return s, nil
}
