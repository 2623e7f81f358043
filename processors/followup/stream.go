package followup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/processors/records"
)

// The follow-up stream: every change of a case (opened, acknowledged, closed) is one
// message holding the whole case, on the case's own subject.
const (
	StreamName    = "CXLINK_FOLLOWUPS"
	SubjectPrefix = "cxlink.followups."
	// HeaderChange names the change a message records: opened, acknowledged or closed.
	HeaderChange = "Cxlink-Followup-Change"
	// HeaderAcknowledgedOnClose marks the closing of a case nobody had acknowledged:
	// closing acknowledges it too.
	HeaderAcknowledgedOnClose = "Cxlink-Followup-Acknowledged-On-Close"
)

// Subject is the subject of a case's messages.
func Subject(id string) string { return SubjectPrefix + id }

// StreamConfig is the follow-up stream's definition, with replicas copies (like the
// events stream's).
func StreamConfig(s *Settings, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "cxlink follow-up cases: one subject per case, one message per change; see docs/followups.md",
		Subjects:    []string{SubjectPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.MaxAge,
		// The opening of a case is also checked against its subject (it must be the
		// subject's first message), which holds for as long as the case is kept; the
		// window only spares that check for quick repeats.
		Duplicates: time.Hour,
		Replicas:   replicas,
	}
}

// Define creates or updates the follow-up stream: for the owner of the definitions
// (`cxlink migrate`, the embedded run).
func Define(ctx context.Context, js jetstream.JetStream, s *Settings, replicas int) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, StreamConfig(s, replicas))
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", StreamName, err)
	}
	return st, nil
}

// Open looks the follow-up stream up, creating it when it does not exist yet; it never
// changes an existing one.
func Open(ctx context.Context, js jetstream.JetStream, s *Settings, replicas int) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, StreamConfig(s, replicas))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, StreamName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	return st, nil
}

// Publisher puts cases onto the follow-up stream.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a publisher to js, where the follow-up stream exists.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Opened publishes newly opened cases and returns once the stream holds each of them. A
// case opened before (the same answer decided again by a replay or another replica) is
// not stored again: its message id is the case id, and the opening must be its
// subject's first message, which holds however long ago it was opened.
func (p *Publisher) Opened(ctx context.Context, cases []records.FollowUp) error {
	for i := range cases {
		c := &cases[i]
		data, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("follow-up %s: %w", c.ID, err)
		}
		msg := &nats.Msg{Subject: Subject(c.ID), Header: nats.Header{}, Data: data}
		msg.Header.Set(HeaderChange, "opened")
		_, err = p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(c.ID), jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil && !alreadyOpened(err) {
			return fmt.Errorf("publish follow-up %s: %w", c.ID, err)
		}
	}
	return nil
}

// alreadyOpened: the case's subject holds messages already (a replicated stream
// answers with the second code).
func alreadyOpened(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Decode reads a message of the follow-up stream: the case after the change.
func Decode(data []byte) (records.FollowUp, error) {
	var c records.FollowUp
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("follow-up message: %w", err)
	}
	if c.ID == "" {
		return c, errors.New("follow-up message: no id")
	}
	return c, nil
}

// RowSink stores the processors' batches (the ClickHouse sink).
type RowSink interface {
	WriteBatch(ctx context.Context, b *records.Batch) error
}

// OpeningSink puts the cases a batch opened onto the follow-up stream, then hands the
// batch to next: once the batch counts as stored (and the partitions' progress moves
// past its messages), its cases are durable. A failure fails the batch, which the
// writer writes again whole; publishing a case again stores nothing.
type OpeningSink struct {
	Next  RowSink
	Cases *Publisher
}

// WriteBatch implements the pipeline's Sink.
func (s OpeningSink) WriteBatch(ctx context.Context, b *records.Batch) error {
	if len(b.FollowUps) > 0 {
		if err := s.Cases.Opened(ctx, b.FollowUps); err != nil {
			return err
		}
	}
	return s.Next.WriteBatch(ctx, b)
}
