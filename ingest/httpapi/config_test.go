package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

func TestConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	want := Config{Addr: ":8080", MaxBodyBytes: 8 << 20, MaxBatchEvents: 10000, MaxFuture: 5 * time.Minute, PublishTimeout: 10 * time.Second, MaxConcurrentRequests: 32, MaxUnverifiedRequests: 16, UnverifiedReadTimeout: 5 * time.Second, MaxLabelValues: 5000}
	if cfg != want {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{"CXLINK_MAX_FUTURE": "90s", "CXLINK_HTTP_ADDR": "127.0.0.1:9000"}})
	if err != nil || cfg.MaxFuture != 90*time.Second || cfg.Addr != "127.0.0.1:9000" || cfg.MaxBatchEvents != 10000 {
		t.Fatalf("%+v %v", cfg, err)
	}
}

func TestConfigValidateReportsEverything(t *testing.T) {
	err := Config{Addr: "nohost", MaxBodyBytes: 10, MaxBatchEvents: 0, MaxFuture: -time.Second, PublishTimeout: time.Hour}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"CXLINK_HTTP_ADDR", "CXLINK_MAX_BODY_BYTES", "CXLINK_MAX_BATCH_EVENTS", "CXLINK_MAX_FUTURE", "CXLINK_PUBLISH_TIMEOUT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%v does not mention %s", err, name)
		}
	}
	if err := (Config{Addr: ":http", MaxBodyBytes: 1 << 20, MaxBatchEvents: 1, PublishTimeout: time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("named port: %v", err)
	}
}
