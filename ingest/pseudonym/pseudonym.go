// Package pseudonym replaces employee ids with keyed hashes at ingest, before an event
// is published: the raw id of an employee never reaches JetStream, ClickHouse, metrics
// or logs. The pseudonym is HMAC-SHA256(key, employee_id), so the same employee keeps
// the same pseudonym (a resent pulse is byte-identical, repeated answers are recognised)
// while nobody without the key can compute it from a list of employee ids.
//
// Keep the key secret and stable: a new key gives every employee a new pseudonym, so
// answers given before and after the change count as different respondents in the
// period the key changed in.
package pseudonym

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cxlink/cxlink/ingest/event"
)

// Config of the pseudonymizer.
type Config struct {
	// Key is the HMAC key for employee ids: at least MinKeyLength bytes of secret, e.g.
	// `openssl rand -hex 32`. Empty: ingest rejects employee pulses (only `cxlink run`
	// makes one up, in its data directory, for demos).
	Key string `env:"CXLINK_EMPLOYEE_ID_KEY"`
}

// MinKeyLength is the shortest key accepted, in bytes.
const MinKeyLength = 16

// Prefix starts every pseudonym, so that one is never mistaken for a raw id.
const Prefix = "emp-"

// Validate reports what is wrong with the configuration. It never prints the key.
func (c Config) Validate() error {
	if c.Key != "" && len(c.Key) < MinKeyLength {
		return fmt.Errorf("CXLINK_EMPLOYEE_ID_KEY: %d bytes is too short for a secret key; use at least %d (e.g. `openssl rand -hex 32`)", len(c.Key), MinKeyLength)
	}
	return nil
}

// Pseudonymizer replaces employee ids. The zero value has no key and rejects pulses.
type Pseudonymizer struct {
	key []byte
}

// New returns a pseudonymizer with key; an empty key rejects pulses.
func New(key string) *Pseudonymizer { return &Pseudonymizer{key: []byte(key)} }

// Of returns the pseudonym of an employee id: Prefix and the first 128 bits of
// HMAC-SHA256(key, id) in hex.
func (p *Pseudonymizer) Of(employeeID string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(employeeID))
	return Prefix + hex.EncodeToString(m.Sum(nil)[:16])
}

// ErrNoKey is why pulses are refused without a key.
var ErrNoKey = errors.New("employee pulses are not accepted: this server has no CXLINK_EMPLOYEE_ID_KEY to pseudonymize employee ids with")

// Event replaces the employee id of an employee pulse with its pseudonym and leaves other
// events alone; it suits httpapi.Options.Prepare. Without a key it rejects pulses,
// naming the field employee_id.
func (p *Pseudonymizer) Event(e *event.Event) *event.FieldError {
	if e.Type != event.TypeEmployeePulse {
		return nil
	}
	if p == nil || len(p.key) == 0 {
		return &event.FieldError{Field: "employee_id", Message: ErrNoKey.Error()}
	}
	e.EmployeeID = p.Of(e.EmployeeID)
	return nil
}

// keyFile is where LoadOrCreateKey keeps a generated key, under the data directory.
const keyFile = "employee-id.key"

// LoadOrCreateKey returns the key kept in dir, creating a random one (readable by the
// owner only) the first time. It is for the all-in-one demo: production sets
// CXLINK_EMPLOYEE_ID_KEY from a secret store. created reports a new key.
func LoadOrCreateKey(dir string) (key string, path string, created bool, err error) {
	path = filepath.Join(dir, keyFile)
	if b, err := os.ReadFile(path); err == nil {
		key = strings.TrimSpace(string(b))
		if len(key) < MinKeyLength {
			return "", path, false, fmt.Errorf("employee id key in %s is shorter than %d bytes", path, MinKeyLength)
		}
		return key, path, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, false, fmt.Errorf("read employee id key: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", path, false, fmt.Errorf("generate employee id key: %w", err)
	}
	key = hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first: use theirs
			return LoadOrCreateKey(dir)
		}
		return "", path, false, fmt.Errorf("write employee id key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", path, false, fmt.Errorf("write employee id key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", path, false, fmt.Errorf("write employee id key: %w", err)
	}
	return key, path, true, nil
}
