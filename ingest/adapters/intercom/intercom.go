// Package intercom maps Intercom conversation ratings onto cxlink events.
//
// Intercom sends webhook notifications ({"type": "notification_event", "topic", "data":
// {"item": ...}, "created_at", ...}) signed with X-Hub-Signature: "sha1=" followed by the
// hex HMAC-SHA1 of the body under the app's client secret (Developer Hub → the app →
// Basic information → Client secret). Topic conversation.rating.added carries the
// conversation with its conversation_rating (1–5), which becomes a CSAT response on its
// standard scale 1–5. Every other topic (including "ping") is acknowledged and ignored.
//
// The conversation is the ticket ("intercom:<conversation id>"); the rated teammate is the
// agent (else the admin assignee), the team assignee is the team (mapped by
// CXLINK_SOURCE_TEAMS, else "intercom:<team id>"), source.type is the channel. The
// response occurred when the notification was created (the rating's own created_at is
// when the rating was requested). A conversation's rating is pinned to its value
// (ingest/pins): a redelivered notification is the same event, with the first one's
// id and time; a re-rating to another value is a new answer, whose id ends in its time.
package intercom

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/event"
)

// Name of the source.
const Name = "intercom"

// SignatureHeader carries Intercom's signature.
const SignatureHeader = "X-Hub-Signature"

// Config of the Intercom source.
type Config struct {
	// ClientSecret of the Intercom app that owns the webhook; empty disables the source.
	ClientSecret adapters.Secret `env:"CXLINK_INTERCOM_CLIENT_SECRET"`
}

// Validate reports every problem of the configuration.
func (Config) Validate() error { return nil }

// Adapter is the Intercom source.
type Adapter struct {
	cfg   Config
	teams adapters.Teams
}

// New returns the adapter of cfg, whose ClientSecret must be set.
func New(cfg Config, teams adapters.Teams) *Adapter { return &Adapter{cfg: cfg, teams: teams} }

// Name implements adapters.Adapter.
func (a *Adapter) Name() string { return Name }

// Verify implements adapters.Adapter.
func (a *Adapter) Verify(h http.Header, body []byte, _ time.Time) error {
	return adapters.VerifyHexSignature(h, SignatureHeader, "sha1=", adapters.HMACSHA1(a.cfg.ClientSecret, body))
}

type notification struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	CreatedAt int64  `json:"created_at"`
	Data      struct {
		Item json.RawMessage `json:"item"`
	} `json:"data"`
}

type conversation struct {
	ID              adapters.Number `json:"id"`
	AdminAssigneeID adapters.Number `json:"admin_assignee_id"`
	TeamAssigneeID  adapters.Number `json:"team_assignee_id"`
	Source          struct {
		Type string `json:"type"`
	} `json:"source"`
	Rating *struct {
		Rating    *float64 `json:"rating"`
		Remark    string   `json:"remark"`
		CreatedAt int64    `json:"created_at"`
		Contact   struct {
			ID adapters.Number `json:"id"`
		} `json:"contact"`
		Teammate struct {
			ID adapters.Number `json:"id"`
		} `json:"teammate"`
	} `json:"conversation_rating"`
}

const ratingAdded = "conversation.rating.added"

// Map implements adapters.Adapter.
func (a *Adapter) Map(body []byte, _ time.Time) ([]adapters.Item, error) {
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("the body is not an Intercom notification: %v", err)
	}
	if n.Type != "notification_event" || n.Topic == "" {
		return nil, errors.New(`not an Intercom notification: expected "type": "notification_event" and a "topic"`)
	}
	if n.Topic != ratingAdded {
		return []adapters.Item{adapters.Ignore(adapters.KindOther, adapters.ReasonEventType, n.Topic)}, nil
	}
	var c conversation
	if err := json.Unmarshal(n.Data.Item, &c); err != nil {
		return []adapters.Item{adapters.Reject(adapters.KindRating, "notification "+n.ID, "data.item", "is not a conversation: "+err.Error())}, nil
	}
	ref := "conversation " + c.ID.String()
	if c.Rating == nil || c.Rating.Rating == nil {
		it := adapters.Ignore(adapters.KindRating, adapters.ReasonNotRated, "conversation without conversation_rating.rating")
		it.Ref = ref
		return []adapters.Item{it}, nil
	}
	if c.ID == "" {
		return []adapters.Item{adapters.Reject(adapters.KindRating, ref, "data.item.id", "is required")}, nil
	}
	at := adapters.Unix(n.CreatedAt)
	if at.IsZero() {
		at = adapters.Unix(c.Rating.CreatedAt)
	}
	agent := c.Rating.Teammate.ID.String()
	if agent == "" {
		agent = c.AdminAssigneeID.String()
	}
	pin := &adapters.Pin{Key: "intercom rating of conversation " + c.ID.String(), State: strconv.FormatFloat(*c.Rating.Rating, 'g', -1, 64)}
	return []adapters.Item{{Kind: adapters.KindRating, Ref: ref, Pin: pin, Event: &event.Event{
		ID:         adapters.ID(Name, "rating", c.ID.String()),
		Type:       event.TypeSurveyResponse,
		OccurredAt: at,
		Source:     Name,
		Survey:     event.SurveyCSAT,
		Score:      adapters.Float(*c.Rating.Rating),
		TicketID:   adapters.Ref(Name, c.ID.String()),
		CustomerID: adapters.Ref(Name, c.Rating.Contact.ID.String()),
		Channel:    adapters.Label(c.Source.Type),
		Team:       a.teams.Team(Name, c.TeamAssigneeID.String()),
		AgentID:    adapters.Ref(Name, agent),
		Comment:    adapters.Comment(c.Rating.Remark),
	}}}, nil
}
