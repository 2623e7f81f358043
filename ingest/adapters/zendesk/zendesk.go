// Package zendesk maps Zendesk webhooks onto cxlink events.
//
// Two payloads are accepted on POST /v1/sources/zendesk, told apart by their shape:
//
//   - Ticket events of an event-subscribed webhook (developer.zendesk.com, "Webhook
//     event types", Ticket events): {"type":"zen:event-type:ticket.created", "id", "time",
//     "detail":{ticket}, "event":{...}}. ticket.created becomes a ticket event with status
//     created; ticket.status_changed to SOLVED (or CLOSED, unless it was SOLVED before)
//     becomes solved, and from SOLVED or CLOSED back to an open status becomes reopened.
//     Other event types and status changes are acknowledged and ignored.
//   - Satisfaction ratings as the Satisfaction Ratings API represents them, one object,
//     {"satisfaction_rating": {...}} or {"satisfaction_ratings": [...]}: the body of a
//     trigger webhook on "Satisfaction is Good/Bad", or a relay of the API. "good" and
//     "bad" become CSAT on a two-point scale (score 1 or 0, scale 0–1), which the
//     contract maps onto 5 and 1 of the standard 1–5 scale; "offered" and "unoffered"
//     have no answer and are ignored. A rating is pinned by its id (or its ticket's) to
//     its score (ingest/pins): delivered again, or a trigger firing again, it is the same
//     event; changed by the customer, it is a new answer, whose id ends in its time.
//
// Ticket group → team (mapped by CXLINK_SOURCE_TEAMS, else "zendesk:<group id>"),
// assignee → agent, via.channel → channel, ticket type → category (or, when
// CXLINK_ZENDESK_CATEGORY_TAG_PREFIX is set, the first tag with that prefix, stripped).
//
// Every request must carry X-Zendesk-Webhook-Signature, the base64 HMAC-SHA256 of
// X-Zendesk-Webhook-Signature-Timestamp followed by the body under the webhook's signing
// secret, and a timestamp no older than CXLINK_ZENDESK_MAX_SIGNATURE_AGE.
package zendesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/event"
)

// Name of the source.
const Name = "zendesk"

// Headers of Zendesk's webhook signature.
const (
	SignatureHeader = "X-Zendesk-Webhook-Signature"
	TimestampHeader = "X-Zendesk-Webhook-Signature-Timestamp"
)

// Config of the Zendesk source.
type Config struct {
	// SigningSecret of the webhook (Zendesk Admin Center: Webhooks → the webhook →
	// Signing secret); empty disables the source.
	SigningSecret adapters.Secret `env:"CXLINK_ZENDESK_SIGNING_SECRET"`
	// MaxSignatureAge refuses a signature timestamp older (or further ahead) than this:
	// a captured request cannot be replayed later. 0 turns the check off.
	MaxSignatureAge time.Duration `env:"CXLINK_ZENDESK_MAX_SIGNATURE_AGE"`
	// CategoryTagPrefix, when set, takes the category from the first ticket tag with
	// this prefix (e.g. "cat_" and the tag "cat_billing" give "billing").
	CategoryTagPrefix string `env:"CXLINK_ZENDESK_CATEGORY_TAG_PREFIX"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config { return Config{MaxSignatureAge: 15 * time.Minute} }

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	if c.MaxSignatureAge < 0 {
		return fmt.Errorf("CXLINK_ZENDESK_MAX_SIGNATURE_AGE: %s is negative", c.MaxSignatureAge)
	}
	return nil
}

// Adapter is the Zendesk source.
type Adapter struct {
	cfg   Config
	teams adapters.Teams
}

// New returns the adapter of cfg, whose SigningSecret must be set.
func New(cfg Config, teams adapters.Teams) *Adapter { return &Adapter{cfg: cfg, teams: teams} }

// Name implements adapters.Adapter.
func (a *Adapter) Name() string { return Name }

// Verify implements adapters.Adapter.
func (a *Adapter) Verify(h http.Header, body []byte, now time.Time) error {
	sig, ts := h.Get(SignatureHeader), h.Get(TimestampHeader)
	if sig == "" || ts == "" {
		return adapters.Unauthorized("missing " + SignatureHeader + " or " + TimestampHeader)
	}
	if !adapters.EqualBase64(sig, adapters.HMACSHA256(a.cfg.SigningSecret, []byte(ts), body)) {
		return adapters.Unauthorized(SignatureHeader + " does not match the body and timestamp")
	}
	if a.cfg.MaxSignatureAge > 0 {
		t, err := parseSignatureTime(ts)
		if err != nil {
			return adapters.Unauthorized(TimestampHeader + " " + err.Error())
		}
		if d := now.Sub(t); d > a.cfg.MaxSignatureAge || d < -a.cfg.MaxSignatureAge {
			return adapters.Unauthorized(fmt.Sprintf("%s %s is more than %s from now: a replayed request?", TimestampHeader, ts, a.cfg.MaxSignatureAge))
		}
	}
	return nil
}

// parseSignatureTime reads the signature timestamp, which Zendesk sends as RFC 3339
// ("2024-04-17T17:18:10Z"); Unix seconds are accepted too.
func parseSignatureTime(ts string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, ts); err == nil {
		return t, nil
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, errors.New("is not an RFC 3339 timestamp")
}

// Map implements adapters.Adapter.
func (a *Adapter) Map(body []byte, _ time.Time) ([]adapters.Item, error) {
	var probe struct {
		Type    *string           `json:"type"`
		Rating  json.RawMessage   `json:"satisfaction_rating"`
		Ratings []json.RawMessage `json:"satisfaction_ratings"`
		Score   *string           `json:"score"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %v", err)
	}
	switch {
	case probe.Type != nil:
		return []adapters.Item{a.mapEvent(body)}, nil
	case len(probe.Rating) > 0 && !bytes.Equal(probe.Rating, []byte("null")):
		return []adapters.Item{a.mapRating(probe.Rating)}, nil
	case probe.Ratings != nil:
		items := make([]adapters.Item, 0, len(probe.Ratings))
		for _, raw := range probe.Ratings {
			items = append(items, a.mapRating(raw))
		}
		return items, nil
	case probe.Score != nil:
		return []adapters.Item{a.mapRating(body)}, nil
	}
	return nil, errors.New(`not a Zendesk payload: expected a ticket event ("type": "zen:event-type:…") or a satisfaction rating ("satisfaction_rating", "satisfaction_ratings", or a rating object with "score")`)
}

