package httpapi

import (
	"fmt"
	"sync"

	"github.com/cxlink/cxlink/ingest/event"
)

// labelGuard bounds the distinct values of the label fields that become dimensions and
// keys downstream (rolling-window series, rollup rows, metric labels): category,
// channel, team, question and source. A sender that makes up a new value for every
// event would otherwise grow the processors' state and the rollups without bound. Each
// ingest process learns the values it admits; once a field holds max of them, events
// with yet another value are rejected, naming the field. Agents, customers and tickets
// are not limited: there are as many as the contact centre has.
type labelGuard struct {
	max  int
	mu   sync.Mutex
	seen map[string]map[string]struct{}
}

func newLabelGuard(max int) *labelGuard {
	return &labelGuard{max: max, seen: map[string]map[string]struct{}{}}
}

// admit checks e's label values and remembers the new ones; it returns the errors of
// the fields whose value is new and over the limit.
func (g *labelGuard) admit(e *event.Event) []event.FieldError {
	var errs []event.FieldError
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range [...]struct{ field, value string }{
		{"category", e.Category}, {"channel", e.Channel}, {"team", e.Team},
		{"question", e.Question}, {"source", e.Source},
	} {
		if l.value == "" {
			continue
		}
		values := g.seen[l.field]
		if values == nil {
			values = map[string]struct{}{}
			g.seen[l.field] = values
		}
		if _, ok := values[l.value]; ok {
			continue
		}
		if len(values) >= g.max {
			errs = append(errs, event.FieldError{Field: l.field, Message: fmt.Sprintf(
				"%q would be a new value beyond the %d distinct values of %s this server accepts (CXLINK_MAX_DIMENSION_VALUES)",
				l.value, g.max, l.field)})
			continue
		}
		values[l.value] = struct{}{}
	}
	return errs
}
