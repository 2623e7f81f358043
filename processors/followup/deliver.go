package followup

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/records"
)

// DeliveryConsumer is the durable consumer of the follow-up stream that delivers new
// cases: a case is acknowledged to it only once its owner's webhook answered 2xx, so a
// crash, a restart or a lost lease delivers it again: a case may reach its owner twice
// (with one delivery id), never not at all.
const DeliveryConsumer = "followup-delivery"

// Delivery headers. The delivery id is the same on every attempt of one case, so that a
// receiver drops a repeat.
const (
	HeaderDelivery  = "X-Cxlink-Delivery"
	HeaderEvent     = "X-Cxlink-Event"
	HeaderTimestamp = "X-Cxlink-Timestamp"
	// HeaderSignature is "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body).
	HeaderSignature = "X-Cxlink-Signature"
)

// Sign returns the signature of a delivery's body at timestamp (Unix seconds, as sent in
// HeaderTimestamp).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Answer is one of the customer's earlier answers, sent with a case.
type Answer struct {
	SurveyID      string    `json:"survey_id"`
	Survey        string    `json:"survey"`
	StandardScore float64   `json:"standard_score"`
	OccurredAt    time.Time `json:"occurred_at"`
	TicketID      string    `json:"ticket_id,omitempty"`
	Category      string    `json:"category,omitempty"`
}

// History reads a customer's answers.
type History interface {
	// CustomerAnswers returns the customer's answers that occurred in [since, before),
	// newest first, at most limit, leaving out the answer excluded.
	CustomerAnswers(ctx context.Context, customerID, excluded string, since, before time.Time, limit int) ([]Answer, error)
}

// historyLimit bounds the earlier answers sent with a case.
const historyLimit = 20

// Payload is the JSON body of a delivery (not for slack: targets).
type Payload struct {
	Event      string           `json:"event"` // followup.opened
	DeliveryID string           `json:"delivery_id"`
	Case       records.FollowUp `json:"case"`
	// History: the customer's earlier answers within CXLINK_FOLLOWUP_HISTORY, newest
	// first.
	History []Answer `json:"history"`
}

// deliverer posts new cases to their owners' webhooks.
type deliverer struct {
	s       *Settings
	stream  jetstream.Stream
	history History
	client  *http.Client
	logger  *slog.Logger
	now     func() time.Time
	limits  map[string][]time.Time // per owner, the times of its recent attempts
	metrics *deliveryMetrics
}

type deliveryMetrics struct {
	outcomes *prometheus.CounterVec
	latency  prometheus.Histogram
}

func newDeliveryMetrics(reg prometheus.Registerer) *deliveryMetrics {
	m := &deliveryMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_followup_deliveries_total",
			Help: "Delivery attempts of new follow-up cases to their owners' webhooks, by owner and outcome: delivered, failed (tried again later), rate_limited (waits its turn), no_webhook.",
		}, []string{"owner", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_followup_delivery_seconds",
			Help:    "From a case's opening (its answer received) to its owner's webhook accepting it.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.latency)
	}
	return m
}

// run delivers until ctx ends.
func (d *deliverer) run(ctx context.Context) error {
	return consumeCases(ctx, d.stream, DeliveryConsumer, "delivers new follow-up cases to their owners' webhooks",
		d.logger, d.handle)
}

// consumeCases reads the case stream through the durable consumer name, one message
// after the other, until ctx ends. Any change but an opening is acknowledged at once, an
// unreadable message terminated; handle gets each opened case and acknowledges its
// message (or asks for it again).
func consumeCases(ctx context.Context, s jetstream.Stream, name, description string, logger *slog.Logger,
	handle func(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, c records.FollowUp)) error {
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   description,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Longer than one attempt (the client's timeout) and the history query; the
		// clock restarts when a message's handling starts (InProgress).
		AckWait:       2 * time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
		FilterSubject: SubjectPrefix + "*",
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	// A few at a time: they are handled one after the other.
	it, err := cons.Messages(jetstream.PullMaxMessages(4))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			logger.Warn("read the follow-up stream", "consumer", name, "err", err)
			pause(ctx, time.Second)
			continue
		}
		_ = msg.InProgress()
		// Only openings are delivered or noted; any other change is done with at once.
		if msg.Headers().Get(HeaderChange) != "opened" {
			_ = msg.Ack()
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			_ = msg.Nak()
			continue
		}
		c, err := Decode(msg.Data())
		if err != nil {
			logger.Error("skipping an unreadable follow-up message", "consumer", name, "seq", meta.Sequence.Stream, "err", err)
			_ = msg.Term()
			continue
		}
		handle(ctx, msg, meta, c)
	}
}

