// Package freshdesk maps Freshdesk webhooks and satisfaction ratings onto cxlink events.
//
// Freshdesk signs nothing: its automation webhooks can only send credentials. Requests to
// POST /v1/sources/freshdesk must therefore carry HTTP Basic authentication whose
// password is CXLINK_FRESHDESK_SECRET (the user name is not checked): in the rule's
// "Trigger webhook" action, tick "Requires authentication" and enter it. Use HTTPS: the
// secret travels with every request.
//
// Two payloads are accepted, told apart by their shape:
//
//   - A ticket webhook whose content is {"freshdesk_webhook": {...}}, the JSON that
//     Freshdesk's "Simple" encoding produces and the README's "Advanced" template
//     reproduces: ticket_id, triggered_event, ticket_status, and optionally ticket_type
//     (→ category), ticket_source (→ channel) and ticket_group_name (→ team).
//     triggered_event "{ticket_action:created}" is a created ticket; a status change to
//     Resolved or Closed is solved, and one from Resolved or Closed to any other status is
//     reopened; everything else is acknowledged and ignored. The payload has no time or
//     id of its own, and a second solve looks exactly like a retry of the first, so the
//     ticket's state is pinned (ingest/pins): a delivery reporting the state the ticket
//     is pinned in (a retry, or the rule firing again) is the same event as the first,
//     with its id and time; a delivery reporting another state is a new event, which
//     occurred when it was received and whose id ends in that time. The first state seen
//     of a ticket has the id "freshdesk:ticket:<id>:<status>", later ones
//     "freshdesk:ticket:<id>:<status>:<Unix seconds>": resolved → reopened → resolved
//     within a minute are three events.
//   - Satisfaction ratings as the API returns them (GET /api/v2/surveys/
//     satisfaction_ratings: an array, or one object): ratings.default_question is on
//     Freshdesk's scale 103 (extremely happy), 102, 101, 100 (neutral), -101, -102, -103
//     (extremely unhappy). It becomes CSAT on the 7-point scale 1–7 by rank (-103 → 1 …
//     103 → 7), which the contract maps linearly onto the standard 1–5; the three-point
//     classic survey (103, 100, -103) lands on 5, 3 and 1.
//
// Group ids of ratings are mapped to teams by CXLINK_SOURCE_TEAMS ("freshdesk:<group
// id>=<team>"); map them to the group names the ticket webhook sends, so that both agree.
package freshdesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/event"
)

// Name of the source.
const Name = "freshdesk"

// Config of the Freshdesk source.
type Config struct {
	// Secret is the Basic-authentication password Freshdesk sends; empty disables the
	// source.
	Secret adapters.Secret `env:"CXLINK_FRESHDESK_SECRET"`
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	if c.Secret.Set() && len(c.Secret) < 16 {
		return errors.New("CXLINK_FRESHDESK_SECRET: use at least 16 characters (e.g. `openssl rand -hex 24`)")
	}
	return nil
}

// Adapter is the Freshdesk source.
type Adapter struct {
	cfg   Config
	teams adapters.Teams
}

// New returns the adapter of cfg, whose Secret must be set.
func New(cfg Config, teams adapters.Teams) *Adapter { return &Adapter{cfg: cfg, teams: teams} }

// Name implements adapters.Adapter.
func (a *Adapter) Name() string { return Name }

// Verify implements adapters.Adapter; the body plays no part (VerifyHeader).
func (a *Adapter) Verify(h http.Header, _ []byte, now time.Time) error { return a.VerifyHeader(h, now) }

// VerifyHeader implements adapters.HeaderVerifier: the shared secret is checked before
// any of the body is read.
func (a *Adapter) VerifyHeader(h http.Header, _ time.Time) error {
	r := http.Request{Header: h}
	_, password, ok := r.BasicAuth()
	if !ok {
		return adapters.Unauthorized("missing Basic authentication (the webhook's \"Requires authentication\" with the cxlink secret as password)")
	}
	if !adapters.EqualSecret(password, a.cfg.Secret) {
		return adapters.Unauthorized("wrong Basic-authentication password")
	}
	return nil
}

