package app

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// envVar is one variable of the configuration: its name and envDefault tag.
type envVar struct {
	name, def  string
	hasDefault bool
}

// envVars lists the env tags of a config struct and its nested structs.
func envVars(t reflect.Type) []envVar {
	var out []envVar
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := f.Tag.Lookup("env"); ok && name != "-" {
			def, has := f.Tag.Lookup("envDefault")
			out = append(out, envVar{strings.Split(name, ",")[0], def, has})
		} else if f.Type.Kind() == reflect.Struct {
			out = append(out, envVars(f.Type)...)
		}
	}
	return out
}

func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := envVars(reflect.TypeOf(Config{}))
	if len(vars) < 25 {
		t.Fatalf("found only %v", vars)
	}
	for _, v := range vars {
		row := "| `" + v.name + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md's configuration table lacks %s", v.name)
			continue
		}
		// A non-empty default is shown as it is.
		if v.hasDefault && v.def != "" && !strings.Contains(string(readme), row+" `"+v.def+"` |") {
			t.Errorf("README.md's configuration table does not give %s's default `%s`", v.name, v.def)
		}
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(map[string]string{
		"CXLINK_PARTITIONS":       "2000",
		"CXLINK_WINDOWS":          "1h,90s",
		"CLICKHOUSE_ADDR":         "nohost",
		"NATS_URL":                "::",
		"CXLINK_LOG_LEVEL":        "loud",
		"CXLINK_READ_AHEAD":       "0",
		"CXLINK_ROLLUP_STEP":      "1m",
		"CXLINK_ALLOWED_LATENESS": "-1m",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CXLINK_PARTITIONS", "CXLINK_WINDOWS", "CLICKHOUSE_ADDR", "NATS_URL", "CXLINK_LOG_LEVEL", "CXLINK_READ_AHEAD", "CXLINK_ALLOWED_LATENESS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestLoadConfigDefaultsAreValid(t *testing.T) {
	cfg, err := LoadConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	// The stream's shape is the stream's own unless set: roles read it from there.
	if cfg.Stream.Partitions != 0 || cfg.ClickHouse.Database != "cxlink" || cfg.NATSURL != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadConfigSources(t *testing.T) {
	cfg, err := LoadConfig(map[string]string{
		"CXLINK_ZENDESK_SIGNING_SECRET": "zd-secret",
		"CXLINK_SOURCE_TEAMS":           "zendesk:360001=billing,intercom:5017691=alpha",
		"CXLINK_DELIGHTED_API_KEY":      "dl-key",
		"CXLINK_DELIGHTED_CES_SCALE":    "5",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sources.Zendesk.SigningSecret != "zd-secret" || cfg.Sources.Teams["zendesk:360001"] != "billing" ||
		cfg.Sources.Delighted.CESScale != 5 || cfg.Sources.Delighted.Properties["ticket_id"] != "Ticket ID" {
		t.Fatalf("sources: %+v %v", cfg.Sources, cfg.Sources.Delighted.Properties)
	}
	on, off := cfg.Sources.adapters()
	if len(on) != 2 || off["freshdesk"] != "CXLINK_FRESHDESK_SECRET" || off["intercom"] == "" {
		t.Fatalf("enabled %d, disabled %v", len(on), off)
	}
	_, err = LoadConfig(map[string]string{
		"CXLINK_SOURCE_TEAMS":        "salesforce:1=x",
		"CXLINK_DELIGHTED_CES_SCALE": "10",
		"CXLINK_FRESHDESK_SECRET":    "short",
	})
	for _, want := range []string{"CXLINK_SOURCE_TEAMS", "CXLINK_DELIGHTED_CES_SCALE", "CXLINK_FRESHDESK_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestRetentionMustCoverWhatIsRead(t *testing.T) {
	_, err := LoadConfig(map[string]string{"CXLINK_RETENTION_ROLLUPS": "7d", "CXLINK_RETENTION_RAW": "30d"})
	for _, want := range []string{"CXLINK_RETENTION_ROLLUPS: 7d is shorter than the longest window", "CXLINK_RETENTION_RAW: 30d is shorter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if _, err := LoadConfig(map[string]string{"CXLINK_RETENTION_ROLLUPS": "0", "CXLINK_RETENTION_RAW": "0", "CXLINK_RETENTION_RESULTS": "0"}); err != nil {
		t.Errorf("keeping everything forever: %v", err)
	}
}
