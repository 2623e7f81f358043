package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

// `cxlink alerts-receiver` prints Alertmanager's notifications and, checked with the
// secret cxlink signs with, follow-up cases.
func TestAlertsReceiverPrintsBoth(t *testing.T) {
	secret := "a-demo-secret-of-sixteen"
	out := &lockedBuffer{}
	addr := make(chan string, 1)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"alerts-receiver", "--listen", "127.0.0.1:0"}, Options{
			Environ: map[string]string{"CXLINK_FOLLOWUP_WEBHOOK_SECRET": secret}, Stdout: out, Stderr: io.Discard,
			Listening: func(a string) { addr <- a }})
	}()
	var base string
	select {
	case a := <-addr:
		if strings.HasSuffix(a, ":19094") {
			t.Fatalf("listening on %s: --listen ignored", a)
		}
		base = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	alert := `{"version":"4","receiver":"billing","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"CXLinkFollowUpsOverdue","owner":"billing"},"annotations":{"summary":"5 follow-up cases of billing are overdue"}}]}`
	resp, err := http.Post(base+"/billing", "application/json", strings.NewReader(alert))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("alert: %v %v", err, resp)
	}
	resp.Body.Close()
	body := []byte(`{"event":"followup.opened","delivery_id":"fu-2","case":{"id":"fu-2","owner":"web","survey":"nps","score":0,"rule":"nps<=2"},"history":[]}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, base+"/followups/web", bytes.NewReader(body))
	req.Header.Set(followup.HeaderEvent, "followup.opened")
	req.Header.Set(followup.HeaderTimestamp, ts)
	req.Header.Set(followup.HeaderSignature, followup.Sign([]byte(secret), ts, body))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("follow-up: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, want := range []string{"/billing → receiver \"billing\" (FIRING)", "CXLinkFollowUpsOverdue", "/followups/web → follow-up case fu-2 for web", "NPS 0 (rule nps<=2)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