// webhookEvent is the envelope of Zendesk's event-subscribed webhooks.
type webhookEvent struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Time   string          `json:"time"`
	Detail ticket          `json:"detail"`
	Event  json.RawMessage `json:"event"`
}

type ticket struct {
	ID         adapters.Number `json:"id"`
	AssigneeID adapters.Number `json:"assignee_id"`
	GroupID    adapters.Number `json:"group_id"`
	Status     string          `json:"status"`
	Type       *string         `json:"type"`
	Tags       []string        `json:"tags"`
	Via        struct {
		Channel string `json:"channel"`
	} `json:"via"`
	CreatedAt string `json:"created_at"`
}

const (
	eventPrefix   = "zen:event-type:"
	ticketCreated = eventPrefix + "ticket.created"
	statusChanged = eventPrefix + "ticket.status_changed"
)

func (a *Adapter) mapEvent(body []byte) adapters.Item {
	var e webhookEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return adapters.Reject(adapters.KindTicket, "", "(event)", "not a Zendesk event: "+err.Error())
	}
	ref := "event " + e.ID
	var status event.TicketStatus
	switch e.Type {
	case ticketCreated:
		status = event.TicketCreated
	case statusChanged:
		var change struct{ Current, Previous string }
		if err := json.Unmarshal(e.Event, &change); err != nil {
			return adapters.Reject(adapters.KindTicket, ref, "event", "must be an object with current and previous status: "+err.Error())
		}
		status = ticketStatus(change.Previous, change.Current)
		if status == "" {
			return adapters.Ignore(adapters.KindTicket, adapters.ReasonStatus,
				fmt.Sprintf("status %s → %s", strings.ToLower(change.Previous), strings.ToLower(change.Current)))
		}
	default:
		kind := adapters.KindOther
		if strings.HasPrefix(e.Type, eventPrefix+"ticket.") {
			kind = adapters.KindTicket
		}
		return adapters.Ignore(kind, adapters.ReasonEventType, e.Type)
	}
	if e.ID == "" {
		return adapters.Reject(adapters.KindTicket, ref, "id", "is required: the event id makes redeliveries duplicates")
	}
	if e.Detail.ID == "" {
		return adapters.Reject(adapters.KindTicket, ref, "detail.id", "is required (the ticket id)")
	}
	at, err := adapters.ParseTime(e.Time)
	if err != nil {
		return adapters.Reject(adapters.KindTicket, ref, "time", err.Error())
	}
	d := e.Detail
	return adapters.Item{Kind: adapters.KindTicket, Ref: ref, Event: &event.Event{
		ID:         adapters.ID(Name, "event", e.ID),
		Type:       event.TypeTicket,
		OccurredAt: at,
		Source:     Name,
		TicketID:   adapters.Ref(Name, d.ID.String()),
		Status:     status,
		Channel:    adapters.Label(d.Via.Channel),
		Category:   a.category(d),
		Team:       a.teams.Team(Name, d.GroupID.String()),
		AgentID:    adapters.Ref(Name, d.AssigneeID.String()),
	}}
}

