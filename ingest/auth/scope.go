package auth

import (
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
	Types []event.Type // empty only for a follow-up credential: it sends no events
	Teams []string     // empty: any team
	// FollowUps are the owners whose follow-up cases the credential may acknowledge
	// and close ("*": every owner); empty: none.
	FollowUps []string
}

// MayHandleFollowUp reports whether the scope covers the cases of owner.
func (s Scope) MayHandleFollowUp(owner string) bool {
	return slices.Contains(s.FollowUps, "*") || slices.Contains(s.FollowUps, owner)
}

// LegacyTypes is the scope of a credentials line that names none (written before
// scopes existed): everything but employee pulses.
var LegacyTypes = []event.Type{event.TypeSurveyResponse, event.TypeTicket}

var allTypes = []event.Type{event.TypeSurveyResponse, event.TypeTicket, event.TypeEmployeePulse}

// parseScope reads a line's scope fields, "types=a,b", "teams=x,y" and "followups=o,p".
// legacy is set when the line names neither types nor follow-ups.
func parseScope(fields []string) (s Scope, legacy bool, err error) {
	seen := map[string]bool{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || (k != "types" && k != "teams" && k != "followups") || v == "" {
			return s, false, fmt.Errorf("%q is not types=<type,...>, teams=<team,...> or followups=<owner,...>", f)
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
			case k == "followups":
				s.FollowUps = append(s.FollowUps, x)
			case !slices.Contains(allTypes, event.Type(x)):
				return s, false, fmt.Errorf("types=: %q is not survey_response, ticket or employee_pulse", x)
			default:
				s.Types = append(s.Types, event.Type(x))
			}
		}
	}
	if len(s.Types) == 0 && len(s.FollowUps) == 0 {
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
	var out []string
	if len(ts) > 0 {
		out = append(out, "types="+strings.Join(ts, ","))
	}
	if len(s.Teams) > 0 {
		out = append(out, "teams="+strings.Join(s.Teams, ","))
	}
	if len(s.FollowUps) > 0 {
		out = append(out, "followups="+strings.Join(s.FollowUps, ","))
	}
	return strings.Join(out, " ")
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
