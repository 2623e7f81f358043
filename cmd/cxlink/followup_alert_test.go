package main

// End to end, with real processes on loopback: CES 1 answers on billing tickets open
// cases with a short due time, nobody acknowledges them, they become overdue on cxlink's
// /metrics, a real Prometheus evaluating the shipped follow-up rule (its `for:` and
// `keep_firing_for:` minutes as seconds, the expression as shipped) fires
// CXLinkFollowUpsOverdue, and a real Alertmanager with the shipped routing delivers it to
// billing's receiver; closing a case through the API takes the pile below the rule's
// threshold and the alert resolves. Support's cases, as many but not due yet, fire
// nothing.

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/processors/followup"
)

func TestFollowUpOverdueAlertReachesOwner(t *testing.T) {
	const (
		billingDue = 30 * time.Second
		// The rule's `for: 15m`, scaled to seconds.
		ruleFor = 15 * time.Second
		// The rule's threshold: an owner's fifth overdue case.
		pile = 5
	)

	rcv, hookURL := startReceiver(t)
	cx := apptest.Start(t, nil, map[string]string{
		"CXLINK_OWNERS":         "category:billing=billing, *=support",
		"CXLINK_FOLLOWUP_RULES": "ces<=2",
		"CXLINK_FOLLOWUP_DUE":   fmt.Sprintf("billing=%s, *=24h", billingDue),
	})
	am := apptest.StartAlertmanager(t, alertmanagerConfig(t, hookURL))
	prom := prometheusWithScaledRules(t, cx.Addr, am.Addr)

	// A pile of bad answers for billing, and as many for support, whose cases are due in a day.
	now := time.Now().UTC()
	var events []map[string]any
	for i := range 2 * pile {
		category, tk := "billing", fmt.Sprintf("T-%d", i)
		if i >= pile {
			category = "refund_request"
		}
		events = append(events,
			map[string]any{"id": "tk-" + tk, "type": "ticket", "ticket_id": tk, "status": "solved", "category": category,
				"occurred_at": now.Add(-2 * time.Minute).Format(time.RFC3339Nano)},
			map[string]any{"id": "ces-" + tk, "type": "survey_response", "survey": "ces", "score": 1, "ticket_id": tk,
				"customer_id": "C-" + tk, "comment": "charged twice, nobody called", "occurred_at": now.Add(-time.Minute).Format(time.RFC3339Nano)})
	}
	if code, body := postWith(t, cx.URL+"/v1/events", "", events); code/100 != 2 {
		t.Fatalf("post: %d %s", code, body)
	}
	cx.WaitCount(2*pile, "SELECT count() FROM "+cx.Database()+".followups FINAL WHERE state = 'open'")
	rows := cx.Query("SELECT max(due_at) FROM " + cx.Database() + ".followups FINAL WHERE owner = 'billing'")
	lastDue := rows[0][0].(time.Time)
	if d := time.Until(lastDue); d < 5*time.Second {
		t.Fatalf("billing's cases are due in %s: the machine took too long to store them to see them become overdue", d)
	}

	// The gauge: billing's cases overdue once their due time passed, support's not.
	metrics := regexp.MustCompile(`(?m)^cxlink_followup_overdue_cases\{owner="(\w+)"\} (\d+)$`)
	overdue := func() map[string]string {
		got := map[string]string{}
		for _, m := range metrics.FindAllStringSubmatch(get(t, cx.URL+"/metrics"), -1) {
			got[m[1]] = m[2]
		}
		return got
	}
	followUpWait(t, 2*time.Minute, func() bool { return overdue()["billing"] == fmt.Sprint(pile) })
	if got := overdue(); got["support"] != "0" || time.Now().Before(lastDue) {
		t.Fatalf("overdue cases at %s (billing's last due at %s): %v", time.Now().Format(time.TimeOnly), lastDue.Format(time.TimeOnly), got)
	}
	t.Logf("cases opened; billing's %d overdue on /metrics %s after the answers were posted", pile, time.Since(now).Round(time.Second))

	isOverdue := func(n notification, status string) bool {
		if n.path != "/billing" || n.body.Status != status {
			return false
		}
		for _, a := range n.body.Alerts {
			if a.Labels["alertname"] == "CXLinkFollowUpsOverdue" && a.Labels["owner"] == "billing" {
				return true
			}
		}
		return false
	}
	fired := rcv.waitFor(t, "firing CXLinkFollowUpsOverdue at /billing", 2*time.Minute,
		func(n notification) bool { return isOverdue(n, "firing") })
	t.Logf("answers posted → firing notification at billing's receiver: %s", fired.at.Sub(now).Round(100*time.Millisecond))
	// Not before the pile was overdue for the rule's `for:` (the due times are whole seconds).
	if fired.at.Before(lastDue.Add(ruleFor - time.Second)) {
		t.Errorf("fired at %s, before billing's cases were overdue (last due %s) for %s", fired.at.Format(time.TimeOnly), lastDue.Format(time.TimeOnly), ruleFor)
	}
	for _, a := range fired.body.Alerts {
		t.Logf("  %s %v: %s", a.Status, a.Labels, a.Annotations["summary"])
		if a.Labels["alertname"] != "CXLinkFollowUpsOverdue" || a.Labels["owner"] != "billing" || a.Labels["kind"] != "business" ||
			a.Annotations["summary"] != fmt.Sprintf("%d follow-up cases of billing are overdue", pile) ||
			!strings.Contains(a.Annotations["runbook"], "runbook.md#cxlinkfollowupsoverdue") {
			t.Errorf("notification to billing: %v %v", a.Labels, a.Annotations)
		}
	}

	// Billing calls one customer back and closes the case: four overdue are below the
	// rule's threshold, and the alert resolves after keep_firing_for.
	closed := time.Now()
	code, body := postWith(t, cx.URL+"/v1/followups/"+followup.CaseID("ces-T-0")+"/close", "", map[string]string{"reason": "contacted", "by": "alice"})
	if code != http.StatusOK {
		t.Fatalf("close: %d %s", code, body)
	}
	resolved := rcv.waitFor(t, "resolved CXLinkFollowUpsOverdue at /billing", 2*time.Minute,
		func(n notification) bool { return isOverdue(n, "resolved") && n.at.After(closed) })
	t.Logf("case closed → resolved notification: %s", resolved.at.Sub(closed).Round(100*time.Millisecond))
	if got := overdue(); got["billing"] != fmt.Sprint(pile-1) {
		t.Errorf("billing's overdue cases after one was closed: %v", got)
	}
	prom.WaitQuery(`cxlink_followup_time_to_close_seconds_count{owner="billing"} == 1`, time.Minute)

	// Nothing for support, whose cases are not due, nor any other follow-up alert.
	all := rcv.all()
	t.Logf("all notifications: %s", describe(all))
	for _, n := range all {
		for _, a := range n.body.Alerts {
			if a.Labels["alertname"] == "CXLinkFollowUpsOverdue" && (a.Labels["owner"] != "billing" || n.path != "/billing") {
				t.Errorf("follow-up alert for %s at %s", a.Labels["owner"], n.path)
			}
		}
	}
}
