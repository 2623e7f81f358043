// Package followup closes the loop on single answers: an answer that matches the
// follow-up rules (a CES of 1 on a billing ticket, a detractor) becomes a case for the
// team that owns it, with a due time, delivered to the owner and tracked until it is
// closed with a reason.
//
// The partitions decide which answers open a case (Decider, part of each partition's
// state machine, so that a replay or a second replica decides the same); the cases go
// onto their own stream (Stream), one subject per case, where acknowledging and closing
// append to them; one replica at a time (Stage) reads that stream, writes the followups
// table, delivers new cases to their owners' targets and exports the loop's metrics.
// See docs/followups.md.
package followup

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/processors/drift"
)

// Config of follow-ups. With no rules, no answer opens a case.
type Config struct {
	// Rules say which answers open a case (ParseRules).
	Rules string `env:"CXLINK_FOLLOWUP_RULES"`
	// Owners decide who owns a case, in CXLINK_OWNERS's grammar; empty: CXLINK_OWNERS.
	Owners string `env:"CXLINK_FOLLOWUP_OWNERS"`
	// Window: a ticket opens at most one case per window, counted from its last case's
	// opening. A week covers a ticket's usual life and the surveys sent after it.
	Window time.Duration `env:"CXLINK_FOLLOWUP_WINDOW" envDefault:"168h"`
	// Due is how long an owner has to close a case before it is overdue: one duration,
	// or per owner (ParsePerOwner). A day is the usual call-back promise.
	Due string `env:"CXLINK_FOLLOWUP_DUE" envDefault:"24h"`
	// CloseReasons are the reasons a case may be closed with: bounded, so that they can
	// be counted and charted; a free-text note goes with them.
	CloseReasons string `env:"CXLINK_FOLLOWUP_CLOSE_REASONS" envDefault:"resolved,contacted,unreachable,not_actionable,duplicate"`
	// RateLimit bounds the deliveries to each owner's target: N per period (one case per
	// delivery), or per owner. Cases beyond it wait their turn, oldest first; none is
	// dropped. 30 a minute keeps a chat channel readable during an incident.
	RateLimit string `env:"CXLINK_FOLLOWUP_RATE_LIMIT" envDefault:"30/1m"`
	// MaxAge: cases leave the follow-up stream this long after their last change (the
	// followups table keeps them). 90 days outlast any reasonable due time.
	MaxAge time.Duration `env:"CXLINK_FOLLOWUP_MAX_AGE" envDefault:"2160h"`
	// History is how far back a delivered case lists the customer's earlier answers
	// (0: none).
	History time.Duration `env:"CXLINK_FOLLOWUP_HISTORY" envDefault:"2160h"`
	// APIURL is the base URL of the follow-up API as the owners reach it (e.g.
	// https://cxlink.example.com): deliveries then carry links to acknowledge and close.
	APIURL string `env:"CXLINK_FOLLOWUP_API_URL"`
}

// Settings are a Config read into values.
type Settings struct {
	Rules        *Rules
	Owners       *drift.Owners
	Window       time.Duration
	Due          PerOwner[time.Duration]
	CloseReasons []string
	RateLimit    PerOwner[Rate]
	MaxAge       time.Duration
	History      time.Duration
	APIURL       string
	// Fingerprint names what shapes the partitions' decisions (rules, owners, window,
	// due): a partition snapshot taken under others is not used.
	Fingerprint string
}

// Rate is N deliveries per Per.
type Rate struct {
	N   int
	Per time.Duration
}

func (r Rate) String() string { return strconv.Itoa(r.N) + "/" + r.Per.String() }

var reasonName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// Validate reports every problem; owners is CXLINK_OWNERS.
func (c Config) Validate(owners string) error {
	_, err := c.Settings(owners)
	return err
}

