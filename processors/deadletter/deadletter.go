// Package deadletter keeps the events that can never be processed: a JetStream stream
// of their messages, each with the reason, which an operator lists, inspects and replays
// (`cxlink deadletters`). The processors put a message here and then terminate it in the
// events stream, so that a poison message neither blocks its partition nor disappears.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream and its subject.
const (
	StreamName = "CXLINK_DEAD_LETTERS"
	Subject    = "cxlink.dead"
)

// Headers a dead letter carries besides the original message's own.
const (
	HeaderReason   = "Cxlink-Dead-Reason"
	HeaderStream   = "Cxlink-Stream"
	HeaderSubject  = "Cxlink-Subject"
	HeaderSeq      = "Cxlink-Seq"
	HeaderReceived = "Cxlink-Received"
	// HeaderMsgID is the original Nats-Msg-Id (the event id); the letter's own
	// Nats-Msg-Id identifies the original message, so that putting it twice keeps one.
	HeaderMsgID = "Cxlink-Msg-Id"
)

// maxReason bounds the reason kept with a letter.
const maxReason = 2000

// Config of the dead-letter stream.
type Config struct {
	// MaxAge: letters older than this are dropped.
	MaxAge time.Duration `env:"CXLINK_DEAD_LETTER_MAX_AGE"`
}

// DefaultConfig is the configuration when nothing is set: 30 days leave time to notice,
// fix the cause and replay.
func DefaultConfig() Config { return Config{MaxAge: 30 * 24 * time.Hour} }

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	if c.MaxAge < time.Hour {
		return fmt.Errorf("CXLINK_DEAD_LETTER_MAX_AGE: %s is shorter than an hour", c.MaxAge)
	}
	return nil
}

// Queue is the dead-letter stream. It is safe for concurrent use.
type Queue struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Define creates or updates the dead-letter stream with replicas copies (like the events
// stream's): for the owner of the definitions (`cxlink migrate`, the embedded run).
func Define(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) (*Queue, error) {
	s, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg, replicas))
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", StreamName, err)
	}
	return &Queue{js: js, stream: s}, nil
}

// Open looks the dead-letter stream up, creating it when it does not exist yet; it
// never changes an existing one.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) (*Queue, error) {
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, streamConfig(cfg, replicas))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, StreamName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	return &Queue{js: js, stream: s}, nil
}

func streamConfig(cfg Config, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "cxlink events that can never be processed, with the reason; see `cxlink deadletters`",
		Subjects:    []string{Subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      cfg.MaxAge,
		// A letter is put again when a partition is replayed after a crash or a move:
		// the next owner starts from the partition's progress, minutes back at most.
		Duplicates: time.Hour,
		Replicas:   replicas,
	}
}

// Put stores msg, a message of the events stream, with the reason it can never be
// processed. Putting the same message again keeps one letter.
func (q *Queue) Put(ctx context.Context, msg jetstream.Msg, reason string) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	h := nats.Header{}
	for k, v := range msg.Headers() {
		if k == jetstream.MsgIDHeader {
			k = HeaderMsgID
		}
		h[k] = v
	}
	h.Set(HeaderReason, oneLine(reason, maxReason))
	h.Set(HeaderStream, meta.Stream)
	h.Set(HeaderSubject, msg.Subject())
	h.Set(HeaderSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	h.Set(HeaderReceived, meta.Timestamp.UTC().Format(time.RFC3339Nano))
	h.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d-%d", meta.Stream, meta.Sequence.Stream, meta.Timestamp.UnixNano()))
	if _, err := q.js.PublishMsg(ctx, &nats.Msg{Subject: Subject, Header: h, Data: msg.Data()}); err != nil {
		return fmt.Errorf("dead letter of %s seq %d: %w", meta.Stream, meta.Sequence.Stream, err)
	}
	return nil
}

