package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// Pacing of the live part and of retries.
const (
	// tick is how often the live part looks at the clock for due events.
	tick = 200 * time.Millisecond
	// flushEvery bounds how long a due event waits for its batch to fill.
	flushEvery = time.Second
	// progressEvery is the interval of the progress log line.
	progressEvery = 5 * time.Second
	// Retries without Retry-After back off exponentially from minBackoff to maxBackoff;
	// a Retry-After longer than maxRetryAfter is cut to it.
	minBackoff    = 250 * time.Millisecond
	maxBackoff    = 30 * time.Second
	maxRetryAfter = 5 * time.Minute
	// maxResponse is the most of a response body read.
	maxResponse = 1 << 20
)

// Stats counts what a run sent and what the API answered.
type Stats struct {
	// Seed is the seed the run used: replay it with Config.Seed.
	Seed int64
	// Batches and Events are the POSTs and events the API answered, once each however
	// often they were retried; Tickets, Surveys and Pulses split Events by type.
	Batches, Events          int64
	Tickets, Surveys, Pulses int64
	// Accepted, Duplicates and Rejected are the API's counts.
	Accepted, Duplicates, Rejected int64
	// Retries counts POSTs sent again after 429, 5xx or a transport error.
	Retries int64
}

// Run simulates the contact centre of cfg and posts its events to cfg.Target until
// cfg.Duration has passed on cfg.Now (after the History part) or ctx is done. A batch the
// API refuses with 429 or 503 is sent again after Retry-After, and one that fails with
// another 5xx or a transport error after an exponential back-off: the event ids make the
// retry idempotent. It returns an error only for a configuration or a response it cannot
// go on after (e.g. 404: wrong target); ctx being done ends the run normally. It logs
// to logger (nil: slog.Default()) as given: the caller names the component.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) (Stats, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	live := cfg.Now()
	if cfg.Seed == 0 {
		cfg.Seed = live.UnixNano()
	}
	if err := cfg.Validate(); err != nil {
		return Stats{}, fmt.Errorf("simulator config: %w", err)
	}
	gen, err := NewGenerator(cfg, live)
	if err != nil {
		return Stats{}, fmt.Errorf("simulator config: %w", err)
	}
	r := &runner{
		cfg: cfg, gen: gen, log: logger,
		url:   strings.TrimRight(cfg.Target, "/") + "/v1/events",
		stats: Stats{Seed: cfg.Seed},
		phase: "live", lastLog: live,
	}
	logger.Info("simulating", "target", r.url, "seed", cfg.Seed, "rate", cfg.Rate,
		"contacts_per_second", round2(gen.ContactsPerSecond()), "teams", cfg.Teams,
		"agents_per_team", cfg.AgentsPerTeam, "pulse_every", cfg.PulseEvery,
		"history", cfg.History, "duration", cfg.Duration, "drift", cfg.Drift.String())
	err = r.run(ctx, live)
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		err = nil // the caller stopped the run: a normal end
	}
	s := r.stats
	logger.Info("simulation ended", "events", s.Events, "tickets", s.Tickets, "surveys", s.Surveys,
		"pulses", s.Pulses, "accepted", s.Accepted, "duplicates", s.Duplicates,
		"rejected", s.Rejected, "retries", s.Retries, "seed", s.Seed)
	return s, err
}

type runner struct {
	cfg   Config
	gen   *Generator
	log   *slog.Logger
	url   string
	stats Stats

	phase      string
	lastLog    time.Time
	lastEvents int64
	lastAt     time.Time // occurred_at of the last event sent
}

func (r *runner) run(ctx context.Context, live time.Time) error {
	if r.cfg.History > 0 {
		// The past goes out as fast as the API takes it.
		r.phase = "history"
		for {
			evs := r.gen.Next(live, r.cfg.BatchSize)
			if len(evs) == 0 {
				break
			}
			if err := r.post(ctx, evs); err != nil {
				return err
			}
			r.progress(r.cfg.Now(), false)
		}
		r.progress(r.cfg.Now(), true)
		r.phase = "live"
	}

	var end time.Time
	if r.cfg.Duration > 0 {
		end = live.Add(r.cfg.Duration)
	}
	batch := make([]event.Event, 0, r.cfg.BatchSize)
	lastFlush := live
	for {
		now := r.cfg.Now()
		final := !end.IsZero() && !now.Before(end)
		if final {
			now = end
		}
		// Take the due events a batch at a time, so that a run that fell behind holds
		// at most one batch in memory.
		for {
			batch = append(batch, r.gen.Next(now, r.cfg.BatchSize-len(batch))...)
			if len(batch) < r.cfg.BatchSize {
				break
			}
			if err := r.post(ctx, batch); err != nil {
				return err
			}
			batch, lastFlush = batch[:0], now
		}
		if len(batch) > 0 && (final || now.Sub(lastFlush) >= flushEvery) {
			if err := r.post(ctx, batch); err != nil {
				return err
			}
			batch, lastFlush = batch[:0], now
		}
		r.progress(now, false)
		if final {
			return nil
		}
		if err := r.cfg.sleep(ctx, tick); err != nil {
			return err
		}
	}
}

