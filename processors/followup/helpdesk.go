package followup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/records"
)

// HelpdeskConsumer is the durable consumer through which the stage adds each new case of
// a Zendesk ticket to the ticket as an internal note, like DeliveryConsumer: a case is
// acknowledged once Zendesk accepted the note, tried again after a failure.
const HelpdeskConsumer = "followup-helpdesk"

// Zendesk is the Zendesk account that receives the notes: its base URL
// (https://acme.zendesk.com) and an agent's API token.
type Zendesk struct {
	URL   string
	Email string
	Token string
}

// zendeskTicketPrefix starts the ticket ids of the Zendesk webhook (ingest/adapters:
// "zendesk:208" is Zendesk's ticket 208).
const zendeskTicketPrefix = "zendesk:"

// zendeskTicket returns the Zendesk ticket number of a case's ticket, if it is one.
func zendeskTicket(ticketID string) (uint64, bool) {
	rest, ok := strings.CutPrefix(ticketID, zendeskTicketPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil && n > 0
}

// noter adds internal notes to Zendesk tickets.
type noter struct {
	z        *Zendesk
	retryMax time.Duration
	stream   jetstream.Stream
	client   *http.Client
	logger   *slog.Logger
	outcomes *prometheus.CounterVec
}

func newNoteMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_followup_helpdesk_notes_total",
		Help: "New follow-up cases of Zendesk tickets, by outcome of adding them to the ticket as an internal note: added, already_there (found on the ticket before a repeated attempt), failed (tried again later), refused (Zendesk answered 400, 404 or 422: an unknown or closed ticket, not tried again).",
	}, []string{"outcome"})
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// run adds notes until ctx ends.
func (n *noter) run(ctx context.Context) error {
	return consumeCases(ctx, n.stream, HelpdeskConsumer, "adds new follow-up cases of Zendesk tickets to the ticket as an internal note",
		n.logger, n.handle)
}

// handle notes the case a message opened in its Zendesk ticket, or leaves it for a later
// attempt.
func (n *noter) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, c records.FollowUp) {
	ticket, ok := zendeskTicket(c.TicketID)
	if !ok {
		_ = msg.Ack() // not a Zendesk ticket
		return
	}
	outcome, err := n.note(ctx, ticket, &c, meta.NumDelivered > 1)
	n.outcomes.WithLabelValues(outcome).Inc()
	switch outcome {
	case "failed":
		retry := backoff(meta.NumDelivered, n.retryMax)
		n.logger.Warn("Zendesk note failed; trying again", "case", c.ID, "ticket", ticket, "attempt", meta.NumDelivered,
			"retry_in", retry, "err", err)
		_ = msg.NakWithDelay(retry)
		return
	case "refused":
		n.logger.Error("Zendesk refused the note; not trying again", "case", c.ID, "ticket", ticket, "err", err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// Tried again later: the note is found on the ticket then.
		n.logger.Warn("acknowledge a noted follow-up", "case", c.ID, "err", err)
	}
}

// note adds the case to the ticket once. A repeated attempt (again: an earlier one may
// have reached Zendesk) first looks for the case among the ticket's latest comments:
// Zendesk's ticket update takes no idempotency key.
func (n *noter) note(ctx context.Context, ticket uint64, c *records.FollowUp, again bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	base := strings.TrimRight(n.z.URL, "/") + "/api/v2/tickets/" + strconv.FormatUint(ticket, 10)
	if again {
		var page struct {
			Comments []struct {
				Body   string `json:"body"`
				Public bool   `json:"public"`
			} `json:"comments"`
		}
		status, err := n.do(ctx, http.MethodGet, base+"/comments.json?sort_order=desc", nil, &page)
		if err != nil {
			return classify(status), err
		}
		for _, cm := range page.Comments {
			if !cm.Public && strings.Contains(cm.Body, c.ID) {
				return "already_there", nil
			}
		}
	}
	body := map[string]any{"ticket": map[string]any{"comment": map[string]any{"body": noteText(c), "public": false}}}
	status, err := n.do(ctx, http.MethodPut, base+".json", body, nil)
	if err != nil {
		return classify(status), err
	}
	return "added", nil
}

// classify names a failed request's outcome by its status (0: no answer).
func classify(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
		return "refused" // an unknown or closed ticket: trying again changes nothing
	}
	return "failed" // including a bad token, which someone can fix
}

// do sends one request with the API token and decodes a JSON answer into out.
func (n *noter) do(ctx context.Context, method, url string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(n.z.Email+"/token", n.z.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "cxlink-followups")
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, redactURLError(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: Zendesk answered %s: %.200s", method, strings.TrimPrefix(url, n.z.URL), resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, strings.TrimPrefix(url, n.z.URL), err)
		}
	}
	return resp.StatusCode, nil
}

// noteText is the internal note: what the agents on the ticket need to know, with the
// case id by which a repeated attempt finds it.
func noteText(c *records.FollowUp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cxlink follow-up %s for %s, due %s: the customer answered %s %g (rule %s).\n", c.ID, c.Owner,
		c.DueAt.UTC().Format("2006-01-02 15:04 MST"), strings.ToUpper(c.Survey), c.Score, c.Rule)
	if c.Comment != "" {
		fmt.Fprintf(&b, "Comment: %s\n", c.Comment)
	}
	fmt.Fprintf(&b, "Close it with a reason: POST /v1/followups/%s/close", c.ID)
	return b.String()
}
