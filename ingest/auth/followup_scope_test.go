package auth

import (
	"strings"
	"testing"

	"github.com/cxlink/cxlink/ingest/event"
)

func TestFollowUpScope(t *testing.T) {
	c, err := parse(strings.NewReader(`
crm     token sha256:`+strings.Repeat("ab", 32)+` followups=billing,web
ops     token sha256:`+strings.Repeat("cd", 32)+` types=ticket followups=*
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.legacy) != 0 {
		t.Fatalf("a follow-up line is not legacy: %v", c.legacy)
	}
	for _, cred := range c.tokens {
		switch cred.source {
		case "crm":
			s := cred.scope
			if !s.MayHandleFollowUp("billing") || s.MayHandleFollowUp("support") || len(s.Types) != 0 {
				t.Fatalf("crm: %+v", s)
			}
			if s.Check("crm", &event.Event{Type: event.TypeTicket}) == nil {
				t.Fatal("a follow-up credential sends no events")
			}
			if s.String() != "followups=billing,web" {
				t.Fatalf("crm: %s", s)
			}
		case "ops":
			if !cred.scope.MayHandleFollowUp("anyone") || cred.scope.String() != "types=ticket followups=*" {
				t.Fatalf("ops: %+v", cred.scope)
			}
		}
	}
	if _, err := parse(strings.NewReader("x token sha256:"+strings.Repeat("ab", 32)+" followups="), nil); err == nil {
		t.Fatal("an empty followups= must be refused")
	}
}
