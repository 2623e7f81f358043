package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// The demo's receiver prints a follow-up case only when its signature is right.
func TestFollowUpReceiverChecksTheSignature(t *testing.T) {
	secret := []byte("a-demo-secret-of-sixteen")
	var got []string
	var out bytes.Buffer
	srv := httptest.NewServer(FollowUpReceiver{Secret: secret, Notify: func(path string, p followup.Payload) {
		got = append(got, path+" "+p.Case.ID)
		formatFollowUp(&out, path, p)
	}})
	defer srv.Close()
	body, _ := json.Marshal(followup.Payload{Event: "followup.opened", DeliveryID: "fu-1", Case: records.FollowUp{
		ID: "fu-1", Owner: "billing", Rule: "ces<=2", Survey: "ces", Score: 1, CustomerID: "C-7", TicketID: "T-1",
		Category: "billing_question", Comment: "charged twice", DueAt: time.Now().Add(time.Hour)},
		History: []followup.Answer{{Survey: "csat", StandardScore: 2, OccurredAt: time.Now().Add(-48 * time.Hour)}}})
	post := func(secret []byte) int {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/followups/billing", bytes.NewReader(body))
		req.Header.Set(followup.HeaderEvent, "followup.opened")
		req.Header.Set(followup.HeaderTimestamp, ts)
		req.Header.Set(followup.HeaderSignature, followup.Sign(secret, ts, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post([]byte("another-secret-of-sixteen")); code != http.StatusUnauthorized || len(got) != 0 {
		t.Errorf("wrong signature: %d, printed %v", code, got)
	}
	if code := post(secret); code != http.StatusOK || len(got) != 1 || got[0] != "/followups/billing fu-1" {
		t.Errorf("signed delivery: %d, printed %v", code, got)
	}
	for _, want := range []string{"fu-1 for billing", "CES 1 (rule ces<=2)", "customer C-7", "ticket T-1", `"charged twice"`, "1 earlier answers of the customer: CSAT 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed case lacks %q:\n%s", want, out.String())
		}
	}
}