// Settings reads the configuration; owners is CXLINK_OWNERS, the owners when
// CXLINK_FOLLOWUP_OWNERS is empty.
func (c Config) Settings(owners string) (*Settings, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := &Settings{Window: c.Window, MaxAge: c.MaxAge, History: c.History, APIURL: strings.TrimRight(c.APIURL, "/")}
	var err error
	if s.Rules, err = ParseRules(c.Rules); err != nil {
		add("CXLINK_FOLLOWUP_RULES: %v", err)
	}
	if c.Owners != "" {
		if s.Owners, err = drift.ParseOwners(c.Owners); err != nil {
			add("CXLINK_FOLLOWUP_OWNERS: %v", err)
		}
	} else if s.Owners, err = drift.ParseOwners(owners); err != nil {
		s.Owners = nil // CXLINK_OWNERS reports its own problems
	}
	if c.Window <= 0 {
		add("CXLINK_FOLLOWUP_WINDOW: %s is not positive", c.Window)
	}
	if s.Due, err = ParsePerOwner(c.Due, parseDue); err != nil {
		add("CXLINK_FOLLOWUP_DUE: %v", err)
	}
	for _, r := range strings.Split(c.CloseReasons, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "":
		case !reasonName.MatchString(r):
			add("CXLINK_FOLLOWUP_CLOSE_REASONS: %q: want 1–40 characters of a-z, 0-9 and '_', starting with a letter", r)
		case slices.Contains(s.CloseReasons, r):
			add("CXLINK_FOLLOWUP_CLOSE_REASONS: %q is given twice", r)
		default:
			s.CloseReasons = append(s.CloseReasons, r)
		}
	}
	if len(s.CloseReasons) == 0 {
		add("CXLINK_FOLLOWUP_CLOSE_REASONS: no reason: a case could never be closed")
	}
	if s.RateLimit, err = ParsePerOwner(c.RateLimit, parseRate); err != nil {
		add("CXLINK_FOLLOWUP_RATE_LIMIT: %v", err)
	}
	if c.MaxAge < 24*time.Hour {
		add("CXLINK_FOLLOWUP_MAX_AGE: %s is shorter than a day", c.MaxAge)
	}
	if c.History < 0 {
		add("CXLINK_FOLLOWUP_HISTORY: %s is negative", c.History)
	}
	if c.APIURL != "" {
		if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("CXLINK_FOLLOWUP_API_URL: %q is not an http(s) URL such as https://cxlink.example.com", c.APIURL)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ownersText := c.Owners
	if ownersText == "" {
		ownersText = owners
	}
	s.Fingerprint = fmt.Sprintf("rules=%s owners=%s window=%s due=%s", s.Rules, strings.Join(strings.Fields(ownersText), ""), c.Window, c.Due)
	return s, nil
}

// On reports whether any answer can open a case.
func (s *Settings) On() bool { return s != nil && !s.Rules.Empty() }

// PerOwner is a value for every owner, some owners having their own.
type PerOwner[T any] struct {
	byOwner  map[string]T
	fallback T
}

// For returns the owner's value.
func (p PerOwner[T]) For(owner string) T {
	if v, ok := p.byOwner[owner]; ok {
		return v
	}
	return p.fallback
}

var ownerToken = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,39}$`)

// ParsePerOwner reads one value for everybody ("24h"), or values per owner separated by
// commas, "billing=4h, *=24h", where * is everybody else and is required.
func ParsePerOwner[T any](s string, parse func(string) (T, error)) (PerOwner[T], error) {
	p := PerOwner[T]{byOwner: map[string]T{}}
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "=") {
		v, err := parse(s)
		if err != nil {
			return p, err
		}
		p.fallback = v
		return p, nil
	}
	var errs []error
	hasDefault := false
	for _, part := range strings.Split(s, ",") {
		owner, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		owner, val = strings.TrimSpace(owner), strings.TrimSpace(val)
		if !ok || (owner != "*" && !ownerToken.MatchString(owner)) {
			errs = append(errs, fmt.Errorf("%q: want owner=value or *=value", part))
			continue
		}
		v, err := parse(val)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", owner, err))
			continue
		}
		if _, dup := p.byOwner[owner]; dup || owner == "*" && hasDefault {
			errs = append(errs, fmt.Errorf("%s is given twice", owner))
			continue
		}
		if owner == "*" {
			p.fallback, hasDefault = v, true
		} else {
			p.byOwner[owner] = v
		}
	}
	if !hasDefault && len(errs) == 0 {
		errs = append(errs, errors.New("no value for everybody else: add *=…"))
	}
	return p, errors.Join(errs...)
}

// parseDue reads a positive duration; "d" counts days.
func parseDue(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 4h or 2d", s)
	}
	return d, nil
}

// parseRate reads N/duration, e.g. 30/1m.
func parseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(s, "/")
	v, err := strconv.Atoi(strings.TrimSpace(n))
	d, derr := parseDuration(strings.TrimSpace(per))
	if !ok || err != nil || derr != nil || v < 1 || d < time.Second {
		return Rate{}, fmt.Errorf("%q is not a rate such as 30/1m (at least 1 per period, a period of 1s or more)", s)
	}
	return Rate{N: v, Per: d}, nil
}

func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
