package followup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cxlink/cxlink/ingest/event"
)

// Rules say which answers open a case: any one rule that matches opens it.
type Rules struct {
	rules []rule
}

// rule is conditions that must all hold.
type rule struct {
	text   string
	survey event.Survey // "" for any survey
	// at most: the answer's standard score is ≤ max (or < max when strict).
	max      float64
	strict   bool
	hasScore bool
	words    []string // lower case; one of them in the comment
}

// ParseRules reads rules separated by commas or newlines ('#' starts a comment line).
// A rule is one or more conditions joined by '&', all of which must hold:
//
//	ces<=2            a CES answer of 2 or less on the standard 1–7 scale
//	csat<=2           CSAT on 1–5; nps<=6 NPS on 0–10 (a detractor); < works too
//	comment~cancel|lawyer   the comment holds one of these words (any case)
//
// e.g. "ces<=2, csat<=2, nps<=6, csat<=3&comment~cancel|lawyer". Scores are compared on
// the survey's standard scale, whatever scale the answer was given on. A rule without a
// score condition applies to every survey. Every problem is reported, naming the rule.
func ParseRules(s string) (*Rules, error) {
	out := &Rules{}
	var errs []error
	seen := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, part := range strings.Split(line, ",") {
			text := strings.Join(strings.Fields(part), "")
			if text == "" {
				continue
			}
			r, err := parseRule(text)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %q: %w", text, err))
				continue
			}
			if seen[r.text] {
				errs = append(errs, fmt.Errorf("rule %q is given twice", text))
				continue
			}
			seen[r.text] = true
			out.rules = append(out.rules, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func parseRule(text string) (rule, error) {
	r := rule{text: text}
	for _, cond := range strings.Split(text, "&") {
		switch {
		case cond == "":
			return r, errors.New("an empty condition: want e.g. ces<=2&comment~cancel")
		case strings.HasPrefix(cond, "comment~"):
			if r.words != nil {
				return r, errors.New("two comment conditions: list the words in one, comment~a|b")
			}
			for _, w := range strings.Split(strings.TrimPrefix(cond, "comment~"), "|") {
				if w == "" {
					return r, errors.New("comment~ needs words separated by |, e.g. comment~cancel|refund")
				}
				r.words = append(r.words, strings.ToLower(w))
			}
		default:
			if r.hasScore {
				return r, errors.New("two score conditions: a rule judges one survey")
			}
			op, i := "<=", strings.Index(cond, "<=")
			if i < 0 {
				op, i = "<", strings.Index(cond, "<")
			}
			if i < 0 {
				return r, fmt.Errorf("condition %q: want <survey><=<score> (e.g. ces<=2) or comment~<word>|<word>", cond)
			}
			kind := event.Survey(cond[:i])
			std, known := scaleOf(kind)
			if !known {
				return r, fmt.Errorf("condition %q: survey %q is not ces, csat or nps", cond, kind)
			}
			v, err := strconv.ParseFloat(cond[i+len(op):], 64)
			if err != nil || !std.Contains(v) {
				return r, fmt.Errorf("condition %q: want a score on %s's standard scale %g–%g", cond, kind, std.Min, std.Max)
			}
			r.survey, r.max, r.strict, r.hasScore = kind, v, op == "<", true
		}
	}
	return r, nil
}

func scaleOf(s event.Survey) (event.Scale, bool) {
	for _, k := range event.Surveys {
		if k == s {
			return event.StandardScale(s), true
		}
	}
	return event.Scale{}, false
}

// Empty reports whether there is no rule: no answer opens a case.
func (r *Rules) Empty() bool { return r == nil || len(r.rules) == 0 }

// Match returns the first rule that an answer of survey kind with standardScore and
// comment matches.
func (r *Rules) Match(survey string, standardScore float64, comment string) (string, bool) {
	if r == nil {
		return "", false
	}
	lower := ""
	for _, x := range r.rules {
		if x.hasScore {
			if string(x.survey) != survey || standardScore > x.max || x.strict && standardScore == x.max {
				continue
			}
		}
		if x.words != nil {
			if lower == "" {
				lower = strings.ToLower(comment)
			}
			if !containsAny(lower, x.words) {
				continue
			}
		}
		return x.text, true
	}
	return "", false
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// String is the rules as they are read.
func (r *Rules) String() string {
	var out []string
	for _, x := range r.rules {
		out = append(out, x.text)
	}
	return strings.Join(out, ",")
}
