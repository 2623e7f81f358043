package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Errors are every problem found in one event.
type Errors []FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (es *Errors) add(field, format string, args ...any) {
	*es = append(*es, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Limits on field lengths, in bytes.
const (
	MaxIDLength      = 128
	MaxLabelLength   = 128
	MaxCommentLength = 4000
)

// Limits on the shape of an event, which is a flat object of at most 16 fields: more
// fields, or values nested deeper, are refused before they are decoded one by one.
const (
	MaxFields = 32
	MaxDepth  = 3
)

// earliest is the earliest occurred_at accepted: older timestamps are mistakes (a zero
// date, seconds read as milliseconds), not history.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Validator decodes and checks events.
type Validator struct {
	// Now is the clock that occurred_at is checked against.
	Now func() time.Time
	// MaxFuture is how far ahead of Now an occurred_at may be (clock skew of the sender).
	MaxFuture time.Duration
}

// Decode parses one JSON object and validates it. On failure the event is the zero value
// and the errors name every field at fault.
func (v Validator) Decode(data []byte) (Event, Errors) {
	// The fast path for a valid event: json.Unmarshal lets unknown keys through, and
	// checkKeys catches them. It costs a fifth less CPU than the strict decoder below
	// (BenchmarkDecode), which only events with a problem go through, for its answers.
	var e Event
	if json.Unmarshal(data, &e) == nil && len(checkKeys(data)) == 0 {
		if errs := v.Validate(&e); len(errs) > 0 {
			return Event{}, errs
		}
		return e, nil
	}
	return v.decodeStrict(data)
}

// decodeStrict decodes an event refusing unknown fields, and names every problem.
func (v Validator) decodeStrict(data []byte) (Event, Errors) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		// The fast path failed: decode field by field to say exactly which, unless the
		// object is far from an event (each of its fields would get an error).
		if fields, depth := shape(data); fields > MaxFields || depth > MaxDepth {
			return Event{}, Errors{{Field: "(event)", Message: fmt.Sprintf(
				"has %d fields nested %d deep; an event is a flat object of at most %d fields", fields, depth, MaxFields)}}
		}
		var errs Errors
		e, errs = decodeFields(data)
		if len(errs) > 0 {
			return Event{}, errs
		}
	} else if errs := checkKeys(data); len(errs) > 0 {
		return Event{}, errs
	}
	if errs := v.Validate(&e); len(errs) > 0 {
		return Event{}, errs
	}
	return e, nil
}

// decodeFields decodes an object one field at a time, so that every type error names
// its field.
func decodeFields(data []byte) (Event, Errors) {
	var e Event
	var errs Errors
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if asTypeError(err, &typeErr) {
			errs.add("(event)", "must be a JSON object, got %s", typeErr.Value)
		} else {
			errs.add("(event)", "invalid JSON: %v", err)
		}
		return e, errs
	}
	for name, raw := range fields {
		target, kind := e.field(name)
		if name == "" {
			errs.add("(event)", "a field has an empty name")
			continue
		}
		if target == nil {
			errs.add(name, "unknown field")
			continue
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		if err := json.Unmarshal(raw, target); err != nil {
			errs.add(name, "must be %s, got %s", kind, describe(raw))
		}
	}
	// Map order is random: sort so that the same event always gets the same answer.
	slices.SortFunc(errs, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return e, errs
}

// checkKeys rejects what encoding/json lets through: a key given twice (the last would
// silently win, and the id is the idempotency key) and a key that matches a field only
// without regard to case. data must be one valid JSON object.
func checkKeys(data []byte) Errors {
	var errs Errors
	var seen [24]string // events have at most 20 fields; more are caught as unknown
	n := 0
	eachKey(data, func(raw []byte) {
		key := string(raw)
		if key == "" {
			errs.add("(event)", "a field has an empty name")
			return
		}
		if target, _ := (&Event{}).field(key); target == nil {
			errs.add(key, "unknown field (field names are lower case)")
			return
		}
		for _, k := range seen[:n] {
			if k == key {
				errs.add(key, "appears more than once")
				return
			}
		}
		if n < len(seen) {
			seen[n] = key
			n++
		}
	})
	return errs
}

// eachKey calls fn with the raw bytes of every key of the top-level object in data,
// which must be valid JSON.
func eachKey(data []byte, fn func(key []byte)) {
	depth, wantKey := 0, false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			depth++
			wantKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			wantKey = depth == 1
		case '"':
			j := i + 1
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					j++
				}
			}
			if wantKey && depth == 1 {
				fn(data[i+1 : min(j, len(data))])
				wantKey = false
			}
			i = j
		}
	}
}

