// Package adapters turns the webhooks of contact-centre tools into events of contract v1
// (ingest/event) and publishes them through the same path as POST /v1/events.
//
// Each vendor has a package of its own (zendesk, freshdesk, intercom, delighted) with an
// Adapter: it checks the vendor's signature or shared secret and maps the vendor's payload
// onto events. Handler serves them all as POST /v1/sources/{name}:
//
//	401  the signature or secret is missing or wrong; nothing is read further
//	400  the body is not a payload of that vendor, or every item in it was invalid
//	503  JetStream did not store some event (Retry-After): the vendor's retry is safe
//	202  at least one event was stored (or was already stored: duplicate)
//	200  nothing to store: every item was of a kind cxlink does not use (ignored)
//
// Items cxlink does not use (an unknown event type, a status change that is not a
// contract status, a survey offered but not answered) are acknowledged and counted in
// cxlink_source_items_total{outcome="ignored"} and cxlink_source_ignored_total{reason},
// never failed: vendors retry or disable webhooks that fail.
//
// Event ids are namespaced by vendor ("zendesk:rating:35436") and derived only from the
// payload, never from the time of receipt, so a vendor's retry is a duplicate to
// JetStream. Ticket, agent, customer and unmapped team ids are namespaced the same way
// ("zendesk:208"), so that two tools' ticket 208 cannot meet.
package adapters

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cxlink/cxlink/ingest/event"
)

// Adapter is one vendor's webhook. Implementations are safe for concurrent use.
type Adapter interface {
	// Name is the vendor's path segment and metric label, e.g. "zendesk", and the
	// namespace of its events' ids.
	Name() string
	// Verify checks the request's signature against body, the raw bytes received. It
	// returns an *AuthError (or nil). It never logs or returns secrets.
	Verify(h http.Header, body []byte, now time.Time) error
	// Map turns a verified body into items, in payload order. now is the time of receipt,
	// for payloads that carry no time of their own. An error means the body as a whole is
	// not a payload of this vendor (400).
	Map(body []byte, now time.Time) ([]Item, error)
}

// HeaderVerifier is an Adapter whose credentials are in the headers (a shared secret):
// ingest checks them before it reads any of the body, and does not call Verify.
type HeaderVerifier interface {
	VerifyHeader(h http.Header, now time.Time) error
}

// Kind of an item, a bounded metric label.
type Kind string

// Kinds of items.
const (
	KindTicket   Kind = "ticket"
	KindRating   Kind = "rating"
	KindResponse Kind = "survey_response"
	KindOther    Kind = "other"
)

// Kinds lists every Kind, for metrics.
var Kinds = []Kind{KindTicket, KindRating, KindResponse, KindOther}

// Reason an item is ignored, a bounded metric label.
type Reason string

// Reasons for ignoring an item.
const (
	// ReasonEventType: an event type or topic cxlink does not use.
	ReasonEventType Reason = "event_type"
	// ReasonStatus: a ticket status change that is not created, solved or reopened.
	ReasonStatus Reason = "status"
	// ReasonNotRated: a survey offered, or a conversation, without an answer yet.
	ReasonNotRated Reason = "not_rated"
	// ReasonSurveyType: a survey kind cxlink does not aggregate (e.g. eNPS from a
	// customer-survey tool: employee data comes in as employee_pulse events).
	ReasonSurveyType Reason = "survey_type"
)

// Reasons lists every Reason, for metrics.
var Reasons = []Reason{ReasonEventType, ReasonStatus, ReasonNotRated, ReasonSurveyType}

// Item is one thing a payload carried: an event to validate and publish, or something
// ignored, or something broken.
type Item struct {
	Kind Kind
	// Event is set when the item maps onto an event; the handler validates it.
	Event *event.Event
	// Ignored is set when the item is of no use to cxlink; Detail says what it was.
	Ignored Reason
	Detail  string
	// Errors are problems found while mapping (e.g. a vendor timestamp that does not
	// parse), each naming the vendor's field. The item is rejected.
	Errors event.Errors
	// Ref identifies the item in the vendor's terms for the response, e.g. "rating 35436".
	Ref string
	// Pin, when set, makes Event's id and time those of its entity's state (ingest/pins):
	// for payloads without an event id or a stable time of their own.
	Pin *Pin
}

