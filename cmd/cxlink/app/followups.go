package app

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// processSink is where the processors' batches go: ClickHouse, and, when answers open
// follow-up cases, the follow-up stream first (docs/followups.md).
func (r *roles) processSink(js jetstream.JetStream, defs *definitions, ch *clickhouse.Client) pipeline.Sink {
	if defs.followUps == nil {
		return ch
	}
	return followup.OpeningSink{Next: ch, Cases: followup.NewPublisher(js)}
}

// followUpRoutes mounts the follow-up API (read, acknowledge, close) next to the
// ingest API, with the same credentials (authn nil: none); nothing when follow-ups are
// off.
func (r *roles) followUpRoutes(js jetstream.JetStream, defs *definitions, authn *auth.Authenticator) func(*http.ServeMux) {
	if defs.followUps == nil {
		return func(*http.ServeMux) {}
	}
	return followup.NewAPI(r.followUps(), js, defs.followUps, authn).Routes
}

// followUpTask runs the follow-up stage while this process holds its lease; otherwise
// it stands by.
func (r *roles) followUpTask(defs *definitions, ch *clickhouse.Client, leases *lease.Manager) func(context.Context) error {
	stage := followup.NewStage(followup.StageOptions{
		Settings: r.followUps(), Stream: defs.followUps, Store: ch, History: ch,
		Logger: r.logger, Registerer: r.reg,
	})
	return func(ctx context.Context) error {
		return leases.Singleton(ctx, "followups", func(ctx context.Context, _ *lease.Lease) error {
			return stage.Run(ctx)
		})
	}
}