// progress logs a summary line every progressEvery, or now if force is set.
func (r *runner) progress(now time.Time, force bool) {
	dt := now.Sub(r.lastLog)
	if !force && dt < progressEvery {
		return
	}
	s := r.stats
	var rate float64
	if dt > 0 {
		rate = float64(s.Events-r.lastEvents) / dt.Seconds()
	}
	r.log.Info("progress", "phase", r.phase, "at", r.lastAt.Format(time.RFC3339),
		"events", s.Events, "events_per_second", round2(rate), "accepted", s.Accepted,
		"duplicates", s.Duplicates, "rejected", s.Rejected, "retries", s.Retries)
	r.lastLog, r.lastEvents = now, s.Events
}

// post sends one batch as NDJSON until the API has answered it.
func (r *runner) post(ctx context.Context, evs []event.Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one object per line: NDJSON
	enc.SetEscapeHTML(false)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return fmt.Errorf("encode event %s: %w", evs[i].ID, err)
		}
	}
	for attempt := 0; ; attempt++ {
		c, wait, err := r.send(ctx, buf.Bytes(), attempt)
		if err != nil {
			return err
		}
		if wait == 0 {
			r.record(evs, c)
			return nil
		}
		r.stats.Retries++
		if err := r.cfg.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// counts is the part of the API's answer the simulator reads.
type counts struct {
	Accepted   *int64 `json:"accepted"`
	Duplicates *int64 `json:"duplicates"`
	Rejected   *int64 `json:"rejected"`
}

func (c counts) ok() bool { return c.Accepted != nil || c.Duplicates != nil || c.Rejected != nil }

// send posts the batch once. A non-zero wait asks for the batch to be sent again after it.
func (r *runner) send(ctx context.Context, body []byte, attempt int) (c counts, wait time.Duration, err error) {
	backoff := min(minBackoff<<min(attempt, 10), maxBackoff)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return c, 0, fmt.Errorf("post events: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "cxlink-simulator")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return c, 0, ctx.Err()
		}
		r.log.Warn("post failed, retrying", "error", err, "attempt", attempt+1, "wait", backoff)
		return c, backoff, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		// The API may have taken the batch: the retry's events count as duplicates.
		r.log.Warn("reading the response failed, retrying", "error", err, "attempt", attempt+1, "wait", backoff)
		return c, backoff, nil
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		wait := retryAfter(resp.Header.Get("Retry-After"), r.cfg.Now())
		if wait <= 0 {
			wait = backoff
		}
		r.log.Info("ingest asks to wait, retrying", "status", code, "attempt", attempt+1, "wait", wait)
		return c, wait, nil
	case code >= 500:
		r.log.Warn("ingest failed, retrying", "status", code, "body", snippet(data), "attempt", attempt+1, "wait", backoff)
		return c, backoff, nil
	}
	if json.Unmarshal(data, &c) != nil || !c.ok() {
		// Not cxlink's answer (wrong target or path): retrying would not help.
		return c, 0, fmt.Errorf("post events to %s: %s: unexpected response %q", r.url, resp.Status, snippet(data))
	}
	if val(c.Rejected) > 0 {
		r.log.Warn("ingest rejected events", "status", code, "rejected", val(c.Rejected), "response", snippet(data))
	}
	return c, 0, nil
}

// record counts an answered batch.
func (r *runner) record(evs []event.Event, c counts) {
	s := &r.stats
	s.Batches++
	s.Events += int64(len(evs))
	for i := range evs {
		switch evs[i].Type {
		case event.TypeTicket:
			s.Tickets++
		case event.TypeSurveyResponse:
			s.Surveys++
		case event.TypeEmployeePulse:
			s.Pulses++
		}
	}
	r.lastAt = evs[len(evs)-1].OccurredAt
	s.Accepted += val(c.Accepted)
	s.Duplicates += val(c.Duplicates)
	s.Rejected += val(c.Rejected)
	if n := val(c.Accepted) + val(c.Duplicates) + val(c.Rejected); n != int64(len(evs)) {
		r.log.Warn("ingest counted a different number of events than were sent", "sent", len(evs), "counted", n)
	}
}

// retryAfter reads a Retry-After header: whole seconds or an HTTP date. It returns 0
// when the header is absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(h); err == nil {
		d = time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

func snippet(b []byte) string {
	const n = 512
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func val(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
