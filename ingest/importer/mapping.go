package importer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cxlink/cxlink/ingest/event"
)

// Mapping says how the rows of an export become events. It is read from a small YAML
// file (see README.md, "Importing exports", and deploy/import/*.yml) or built from flags.
//
//	source: support-csv             # event source, and the namespace of derived ids
//	time_format: "2006-01-02 15:04" # Go layout, or rfc3339 (default), unix, unix_ms
//	time_zone: UTC                  # zone of timestamps without one (default UTC)
//	key: [Ticket_ID]                # columns that identify a row (default: all of it)
//	events:
//	  - name: csat                  # part of derived ids; default: the type
//	    type: survey_response
//	    skip_if_empty: [Customer_Satisfaction_Rating]
//	    fields:
//	      survey: csat                             # a constant
//	      score: "{Customer_Satisfaction_Rating}"  # a column
//	      ticket_id: "csv-{Ticket_ID}"             # a template
//	      handle_seconds: {seconds_between: ["{First_Response_Time}", "{Time_to_Resolution}"]}
//	      channel: {value: "{Ticket_Channel}", map: {"Social media": social}}
//
// A field's value is a template: text with {column} placeholders (a column of a CSV
// header, or a key of an NDJSON object, dotted for nested objects: {person.id}). A field
// whose template renders empty is left out. Without "id", an event's id is derived from
// the source, the event's name and the row's key columns, so that importing the same
// file again gives the same ids (and JetStream and the raw tables keep one of each):
// keyed with HMAC-SHA256 when the importer has a key (Options.IDKey, which employee
// pulses require), so that an id cannot be recomputed from an employee directory.
type Mapping struct {
	Source     string   `yaml:"source"`
	TimeFormat string   `yaml:"time_format"`
	TimeZone   string   `yaml:"time_zone"`
	Key        []string `yaml:"key"`
	Events     []Template

	loc   *time.Location
	idKey []byte // see Options.IDKey
}

// Template is one event made from each row.
type Template struct {
	Name        string           `yaml:"name"`
	Type        event.Type       `yaml:"type"`
	SkipIfEmpty []string         `yaml:"skip_if_empty"`
	Fields      map[string]Value `yaml:"fields"`
}

// Value is a field's template, or a derivation.
type Value struct {
	Text           string            `yaml:"value"`
	Map            map[string]string `yaml:"map"`
	Default        string            `yaml:"default"`
	SecondsBetween []string          `yaml:"seconds_between"`
}

// UnmarshalYAML accepts a plain template or the object form.
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v.Text = n.Value
		return nil
	}
	type plain Value
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*v = Value(p)
	return nil
}

// LoadMapping reads a mapping file.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Mapping
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	if err := m.Compile(); err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return &m, nil
}

// contractFields are the fields a template may set (event contract v1).
var contractFields = []string{"id", "occurred_at", "source", "survey", "score", "scale_min", "scale_max",
	"ticket_id", "customer_id", "channel", "category", "team", "agent_id", "comment", "status",
	"handle_seconds", "contacts", "employee_id", "question"}

// Compile checks a mapping built in code (LoadMapping does it for files) and reports
// every problem.
func (m *Mapping) Compile() error {
	var errs []error
	if m.Source == "" {
		errs = append(errs, errors.New("source: is required (it namespaces the derived event ids)"))
	}
	if len(m.Events) == 0 {
		errs = append(errs, errors.New("events: at least one event template is required"))
	}
	zone := m.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	var err error
	if m.loc, err = time.LoadLocation(zone); err != nil {
		errs = append(errs, fmt.Errorf("time_zone: %v", err))
	}
	names := map[string]bool{}
	for i := range m.Events {
		t := &m.Events[i]
		if t.Name == "" {
			t.Name = string(t.Type)
		}
		where := fmt.Sprintf("events[%d] (%s)", i, t.Name)
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice: names keep derived ids apart", where, t.Name))
		}
		names[t.Name] = true
		switch t.Type {
		case event.TypeSurveyResponse, event.TypeTicket, event.TypeEmployeePulse:
		default:
			errs = append(errs, fmt.Errorf("%s: type %q is not survey_response, ticket or employee_pulse", where, t.Type))
		}
		if _, ok := t.Fields["occurred_at"]; !ok {
			errs = append(errs, fmt.Errorf("%s: fields.occurred_at is required", where))
		}
		for f, v := range t.Fields {
			if !slices.Contains(contractFields, f) {
				errs = append(errs, fmt.Errorf("%s: fields.%s is not a field of event contract v1", where, f))
			}
			if len(v.SecondsBetween) != 0 && len(v.SecondsBetween) != 2 {
				errs = append(errs, fmt.Errorf("%s: fields.%s.seconds_between needs two timestamps", where, f))
			}
		}
	}
	errs = append(errs, m.checkPulseIDs()...)
	return errors.Join(errs...)
}

