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

// Config of the stream. Every field shapes the stream when it is created (or updated by
// its owner, `cxlink migrate`); other roles read the stream as it is, and a field they
// set explicitly (non-zero) must agree with it.
type Config struct {
	// Partitions is fixed when the stream is created: it caps the processor replicas that
	// can share the work (docs/partitions.md). 0: the stream's, or DefaultPartitions.
	Partitions int `env:"CXLINK_STREAM_PARTITIONS"`
	// Replicas of the stream and of the buckets next to it. 0: the stream's, or 1.
	Replicas int `env:"CXLINK_STREAM_REPLICAS"`
	// MaxAge: events older than this leave the stream (not ClickHouse). 0: the stream's,
	// or DefaultMaxAge.
	MaxAge time.Duration `env:"CXLINK_STREAM_MAX_AGE"`
	// MaxBytes bounds the stream's disk use (-1: unbounded). When full, publishing fails
	// and ingest answers 503 rather than dropping old, possibly unprocessed, events.
	// 0: the stream's, or unbounded.
	MaxBytes int64 `env:"CXLINK_STREAM_MAX_BYTES"`
	// PublishBatch is the most events ingest stores as one atomic batch, with one sync
	// (at most MaxAtomicBatch, the server's limit); 1 publishes each event on its own.
	PublishBatch int `env:"CXLINK_PUBLISH_BATCH"`
}

// DefaultConfig is the configuration when nothing is set: the stream's own settings for
// what an existing stream has, atomic batches as large as the server takes.
func DefaultConfig() Config { return Config{PublishBatch: MaxAtomicBatch} }

// Defaults of a new stream.
const (
	// DefaultPartitions lets up to 16 processor replicas share the work, about twice
	// what a large contact centre needs (docs/scaling.md).
	DefaultPartitions = 16
	DefaultReplicas   = 1
	// DefaultMaxAge keeps two weeks: the processors need the longest window and a
	// snapshot interval, and dead letters can be replayed from it.
	DefaultMaxAge = 14 * 24 * time.Hour
)

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Partitions < 0 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_PARTITIONS: %d is not between 1 and 1024", c.Partitions))
	}
	if c.Replicas != 0 && c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_REPLICAS: %d is not 1, 3 or 5", c.Replicas))
	}
	if c.MaxAge != 0 && c.MaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_AGE: %s is shorter than an hour", c.MaxAge))
	}
	if c.MaxBytes < -1 {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_BYTES: %d is neither -1 nor positive", c.MaxBytes))
	}
	if c.PublishBatch < 1 || c.PublishBatch > MaxAtomicBatch {
		errs = append(errs, fmt.Errorf("CXLINK_PUBLISH_BATCH: %d is not between 1 and %d", c.PublishBatch, MaxAtomicBatch))
	}
	return errors.Join(errs...)
}

// withDefaults fills the fields left unset with those of a new stream.
func (c Config) withDefaults() Config {
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
	return c
}

// Subject is the subject of a partition.
func Subject(partition int) string { return SubjectPrefix + strconv.Itoa(partition) }

// Partition maps a routing key onto one of n partitions.
func Partition(routingKey string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(routingKey))
	return int(h.Sum32() % uint32(n))
}

// Info is what a role learns of the stream.
type Info struct {
	Partitions int
	Replicas   int
}

// Define creates the stream or updates it to cfg (its unset fields keep the stream's
// values). Only the owner of the definitions calls it: `cxlink migrate`, and `cxlink run`
// with the embedded server. duplicates is the dedup window for Nats-Msg-Id.
func Define(ctx context.Context, js jetstream.JetStream, cfg Config, duplicates time.Duration) (jetstream.Stream, Info, error) {
	if s, err := js.Stream(ctx, Name); err == nil {
		cur := s.CachedInfo().Config
		stored, _ := strconv.Atoi(cur.Metadata[partitionsKey])
		if cfg.Partitions != 0 && stored != 0 && stored != cfg.Partitions {
			return nil, Info{}, fmt.Errorf("stream %s has %d partitions but CXLINK_STREAM_PARTITIONS is %d: partitions cannot change once events are stored", Name, stored, cfg.Partitions)
		}
		if cfg.Partitions == 0 {
			cfg.Partitions = stored
		}
		if cfg.Replicas == 0 {
			cfg.Replicas = cur.Replicas
		}
		if cfg.MaxAge == 0 {
			cfg.MaxAge = cur.MaxAge
		}
		if cfg.MaxBytes == 0 {
			cfg.MaxBytes = cur.MaxBytes
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, Info{}, fmt.Errorf("look up stream %s: %w", Name, err)
	}
	cfg = cfg.withDefaults()
	s, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg, duplicates))
	if err != nil {
		return nil, Info{}, fmt.Errorf("create or update stream %s: %w", Name, err)
	}
	return s, Info{Partitions: cfg.Partitions, Replicas: cfg.Replicas}, nil
}