// solvedStatuses are Zendesk's statuses of a solved ticket; a ticket is closed some days
// after it was solved.
var solvedStatuses = map[string]bool{"solved": true, "closed": true}

// ticketStatus maps a status change onto a contract status, or "" when it is none.
func ticketStatus(previous, current string) event.TicketStatus {
	prev, cur := strings.ToLower(previous), strings.ToLower(current)
	switch {
	case solvedStatuses[cur] && !solvedStatuses[prev]:
		return event.TicketSolved
	case solvedStatuses[prev] && !solvedStatuses[cur] && cur != "deleted":
		return event.TicketReopened
	}
	return ""
}

func (a *Adapter) category(t ticket) string {
	if p := a.cfg.CategoryTagPrefix; p != "" {
		for _, tag := range t.Tags {
			if rest, ok := strings.CutPrefix(tag, p); ok && rest != "" {
				return adapters.Label(rest)
			}
		}
	}
	if t.Type != nil {
		return adapters.Label(*t.Type)
	}
	return ""
}

// rating is a satisfaction rating as the Satisfaction Ratings API represents it.
type rating struct {
	ID          adapters.Number `json:"id"`
	Score       string          `json:"score"`
	TicketID    adapters.Number `json:"ticket_id"`
	AssigneeID  adapters.Number `json:"assignee_id"`
	GroupID     adapters.Number `json:"group_id"`
	RequesterID adapters.Number `json:"requester_id"`
	Comment     string          `json:"comment"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
}

func (a *Adapter) mapRating(raw json.RawMessage) adapters.Item {
	var r rating
	if err := json.Unmarshal(raw, &r); err != nil {
		return adapters.Reject(adapters.KindRating, "", "satisfaction_rating", "not a satisfaction rating: "+err.Error())
	}
	ref := "rating " + r.ID.String()
	var score float64
	switch strings.ToLower(r.Score) {
	case "good":
		score = 1
	case "bad":
		score = 0
	case "offered", "unoffered":
		it := adapters.Ignore(adapters.KindRating, adapters.ReasonNotRated, "score "+r.Score)
		it.Ref = ref
		return it
	default:
		return adapters.Reject(adapters.KindRating, ref, "score", fmt.Sprintf("%q is not good, bad, offered or unoffered", r.Score))
	}
	// A rating rendered by a trigger has no rating id: a ticket has one rating, so the
	// ticket identifies it (send ratings through one path, trigger or API, not both).
	id := adapters.ID(Name, "rating", r.ID.String())
	switch {
	case r.ID != "":
	case r.TicketID != "":
		id, ref = adapters.ID(Name, "rating", "ticket", r.TicketID.String()), "rating of ticket "+r.TicketID.String()
	default:
		return adapters.Reject(adapters.KindRating, ref, "id", "is required (or ticket_id)")
	}
	// A rating is created when the survey is offered and updated when it is answered,
	// and again when the customer changes it; a trigger's body carries the ticket's
	// update time, which changes with every update of the ticket. The rating's pinned
	// score gives the id and time (ingest/pins): the same score delivered again is the
	// same event, a changed score a new one.
	pin := &adapters.Pin{Key: "zendesk " + id, State: strings.ToLower(r.Score)}
	when := r.UpdatedAt
	field := "updated_at"
	if when == "" {
		when, field = r.CreatedAt, "created_at"
	}
	at, err := adapters.ParseTime(when)
	if err != nil {
		return adapters.Reject(adapters.KindRating, ref, field, err.Error())
	}
	return adapters.Item{Kind: adapters.KindRating, Ref: ref, Pin: pin, Event: &event.Event{
		ID:         id,
		Type:       event.TypeSurveyResponse,
		OccurredAt: at,
		Source:     Name,
		Survey:     event.SurveyCSAT,
		Score:      adapters.Float(score),
		ScaleMin:   adapters.Float(0),
		ScaleMax:   adapters.Float(1),
		TicketID:   adapters.Ref(Name, r.TicketID.String()),
		CustomerID: adapters.Ref(Name, r.RequesterID.String()),
		Team:       a.teams.Team(Name, r.GroupID.String()),
		AgentID:    adapters.Ref(Name, r.AssigneeID.String()),
		Comment:    adapters.Comment(r.Comment),
	}}
}
