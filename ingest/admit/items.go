package admit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// confirmTimeout bounds the confirmation of label values after publishing: the events
// are stored by then, and an unconfirmed value only lapses (ingest/labels).
const confirmTimeout = 5 * time.Second

// admit takes the decoded items of a request from id through every step after decoding,
// sets each item's outcome and decides the answer's status.
func (a *Admission) admit(ctx context.Context, id Identity, items []Item) *Answer {
	ans := &Answer{Items: items, Identity: id}
	v := event.Validator{Now: a.opts.Now, MaxFuture: a.cfg.MaxFuture}
	var cand []*Item // on their way to JetStream, in body order
	for i := range items {
		it := &items[i]
		switch {
		case it.Ignored:
			it.Outcome = Ignored
			continue
		case len(it.Errors) > 0 || it.Event == nil:
			reject(it, it.Errors)
			continue
		}
		if !it.Validated {
			if errs := v.Validate(it.Event); len(errs) > 0 {
				reject(it, errs)
				continue
			}
		}
		if fe := check(id, it.Event); fe != nil {
			reject(it, event.Errors{*fe})
			continue
		}
		if a.opts.Prepare != nil {
			if fe := a.opts.Prepare(it.Event); fe != nil {
				reject(it, event.Errors{*fe})
				continue
			}
		}
		cand = append(cand, it)
	}
	a.guard(ctx, a.pin(ctx, cand), func(guarded []*Item) []bool { return a.publish(ctx, guarded) })

	for i := range items {
		switch items[i].Outcome {
		case Accepted:
			ans.Accepted++
		case Duplicate:
			ans.Duplicates++
		case Rejected:
			ans.Rejected++
		case Failed:
			ans.Failed++
		case Ignored:
			ans.Ignored++
		}
	}
	switch {
	case ans.Failed > 0:
		ans.Code, ans.RetryAfter = http.StatusServiceUnavailable, RetryAfter
		var first error
		for i := range items {
			if items[i].Outcome == Failed {
				if first == nil {
					first = items[i].Err
				}
				if errors.Is(items[i].Err, stream.ErrFull) {
					ans.RetryAfter = RetryAfterFull
				}
			}
		}
		a.logger.Warn("events not stored", "source", id.Source, "failed", ans.Failed, "items", len(items), "error", first)
	case ans.Accepted+ans.Duplicates > 0:
		ans.Code = http.StatusAccepted
	case ans.Rejected > 0:
		ans.Code = http.StatusBadRequest
	default:
		ans.Code = http.StatusOK
	}
	if ans.Rejected > 0 {
		a.logger.Debug("events rejected", "source", id.Source, "rejected", ans.Rejected, "items", len(items))
	}
	return ans
}

func reject(it *Item, errs event.Errors) {
	it.Outcome, it.Errors = Rejected, errs
}

func fail(it *Item, err error) {
	it.Outcome, it.Err = Failed, err
	it.Errors = event.Errors{{Field: "(event)", Message: "not stored, send it again: " + err.Error()}}
}

// check gives the event its sender's source, refuses one that names another, and
// applies the credential's scope.
func check(id Identity, e *event.Event) *event.FieldError {
	if id.Source != "" {
		switch e.Source {
		case "":
			e.Source = id.Source
		case id.Source:
		default:
			return &event.FieldError{Field: "source", Message: fmt.Sprintf("is %q, but the request's credentials are those of %q", e.Source, id.Source)}
		}
	}
	if id.Scope != nil {
		return id.Scope.Check(id.Source, e)
	}
	return nil
}

// pin gives the items that ask for it the id and time of their entity's pinned state,
// and returns the items still on their way.
func (a *Admission) pin(ctx context.Context, cand []*Item) []*Item {
	out := cand[:0]
	for _, it := range cand {
		if it.Pin == nil {
			out = append(out, it)
			continue
		}
		e := it.Event
		p, err := a.pins.Resolve(ctx, it.Pin.Key, it.Pin.State, e.OccurredAt)
		if err != nil {
			fail(it, err)
			continue
		}
		e.OccurredAt, e.ID = p.At, e.ID+p.IDSuffix()
		if len(e.ID) > event.MaxIDLength {
			reject(it, event.Errors{{Field: "id", Message: fmt.Sprintf("is %d bytes long with its state's time; at most %d", len(e.ID), event.MaxIDLength)}})
			continue
		}
		out = append(out, it)
	}
	return out
}

// guard reserves the label values of the items, publishes those within the bounds
// (publish says which were stored), and confirms the values of the stored ones.
func (a *Admission) guard(ctx context.Context, cand []*Item, publish func([]*Item) []bool) {
	if len(cand) == 0 {
		return
	}
	events := make([]*event.Event, len(cand))
	for i, it := range cand {
		events[i] = it.Event
	}
	errs, res, err := a.labels.Reserve(ctx, events)
	if err != nil {
		for _, it := range cand {
			fail(it, err)
		}
		return
	}
	var out []*Item
	var index []int // cand index of out[k]
	for i, it := range cand {
		if len(errs[i]) > 0 {
			reject(it, errs[i])
			continue
		}
		out = append(out, it)
		index = append(index, i)
	}
	stored := make([]bool, len(cand))
	for k, ok := range publish(out) {
		stored[index[k]] = ok
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
	defer cancel()
	if err := res.Confirm(cctx, stored); err != nil {
		a.logger.Warn("label values not confirmed; they count until their reservation lapses", "error", err)
	}
}

// publish stores the items' events and sets their outcomes; it reports which are
// stored (accepted or duplicate).
func (a *Admission) publish(ctx context.Context, items []*Item) []bool {
	stored := make([]bool, len(items))
	if len(items) == 0 {
		return stored
	}
	events := make([]event.Event, len(items))
	for i, it := range items {
		events[i] = *it.Event
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.PublishTimeout)
	results := a.opts.Publisher.Publish(pctx, events)
	cancel()
	if len(results) != len(events) {
		// Nothing can be said about any event: report all as failed, to be resent.
		err := fmt.Errorf("publisher returned %d results for %d events", len(results), len(events))
		a.logger.Error("publish", "error", err)
		results = make([]stream.Result, len(events))
		for i := range results {
			results[i].Err = err
		}
	}
	for i, res := range results {
		it := items[i]
		switch {
		case res.Err != nil:
			fail(it, res.Err)
		case res.Duplicate:
			it.Outcome, stored[i] = Duplicate, true
		default:
			it.Outcome, stored[i] = Accepted, true
		}
	}
	return stored
}