// shape counts the keys of the top-level object in data and measures how deeply its
// values nest (a flat object is 1 deep). data need not be valid JSON.
func shape(data []byte) (fields, depth int) {
	level, wantKey := 0, false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			level++
			depth = max(depth, level)
			wantKey = c == '{' && level == 1
		case '}', ']':
			level--
		case ',':
			wantKey = level == 1
		case '"':
			if wantKey && level == 1 {
				fields++
				wantKey = false
			}
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		}
	}
	return fields, depth
}

func asTypeError(err error, target **json.UnmarshalTypeError) bool {
	te, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*target = te
	}
	return ok
}

// field returns a pointer to the named field and a description of its JSON type.
func (e *Event) field(name string) (any, string) {
	switch name {
	case "id":
		return &e.ID, "a string"
	case "type":
		return &e.Type, "a string"
	case "occurred_at":
		return &e.OccurredAt, "an RFC 3339 timestamp such as \"2026-11-23T10:15:00Z\""
	case "source":
		return &e.Source, "a string"
	case "score":
		return &e.Score, "a number"
	case "scale_min":
		return &e.ScaleMin, "a number"
	case "scale_max":
		return &e.ScaleMax, "a number"
	case "survey":
		return &e.Survey, "a string"
	case "customer_id":
		return &e.CustomerID, "a string"
	case "comment":
		return &e.Comment, "a string"
	case "ticket_id":
		return &e.TicketID, "a string"
	case "channel":
		return &e.Channel, "a string"
	case "category":
		return &e.Category, "a string"
	case "agent_id":
		return &e.AgentID, "a string"
	case "team":
		return &e.Team, "a string"
	case "status":
		return &e.Status, "a string"
	case "handle_seconds":
		return &e.HandleSeconds, "a number"
	case "contacts":
		return &e.Contacts, "a whole number"
	case "employee_id":
		return &e.EmployeeID, "a string"
	case "question":
		return &e.Question, "a string"
	}
	return nil, ""
}

// describe names the JSON type of a raw value, or quotes a short invalid value.
func describe(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		if len(raw) <= 40 {
			return "the string " + string(raw)
		}
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	if len(raw) <= 40 {
		return string(raw)
	}
	return "a number"
}