// handle delivers the case a message opened, or leaves it for a later attempt.
func (d *deliverer) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, c records.FollowUp) {
	target, ok := d.s.Target(c.Owner)
	if !ok {
		d.metrics.outcomes.WithLabelValues(c.Owner, "no_webhook").Inc()
		_ = msg.Ack()
		return
	}
	now := d.now()
	if wait := d.reserve(c.Owner, now); wait > 0 {
		d.metrics.outcomes.WithLabelValues(c.Owner, "rate_limited").Inc()
		_ = msg.NakWithDelay(wait)
		return
	}
	if err := d.post(ctx, target, &c); err != nil {
		retry := backoff(meta.NumDelivered, d.s.RetryMax)
		d.metrics.outcomes.WithLabelValues(c.Owner, "failed").Inc()
		d.logger.Warn("follow-up delivery failed; trying again", "case", c.ID, "owner", c.Owner,
			"attempt", meta.NumDelivered, "retry_in", retry, "err", err)
		_ = msg.NakWithDelay(retry)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// Delivered again later, with the same delivery id.
		d.logger.Warn("acknowledge a delivered follow-up", "case", c.ID, "err", err)
	}
	d.metrics.outcomes.WithLabelValues(c.Owner, "delivered").Inc()
	d.metrics.latency.Observe(d.now().Sub(c.OpenedAt).Seconds())
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// backoff is the wait before attempt n+1: 1s, 2s, 4s, … up to max.
func backoff(n uint64, max time.Duration) time.Duration {
	if n > 30 {
		return max
	}
	return min(time.Second<<(n-1), max)
}

// reserve takes one of the owner's deliveries at now, or returns how long to wait for
// one.
func (d *deliverer) reserve(owner string, now time.Time) time.Duration {
	r := d.s.RateLimit.For(owner)
	recent := d.limits[owner]
	for len(recent) > 0 && !now.Before(recent[0].Add(r.Per)) {
		recent = recent[1:]
	}
	if len(recent) >= r.N {
		d.limits[owner] = recent
		return recent[0].Add(r.Per).Sub(now)
	}
	d.limits[owner] = append(recent, now)
	return 0
}

// post sends the case to target once.
func (d *deliverer) post(ctx context.Context, target Target, c *records.FollowUp) error {
	var hist []Answer
	if d.history != nil && d.s.History > 0 && c.CustomerID != "" {
		var err error
		hist, err = d.history.CustomerAnswers(ctx, c.CustomerID, c.SurveyID, c.OccurredAt.Add(-d.s.History), c.OccurredAt, historyLimit)
		if err != nil {
			return fmt.Errorf("customer history: %w", err)
		}
	}
	if hist == nil {
		hist = []Answer{}
	}
	var body []byte
	var err error
	if target.Slack {
		body, err = json.Marshal(map[string]string{"text": slackText(c, hist)})
	} else {
		body, err = json.Marshal(Payload{Event: "followup.opened", DeliveryID: c.ID, Case: *c, History: hist})
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(d.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cxlink-followups")
	req.Header.Set(HeaderDelivery, c.ID)
	req.Header.Set(HeaderEvent, "followup.opened")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.s.Secret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// redactURLError drops the URL (which may hold a token) from a client error.
func redactURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// slackText is a case as a Slack message.
func slackText(c *records.FollowUp, hist []Answer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Follow-up for %s*: %s %g", c.Owner, strings.ToUpper(c.Survey), c.Score)
	if c.Category != "" {
		fmt.Fprintf(&b, " on a %s ticket", c.Category)
	}
	if c.TicketID != "" {
		fmt.Fprintf(&b, " (%s)", c.TicketID)
	}
	fmt.Fprintf(&b, ", due %s\n", c.DueAt.UTC().Format("2006-01-02 15:04 MST"))
	if c.CustomerID != "" {
		fmt.Fprintf(&b, "Customer %s", c.CustomerID)
		if len(hist) > 0 {
			fmt.Fprintf(&b, ", %d earlier answers", len(hist))
		}
		b.WriteString("\n")
	}
	if c.Team != "" || c.AgentID != "" || c.Channel != "" {
		fmt.Fprintf(&b, "Team %s, agent %s, channel %s\n", c.Team, c.AgentID, c.Channel)
	}
	if c.Comment != "" {
		fmt.Fprintf(&b, "> %s\n", strings.ReplaceAll(c.Comment, "\n", "\n> "))
	}
	fmt.Fprintf(&b, "Case %s", c.ID)
	return b.String()
}
