package admit

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// budget is a number of requests served at once; beyond it a request is answered 429.
// With perClaim, one claimed source holds at most that many of them, so that a flood
// naming one source leaves room for the others.
type budget struct {
	slots    chan struct{}
	perClaim int
	busyMsg  string
	inFlight prometheus.Gauge
	busy     prometheus.Counter

	mu     sync.Mutex
	claims map[string]int
}

func newBudget(n, perClaim int, inFlight prometheus.Gauge, busy prometheus.Counter, busyMsg string) *budget {
	return &budget{slots: make(chan struct{}, n), perClaim: perClaim, busyMsg: busyMsg,
		inFlight: inFlight, busy: busy, claims: map[string]int{}}
}

// acquire takes a slot for a request claiming claim, or refuses with 429. release gives
// it back.
func (b *budget) acquire(claim string) (release func(), ref *Refusal) {
	if b.perClaim > 0 {
		b.mu.Lock()
		if b.claims[claim] >= b.perClaim {
			b.mu.Unlock()
			return nil, b.refuse(fmt.Sprintf("%d signed requests of %q are being read already: send again later", b.perClaim, claim))
		}
		b.claims[claim]++
		b.mu.Unlock()
	}
	unclaim := func() {
		if b.perClaim > 0 {
			b.mu.Lock()
			if b.claims[claim]--; b.claims[claim] == 0 {
				delete(b.claims, claim)
			}
			b.mu.Unlock()
		}
	}
	select {
	case b.slots <- struct{}{}:
	default:
		unclaim()
		return nil, b.refuse(fmt.Sprintf(b.busyMsg, cap(b.slots)))
	}
	b.inFlight.Inc()
	return func() {
		<-b.slots
		b.inFlight.Dec()
		unclaim()
	}, nil
}

func (b *budget) refuse(msg string) *Refusal {
	b.busy.Inc()
	return &Refusal{Code: http.StatusTooManyRequests, Message: msg, Header: http.Header{"Retry-After": {RetryAfterBusy}}}
}
