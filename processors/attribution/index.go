// Package attribution gives surveys the category, team, agent and channel of the ticket
// they rate. Helpdesks often send a rating with nothing but its ticket id, sometimes
// before the ticket's own events: such surveys wait, for a bounded time, for the ticket.
package attribution

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Dims are the dimensions a ticket lends to the surveys about it.
type Dims struct {
	Channel, Category, Team, AgentID string
}

// Merge fills the empty fields of d from o, and reports whether any was filled.
func (d *Dims) Merge(o Dims) bool {
	filled := false
	fill := func(dst *string, src string) {
		if *dst == "" && src != "" {
			*dst, filled = src, true
		}
	}
	fill(&d.Channel, o.Channel)
	fill(&d.Category, o.Category)
	fill(&d.Team, o.Team)
	fill(&d.AgentID, o.AgentID)
	return filled
}

// Complete reports whether every dimension is set.
func (d Dims) Complete() bool {
	return d.Channel != "" && d.Category != "" && d.Team != "" && d.AgentID != ""
}

// Index holds the known tickets and the surveys waiting for theirs, of one partition.
// Every decision depends only on the events' received_at, never on the wall clock, so
// replaying the same messages rebuilds the same index. Not safe for concurrent use.
type Index[S any] struct {
	wait, retention time.Duration
	tickets         map[string]ticket
	pending         map[string][]waiting[S]
	waitingCount    int
	// FIFO queues in received_at order, to expire entries without scanning the maps.
	ticketQueue  []queued
	pendingQueue []queued
}

type ticket struct {
	dims     Dims
	lastSeen time.Time
}

type waiting[S any] struct {
	survey     S
	receivedAt time.Time
}

type queued struct {
	ticketID string
	at       time.Time
}

// NewIndex returns an empty index. A survey waits at most wait for its ticket; a ticket
// is remembered for retention after its last event.
func NewIndex[S any](wait, retention time.Duration) *Index[S] {
	return &Index[S]{
		wait:      wait,
		retention: retention,
		tickets:   make(map[string]ticket),
		pending:   make(map[string][]waiting[S]),
	}
}

// Lookup returns what is known of a ticket.
func (x *Index[S]) Lookup(ticketID string) (Dims, bool) {
	t, ok := x.tickets[ticketID]
	if !ok {
		return Dims{}, false
	}
	return t.dims, true
}

// Wait parks a survey until its ticket arrives or the wait is over.
func (x *Index[S]) Wait(ticketID string, receivedAt time.Time, survey S) {
	x.pending[ticketID] = append(x.pending[ticketID], waiting[S]{survey, receivedAt})
	x.pendingQueue = append(x.pendingQueue, queued{ticketID, receivedAt})
	x.waitingCount++
}

// Ticket records a ticket event (its non-empty dimensions override earlier ones) and
// returns the ticket's dimensions and the surveys that were waiting for it in time.
func (x *Index[S]) Ticket(ticketID string, d Dims, receivedAt time.Time) (Dims, []S) {
	t := x.tickets[ticketID]
	merged := d
	merged.Merge(t.dims)
	t.dims, t.lastSeen = merged, receivedAt
	x.tickets[ticketID] = t
	x.ticketQueue = append(x.ticketQueue, queued{ticketID, receivedAt})

	var released []S
	for _, w := range x.pending[ticketID] {
		if !receivedAt.After(w.receivedAt.Add(x.wait)) {
			released = append(released, w.survey)
		}
	}
	x.waitingCount -= len(x.pending[ticketID])
	delete(x.pending, ticketID)
	return t.dims, released
}