// MinIDKeyLength is the shortest id key accepted, in bytes.
const MinIDKeyLength = 16

// ErrNoIDKey is why a mapping that derives pulse ids needs a key.
var ErrNoIDKey = errors.New("this mapping derives the ids of employee pulses from their rows: give the importer a secret key " +
	"(CXLINK_IMPORT_ID_KEY or --id-key-file, e.g. `openssl rand -hex 32`, the same for every import of the file), " +
	"so that no id can be recomputed from an employee directory")

// useIDKey sets the key of derived ids, and refuses to derive pulse ids without one.
func (m *Mapping) useIDKey(key []byte) error {
	if len(key) > 0 && len(key) < MinIDKeyLength {
		return fmt.Errorf("import id key: %d bytes is too short; use at least %d (e.g. `openssl rand -hex 32`)", len(key), MinIDKeyLength)
	}
	m.idKey = key
	if len(key) > 0 {
		return nil
	}
	for _, t := range m.Events {
		if _, hasID := t.Fields["id"]; t.Type == event.TypeEmployeePulse && !hasID {
			return ErrNoIDKey
		}
	}
	return nil
}

// keyFingerprint tells apart the keys of two imports of a file without showing them,
// so that a resume with another key (other ids) is refused.
func (m *Mapping) keyFingerprint() string {
	if len(m.idKey) == 0 {
		return ""
	}
	mac := hmac.New(sha256.New, m.idKey)
	mac.Write([]byte("cxlink import id key"))
	return "-" + hex.EncodeToString(mac.Sum(nil)[:4])
}

// checkPulseIDs refuses a pulse's id template that uses a column of its employee_id:
// event ids are stored as sent, and such an id would name the employee.
func (m *Mapping) checkPulseIDs() []error {
	var errs []error
	for i, t := range m.Events {
		id, hasID := t.Fields["id"]
		if t.Type != event.TypeEmployeePulse || !hasID {
			continue
		}
		for _, col := range columnsOf(t.Fields["employee_id"]) {
			if slices.Contains(columnsOf(id), col) {
				errs = append(errs, fmt.Errorf("events[%d] (%s): fields.id uses column %s, which gives the employee_id: "+
					"an event id is stored as sent and would name the employee; leave id out (it is then derived with a key) "+
					"or use a response id", i, t.Name, col))
			}
		}
	}
	return errs
}

// columnsOf lists the columns a value's templates read.
func columnsOf(v Value) []string {
	var cols []string
	for _, tmpl := range append([]string{v.Text}, v.SecondsBetween...) {
		for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
			cols = append(cols, m[1])
		}
	}
	return cols
}

