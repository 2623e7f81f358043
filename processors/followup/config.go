// Package followup closes the loop on single answers: an answer that matches the
// follow-up rules (a CES of 1 on a billing ticket, a detractor) becomes a case for the
// team that owns it, with a due time, delivered to the owner and tracked until it is
// closed with a reason.
//
// The partitions decide which answers open a case (Decider, part of each partition's
// state machine, so that a replay or a second replica decides the same); the writer
// publishes the cases onto their own stream (OpeningSink), one subject per case, before
// their batch counts as stored; one replica at a time (Stage) reads that stream, writes
// the followups table and delivers new cases to their owners' webhooks. See
// docs/followups.md.
package followup

import (
	"errors"
	"fmt"
	"net/url"
	"os"
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
	Window time.Duration `env:"CXLINK_FOLLOWUP_WINDOW"`
	// Due is how long an owner has to close a case before it is overdue: one duration,
	// or per owner (ParsePerOwner). A day is the usual call-back promise.
	Due string `env:"CXLINK_FOLLOWUP_DUE"`
	// MaxAge: cases leave the follow-up stream this long after their last change (the
	// followups table keeps them). 90 days outlast any reasonable due time.
	MaxAge time.Duration `env:"CXLINK_FOLLOWUP_MAX_AGE"`

	// Webhooks are where each owner's new cases are posted: owner=URL, separated by
	// commas, `*` for every other owner; `slack:` before a URL posts a Slack message
	// instead of cxlink's JSON. An owner without one gets no delivery (the table and
	// `cxlink followups` still show its cases).
	Webhooks string `env:"CXLINK_FOLLOWUP_WEBHOOKS"`
	// WebhookSecret signs every delivery (HMAC-SHA256); required with webhooks.
	WebhookSecret     string `env:"CXLINK_FOLLOWUP_WEBHOOK_SECRET"`
	WebhookSecretFile string `env:"CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE"`
	// RateLimit bounds the deliveries to each owner: N per period, one value or per
	// owner. Cases beyond it wait their turn; none is dropped. 30 a minute keeps a chat
	// channel readable during an incident.
	RateLimit string `env:"CXLINK_FOLLOWUP_RATE_LIMIT"`
	// RetryMax caps the wait between two attempts of a failing delivery (1s, 2s, 4s, …).
	RetryMax time.Duration `env:"CXLINK_FOLLOWUP_RETRY_MAX"`
	// History is how far back a delivery lists the customer's earlier answers (0: none).
	History time.Duration `env:"CXLINK_FOLLOWUP_HISTORY"`
	// CloseReasons are the reasons a case may be closed with: bounded, so that they can
	// be counted and charted; a free-text note goes with them.
	CloseReasons string `env:"CXLINK_FOLLOWUP_CLOSE_REASONS"`

	// ZendeskURL (https://acme.zendesk.com), with an agent's e-mail and API token, adds
	// each new case of a ticket that came through the Zendesk webhook to that ticket as
	// an internal note; empty: off.
	ZendeskURL       string `env:"CXLINK_FOLLOWUP_ZENDESK_URL"`
	ZendeskEmail     string `env:"CXLINK_FOLLOWUP_ZENDESK_EMAIL"`
	ZendeskTokenFile string `env:"CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE"`
}

// DefaultConfig is the configuration when nothing is set: no rules, so no cases.
func DefaultConfig() Config {
	const day = 24 * time.Hour
	return Config{
		Window:       7 * day,
		Due:          "24h",
		MaxAge:       90 * day,
		RateLimit:    "30/1m",
		RetryMax:     10 * time.Minute,
		History:      90 * day,
		CloseReasons: "resolved,contacted,unreachable,not_actionable,duplicate",
	}
}

