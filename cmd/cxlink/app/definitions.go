package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/labels"
	"github.com/cxlink/cxlink/ingest/pins"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/deadletter"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/lease"
)

// definitions are the NATS objects cxlink keeps next to its stream: the dead letters,
// the lease and progress buckets, the snapshot store, and the buckets ingest admits
// events with (the label values admitted across the deployment, the webhooks' pins).
type definitions struct {
	stream      jetstream.Stream
	info        stream.Info
	deadLetters *deadletter.Queue
	leases      jetstream.KeyValue
	checkpoints *checkpoint.Store
	labelValues jetstream.KeyValue
	pinned      jetstream.KeyValue
	// followUps is the follow-up stream; nil when no answer opens a case.
	followUps jetstream.Stream
}

// defineNATS creates or updates every definition to this configuration: only the owner
// of the definitions does (`cxlink migrate`, and `cxlink run` with its embedded server).
func (r *roles) defineNATS(ctx context.Context, js jetstream.JetStream) (*definitions, error) {
	s, info, err := stream.Define(ctx, js, r.cfg.Stream, r.duplicateWindow())
	if err != nil {
		return nil, err
	}
	d := &definitions{stream: s, info: info}
	if d.deadLetters, err = deadletter.Define(ctx, js, r.cfg.DeadLetter, info.Replicas); err != nil {
		return nil, err
	}
	if d.leases, err = js.CreateOrUpdateKeyValue(ctx, lease.BucketConfig(r.cfg.Leases.TTL, info.Replicas)); err != nil {
		return nil, fmt.Errorf("create or update key-value bucket %s: %w", lease.Bucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, checkpoint.ProgressBucketConfig(info.Replicas)); err != nil {
		return nil, fmt.Errorf("create or update key-value bucket %s: %w", checkpoint.ProgressBucket, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, checkpoint.SnapshotStoreConfig(info.Replicas)); err != nil {
		return nil, fmt.Errorf("create or update object store %s: %w", checkpoint.SnapshotStore, err)
	}
	if d.checkpoints, err = checkpoint.Open(ctx, js); err != nil {
		return nil, err
	}
	if d.labelValues, err = js.CreateOrUpdateKeyValue(ctx, labels.BucketConfig(info.Replicas)); err != nil {
		return nil, fmt.Errorf("create or update key-value bucket %s: %w", labels.Bucket, err)
	}
	if d.pinned, err = js.CreateOrUpdateKeyValue(ctx, pins.BucketConfig(info.Replicas)); err != nil {
		return nil, fmt.Errorf("create or update key-value bucket %s: %w", pins.Bucket, err)
	}
	if fu := r.followUps(); fu.On() {
		if d.followUps, err = followup.Define(ctx, js, fu, info.Replicas); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// openNATS looks the definitions up and checks the stream against what this
// configuration relies on (stream.Open); what does not exist yet is created, so that a
// fresh deployment needs no extra step, but nothing existing is changed.
func (r *roles) openNATS(ctx context.Context, js jetstream.JetStream) (*definitions, error) {
	s, info, err := stream.Open(ctx, js, r.cfg.Stream, stream.Needs{Duplicates: r.duplicateWindow(), MaxAge: r.streamAgeNeeded()})
	if err != nil {
		return nil, err
	}
	d := &definitions{stream: s, info: info}
	if d.deadLetters, err = deadletter.Open(ctx, js, r.cfg.DeadLetter, info.Replicas); err != nil {
		return nil, err
	}
	if d.leases, err = openOrCreateKV(ctx, js, lease.BucketConfig(r.cfg.Leases.TTL, info.Replicas)); err != nil {
		return nil, err
	}
	if _, err := openOrCreateKV(ctx, js, checkpoint.ProgressBucketConfig(info.Replicas)); err != nil {
		return nil, err
	}
	if _, err := js.ObjectStore(ctx, checkpoint.SnapshotStore); errors.Is(err, jetstream.ErrBucketNotFound) {
		if _, err := js.CreateObjectStore(ctx, checkpoint.SnapshotStoreConfig(info.Replicas)); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("create object store %s: %w", checkpoint.SnapshotStore, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("object store %s: %w", checkpoint.SnapshotStore, err)
	}
	if d.checkpoints, err = checkpoint.Open(ctx, js); err != nil {
		return nil, err
	}
	if d.labelValues, err = openOrCreateKV(ctx, js, labels.BucketConfig(info.Replicas)); err != nil {
		return nil, err
	}
	if d.pinned, err = openOrCreateKV(ctx, js, pins.BucketConfig(info.Replicas)); err != nil {
		return nil, err
	}
	if fu := r.followUps(); fu.On() {
		if d.followUps, err = followup.Open(ctx, js, fu, info.Replicas); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// followUps are the follow-up settings (validated with the configuration).
func (r *roles) followUps() *followup.Settings {
	s, _ := r.cfg.FollowUps.Settings(r.cfg.Drift.Owners.String())
	return s
}

func openOrCreateKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// duplicateWindow is the stream's dedup window that makes a resent id harmless.
func (r *roles) duplicateWindow() time.Duration {
	return r.cfg.Process.DuplicateWindow(r.cfg.HTTP.MaxFuture)
}

// streamAgeNeeded is how long the processors need the stream to keep events: a replay
// without snapshot reads the replay horizon back, and a start with one reads the
// messages since it.
func (r *roles) streamAgeNeeded() time.Duration {
	return r.cfg.Process.ReplayHorizon(r.cfg.HTTP.MaxFuture) + r.cfg.Process.SnapshotEvery
}
