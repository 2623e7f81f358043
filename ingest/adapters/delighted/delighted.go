// Package delighted maps Delighted survey responses onto cxlink events.
//
// Delighted posts {"event_type", "event_id", "event_data"} and signs every request with
// X-Delighted-Webhook-Signature: "sha256=" followed by the hex HMAC-SHA256 of the body
// under the account's private API key. survey_response.created and .updated carry a
// survey response; unsubscribe.created and any other event type are acknowledged and
// ignored.
//
// Surveys: nps (0–10) and csat (1–5) are taken on their standard scales. ces is taken on
// CXLINK_DELIGHTED_CES_SCALE: 7 (default) is Delighted's CES 2.0, "… made it easy to
// handle my issue", 1 = strongly disagree … 7 = strongly agree, which is cxlink's
// standard CES scale as it is; 5 is the older five-point question (1 = very difficult …
// 5 = very easy), sent with scale 1–5 and mapped linearly onto 1–7 (1 → 1, 3 → 4,
// 5 → 7). A CES score outside the configured scale is rejected, naming the score. Other
// survey types (enps, smileys, thumbs, 5star, pmf…) are ignored: employee surveys come in
// as employee_pulse events with their team, through the API or `cxlink import`.
//
// The response is identified by its id ("delighted:response:<id>"): .created and every
// .updated share it, so the first delivery is the one stored (a score changed later is a
// duplicate, as for any event whose id is resent). It occurred at the response's
// created_at, the moment the person gave the score.
//
// Ticket, team, agent, channel and category come from person properties, named by
// CXLINK_DELIGHTED_PROPERTIES (the properties you send with each survey request, e.g.
// "Ticket ID"). The ticket id is prefixed with CXLINK_DELIGHTED_TICKET_PREFIX, e.g.
// "zendesk:", so that a response meets the ticket that the helpdesk's webhook sent.
package delighted

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/event"
)

// Name of the source.
const Name = "delighted"

// SignatureHeader carries Delighted's signature.
const SignatureHeader = "X-Delighted-Webhook-Signature"