// fieldsOf lists, per type, the fields an event of that type may carry besides the
// common ones (id, type, occurred_at, source).
var fieldsOf = map[Type]map[string]bool{
	TypeSurveyResponse: set("survey", "score", "scale_min", "scale_max", "ticket_id", "customer_id",
		"channel", "category", "team", "agent_id", "comment"),
	TypeTicket:        set("ticket_id", "status", "channel", "category", "team", "agent_id", "handle_seconds", "contacts"),
	TypeEmployeePulse: set("employee_id", "team", "question", "score", "scale_min", "scale_max"),
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Validate checks a decoded event against contract v1 and fills in default scales.
func (v Validator) Validate(e *Event) Errors {
	var errs Errors
	checkText(&errs, "id", e.ID, MaxIDLength, identifier)
	if e.ID == "" {
		errs.add("id", "is required")
	}
	if e.OccurredAt.IsZero() {
		errs.add("occurred_at", "is required")
	} else if e.OccurredAt.Before(earliest) {
		errs.add("occurred_at", "%s is before %s", e.OccurredAt.Format(time.RFC3339), earliest.Format("2006-01-02"))
	} else if limit := v.Now().Add(v.MaxFuture); e.OccurredAt.After(limit) {
		errs.add("occurred_at", "%s is more than %s in the future", e.OccurredAt.Format(time.RFC3339), v.MaxFuture)
	}
	for _, l := range []struct{ field, value string }{
		{"source", e.Source}, {"customer_id", e.CustomerID}, {"ticket_id", e.TicketID},
		{"channel", e.Channel}, {"category", e.Category}, {"agent_id", e.AgentID},
		{"team", e.Team}, {"employee_id", e.EmployeeID}, {"question", e.Question},
	} {
		checkText(&errs, l.field, l.value, MaxLabelLength, label)
	}
	checkText(&errs, "comment", e.Comment, MaxCommentLength, freeText)

	allowed, known := fieldsOf[e.Type]
	switch {
	case e.Type == "":
		errs.add("type", "is required (survey_response, ticket or employee_pulse)")
	case !known:
		errs.add("type", "unknown type %q (want survey_response, ticket or employee_pulse)", e.Type)
	default:
		for _, f := range e.presentFields() {
			if !allowed[f] {
				errs.add(f, "is not a field of %s events", e.Type)
			}
		}
	}
	switch e.Type {
	case TypeSurveyResponse:
		v.validateSurvey(e, &errs)
	case TypeTicket:
		validateTicket(e, &errs)
	case TypeEmployeePulse:
		validatePulse(e, &errs)
	}
	return errs
}

// presentFields lists the type-specific fields that are set.
func (e *Event) presentFields() []string {
	var out []string
	add := func(name string, present bool) {
		if present {
			out = append(out, name)
		}
	}
	add("score", e.Score != nil)
	add("scale_min", e.ScaleMin != nil)
	add("scale_max", e.ScaleMax != nil)
	add("survey", e.Survey != "")
	add("customer_id", e.CustomerID != "")
	add("comment", e.Comment != "")
	add("ticket_id", e.TicketID != "")
	add("channel", e.Channel != "")
	add("category", e.Category != "")
	add("agent_id", e.AgentID != "")
	add("team", e.Team != "")
	add("status", e.Status != "")
	add("handle_seconds", e.HandleSeconds != nil)
	add("contacts", e.Contacts != nil)
	add("employee_id", e.EmployeeID != "")
	add("question", e.Question != "")
	return out
}

func (v Validator) validateSurvey(e *Event, errs *Errors) {
	if e.Survey == "" {
		errs.add("survey", "is required (ces, csat or nps)")
		return
	}
	std, ok := standards[e.Survey]
	if !ok {
		errs.add("survey", "unknown survey %q (want ces, csat or nps)", e.Survey)
		return
	}
	checkScore(e, std.scale, errs)
}

func validatePulse(e *Event, errs *Errors) {
	if e.EmployeeID == "" {
		errs.add("employee_id", "is required")
	}
	if e.Team == "" {
		errs.add("team", "is required")
	}
	if e.Question == "" {
		errs.add("question", "is required (e.g. engagement, enps, workload)")
		return
	}
	def, known := pulseScales[e.Question]
	if !known && (e.ScaleMin == nil || e.ScaleMax == nil) {
		errs.add("scale_min", "scale_min and scale_max are required for question %q (known: engagement 1–5, enps 0–10, workload 1–5)", e.Question)
		return
	}
	checkScore(e, def, errs)
}

// checkScore checks the score against the event's scale, which defaults to def, and
// stores the scale used.
func checkScore(e *Event, def Scale, errs *Errors) {
	s := def
	if e.ScaleMin != nil {
		s.Min = *e.ScaleMin
	}
	if e.ScaleMax != nil {
		s.Max = *e.ScaleMax
	}
	scaleOK := true
	for _, f := range []struct {
		name string
		v    float64
	}{{"scale_min", s.Min}, {"scale_max", s.Max}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || math.Abs(f.v) > 1e6 {
			errs.add(f.name, "%v is not a usable scale bound", f.v)
			scaleOK = false
		}
	}
	if scaleOK && s.Min == s.Max {
		errs.add("scale_max", "must differ from scale_min (%v)", s.Min)
		scaleOK = false
	}
	switch {
	case e.Score == nil:
		errs.add("score", "is required")
	case !scaleOK:
	case !s.Contains(*e.Score):
		errs.add("score", "%v is outside the scale %v–%v", *e.Score, s.Min, s.Max)
	}
	e.ScaleMin, e.ScaleMax = &s.Min, &s.Max
}

func validateTicket(e *Event, errs *Errors) {
	if e.TicketID == "" {
		errs.add("ticket_id", "is required")
	}
	switch e.Status {
	case TicketCreated, TicketSolved, TicketReopened:
	case "":
		errs.add("status", "is required (created, solved or reopened)")
	default:
		errs.add("status", "unknown status %q (want created, solved or reopened)", e.Status)
	}
	if h := e.HandleSeconds; h != nil && (*h < 0 || math.IsNaN(*h) || *h > 365*24*3600) {
		errs.add("handle_seconds", "%v is not a handle time in seconds (0 to one year)", *h)
	}
	if c := e.Contacts; c != nil && (*c < 0 || *c > 10000) {
		errs.add("contacts", "%d is not a number of contacts (0 to 10000)", *c)
	}
}

type textKind int

const (
	identifier textKind = iota // no white space: ids travel in message headers
	label                      // one line
	freeText                   // may have line breaks and tabs
)

// checkText rejects over-long text, invalid UTF-8 and characters its kind does not allow.
func checkText(errs *Errors, field, s string, max int, kind textKind) {
	if s == "" {
		return
	}
	if len(s) > max {
		errs.add(field, "is %d bytes long; at most %d", len(s), max)
		return
	}
	if !utf8.ValidString(s) {
		errs.add(field, "is not valid UTF-8")
		return
	}
	for _, r := range s {
		bad := unicode.IsControl(r)
		switch kind {
		case identifier:
			bad = bad || unicode.IsSpace(r)
		case freeText:
			bad = bad && r != '\n' && r != '\t' && r != '\r'
		}
		if bad {
			errs.add(field, "contains the character %q, which is not allowed here", r)
			return
		}
	}
}