func streamConfig(cfg Config, duplicates time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
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
	}
}

// Needs is what a role relies on the stream for.
type Needs struct {
	// Duplicates: the dedup window must be at least this long.
	Duplicates time.Duration
	// MaxAge: events must stay at least this long (0: no need).
	MaxAge time.Duration
}

// Open looks the stream up and checks it against what the role relies on and what cfg
// sets explicitly; a mismatch is an error that names the setting, and nothing is
// changed. A stream that does not exist yet is created (with duplicates as its dedup
// window), so that a fresh deployment needs no extra step.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, needs Needs) (jetstream.Stream, Info, error) {
	s, err := js.Stream(ctx, Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, streamConfig(cfg.withDefaults(), needs.Duplicates))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, Name) // another role created it at the same moment
		}
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("look up stream %s: %w", Name, err)
	}
	cur := s.CachedInfo().Config
	info := Info{Replicas: cur.Replicas}
	info.Partitions, _ = strconv.Atoi(cur.Metadata[partitionsKey])
	var errs []error
	if info.Partitions < 1 {
		errs = append(errs, fmt.Errorf("stream %s does not say how many partitions it has (metadata %s): was it created by cxlink?", Name, partitionsKey))
	}
	if cfg.Partitions != 0 && cfg.Partitions != info.Partitions {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_PARTITIONS is %d but stream %s has %d partitions (unset it: roles read it from the stream)", cfg.Partitions, Name, info.Partitions))
	}
	if cfg.Replicas != 0 && cfg.Replicas != cur.Replicas {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_REPLICAS is %d but stream %s has %d replicas (change it with `cxlink migrate`, or unset it)", cfg.Replicas, Name, cur.Replicas))
	}
	if cfg.MaxAge != 0 && cfg.MaxAge != cur.MaxAge {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_AGE is %s but stream %s keeps events %s (change it with `cxlink migrate`, or unset it)", cfg.MaxAge, Name, cur.MaxAge))
	}
	if cfg.MaxBytes != 0 && cfg.MaxBytes != cur.MaxBytes {
		errs = append(errs, fmt.Errorf("CXLINK_STREAM_MAX_BYTES is %d but stream %s has %d (change it with `cxlink migrate`, or unset it)", cfg.MaxBytes, Name, cur.MaxBytes))
	}
	if cur.Duplicates < needs.Duplicates {
		errs = append(errs, fmt.Errorf("stream %s remembers message ids for %s, shorter than this configuration needs (%s: allowed lateness + max future + 5m); run `cxlink migrate` with it", Name, cur.Duplicates, needs.Duplicates))
	}
	if needs.MaxAge > 0 && cur.MaxAge > 0 && cur.MaxAge < needs.MaxAge {
		errs = append(errs, fmt.Errorf("stream %s keeps events %s, shorter than this configuration needs (%s); raise CXLINK_STREAM_MAX_AGE with `cxlink migrate`", Name, cur.MaxAge, needs.MaxAge.Round(time.Minute)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, Info{}, &MismatchError{err}
	}
	return s, info, nil
}

// MismatchError is the stream disagreeing with what a role's configuration sets or needs:
// trying again cannot help; the configuration or the stream (`cxlink migrate`) must change.
type MismatchError struct{ err error }

func (e *MismatchError) Error() string { return e.err.Error() }
func (e *MismatchError) Unwrap() error { return e.err }