// Pin names the entity an item reports on (Key, e.g. "freshdesk ticket 11") and the
// state it reports (e.g. "solved"). A redelivery of a pinned state gets the id and the
// occurred_at of its first delivery; a new state gets its own time (Event.OccurredAt,
// or a second after the previous state's) and an id ending in it. The first state of
// an entity keeps the adapter's id.
type Pin struct{ Key, State string }

// Ignore returns an ignored item.
func Ignore(kind Kind, reason Reason, detail string) Item {
	return Item{Kind: kind, Ignored: reason, Detail: detail}
}

// Reject returns an item rejected while mapping, for the vendor field field.
func Reject(kind Kind, ref, field, message string) Item {
	return Item{Kind: kind, Ref: ref, Errors: event.Errors{{Field: field, Message: message}}}
}

// AuthError is a request that failed the vendor's authentication.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return e.Reason }

// Unauthorized returns an *AuthError.
func Unauthorized(reason string) error { return &AuthError{Reason: reason} }

// IsAuthError reports whether err is an *AuthError.
func IsAuthError(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}

// ID joins a vendor and the parts of an id with ':' ("zendesk", "rating", "35436" →
// "zendesk:rating:35436"). White space, which ids may not contain, becomes '_'.
func ID(vendor string, parts ...string) string {
	var b strings.Builder
	b.WriteString(vendor)
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return '_'
			}
			return r
		}, p))
	}
	return b.String()
}

// Ref namespaces a vendor's identifier of a ticket, agent or customer ("zendesk", 208 →
// "zendesk:208"); an empty or zero identifier stays empty.
func Ref(vendor, id string) string {
	if id == "" || id == "0" || id == "null" {
		return ""
	}
	return vendor + ":" + id
}

// Teams maps vendors' group identifiers to cxlink team names. Keys are "vendor:id"
// (e.g. "zendesk:360001234"), values team names as employee pulses use them.
type Teams map[string]string

// Team returns the team of the vendor's group id: its mapped name, else "vendor:id".
func (t Teams) Team(vendor, groupID string) string {
	ref := Ref(vendor, groupID)
	if ref == "" {
		return ""
	}
	if name, ok := t[ref]; ok {
		return name
	}
	return ref
}

// Number is a JSON value that vendors send as a number or as a string of digits
// (Zendesk's event webhooks quote ids, its REST API does not).
type Number string

// UnmarshalJSON accepts a number, a string or null.
func (n *Number) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "null":
		*n = ""
	case strings.HasPrefix(s, `"`):
		u, err := strconv.Unquote(s)
		if err != nil {
			return err
		}
		*n = Number(u)
	default:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return errors.New("not a number or string")
		}
		*n = Number(s)
	}
	return nil
}

// String is the value as text.
func (n Number) String() string { return string(n) }

// Label lower-cases a vendor's enumeration value for use as a channel or category
// ("Social media" → "social_media").
func Label(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Join(strings.Fields(s), "_")
}

// ParseTime parses an RFC 3339 timestamp as vendors send them.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, errors.New("is not an RFC 3339 timestamp such as 2024-04-17T17:18:10Z")
	}
	return t.UTC(), nil
}

// Unix converts Unix seconds; zero means absent.
func Unix(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// Float returns a pointer to v, for event scores.
func Float(v float64) *float64 { return &v }

// Comment trims a free-text answer to event.MaxCommentLength bytes, on a character
// boundary: a long comment must not cost the customer's score.
func Comment(s string) string {
	if len(s) <= event.MaxCommentLength {
		return s
	}
	cut := event.MaxCommentLength
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
