package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"
)

const deadLettersUsage = `Usage: cxlink deadletters <command>

  list [--from SEQ] [--limit N]  the letters, oldest first: why each event could not be processed
  show SEQ                       one letter in full, with the event as it was received
  replay SEQ… | --all            publish the events again where they came from (after fixing the cause)
  discard SEQ…                   remove letters for good

With the embedded JetStream (no NATS_URL), stop ` + "`cxlink run`" + ` first, or start it with
CXLINK_EMBEDDED_NATS_LISTEN and point NATS_URL here at that address.
`

// deadLettersCommand is `cxlink deadletters`.
func (r *roles) deadLettersCommand(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(r.opts.Stdout, deadLettersUsage)
		if len(args) == 0 {
			return errors.New("deadletters: no command given")
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("deadletters "+cmd, flag.ContinueOnError)
	fs.SetOutput(r.opts.Stderr)
	from := fs.Uint64("from", 0, "first sequence to list")
	limit := fs.Int("limit", 100, "most letters to list")
	all := fs.Bool("all", false, "replay every letter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var seqs []uint64
	for _, a := range fs.Args() {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("deadletters %s: %q is not a letter's sequence number (see `cxlink deadletters list`)", cmd, a)
		}
		seqs = append(seqs, n)
	}
	switch cmd {
	case "list":
	case "show", "discard":
		if len(seqs) == 0 {
			return fmt.Errorf("deadletters %s: give the sequence number of a letter", cmd)
		}
	case "replay":
		if len(seqs) == 0 && !*all {
			return errors.New("deadletters replay: give sequence numbers, or --all")
		}
	default:
		return fmt.Errorf("deadletters: unknown command %q\n\n%s", cmd, deadLettersUsage)
	}

	_, defs, _, closeJS, err := r.jetStream(ctx, "deadletters", true)
	if err != nil {
		return err
	}
	defer closeJS()
	q := defs.deadLetters
	out := r.opts.Stdout
	switch cmd {
	case "list":
		letters, err := q.List(ctx, *from, *limit)
		if err != nil {
			return err
		}
		total, err := q.Count(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tFAILED AT\tFROM\tEVENT ID\tREASON")
		for _, l := range letters {
			fmt.Fprintf(tw, "%d\t%s\t%s #%d\t%s\t%s\n", l.Seq, l.FailedAt.Format(time.RFC3339), l.Subject, l.StreamSeq, l.MsgID, l.Reason)
		}
		tw.Flush()
		fmt.Fprintf(out, "%d of %d letters\n", len(letters), total)
	case "show":
		for _, seq := range seqs {
			l, err := q.Get(ctx, seq)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "letter %d, dead-lettered %s\n  reason:   %s\n  from:     %s %s seq %d, received %s\n  event id: %s\n",
				l.Seq, l.FailedAt.Format(time.RFC3339Nano), l.Reason, l.Stream, l.Subject, l.StreamSeq,
				l.ReceivedAt.Format(time.RFC3339Nano), l.MsgID)
			var pretty bytes.Buffer
			if json.Indent(&pretty, l.Data, "  ", "  ") == nil {
				fmt.Fprintf(out, "  data:\n  %s\n", pretty.String())
			} else {
				fmt.Fprintf(out, "  data (not JSON): %q\n", l.Data)
			}
		}
	case "discard":
		for _, seq := range seqs {
			if err := q.Discard(ctx, seq); err != nil {
				return err
			}
			fmt.Fprintf(out, "letter %d discarded\n", seq)
		}
	case "replay":
		if *all {
			seqs = nil
			for next := uint64(0); ; {
				letters, err := q.List(ctx, next, 1000)
				if err != nil {
					return err
				}
				if len(letters) == 0 {
					break
				}
				for _, l := range letters {
					seqs = append(seqs, l.Seq)
				}
				next = letters[len(letters)-1].Seq + 1
			}
		}
		window := r.cfg.Process.DuplicateWindow(r.cfg.HTTP.MaxFuture)
		kept := 0
		for _, seq := range seqs {
			res, err := q.Replay(ctx, seq)
			if err != nil {
				return err
			}
			if res.Duplicate {
				kept++
				fmt.Fprintf(out, "letter %d kept: the original is still inside the events stream's duplicate window (%s); replay it later\n", seq, window)
				continue
			}
			fmt.Fprintf(out, "letter %d replayed: events stream seq %d\n", seq, res.Seq)
		}
		fmt.Fprintf(out, "%d replayed, %d kept\n", len(seqs)-kept, kept)
	}
	return nil
}
