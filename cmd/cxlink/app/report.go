package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cxlink/cxlink/processors/linkage"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// report prints the current effort-impact ranking and linkage results from ClickHouse.
// It only reads: a database without the tables is an error (run cxlink migrate).
func (r *roles) report(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(r.opts.Stderr)
	format := fs.String("format", "text", "text, or json for scripts")
	scope := fs.String("scope", scopeTeams, "linkage rows to show: teams (between_teams and within_teams, over the span), between_teams, within_teams, or period (the latest single period)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format: %q is not text or json", *format)
	}
	scopes, err := reportScopes(*scope)
	if err != nil {
		return err
	}
	c, err := clickhouse.Open(ctx, r.cfg.ClickHouse, r.logger, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	impact, err := c.LatestEffortImpact(ctx)
	if err != nil {
		return err
	}
	links, computed, err := c.CurrentLinkage(ctx, r.cfg.Pulses.Period.Name, scopes)
	if err != nil {
		return err
	}
	sort.SliceStable(impact, func(i, j int) bool { return windowLess(impact[i].Window, impact[j].Window) })
	if *format == "json" {
		return writeReportJSON(r.opts.Stdout, r.cfg.Pulses.Period.Name, computed, impact, links)
	}
	writeImpactText(r.opts.Stdout, impact, r.cfg.Analytics.ImpactMinResponses)
	fmt.Fprintln(r.opts.Stdout)
	writeLinkageText(r.opts.Stdout, r.cfg.Pulses.Period.Name, computed, links, scopes)
	return nil
}

// scopeTeams is the report's default: the between-team and the within-team results.
const scopeTeams = "teams"

func reportScopes(scope string) ([]string, error) {
	switch scope {
	case scopeTeams:
		return []string{linkage.ScopeBetweenTeams, linkage.ScopeWithinTeams}, nil
	case linkage.ScopeBetweenTeams, linkage.ScopeWithinTeams, linkage.ScopePeriod:
		return []string{scope}, nil
	case "pooled":
		return nil, errors.New("--scope: pooled is no more: it counted every team-period as a new team; between_teams and within_teams replace it (docs/metrics.md)")
	}
	return nil, fmt.Errorf("--scope: %q is not teams, between_teams, within_teams or period", scope)
}

// windowLess orders window names by length ("7d" before "30d").
func windowLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

type reportJSON struct {
	EffortImpact []impactJSON  `json:"effort_impact"`
	Linkage      linkageReport `json:"linkage"`
}

type impactJSON struct {
	Window                string    `json:"window"`
	WindowEnd             time.Time `json:"window_end"`
	Category              string    `json:"category"`
	Rank                  *uint16   `json:"rank"`
	Impact                *float64  `json:"impact"`
	Status                string    `json:"status"`
	Tickets               uint64    `json:"tickets"`
	VolumeShare           float64   `json:"volume_share"`
	HandleShare           *float64  `json:"handle_share"`
	HandleHours           float64   `json:"handle_hours"`
	AvgHandleSeconds      *float64  `json:"avg_handle_seconds"`
	ContactsPerResolution *float64  `json:"contacts_per_resolution"`
	CESResponses          uint64    `json:"ces_responses"`
	CES                   *float64  `json:"ces"`
	CESCI                 []float64 `json:"ces_ci95"`
	PctDifficult          *float64  `json:"pct_difficult"`
	PctDifficultCI        []float64 `json:"pct_difficult_ci95"`
}

type linkageReport struct {
	Period     string        `json:"period"`
	ComputedAt *time.Time    `json:"computed_at"`
	Results    []linkageJSON `json:"results"`
}

type linkageJSON struct {
	Scope          string    `json:"scope"`
	PeriodStart    time.Time `json:"period_start"`
	SpanPeriods    uint16    `json:"span_periods"`
	Lag            uint8     `json:"lag"`
	EmployeeMetric string    `json:"employee_metric"`
	CustomerMetric string    `json:"customer_metric"`
	Teams          uint32    `json:"teams"`
	Pairs          uint32    `json:"pairs"`
	Periods        uint16    `json:"periods"`
	Status         string    `json:"status"`
	DF             *uint32   `json:"df"`
	Pearson        *float64  `json:"pearson_r"`
	CI             []float64 `json:"ci95"`
	P              *float64  `json:"p_value"`
	Spearman       *float64  `json:"spearman_r"`
	MinDetectable  *float64  `json:"min_detectable_r"`
	Reading        string    `json:"reading"`
	// Says is the reading in words, as the text report prints it.
	Says string `json:"says"`
}

