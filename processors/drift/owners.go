package drift

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Owners maps series to the department or team that owns them: the `owner` label of the
// drift metrics and alerts, by which Alertmanager routes. It is read from CXLINK_OWNERS.
type Owners struct {
	text     string               // as configured
	exact    map[[2]string]string // (dimension, key) → owner
	byDim    map[string]string    // dimension → owner of its other keys
	fallback string
}

var (
	ownerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,39}$`)
	// ownerDimensions are the dimensions drift is computed for.
	ownerDimensions = []string{"overall", "category", "channel", "team"}
)

// ParseOwners reads rules separated by commas or newlines, each `dimension:key=owner`,
// `dimension:*=owner` (the dimension's other keys) or `*=owner` (everything else), e.g.
//
//	category:plan_correction=product, category:login_problem=web, team:*=support, *=cx
//
// Dimensions are overall, category, channel and team; an owner is 1–40 characters of
// a–z, 0–9, '_', '.', '-' (it becomes a label value and a routing key). A more specific
// rule wins: an exact key, then the dimension's `*`, then `*`. The `*` rule is required,
// so that every alert has an owner. Every problem is reported, naming the rule.
func ParseOwners(s string) (*Owners, error) {
	o := &Owners{text: s, exact: map[[2]string]string{}, byDim: map[string]string{}}
	var errs []error
	bad := func(rule, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rule %q: %s", rule, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		for _, part := range strings.Split(line, ",") {
			rule := strings.TrimSpace(part)
			if rule == "" || strings.HasPrefix(rule, "#") {
				continue
			}
			sel, owner, ok := strings.Cut(rule, "=")
			sel, owner = strings.TrimSpace(sel), strings.TrimSpace(owner)
			if !ok {
				bad(rule, "want dimension:key=owner, dimension:*=owner or *=owner")
				continue
			}
			if !ownerName.MatchString(owner) {
				bad(rule, "owner %q: want 1–40 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit", owner)
				continue
			}
			if seen[sel] {
				bad(rule, "%s is given an owner twice", sel)
				continue
			}
			seen[sel] = true
			if sel == "*" {
				o.fallback = owner
				continue
			}
			dim, key, ok := strings.Cut(sel, ":")
			dim, key = strings.TrimSpace(dim), strings.TrimSpace(key)
			switch {
			case !ok || key == "":
				bad(rule, "want dimension:key=owner, dimension:*=owner or *=owner")
			case !slices.Contains(ownerDimensions, dim):
				bad(rule, "dimension %q: want one of %s", dim, strings.Join(ownerDimensions, ", "))
			case key == "*":
				o.byDim[dim] = owner
			default:
				o.exact[[2]string{dim, key}] = owner
			}
		}
	}
	if o.fallback == "" {
		errs = append(errs, errors.New("no default owner: add a rule *=owner (e.g. *=support)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// UnmarshalText reads the rules with ParseOwners.
func (o *Owners) UnmarshalText(b []byte) error {
	p, err := ParseOwners(string(b))
	if err != nil {
		return err
	}
	*o = *p
	return nil
}

// MarshalText gives the rules as configured.
func (o Owners) MarshalText() ([]byte, error) { return []byte(o.text), nil }

// String gives the rules as configured.
func (o Owners) String() string { return o.text }

// MustParseOwners is ParseOwners for rules known to be valid (defaults, tests); it panics
// on an error.
func MustParseOwners(s string) Owners {
	o, err := ParseOwners(s)
	if err != nil {
		panic(err)
	}
	return *o
}

// Owner returns the owner of a series.
func (o *Owners) Owner(dimension, key string) string {
	if v, ok := o.exact[[2]string{dimension, key}]; ok {
		return v
	}
	if v, ok := o.byDim[dimension]; ok {
		return v
	}
	return o.fallback
}

// OwnerOf returns the owner of something described by several dimensions, such as one
// answer (its category, channel and team), given as (dimension, key) pairs in order of
// precedence; empty keys are skipped. An exact rule of the first dimension that has one
// wins, then the `*` rule of the first dimension that has one, then `*`.
func (o *Owners) OwnerOf(dims ...[2]string) string {
	for _, d := range dims {
		if v, ok := o.exact[d]; ok && d[1] != "" {
			return v
		}
	}
	for _, d := range dims {
		if v, ok := o.byDim[d[0]]; ok && d[1] != "" {
			return v
		}
	}
	return o.fallback
}
