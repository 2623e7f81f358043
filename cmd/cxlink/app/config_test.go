package app

import (
	"encoding"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envVar is one variable of the configuration: its name and its default as text.
type envVar struct {
	name, def string
}

// envVars lists the variables of a config value and of its nested structs, each with its
// default: the envDefault tag where a field has one, else the value in v (the defaults
// are the values of DefaultConfig).
func envVars(t *testing.T, v reflect.Value) []envVar {
	var out []envVar
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if name, ok := f.Tag.Lookup("env"); ok && name != "-" {
			def, has := f.Tag.Lookup("envDefault")
			if !has {
				def = defaultText(t, v.Field(i))
			}
			out = append(out, envVar{strings.Split(name, ",")[0], def})
		} else if f.Type.Kind() == reflect.Struct {
			out = append(out, envVars(t, v.Field(i))...)
		}
	}
	return out
}

// defaultText is a default as README shows it: a duration as 5m or 1h, not 5m0s.
func defaultText(t *testing.T, v reflect.Value) string {
	if l, ok := v.Interface().(slog.Level); ok {
		return strings.ToLower(l.String())
	}
	if v.IsZero() {
		return ""
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if d, ok := v.Interface().(time.Duration); ok {
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	if m, ok := v.Interface().(map[string]string); ok {
		// As the variable is written (envKeyValSeparator "="), keys in order.
		var pairs []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			pairs = append(pairs, k+"="+m[k])
		}
		return strings.Join(pairs, ",")
	}
	return fmt.Sprint(v.Interface())
}

func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := envVars(t, reflect.ValueOf(DefaultConfig()))
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
		if v.def != "" && !strings.Contains(string(readme), row+" `"+v.def+"` |") {
			t.Errorf("README.md's configuration table does not give %s's default `%s`", v.name, v.def)
		}
	}
	for _, r := range renames {
		if !strings.Contains(string(readme), "| `"+r.Old+"` | | old name of `"+r.New+"`") {
			t.Errorf("README.md's configuration table does not say that %s is the old name of %s", r.Old, r.New)
		}
	}
}

func TestDefaultTextLooksLikeTheReadme(t *testing.T) {
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", time.Hour: "1h", 336 * time.Hour: "336h",
		500 * time.Millisecond: "500ms", 10 * time.Second: "10s", 90 * time.Minute: "1h30m", 0: ""} {
		if got := defaultText(t, reflect.ValueOf(d)); got != want {
			t.Errorf("%v shown as %q, want %q", d, got, want)
		}
	}
	if got := defaultText(t, reflect.ValueOf(slog.LevelInfo)); got != "info" {
		t.Errorf("log level shown as %q", got)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(map[string]string{
		"CXLINK_STREAM_PARTITIONS": "2000",
		"CXLINK_WINDOWS":           "1h,90s",
		"CLICKHOUSE_ADDR":          "nohost",
		"NATS_URL":                 "::",
		"CXLINK_LOG_LEVEL":         "loud",
		"CXLINK_READ_AHEAD":        "0",
		"CXLINK_ROLLUP_STEP":       "1m",
		"CXLINK_ALLOWED_LATENESS":  "-1m",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CXLINK_STREAM_PARTITIONS", "CXLINK_WINDOWS", "CLICKHOUSE_ADDR", "NATS_URL", "CXLINK_LOG_LEVEL", "CXLINK_READ_AHEAD", "CXLINK_ALLOWED_LATENESS"} {
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

// A renamed variable still works by its old name, which Run warns of; the new name wins
// over the old.
func TestLoadConfigReadsOldNames(t *testing.T) {
	cfg, err := LoadConfig(map[string]string{"CXLINK_LINKAGE_PERIOD": "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pulses.Period.Name != "10m" || len(cfg.Renamed) != 1 || cfg.Renamed[0].New != "CXLINK_PULSE_PERIOD" {
		t.Fatalf("period %+v, renamed %v", cfg.Pulses.Period, cfg.Renamed)
	}
	cfg, err = LoadConfig(map[string]string{"CXLINK_LINKAGE_PERIOD": "10m", "CXLINK_PULSE_PERIOD": "1d"})
	if err != nil || cfg.Pulses.Period.Name != "1d" {
		t.Fatalf("period %+v, %v", cfg.Pulses.Period, err)
	}
	var logs strings.Builder
	err = Run(t.Context(), []string{"migrate"}, Options{Environ: map[string]string{"CXLINK_LINKAGE_PERIOD": "10m",
		"CLICKHOUSE_ADDR": "127.0.0.1:1", "CLICKHOUSE_DIAL_TIMEOUT": "100ms"}, Stderr: &logs})
	if err == nil || !strings.Contains(logs.String(), "old=CXLINK_LINKAGE_PERIOD new=CXLINK_PULSE_PERIOD") {
		t.Errorf("no warning of the old name (err %v):\n%s", err, logs.String())
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
