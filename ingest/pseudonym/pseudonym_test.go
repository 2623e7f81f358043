package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/cxlink/cxlink/ingest/event"
)

func TestOfIsKeyedHMAC(t *testing.T) {
	p := New("0123456789abcdef-secret")
	got := p.Of("e-1042")
	// RFC 2104 HMAC with SHA-256, computed with the standard library directly.
	m := hmac.New(sha256.New, []byte("0123456789abcdef-secret"))
	m.Write([]byte("e-1042"))
	if want := "emp-" + hex.EncodeToString(m.Sum(nil))[:32]; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got != p.Of("e-1042") || got == p.Of("e-1043") || got == New("another-key-of-16+").Of("e-1042") {
		t.Fatal("pseudonyms must be stable per key and differ between ids and keys")
	}
	if strings.Contains(got, "1042") {
		t.Fatalf("pseudonym %s shows the id", got)
	}
}

func TestEventReplacesOnlyPulseEmployeeIDs(t *testing.T) {
	p := New("0123456789abcdef")
	pulse := event.Event{Type: event.TypeEmployeePulse, EmployeeID: "e-7", Team: "alpha"}
	if err := p.Event(&pulse); err != nil || pulse.EmployeeID != p.Of("e-7") {
		t.Fatalf("pulse: %v, %+v", err, pulse)
	}
	survey := event.Event{Type: event.TypeSurveyResponse, CustomerID: "c-1"}
	if err := p.Event(&survey); err != nil || survey.CustomerID != "c-1" {
		t.Fatalf("survey: %v %+v", err, survey)
	}
}

func TestNoKeyRejectsPulsesNamingEmployeeID(t *testing.T) {
	for _, p := range []*Pseudonymizer{nil, New("")} {
		pulse := event.Event{Type: event.TypeEmployeePulse, EmployeeID: "e-7"}
		err := p.Event(&pulse)
		if err == nil || err.Field != "employee_id" || !strings.Contains(err.Message, "CXLINK_EMPLOYEE_ID_KEY") {
			t.Fatalf("got %v", err)
		}
		ticket := event.Event{Type: event.TypeTicket}
		if err := p.Event(&ticket); err != nil {
			t.Fatalf("ticket: %v", err)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := (Config{Key: "s3cr3t"}).Validate()
	if err == nil || !strings.Contains(err.Error(), "CXLINK_EMPLOYEE_ID_KEY") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadOrCreateKeyKeepsTheKey(t *testing.T) {
	dir := t.TempDir() + "/data"
	k1, path, created, err := LoadOrCreateKey(dir)
	if err != nil || !created || len(k1) != 64 {
		t.Fatalf("%q %v %v", k1, created, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	k2, _, created, err := LoadOrCreateKey(dir)
	if err != nil || created || k2 != k1 {
		t.Fatalf("second load: %q %v %v", k2, created, err)
	}
}
