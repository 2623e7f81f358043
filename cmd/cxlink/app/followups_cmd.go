package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// followUpsCommand lists the follow-up cases that are not closed, overdue ones first,
// from ClickHouse. It only reads.
func (r *roles) followUpsCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("followups", flag.ContinueOnError)
	fs.SetOutput(r.opts.Stderr)
	owner := fs.String("owner", "", "only this owner's cases")
	overdue := fs.Bool("overdue", false, "only the cases past their due time")
	limit := fs.Int("limit", 200, "at most this many cases")
	format := fs.String("format", "text", "text, or json for scripts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format: %q is not text or json", *format)
	}
	if *limit < 1 {
		return fmt.Errorf("--limit: %d is not positive", *limit)
	}
	c, err := clickhouse.Open(ctx, r.cfg.ClickHouse, r.logger, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	cases, err := c.OpenFollowUps(ctx, *owner, *limit)
	if err != nil {
		return err
	}
	now := time.Now()
	// The header counts every case, not only those listed.
	counts, err := c.FollowUpCounts(ctx, now)
	if err != nil {
		return err
	}
	var open, late uint64
	for _, oc := range counts {
		if *owner == "" || oc.Owner == *owner {
			open, late = open+oc.Open, late+oc.Overdue
		}
	}
	if *overdue {
		kept := cases[:0]
		for _, f := range cases {
			if f.Overdue(now) {
				kept = append(kept, f)
			}
		}
		cases = kept
	}
	if *format == "json" {
		enc := json.NewEncoder(r.opts.Stdout)
		enc.SetIndent("", "  ")
		if cases == nil {
			cases = []records.FollowUp{}
		}
		return enc.Encode(cases)
	}
	writeFollowUpsText(r.opts.Stdout, cases, open, late, now)
	return nil
}

func writeFollowUpsText(out io.Writer, cases []records.FollowUp, open, overdue uint64, now time.Time) {
	fmt.Fprintf(out, "Follow-up cases not closed: %d, overdue: %d", open, overdue)
	if uint64(len(cases)) < open {
		fmt.Fprintf(out, " (%d listed, due first)", len(cases))
	}
	fmt.Fprintln(out)
	if len(cases) == 0 {
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tOWNER\tSTATE\tDUE\tANSWER\tCUSTOMER\tTICKET\tCATEGORY\tCOMMENT")
	for _, f := range cases {
		due := "in " + roughly(f.DueAt.Sub(now))
		if f.Overdue(now) {
			due = "OVERDUE " + roughly(now.Sub(f.DueAt))
		}
		comment := strings.Join(strings.Fields(f.Comment), " ")
		if len(comment) > 40 {
			comment = comment[:40] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %g\t%s\t%s\t%s\t%s\n", f.ID, f.Owner, f.State, due,
			strings.ToUpper(f.Survey), f.Score, dash(f.CustomerID), dash(f.TicketID), dash(f.Category), comment)
	}
	tw.Flush()
}

// roughly rounds d to seconds under a minute, to minutes above.
func roughly(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