// Expire forgets surveys that waited longer than the wait and tickets older than the
// retention, as of now (a received_at). It returns how many surveys stopped waiting
// without their ticket.
func (x *Index[S]) Expire(now time.Time) (unattributed int) {
	for len(x.pendingQueue) > 0 && now.Sub(x.pendingQueue[0].at) > x.wait {
		q := x.pendingQueue[0]
		x.pendingQueue = x.pendingQueue[1:]
		ws := x.pending[q.ticketID]
		keep := ws[:0]
		for _, w := range ws {
			if now.Sub(w.receivedAt) > x.wait {
				unattributed++
			} else {
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			delete(x.pending, q.ticketID)
		} else {
			x.pending[q.ticketID] = keep
		}
	}
	x.waitingCount -= unattributed
	for len(x.ticketQueue) > 0 && now.Sub(x.ticketQueue[0].at) > x.retention {
		q := x.ticketQueue[0]
		x.ticketQueue = x.ticketQueue[1:]
		if t, ok := x.tickets[q.ticketID]; ok && now.Sub(t.lastSeen) > x.retention {
			delete(x.tickets, q.ticketID)
		}
	}
	return unattributed
}

// Len reports the tickets known and the surveys waiting, for metrics.
func (x *Index[S]) Len() (tickets, waitingSurveys int) { return len(x.tickets), x.waitingCount }

// Snapshot is the content of an Index, for saving it: columns of flat slices, so that
// encoding and decoding run in tight loops and a restore allocates per column, not per
// ticket. Instants are Unix nanoseconds: the index only compares them.
type Snapshot[S any] struct {
	// The known tickets, sorted by id.
	TicketIDs []string
	Dims      []Dims
	LastSeen  []int64
	// The surveys waiting for their ticket; those of one ticket in their order.
	Pending []PendingSnapshot[S]
	// The expiry queues, kept as they are so that a restored index expires exactly what
	// the saved one would have.
	TicketQueue, PendingQueue Queue
}

// PendingSnapshot is one survey waiting for its ticket.
type PendingSnapshot[S any] struct {
	TicketID   string
	Survey     S
	ReceivedAt time.Time
}

// Queue is an expiry queue in order: ticket ids and instants.
type Queue struct {
	IDs []string
	At  []int64
}

// Snapshot returns the index's content, tickets and waiting surveys in ticket order
// (equal indexes give equal snapshots).
func (x *Index[S]) Snapshot() Snapshot[S] {
	ids := slices.Sorted(maps.Keys(x.tickets))
	out := Snapshot[S]{TicketIDs: ids, Dims: make([]Dims, len(ids)), LastSeen: make([]int64, len(ids)),
		TicketQueue: queueSnapshot(x.ticketQueue), PendingQueue: queueSnapshot(x.pendingQueue)}
	for i, id := range ids {
		t := x.tickets[id]
		out.Dims[i], out.LastSeen[i] = t.dims, t.lastSeen.UnixNano()
	}
	for _, id := range slices.Sorted(maps.Keys(x.pending)) {
		for _, w := range x.pending[id] {
			out.Pending = append(out.Pending, PendingSnapshot[S]{id, w.survey, w.receivedAt})
		}
	}
	return out
}

func queueSnapshot(q []queued) Queue {
	out := Queue{IDs: make([]string, len(q)), At: make([]int64, len(q))}
	for i, e := range q {
		out.IDs[i], out.At[i] = e.ticketID, e.at.UnixNano()
	}
	return out
}

// Restore replaces the index's content with a snapshot's. Surveys waiting for one ticket
// keep their order.
func (x *Index[S]) Restore(snap Snapshot[S]) error {
	if len(snap.Dims) != len(snap.TicketIDs) || len(snap.LastSeen) != len(snap.TicketIDs) {
		return fmt.Errorf("attribution index: %d tickets with %d dimensions and %d instants", len(snap.TicketIDs), len(snap.Dims), len(snap.LastSeen))
	}
	x.tickets = make(map[string]ticket, len(snap.TicketIDs))
	for i, id := range snap.TicketIDs {
		x.tickets[id] = ticket{dims: snap.Dims[i], lastSeen: instant(snap.LastSeen[i])}
	}
	x.pending = make(map[string][]waiting[S])
	x.waitingCount = len(snap.Pending)
	for _, p := range snap.Pending {
		x.pending[p.TicketID] = append(x.pending[p.TicketID], waiting[S]{p.Survey, p.ReceivedAt})
	}
	var err error
	if x.ticketQueue, err = restoreQueue(snap.TicketQueue); err != nil {
		return fmt.Errorf("attribution index: ticket queue: %w", err)
	}
	if x.pendingQueue, err = restoreQueue(snap.PendingQueue); err != nil {
		return fmt.Errorf("attribution index: waiting queue: %w", err)
	}
	return nil
}

func restoreQueue(q Queue) ([]queued, error) {
	if len(q.IDs) != len(q.At) {
		return nil, fmt.Errorf("%d ids with %d instants", len(q.IDs), len(q.At))
	}
	out := make([]queued, len(q.IDs))
	for i, id := range q.IDs {
		out[i] = queued{id, instant(q.At[i])}
	}
	return out, nil
}

func instant(unixNano int64) time.Time { return time.Unix(0, unixNano).UTC() }
