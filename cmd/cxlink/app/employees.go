package app

import (
	"fmt"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/pseudonym"
)

// preparePulse is what ingest does to an employee pulse before publishing it: refuse
// one that could never count (older than CXLINK_PULSE_LOOKBACK: its period is never
// published, so an accepted answer would be stored for nothing), and replace the
// employee id with its pseudonym (without CXLINK_EMPLOYEE_ID_KEY it rejects pulses).
func (r *roles) preparePulse() func(*event.Event) *event.FieldError {
	p := pseudonym.New(r.cfg.Employees.Key)
	return func(e *event.Event) *event.FieldError {
		if e.Type != event.TypeEmployeePulse {
			return nil
		}
		if oldest := r.cfg.Pulses.OldestAccepted(time.Now()); e.OccurredAt.Before(oldest) {
			return &event.FieldError{Field: "occurred_at", Message: fmt.Sprintf(
				"%s is older than CXLINK_PULSE_LOOKBACK (%s): pulses of periods that long ago are no longer published, so this answer could never count",
				e.OccurredAt.UTC().Format(time.RFC3339), r.cfg.Pulses.Lookback)}
		}
		return p.Event(e)
	}
}

// demoEmployeeKey gives `cxlink run` a key when none is configured: one generated once
// and kept in the data directory, so that pulses work in the demo and keep their
// pseudonyms across restarts. Separate ingest processes need the configured key.
func (r *roles) demoEmployeeKey() error {
	if r.cfg.Employees.Key != "" {
		return nil
	}
	key, path, created, err := pseudonym.LoadOrCreateKey(r.cfg.Broker.DataDir)
	if err != nil {
		return err
	}
	r.cfg.Employees.Key = key
	if created {
		r.logger.Warn("CXLINK_EMPLOYEE_ID_KEY is not set: generated a key for employee id pseudonyms; set the variable (kept secret) outside demos", "file", path)
	}
	return nil
}