// Config of the Delighted source.
type Config struct {
	// APIKey is the Delighted private API key, which Delighted signs webhooks with;
	// empty disables the source.
	APIKey adapters.Secret `env:"CXLINK_DELIGHTED_API_KEY"`
	// CESScale is the top of the scale CES questions are asked on: 7 or 5.
	CESScale int `env:"CXLINK_DELIGHTED_CES_SCALE"`
	// Properties name the person properties that carry contract fields.
	Properties map[string]string `env:"CXLINK_DELIGHTED_PROPERTIES" envKeyValSeparator:"="`
	// TicketPrefix is put before the ticket property's value (unless it is there).
	TicketPrefix string `env:"CXLINK_DELIGHTED_TICKET_PREFIX"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		CESScale: 7,
		Properties: map[string]string{"ticket_id": "Ticket ID", "team": "Team", "agent_id": "Agent",
			"channel": "Channel", "category": "Category"},
	}
}

// propertyFields are the contract fields that properties may fill.
var propertyFields = []string{"ticket_id", "team", "agent_id", "channel", "category", "customer_id"}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.CESScale != 5 && c.CESScale != 7 {
		errs = append(errs, fmt.Errorf("CXLINK_DELIGHTED_CES_SCALE: %d is not 5 or 7", c.CESScale))
	}
	for field := range c.Properties {
		if !slices.Contains(propertyFields, field) {
			errs = append(errs, fmt.Errorf("CXLINK_DELIGHTED_PROPERTIES: %q is not one of %s", field, strings.Join(propertyFields, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Adapter is the Delighted source.
type Adapter struct {
	cfg   Config
	teams adapters.Teams
}

// New returns the adapter of cfg, whose APIKey must be set.
func New(cfg Config, teams adapters.Teams) *Adapter { return &Adapter{cfg: cfg, teams: teams} }

// Name implements adapters.Adapter.
func (a *Adapter) Name() string { return Name }

// Verify implements adapters.Adapter.
func (a *Adapter) Verify(h http.Header, body []byte, _ time.Time) error {
	return adapters.VerifyHexSignature(h, SignatureHeader, "sha256=", adapters.HMACSHA256(a.cfg.APIKey, body))
}

type webhook struct {
	EventType string          `json:"event_type"`
	EventID   string          `json:"event_id"`
	Data      json.RawMessage `json:"event_data"`
}

type response struct {
	ID     adapters.Number `json:"id"`
	Person struct {
		ID adapters.Number `json:"id"`
	} `json:"person"`
	SurveyType string                     `json:"survey_type"`
	Score      *float64                   `json:"score"`
	Comment    *string                    `json:"comment"`
	CreatedAt  int64                      `json:"created_at"`
	Properties map[string]json.RawMessage `json:"person_properties"`
}

// Map implements adapters.Adapter.
func (a *Adapter) Map(body []byte, _ time.Time) ([]adapters.Item, error) {
	var w webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("the body is not a Delighted webhook: %v", err)
	}
	if w.EventType == "" {
		return nil, errors.New(`not a Delighted webhook: expected "event_type" and "event_data"`)
	}
	if w.EventType != "survey_response.created" && w.EventType != "survey_response.updated" {
		return []adapters.Item{adapters.Ignore(adapters.KindOther, adapters.ReasonEventType, w.EventType)}, nil
	}
	var r response
	if err := json.Unmarshal(w.Data, &r); err != nil {
		return []adapters.Item{adapters.Reject(adapters.KindResponse, "event "+w.EventID, "event_data", "is not a survey response: "+err.Error())}, nil
	}
	return []adapters.Item{a.mapResponse(r)}, nil
}

func (a *Adapter) mapResponse(r response) adapters.Item {
	ref := "response " + r.ID.String()
	e := &event.Event{
		ID:         adapters.ID(Name, "response", r.ID.String()),
		Type:       event.TypeSurveyResponse,
		OccurredAt: adapters.Unix(r.CreatedAt),
		Source:     Name,
		Score:      r.Score,
		CustomerID: adapters.Ref(Name, r.Person.ID.String()),
	}
	switch r.SurveyType {
	case "nps":
		e.Survey = event.SurveyNPS
	case "csat":
		e.Survey = event.SurveyCSAT
	case "ces":
		e.Survey = event.SurveyCES
		if a.cfg.CESScale == 5 {
			e.ScaleMin, e.ScaleMax = adapters.Float(1), adapters.Float(5)
		}
	default:
		it := adapters.Ignore(adapters.KindResponse, adapters.ReasonSurveyType, "survey_type "+r.SurveyType)
		it.Ref = ref
		return it
	}
	if r.ID == "" {
		return adapters.Reject(adapters.KindResponse, ref, "event_data.id", "is required")
	}
	if r.CreatedAt == 0 {
		return adapters.Reject(adapters.KindResponse, ref, "event_data.created_at", "is required (Unix seconds)")
	}
	if r.Comment != nil {
		e.Comment = adapters.Comment(*r.Comment)
	}
	for field, prop := range a.cfg.Properties {
		v := a.property(r.Properties, prop)
		switch field {
		case "ticket_id":
			if v != "" && a.cfg.TicketPrefix != "" && !strings.HasPrefix(v, a.cfg.TicketPrefix) {
				v = a.cfg.TicketPrefix + v
			}
			e.TicketID = v
		case "team":
			e.Team = v
		case "agent_id":
			e.AgentID = v
		case "channel":
			e.Channel = adapters.Label(v)
		case "category":
			e.Category = adapters.Label(v)
		case "customer_id":
			if v != "" {
				e.CustomerID = v
			}
		}
	}
	return adapters.Item{Kind: adapters.KindResponse, Ref: ref, Event: e}
}

// property returns a person property as text: strings as they are, numbers as written.
func (a *Adapter) property(props map[string]json.RawMessage, name string) string {
	raw, ok := props[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return ""
}
