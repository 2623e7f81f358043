package clickhouse

import (
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

func parse(t *testing.T, environ map[string]string) Config {
	t.Helper()
	cfg := DefaultConfig()
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	got := parse(t, map[string]string{})
	want := Config{Addr: "127.0.0.1:9000", Database: "cxlink", User: "default", DialTimeout: 5 * time.Second,
		InsertTimeout: 30 * time.Second}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults are invalid: %v", err)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	got := parse(t, map[string]string{
		"CLICKHOUSE_ADDR": "ch.internal:9440", "CLICKHOUSE_DATABASE": "cx_prod", "CLICKHOUSE_USER": "writer",
		"CLICKHOUSE_PASSWORD": "s3cret", "CLICKHOUSE_DIAL_TIMEOUT": "2s", "CLICKHOUSE_INSERT_TIMEOUT": "1m",
	})
	want := Config{Addr: "ch.internal:9440", Database: "cx_prod", User: "writer", Password: "s3cret",
		DialTimeout: 2 * time.Second, InsertTimeout: time.Minute}
	if got != want {
		t.Errorf("config = %+v, want %+v", got, want)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := parse(t, map[string]string{
		"CLICKHOUSE_ADDR": "localhost", "CLICKHOUSE_DATABASE": "cx-link; DROP",
		"CLICKHOUSE_DIAL_TIMEOUT": "0s", "CLICKHOUSE_INSERT_TIMEOUT": "-1s",
	})
	cfg.User = "" // the environment cannot empty it: envDefault also fills empty variables
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CLICKHOUSE_ADDR", "CLICKHOUSE_DATABASE", "CLICKHOUSE_USER",
		"CLICKHOUSE_DIAL_TIMEOUT", "CLICKHOUSE_INSERT_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.1:70000", ":9000", "127.0.0.1:x"} {
		cfg := parse(t, map[string]string{"CLICKHOUSE_ADDR": addr})
		if cfg.Validate() == nil {
			t.Errorf("address %q accepted", addr)
		}
	}
	for _, addr := range []string{"[::1]:9000", "clickhouse:9000"} {
		cfg := parse(t, map[string]string{"CLICKHOUSE_ADDR": addr})
		if err := cfg.Validate(); err != nil {
			t.Errorf("address %q: %v", addr, err)
		}
	}
}

func TestConfigCluster(t *testing.T) {
	if err := parse(t, map[string]string{"CLICKHOUSE_CLUSTER": "cxlink_prod"}).Validate(); err != nil {
		t.Errorf("cluster cxlink_prod: %v", err)
	}
	// Pasted into ON CLUSTER and Distributed(…) unquoted.
	for _, name := range []string{"prod-1", "a b", "x;DROP"} {
		err := parse(t, map[string]string{"CLICKHOUSE_CLUSTER": name}).Validate()
		if err == nil || !strings.Contains(err.Error(), "CLICKHOUSE_CLUSTER") {
			t.Errorf("cluster %q: %v, want an error naming CLICKHOUSE_CLUSTER", name, err)
		}
	}
}