// Hash identifies the mapping, so that a resumed import uses the same one.
func (m *Mapping) Hash() string {
	b, _ := yaml.Marshal(m)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// row is one record of the input: its values by column, and its raw fields in order
// (what a derived id hashes when no key is configured).
type row struct {
	get func(col string) (string, bool)
	raw []string
}

var placeholder = regexp.MustCompile(`\{([^{}]+)\}`)

// render fills a template's placeholders; a missing column is an error.
func render(tmpl string, r row) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(tmpl, func(ph string) string {
		col := ph[1 : len(ph)-1]
		v, ok := r.get(col)
		if !ok {
			missing = append(missing, col)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no column %s", strings.Join(missing, ", "))
	}
	return strings.TrimSpace(out), nil
}

// FieldError is a problem of one event of one row.
type FieldError = event.FieldError

// build makes template t's event from r; ok is false when the row is skipped for it.
func (m *Mapping) build(t *Template, r row) (e event.Event, ok bool, errs event.Errors) {
	for _, col := range t.SkipIfEmpty {
		if v, _ := r.get(col); strings.TrimSpace(v) == "" {
			return e, false, nil
		}
	}
	e.Type = t.Type
	e.Source = m.Source
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, field := range contractFields { // a fixed order: the same row gives the same errors
		v, present := t.Fields[field]
		if !present {
			continue
		}
		s, err := m.value(v, r)
		if err != nil {
			add(field, "%v", err)
			continue
		}
		if s == "" {
			continue
		}
		if err := set(&e, field, s, m); err != nil {
			add(field, "%v", err)
		}
	}
	if _, hasID := t.Fields["id"]; !hasID {
		e.ID = m.deriveID(t, r)
	}
	return e, true, errs
}

// value renders a field's value.
func (m *Mapping) value(v Value, r row) (string, error) {
	if len(v.SecondsBetween) == 2 {
		var ts [2]time.Time
		for i, tmpl := range v.SecondsBetween {
			s, err := render(tmpl, r)
			if err != nil {
				return "", err
			}
			if s == "" {
				return "", nil
			}
			if ts[i], err = m.parseTime(s); err != nil {
				return "", err
			}
		}
		return strconv.FormatFloat(ts[1].Sub(ts[0]).Seconds(), 'f', -1, 64), nil
	}
	s, err := render(v.Text, r)
	if err != nil {
		return "", err
	}
	if to, ok := v.Map[s]; ok {
		s = to
	}
	if s == "" {
		s = v.Default
	}
	return s, nil
}

// set parses s into the event's field.
func set(e *event.Event, field, s string, m *Mapping) error {
	num := func() (*float64, error) {
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", "."), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return &f, nil
	}
	var err error
	switch field {
	case "id":
		e.ID = s
	case "occurred_at":
		e.OccurredAt, err = m.parseTime(s)
	case "source":
		e.Source = s
	case "survey":
		e.Survey = event.Survey(strings.ToLower(s))
	case "score":
		e.Score, err = num()
	case "scale_min":
		e.ScaleMin, err = num()
	case "scale_max":
		e.ScaleMax, err = num()
	case "ticket_id":
		e.TicketID = s
	case "customer_id":
		e.CustomerID = s
	case "channel":
		e.Channel = s
	case "category":
		e.Category = s
	case "team":
		e.Team = s
	case "agent_id":
		e.AgentID = s
	case "comment":
		e.Comment = s
	case "status":
		e.Status = event.TicketStatus(strings.ToLower(s))
	case "handle_seconds":
		e.HandleSeconds, err = num()
	case "contacts":
		var n int64
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			err = fmt.Errorf("%q is not a whole number", s)
		} else {
			e.Contacts = &n
		}
	case "employee_id":
		e.EmployeeID = s
	case "question":
		e.Question = s
	}
	return err
}

// timeLayouts are tried, in order, when the mapping names no time_format.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02"}

func (m *Mapping) parseTime(s string) (time.Time, error) {
	switch m.TimeFormat {
	case "unix", "unix_ms":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
		}
		if m.TimeFormat == "unix_ms" {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	case "", "rfc3339":
		for _, l := range timeLayouts {
			if t, err := time.ParseInLocation(l, s, m.loc); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not a timestamp such as 2026-11-23T10:15:00Z (set time_format for another layout)", s)
	default:
		t, err := time.ParseInLocation(m.TimeFormat, s, m.loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q does not match time_format %q", s, m.TimeFormat)
		}
		return t.UTC(), nil
	}
}

// deriveID is the id of template t's event from r: the source, the template's name and
// a hash of the row's key (its key columns, else all of it): HMAC-SHA256 with the id key
// when there is one, else SHA-256 (never for pulses: useIDKey).
func (m *Mapping) deriveID(t *Template, r row) string {
	h := sha256.New()
	if len(m.idKey) > 0 {
		h = hmac.New(sha256.New, m.idKey)
	}
	h.Write([]byte(m.Source))
	h.Write([]byte{0})
	h.Write([]byte(t.Name))
	vals := r.raw
	if len(m.Key) > 0 {
		vals = make([]string, len(m.Key))
		for i, col := range m.Key {
			vals[i], _ = r.get(col)
		}
	}
	for _, v := range vals {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	id := strings.Map(func(r rune) rune {
		if r <= ' ' {
			return '_'
		}
		return r
	}, m.Source)
	return id + ":" + t.Name + ":" + hex.EncodeToString(h.Sum(nil)[:12])
}