// oneLine makes s fit a header value: one line of at most max bytes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// Letter is one dead-lettered message.
type Letter struct {
	// Seq is the letter's sequence in the dead-letter stream; FailedAt is when it was
	// put there.
	Seq      uint64
	FailedAt time.Time
	Reason   string
	// Where the message was: its stream, subject, sequence, and when it was received.
	Stream     string
	Subject    string
	StreamSeq  uint64
	ReceivedAt time.Time
	// MsgID is the message's Nats-Msg-Id (the event id), empty if it had none.
	MsgID  string
	Header nats.Header
	Data   []byte
}

func letterOf(m *jetstream.RawStreamMsg) Letter {
	l := Letter{Seq: m.Sequence, FailedAt: m.Time.UTC(), Header: m.Header, Data: m.Data}
	if m.Header != nil {
		l.Reason = m.Header.Get(HeaderReason)
		l.Stream = m.Header.Get(HeaderStream)
		l.Subject = m.Header.Get(HeaderSubject)
		l.StreamSeq, _ = strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
		l.ReceivedAt, _ = time.Parse(time.RFC3339Nano, m.Header.Get(HeaderReceived))
		l.MsgID = m.Header.Get(HeaderMsgID)
	}
	return l
}

// ErrNotFound: no letter with that sequence.
var ErrNotFound = errors.New("no such dead letter")

// Get returns the letter with sequence seq.
func (q *Queue) Get(ctx context.Context, seq uint64) (Letter, error) {
	m, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	return letterOf(m), nil
}

// Count is the number of letters held.
func (q *Queue) Count(ctx context.Context) (uint64, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	return info.State.Msgs, nil
}

// List returns up to limit letters, oldest first, from sequence from on.
func (q *Queue) List(ctx context.Context, from uint64, limit int) ([]Letter, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	var out []Letter
	for seq := max(from, info.State.FirstSeq); seq <= info.State.LastSeq && len(out) < limit && info.State.Msgs > 0; seq++ {
		l, err := q.Get(ctx, seq)
		if errors.Is(err, ErrNotFound) {
			continue // replayed or discarded
		}
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Replayed says what became of a replayed letter.
type Replayed struct {
	// Duplicate: the events stream still holds the original message inside its
	// duplicate window, so the replay was not stored; the letter is kept. Replay it once
	// the window has passed: by then the event is late, so it is stored raw and never
	// counted in a rolling window twice.
	Duplicate bool
	// Seq of the new message in the events stream.
	Seq uint64
}

// Replay publishes the letter's message again to the subject it came from, with its
// id, and removes the letter once the events stream stored it.
func (q *Queue) Replay(ctx context.Context, seq uint64) (Replayed, error) {
	l, err := q.Get(ctx, seq)
	if err != nil {
		return Replayed{}, err
	}
	if l.Subject == "" {
		return Replayed{}, fmt.Errorf("dead letter %d does not say where it came from", seq)
	}
	h := nats.Header{}
	for k, v := range l.Header {
		if !strings.HasPrefix(k, "Cxlink-") && k != jetstream.MsgIDHeader {
			h[k] = v
		}
	}
	id := l.MsgID
	if id == "" {
		id = fmt.Sprintf("%s-%d", StreamName, seq)
	}
	h.Set(jetstream.MsgIDHeader, id)
	ack, err := q.js.PublishMsg(ctx, &nats.Msg{Subject: l.Subject, Header: h, Data: l.Data})
	if err != nil {
		return Replayed{}, fmt.Errorf("replay dead letter %d to %s: %w", seq, l.Subject, err)
	}
	if ack.Duplicate {
		return Replayed{Duplicate: true}, nil
	}
	if err := q.Discard(ctx, seq); err != nil {
		return Replayed{Seq: ack.Sequence}, err
	}
	return Replayed{Seq: ack.Sequence}, nil
}

// Discard removes a letter for good.
func (q *Queue) Discard(ctx context.Context, seq uint64) error {
	if err := q.stream.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("%w: %d", ErrNotFound, seq)
		}
		return fmt.Errorf("remove dead letter %d: %w", seq, err)
	}
	return nil
}