// Map implements adapters.Adapter.
func (a *Adapter) Map(body []byte, now time.Time) ([]adapters.Item, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("the body is not a JSON array of satisfaction ratings: %v", err)
		}
		items := make([]adapters.Item, 0, len(list))
		for _, raw := range list {
			items = append(items, a.mapRating(raw))
		}
		return items, nil
	}
	var probe struct {
		Webhook json.RawMessage `json:"freshdesk_webhook"`
		Ratings json.RawMessage `json:"ratings"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object or array: %v", err)
	}
	switch {
	case len(probe.Webhook) > 0:
		return []adapters.Item{a.mapTicket(probe.Webhook, now)}, nil
	case len(probe.Ratings) > 0:
		return []adapters.Item{a.mapRating(trimmed)}, nil
	}
	return nil, errors.New(`not a Freshdesk payload: expected {"freshdesk_webhook": {...}} or satisfaction ratings (objects with "ratings")`)
}

type webhook struct {
	TriggeredEvent string          `json:"triggered_event"`
	TicketID       adapters.Number `json:"ticket_id"`
	Status         string          `json:"ticket_status"`
	Type           string          `json:"ticket_type"`
	Source         string          `json:"ticket_source"`
	GroupName      string          `json:"ticket_group_name"`
}

// statusNames are Freshdesk's status codes (Tickets API) by number.
var statusNames = map[string]string{
	"2": "open", "3": "pending", "4": "resolved", "5": "closed",
	"6": "waiting on customer", "7": "waiting on third party",
}

var (
	createdRe = regexp.MustCompile(`^\{\s*ticket_action\s*:\s*created\s*\}$`)
	statusRe  = regexp.MustCompile(`^\{\s*status\s*:\s*\{\s*from\s*:\s*([^,}]*),\s*to\s*:\s*([^}]*)\}\s*\}$`)
)

func statusName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, ok := statusNames[s]; ok {
		return n
	}
	return s
}

func solved(status string) bool { return status == "resolved" || status == "closed" }

func (a *Adapter) mapTicket(raw json.RawMessage, now time.Time) adapters.Item {
	var w webhook
	if err := json.Unmarshal(raw, &w); err != nil {
		return adapters.Reject(adapters.KindTicket, "", "freshdesk_webhook", "must be an object of ticket fields: "+err.Error())
	}
	ref := "ticket " + w.TicketID.String()
	if w.TicketID == "" {
		return adapters.Reject(adapters.KindTicket, ref, "freshdesk_webhook.ticket_id", "is required ({{ticket.id}})")
	}
	var status event.TicketStatus
	te := strings.TrimSpace(w.TriggeredEvent)
	switch m := statusRe.FindStringSubmatch(te); {
	case createdRe.MatchString(te):
		status = event.TicketCreated
	case m != nil:
		from, to := statusName(m[1]), statusName(m[2])
		switch {
		case solved(to) && !solved(from):
			status = event.TicketSolved
		case solved(from) && !solved(to):
			status = event.TicketReopened
		default:
			return ignored(ref, fmt.Sprintf("status %s → %s", from, to))
		}
	case te == "" && solved(statusName(w.Status)):
		status = event.TicketSolved
	case te == "":
		return ignored(ref, "status "+statusName(w.Status)+" without triggered_event")
	default:
		it := adapters.Ignore(adapters.KindTicket, adapters.ReasonEventType, te)
		it.Ref = ref
		return it
	}
	// The payload has neither an event id nor a time: the ticket's pinned state gives
	// both (a redelivery, or the rule firing again, keeps the first delivery's; a real
	// change gets the time it was first received).
	return adapters.Item{Kind: adapters.KindTicket, Ref: ref, Pin: &adapters.Pin{Key: "freshdesk ticket " + w.TicketID.String(), State: string(status)}, Event: &event.Event{
		ID:         adapters.ID(Name, "ticket", w.TicketID.String(), string(status)),
		Type:       event.TypeTicket,
		OccurredAt: now.UTC().Truncate(time.Second),
		Source:     Name,
		TicketID:   adapters.Ref(Name, w.TicketID.String()),
		Status:     status,
		Channel:    adapters.Label(w.Source),
		Category:   adapters.Label(w.Type),
		Team:       strings.TrimSpace(w.GroupName),
	}}
}

func ignored(ref, detail string) adapters.Item {
	it := adapters.Ignore(adapters.KindTicket, adapters.ReasonStatus, detail)
	it.Ref = ref
	return it
}

type rating struct {
	ID        adapters.Number            `json:"id"`
	UserID    adapters.Number            `json:"user_id"`
	AgentID   adapters.Number            `json:"agent_id"`
	GroupID   adapters.Number            `json:"group_id"`
	TicketID  adapters.Number            `json:"ticket_id"`
	Feedback  string                     `json:"feedback"`
	Ratings   map[string]json.RawMessage `json:"ratings"`
	CreatedAt string                     `json:"created_at"`
}

// ranks turns Freshdesk's rating values into ranks on 1–7.
var ranks = map[int]float64{-103: 1, -102: 2, -101: 3, 100: 4, 101: 5, 102: 6, 103: 7}

func (a *Adapter) mapRating(raw json.RawMessage) adapters.Item {
	var r rating
	if err := json.Unmarshal(raw, &r); err != nil {
		return adapters.Reject(adapters.KindRating, "", "(rating)", "not a satisfaction rating: "+err.Error())
	}
	ref := "rating " + r.ID.String()
	if r.ID == "" {
		return adapters.Reject(adapters.KindRating, ref, "id", "is required")
	}
	v, ok := r.Ratings["default_question"]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		it := adapters.Ignore(adapters.KindRating, adapters.ReasonNotRated, "no ratings.default_question")
		it.Ref = ref
		return it
	}
	var value int
	rank, known := 0.0, false
	if json.Unmarshal(v, &value) == nil {
		rank, known = ranks[value]
	}
	if !known {
		return adapters.Reject(adapters.KindRating, ref, "ratings.default_question",
			fmt.Sprintf("%s is not a Freshdesk rating (103, 102, 101, 100, -101, -102, -103)", bytes.TrimSpace(v)))
	}
	at, err := adapters.ParseTime(r.CreatedAt)
	if err != nil {
		return adapters.Reject(adapters.KindRating, ref, "created_at", fmt.Sprintf("%q %s", r.CreatedAt, err))
	}
	return adapters.Item{Kind: adapters.KindRating, Ref: ref, Event: &event.Event{
		ID:         adapters.ID(Name, "rating", r.ID.String()),
		Type:       event.TypeSurveyResponse,
		OccurredAt: at,
		Source:     Name,
		Survey:     event.SurveyCSAT,
		Score:      adapters.Float(rank),
		ScaleMin:   adapters.Float(1),
		ScaleMax:   adapters.Float(7),
		TicketID:   adapters.Ref(Name, r.TicketID.String()),
		CustomerID: adapters.Ref(Name, r.UserID.String()),
		Team:       a.teams.Team(Name, r.GroupID.String()),
		AgentID:    adapters.Ref(Name, r.AgentID.String()),
		Comment:    adapters.Comment(r.Feedback),
	}}
}
