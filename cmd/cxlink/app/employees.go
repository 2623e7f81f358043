package app

import (
	"github.com/cxlink/cxlink/ingest/pseudonym"
)

// pseudonymizer replaces employee ids at ingest; without CXLINK_EMPLOYEE_ID_KEY it
// rejects pulses.
func (r *roles) pseudonymizer() *pseudonym.Pseudonymizer {
	return pseudonym.New(r.cfg.Employees.Key)
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