func interval(lo, hi *float64) []float64 {
	if lo == nil || hi == nil {
		return nil
	}
	return []float64{*lo, *hi}
}

func writeReportJSON(w io.Writer, period string, computed time.Time, impact []records.EffortImpact, links []records.Linkage) error {
	out := reportJSON{EffortImpact: []impactJSON{}, Linkage: linkageReport{Period: period, Results: []linkageJSON{}}}
	if !computed.IsZero() {
		out.Linkage.ComputedAt = &computed
	}
	for _, r := range impact {
		out.EffortImpact = append(out.EffortImpact, impactJSON{
			Window: r.Window, WindowEnd: r.WindowEnd, Category: r.Category, Rank: r.Rank, Impact: r.Impact,
			Status: r.Status, Tickets: r.Tickets, VolumeShare: r.VolumeShare, HandleShare: r.HandleShare, HandleHours: r.HandleHours,
			AvgHandleSeconds: r.AvgHandleSeconds, ContactsPerResolution: r.ContactsPerResolution,
			CESResponses: r.CESResponses, CES: r.CES, CESCI: interval(r.CESLow, r.CESHigh),
			PctDifficult: r.PctDifficult, PctDifficultCI: interval(r.DifficultLow, r.DifficultHigh),
		})
	}
	for _, l := range links {
		out.Linkage.Results = append(out.Linkage.Results, linkageJSON{
			Scope: l.Scope, PeriodStart: l.PeriodStart, SpanPeriods: l.SpanPeriods, Lag: l.Lag,
			EmployeeMetric: l.EmployeeMetric, CustomerMetric: l.CustomerMetric, Teams: l.Teams, Pairs: l.Pairs,
			Periods: l.Periods, Status: l.Status, DF: l.DF, Pearson: l.Pearson, CI: interval(l.CILow, l.CIHigh), P: l.P,
			Spearman: l.Spearman, MinDetectable: l.MinDetectable, Reading: l.Reading, Says: readingText(l),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeImpactText(w io.Writer, rows []records.EffortImpact, minResponses int) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "Effort impact: nothing computed yet (the process running the analytics stage writes it every CXLINK_ANALYTICS_EVERY).")
		return
	}
	var tw *tabwriter.Writer
	for i, r := range rows {
		if i == 0 || r.Window != rows[i-1].Window {
			if tw != nil {
				tw.Flush()
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "Effort impact by category, %s window ending %s\n", r.Window, r.WindowEnd.Format("2006-01-02 15:04 MST"))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "rank\tcategory\ttickets\tof tickets\tof handle time\thandle/ticket\tcontacts/res.\tCES [95% CI]\t% difficult [95% CI]\timpact")
		}
		rank, score := "-", fmt.Sprintf("n=%d < %d", r.CESResponses, minResponses)
		if r.Rank != nil && r.Impact != nil {
			rank, score = fmt.Sprint(*r.Rank), fmt.Sprintf("%.1f", *r.Impact)
		}
		ces, difficult := "-", "-"
		if r.CES != nil {
			ces = fmt.Sprintf("%.2f", *r.CES) + ciText(r.CESLow, r.CESHigh, "%.2f")
		}
		if r.PctDifficult != nil {
			difficult = fmt.Sprintf("%.1f", *r.PctDifficult) + ciText(r.DifficultLow, r.DifficultHigh, "%.1f")
		}
		handleShare := "-"
		if r.HandleShare != nil {
			handleShare = fmt.Sprintf("%.1f%%", 100**r.HandleShare)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%s\t%s\n", rank, r.Category, r.Tickets, 100*r.VolumeShare,
			handleShare, duration(r.AvgHandleSeconds), number(r.ContactsPerResolution, "%.2f"), ces, difficult, score)
	}
	tw.Flush()
	fmt.Fprintln(w, "impact = 100 × lower 95% bound of the difficult share × √(share of handle time): rare but painful")
	fmt.Fprintln(w, "categories rise, a handful of answers cannot carry one (docs/metrics.md, Effort impact).")
}

func ciText(lo, hi *float64, f string) string {
	if lo == nil || hi == nil {
		return ""
	}
	return fmt.Sprintf(" ["+f+", "+f+"]", *lo, *hi)
}

func number(v *float64, f string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(f, *v)
}

func duration(seconds *float64) string {
	if seconds == nil {
		return "-"
	}
	return (time.Duration(math.Round(*seconds)) * time.Second).String()
}

