package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cxlink/cxlink/ingest/event"
)

// Scope is what one credential may send: which event types, and optionally which
// teams. Employee pulses need a credential whose scope names them (an HR source), so
// that a helpdesk's or a survey tool's token cannot pad a team's pulse group with
// answers of its own making.
type Scope struct {
	Types []event.Type // never empty
	Teams []string     // empty: any team
}

// LegacyTypes is the scope of a credentials line that names none (written before
// scopes existed): everything but employee pulses.
var LegacyTypes = []event.Type{event.TypeSurveyResponse, event.TypeTicket}

var allTypes = []event.Type{event.TypeSurveyResponse, event.TypeTicket, event.TypeEmployeePulse}

// parseScope reads a line's scope fields, "types=a,b" and "teams=x,y". legacy is set
// when the line names no types.
func parseScope(fields []string) (s Scope, legacy bool, err error) {
	seen := map[string]bool{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || (k != "types" && k != "teams") || v == "" {
			return s, false, fmt.Errorf("%q is not types=<type,...> or teams=<team,...>", f)
		}
		if seen[k] {
			return s, false, fmt.Errorf("%s= is given twice", k)
		}
		seen[k] = true
		for _, x := range strings.Split(v, ",") {
			switch {
			case x == "":
				return s, false, fmt.Errorf("%s= has an empty item", k)
			case k == "teams":
				s.Teams = append(s.Teams, x)
			case !slices.Contains(allTypes, event.Type(x)):
				return s, false, fmt.Errorf("types=: %q is not survey_response, ticket or employee_pulse", x)
			default:
				s.Types = append(s.Types, event.Type(x))
			}
		}
	}
	if len(s.Types) == 0 {
		s.Types, legacy = LegacyTypes, true
	}
	return s, legacy, nil
}

// String is the scope as written in the credentials file.
func (s Scope) String() string {
	var ts []string
	for _, t := range s.Types {
		ts = append(ts, string(t))
	}
	out := "types=" + strings.Join(ts, ",")
	if len(s.Teams) > 0 {
		out += " teams=" + strings.Join(s.Teams, ",")
	}
	return out
}

// Check reports why the scope does not allow event e of source, nil when it does.
func (s Scope) Check(source string, e *event.Event) *event.FieldError {
	if !slices.Contains(s.Types, e.Type) {
		msg := fmt.Sprintf("%s is not among the event types the credentials of %q may send (%s)", e.Type, source, s.String())
		if e.Type == event.TypeEmployeePulse {
			msg += ": employee pulses need a credential with types=employee_pulse, given to an HR source only"
		}
		return &event.FieldError{Field: "type", Message: msg}
	}
	if len(s.Teams) > 0 && !slices.Contains(s.Teams, e.Team) {
		return &event.FieldError{Field: "team", Message: fmt.Sprintf("%q is not among the teams the credentials of %q may send for (%s)",
			e.Team, source, strings.Join(s.Teams, ","))}
	}
	return nil
}

// scopeKey carries the authenticated credential's scope.
type scopeKey struct{}

// WithScope returns ctx carrying the scope of the request's credentials.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeFrom returns the scope WithScope stored; false for a request that was not
// authenticated (ingest without credentials), which any event may pass.
func ScopeFrom(ctx context.Context) (Scope, bool) {
	s, ok := ctx.Value(scopeKey{}).(Scope)
	return s, ok
}