// Settings are a Config read into values.
type Settings struct {
	Rules  *Rules
	Owners *drift.Owners
	Window time.Duration
	Due    PerOwner[time.Duration]
	MaxAge time.Duration
	// Webhooks by owner; "*" for the others.
	Webhooks  map[string]Target
	Secret    []byte
	RateLimit PerOwner[Rate]
	RetryMax  time.Duration
	History   time.Duration
	// CloseReasons in the configured order.
	CloseReasons []string
	// Zendesk receives the cases of its tickets as internal notes; nil: none.
	Zendesk *Zendesk
	// Fingerprint names what shapes the partitions' decisions (rules, owners, window,
	// due): a partition snapshot taken under others is not used.
	Fingerprint string
}

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
	s := &Settings{Window: c.Window, MaxAge: c.MaxAge}
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
	if c.MaxAge < 24*time.Hour {
		add("CXLINK_FOLLOWUP_MAX_AGE: %s is shorter than a day", c.MaxAge)
	}
	if s.Webhooks, err = parseTargets(c.Webhooks); err != nil {
		add("CXLINK_FOLLOWUP_WEBHOOKS: %v", err)
	}
	secret := c.WebhookSecret
	if c.WebhookSecretFile != "" {
		b, err := os.ReadFile(c.WebhookSecretFile)
		if err != nil {
			add("CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE: %v", err)
		}
		secret = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(c.Webhooks) != "" && len(secret) < 16 {
		add("CXLINK_FOLLOWUP_WEBHOOK_SECRET: webhooks need a secret of 16 characters or more to sign deliveries")
	}
	s.Secret = []byte(secret)
	if s.RateLimit, err = ParsePerOwner(c.RateLimit, parseRate); err != nil {
		add("CXLINK_FOLLOWUP_RATE_LIMIT: %v", err)
	}
	if c.RetryMax < time.Second {
		add("CXLINK_FOLLOWUP_RETRY_MAX: %s is shorter than a second", c.RetryMax)
	}
	if c.History < 0 {
		add("CXLINK_FOLLOWUP_HISTORY: %s is negative", c.History)
	}
	s.RetryMax, s.History = c.RetryMax, c.History
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
	if c.ZendeskURL != "" {
		z := &Zendesk{URL: strings.TrimRight(c.ZendeskURL, "/"), Email: c.ZendeskEmail}
		if u, err := url.Parse(z.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("CXLINK_FOLLOWUP_ZENDESK_URL: %q is not an http(s) URL like https://acme.zendesk.com", c.ZendeskURL)
		}
		if !strings.Contains(c.ZendeskEmail, "@") {
			add("CXLINK_FOLLOWUP_ZENDESK_EMAIL: %q: want the e-mail of the agent whose API token it is", c.ZendeskEmail)
		}
		if c.ZendeskTokenFile == "" {
			add("CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE: required with CXLINK_FOLLOWUP_ZENDESK_URL")
		} else if b, err := os.ReadFile(c.ZendeskTokenFile); err != nil {
			add("CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE: %v", err)
		} else if z.Token = strings.TrimSpace(string(b)); z.Token == "" {
			add("CXLINK_FOLLOWUP_ZENDESK_TOKEN_FILE: %s is empty", c.ZendeskTokenFile)
		}
		s.Zendesk = z
	} else if c.ZendeskEmail != "" || c.ZendeskTokenFile != "" {
		add("CXLINK_FOLLOWUP_ZENDESK_URL: required with CXLINK_FOLLOWUP_ZENDESK_EMAIL and _TOKEN_FILE")
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

var reasonName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

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

// Rate is N deliveries per Per.
type Rate struct {
	N   int
	Per time.Duration
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

// Target is where an owner's cases are posted.
type Target struct {
	URL   string
	Slack bool // a Slack-compatible message instead of cxlink's JSON
}

// Target returns the owner's webhook, if any.
func (s *Settings) Target(owner string) (Target, bool) {
	if t, ok := s.Webhooks[owner]; ok {
		return t, true
	}
	t, ok := s.Webhooks["*"]
	return t, ok
}

// parseTargets reads owner=URL or owner=slack:URL, separated by commas.
func parseTargets(s string) (map[string]Target, error) {
	out := map[string]Target{}
	var errs []error
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		owner, raw, ok := strings.Cut(part, "=")
		owner, raw = strings.TrimSpace(owner), strings.TrimSpace(raw)
		if !ok || (owner != "*" && !ownerToken.MatchString(owner)) {
			errs = append(errs, fmt.Errorf("%q: want owner=https://… or owner=slack:https://…", redactTarget(part)))
			continue
		}
		t := Target{URL: raw}
		if rest, ok := strings.CutPrefix(raw, "slack:"); ok {
			t = Target{URL: rest, Slack: true}
		}
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: not an http(s) URL", owner))
			continue
		}
		if _, dup := out[owner]; dup {
			errs = append(errs, fmt.Errorf("%s is given twice", owner))
			continue
		}
		out[owner] = t
	}
	return out, errors.Join(errs...)
}

// redactTarget keeps a webhook URL, which often holds a token, out of error messages.
func redactTarget(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i] + "://…"
	}
	return s
}

// parseDue reads a positive duration; "d" counts days.
func parseDue(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 4h or 2d", s)
	}
	return d, nil
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