// linkageQuestion is what each scope answers, in words.
var linkageQuestion = map[string]string{
	linkage.ScopeBetweenTeams: "Between teams: are the teams with higher employee scores the teams whose customers score them higher?\n" +
		"One point per team (its means over the span): n = teams.",
	linkage.ScopeWithinTeams: "Within teams: when a team's employee score moves, do its own customers' scores move with it, lag periods later?\n" +
		"Every team-period, less its team's own level and what moved all teams that period (repeated-measures\n" +
		"correlation): df = pairs − teams − periods.",
	linkage.ScopePeriod: "Single periods: the teams of the latest period of each lag, one point per team: n = teams.",
}

func writeLinkageText(w io.Writer, period string, computed time.Time, links []records.Linkage, scopes []string) {
	if len(links) == 0 {
		fmt.Fprintf(w, "EX–CX linkage (pulse period %s): nothing computed yet.\n", period)
		return
	}
	fmt.Fprintf(w, "EX–CX linkage, pulse period %s, computed %s\n", period, computed.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprint(w, "lag k: employee period t against customer period t+k")
	if links[0].SpanPeriods > 1 {
		fmt.Fprintf(w, ", over the %d periods t ending with the period shown", links[0].SpanPeriods)
	}
	fmt.Fprintln(w, ".")
	// Metric pairs without a single pair at any lag (no eNPS question asked, say) are
	// named once at the end instead of filling the tables.
	withData := map[string]bool{}
	for _, l := range links {
		if l.Pairs > 0 {
			withData[l.EmployeeMetric+" → "+l.CustomerMetric] = true
		}
	}
	var noData []string
	for _, l := range links {
		name := l.EmployeeMetric + " → " + l.CustomerMetric
		if !withData[name] && !slices.Contains(noData, name) {
			noData = append(noData, name)
		}
	}
	for _, scope := range scopes {
		var shown []records.Linkage
		for _, l := range links {
			if l.Scope == scope && withData[l.EmployeeMetric+" → "+l.CustomerMetric] {
				shown = append(shown, l)
			}
		}
		if len(shown) == 0 {
			continue
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, linkageQuestion[scope])
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "employee → customer\tlag\tperiod\tteams\tpairs\tdf\tPearson r\t95% CI\tp\tSpearman\tdetectable\treading")
		for _, l := range shown {
			r, ci, p, rho, df, md := "-", "-", "-", "-", "-", "-"
			if l.Status == linkage.StatusOK && l.Pearson != nil {
				r, ci = fmt.Sprintf("%+.2f", *l.Pearson), fmt.Sprintf("[%+.2f, %+.2f]", *l.CILow, *l.CIHigh)
				p = fmt.Sprintf("%.3f", *l.P)
				if *l.P < 0.001 {
					p = "<0.001"
				}
			}
			if l.Spearman != nil {
				rho = fmt.Sprintf("%+.2f", *l.Spearman)
			}
			if l.DF != nil {
				df = fmt.Sprint(*l.DF)
			}
			if l.MinDetectable != nil {
				md = fmt.Sprintf("|r| ≥ %.2f", *l.MinDetectable)
			}
			fmt.Fprintf(tw, "%s → %s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.EmployeeMetric, l.CustomerMetric, l.Lag,
				l.PeriodStart.Format("01-02 15:04"), l.Teams, l.Pairs, df, r, ci, p, rho, md, readingText(l))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(noData) > 0 {
		fmt.Fprintf(w, "No team-period has both scores yet: %s.\n", strings.Join(noData, ", "))
	}
	fmt.Fprintln(w, "detectable: the smallest correlation this n finds with 80% power (p < 0.05, two-sided): a weaker link")
	fmt.Fprintln(w, "would most likely go unseen. A correlation, not a cause (README: Reading the linkage).")
}

// readingText says in words how far a linkage row can be acted on.
func readingText(l records.Linkage) string {
	reading := l.Reading
	if reading == "" { // a period row written before readings were stored
		reading = linkage.Read(l)
	}
	switch reading {
	case linkage.ReadingTooUncertain:
		return "too uncertain to act on: the CI includes no link"
	case linkage.ReadingUnderpowered:
		return "too uncertain to act on its size: below what this n detects, likely overstated"
	case linkage.ReadingSupported:
		return "a link: act on its CI, not on r"
	}
	switch l.Status {
	case linkage.StatusTooFewTeams:
		return "no result: too few teams"
	case linkage.StatusTooFewPairs:
		return "no result: too few teams seen in two periods or more"
	case linkage.StatusNoVariance:
		return "no result: every team had the same value"
	}
	return "no result: " + strings.ReplaceAll(l.Status, "_", " ")
}
