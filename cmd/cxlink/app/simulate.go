package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/cxlink/cxlink/ingest/simulator"
)

type simFlags struct {
	cfg   simulator.Config
	drift string
}

// simulatorFlags declares the simulator's flags on fs.
func simulatorFlags(fs *flag.FlagSet) *simFlags {
	d := simulator.DefaultConfig
	f := &simFlags{}
	fs.Float64Var(&f.cfg.Rate, "rate", d.Rate, "customer events (tickets and surveys) per second")
	fs.IntVar(&f.cfg.Teams, "teams", d.Teams, "teams in the contact centre")
	fs.IntVar(&f.cfg.AgentsPerTeam, "agents", d.AgentsPerTeam, "agents per team")
	fs.Int64Var(&f.cfg.Seed, "seed", 0, "random seed; 0 picks one from the clock (a seed repeats the same event ids)")
	fs.DurationVar(&f.cfg.PulseEvery, "pulse-every", d.PulseEvery, "employee pulse period")
	fs.DurationVar(&f.cfg.History, "history", 0, "simulate this much past activity first, as fast as possible")
	fs.DurationVar(&f.cfg.Duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.IntVar(&f.cfg.BatchSize, "batch", d.BatchSize, "events per POST")
	fs.StringVar(&f.drift, "drift", "", `make a category or team worse, e.g. "category=plan_correction,after=2m,for=10m,ces=-2", or a team's engagement: "team=bravo,after=5m,for=30m,engagement=-1.5"`)
	return f
}

func (f *simFlags) config() (simulator.Config, error) {
	cfg := f.cfg
	if f.drift != "" {
		d, err := simulator.ParseDrift(f.drift)
		if err != nil {
			return cfg, fmt.Errorf("--drift: %w", err)
		}
		cfg.Drift = d
	}
	return cfg, cfg.Validate()
}

func runSimulate(ctx context.Context, args []string, opts Options) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(opts.Stderr)
	target := fs.String("target", simulator.DefaultConfig.Target, "base URL of the ingest API")
	f := simulatorFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Target = *target
	logger := slog.New(slog.NewTextHandler(opts.Stderr, nil)).With("component", "simulator")
	stats, err := simulator.Run(ctx, cfg, logger)
	fmt.Fprintf(opts.Stdout, "sent %d events in %d requests (seed %d): %d accepted, %d duplicates, %d rejected, %d retries\n",
		stats.Events, stats.Batches, stats.Seed, stats.Accepted, stats.Duplicates, stats.Rejected, stats.Retries)
	return err
}
