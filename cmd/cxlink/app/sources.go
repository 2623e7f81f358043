package app

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/adapters/delighted"
	"github.com/cxlink/cxlink/ingest/adapters/freshdesk"
	"github.com/cxlink/cxlink/ingest/adapters/intercom"
	"github.com/cxlink/cxlink/ingest/adapters/zendesk"
	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/stream"
)

// SourcesConfig configures the vendor webhooks served on POST /v1/sources/{name}; a
// vendor is served when its secret is set.
type SourcesConfig struct {
	Zendesk   zendesk.Config
	Freshdesk freshdesk.Config
	Intercom  intercom.Config
	Delighted delighted.Config
	// Teams maps vendors' group ids to cxlink team names, e.g.
	// "zendesk:360001234=billing,intercom:5017691=alpha".
	Teams adapters.Teams `env:"CXLINK_SOURCE_TEAMS" envKeyValSeparator:"="`
}

// DefaultSourcesConfig is the sources' configuration when nothing is set.
func DefaultSourcesConfig() SourcesConfig {
	return SourcesConfig{Zendesk: zendesk.DefaultConfig(), Delighted: delighted.DefaultConfig()}
}

// Validate reports every problem of the configuration.
func (c SourcesConfig) Validate() error {
	errs := []error{c.Zendesk.Validate(), c.Freshdesk.Validate(), c.Intercom.Validate(), c.Delighted.Validate()}
	for k, v := range c.Teams {
		vendor, id, ok := strings.Cut(k, ":")
		if !ok || id == "" || !slices.Contains([]string{zendesk.Name, freshdesk.Name, intercom.Name}, vendor) || v == "" {
			errs = append(errs, fmt.Errorf("CXLINK_SOURCE_TEAMS: %q=%q is not vendor:group-id=team with vendor zendesk, freshdesk or intercom", k, v))
		}
	}
	return errors.Join(errs...)
}

// adapters returns the configured vendors, and the variable that enables each other one.
func (c SourcesConfig) adapters() ([]adapters.Adapter, map[string]string) {
	var on []adapters.Adapter
	off := map[string]string{}
	if c.Zendesk.SigningSecret.Set() {
		on = append(on, zendesk.New(c.Zendesk, c.Teams))
	} else {
		off[zendesk.Name] = "CXLINK_ZENDESK_SIGNING_SECRET"
	}
	if c.Freshdesk.Secret.Set() {
		on = append(on, freshdesk.New(c.Freshdesk, c.Teams))
	} else {
		off[freshdesk.Name] = "CXLINK_FRESHDESK_SECRET"
	}
	if c.Intercom.ClientSecret.Set() {
		on = append(on, intercom.New(c.Intercom, c.Teams))
	} else {
		off[intercom.Name] = "CXLINK_INTERCOM_CLIENT_SECRET"
	}
	if c.Delighted.APIKey.Set() {
		on = append(on, delighted.New(c.Delighted, c.Teams))
	} else {
		off[delighted.Name] = "CXLINK_DELIGHTED_API_KEY"
	}
	return on, off
}

// publisher is the one stream publisher of this process, shared by POST /v1/events and
// the vendor webhooks: both publish the same way, and its metrics are registered once.
func (r *roles) publisher(js jetstream.JetStream, defs *definitions) *stream.Publisher {
	if r.pub == nil {
		batch := r.cfg.Stream.PublishBatch
		if r.noAtomic {
			batch = 1
		}
		r.pub = stream.NewPublisher(js, defs.info.Partitions, r.reg, stream.AtomicBatches(batch))
	}
	return r.pub
}

// sourceRoutes mounts POST /v1/sources/{name} next to the ingest API, on its admission
// path: on are the configured vendors, off the variables that would enable the others.
func (r *roles) sourceRoutes(adm *admit.Admission, on []adapters.Adapter, off map[string]string) (func(*http.ServeMux), error) {
	h, err := adapters.New(adapters.Options{
		Adapters:   on,
		Disabled:   off,
		Admission:  adm,
		Logger:     r.logger.With("component", "sources"),
		Registerer: r.reg,
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(on))
	for i, a := range on {
		names[i] = a.Name()
	}
	r.logger.Info("webhook sources", "enabled", strings.Join(names, ","))
	return h.Routes, nil
}
