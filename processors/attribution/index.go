// Package attribution gives surveys the category, team, agent and channel of the ticket
// they rate. Helpdesks often send a rating with nothing but its ticket id, sometimes
// before the ticket's own events: such surveys wait, for a bounded time, for the ticket.
package attribution

import "time"

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
	tickets         map[string]*ticket
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
		tickets:   make(map[string]*ticket),
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
	if t == nil {
		t = &ticket{}
		x.tickets[ticketID] = t
	}
	merged := d
	merged.Merge(t.dims)
	t.dims, t.lastSeen = merged, receivedAt
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
		if t := x.tickets[q.ticketID]; t != nil && now.Sub(t.lastSeen) > x.retention {
			delete(x.tickets, q.ticketID)
		}
	}
	return unattributed
}

// Len reports the tickets known and the surveys waiting, for metrics.
func (x *Index[S]) Len() (tickets, waitingSurveys int) { return len(x.tickets), x.waitingCount }

// Snapshot is the content of an Index, for saving it.
type Snapshot[S any] struct {
	Tickets      []TicketSnapshot
	Pending      []PendingSnapshot[S]
	TicketQueue  []QueueEntry
	PendingQueue []QueueEntry
}

// TicketSnapshot is one known ticket.
type TicketSnapshot struct {
	ID       string
	Dims     Dims
	LastSeen time.Time
}

// PendingSnapshot is one survey waiting for its ticket.
type PendingSnapshot[S any] struct {
	TicketID   string
	Survey     S
	ReceivedAt time.Time
}

// QueueEntry is one entry of the expiry queues, kept as it is so that a restored index
// expires exactly what the saved one would have.
type QueueEntry struct {
	TicketID string
	At       time.Time
}

// Snapshot returns the index's content.
func (x *Index[S]) Snapshot() Snapshot[S] {
	out := Snapshot[S]{Tickets: make([]TicketSnapshot, 0, len(x.tickets))}
	for id, t := range x.tickets {
		out.Tickets = append(out.Tickets, TicketSnapshot{id, t.dims, t.lastSeen})
	}
	for id, ws := range x.pending {
		for _, w := range ws {
			out.Pending = append(out.Pending, PendingSnapshot[S]{id, w.survey, w.receivedAt})
		}
	}
	for _, q := range x.ticketQueue {
		out.TicketQueue = append(out.TicketQueue, QueueEntry{q.ticketID, q.at})
	}
	for _, q := range x.pendingQueue {
		out.PendingQueue = append(out.PendingQueue, QueueEntry{q.ticketID, q.at})
	}
	return out
}

// Restore replaces the index's content with a snapshot's. Surveys waiting for one ticket
// keep their order.
func (x *Index[S]) Restore(snap Snapshot[S]) {
	x.tickets = make(map[string]*ticket, len(snap.Tickets))
	for _, t := range snap.Tickets {
		x.tickets[t.ID] = &ticket{dims: t.Dims, lastSeen: t.LastSeen}
	}
	x.pending = make(map[string][]waiting[S])
	x.waitingCount = len(snap.Pending)
	for _, p := range snap.Pending {
		x.pending[p.TicketID] = append(x.pending[p.TicketID], waiting[S]{p.Survey, p.ReceivedAt})
	}
	x.ticketQueue = make([]queued, len(snap.TicketQueue))
	for i, q := range snap.TicketQueue {
		x.ticketQueue[i] = queued{q.TicketID, q.At}
	}
	x.pendingQueue = make([]queued, len(snap.PendingQueue))
	for i, q := range snap.PendingQueue {
		x.pendingQueue[i] = queued{q.TicketID, q.At}
	}
}
