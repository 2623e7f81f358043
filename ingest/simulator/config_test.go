package simulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

func TestParseDrift(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Drift
	}{
		{"category=plan_correction,after=2m,for=10m,ces=-2",
			Drift{Category: "plan_correction", After: 2 * time.Minute, For: 10 * time.Minute, CESDelta: -2}},
		{"team=alpha", Drift{Team: "alpha", CESDelta: -2}},
		{" category = login_problem , team=bravo, after=-1h, ces=-1.5 ",
			Drift{Category: "login_problem", Team: "bravo", After: -time.Hour, CESDelta: -1.5}},
		{"category=refund_request,ces=+1", Drift{Category: "refund_request", CESDelta: 1}},
		{"team=bravo,after=5m,for=30m,engagement=-1.5",
			Drift{Team: "bravo", After: 5 * time.Minute, For: 30 * time.Minute, EngagementDelta: -1.5}},
		{"team=bravo,ces=-1,engagement=-1", Drift{Team: "bravo", CESDelta: -1, EngagementDelta: -1}},
	} {
		got, err := ParseDrift(tc.in)
		if err != nil {
			t.Errorf("ParseDrift(%q): %v", tc.in, err)
			continue
		}
		if *got != tc.want {
			t.Errorf("ParseDrift(%q) = %+v; want %+v", tc.in, *got, tc.want)
		}
		// String gives it back.
		again, err := ParseDrift(got.String())
		if err != nil || *again != *got {
			t.Errorf("ParseDrift(%q) = %+v, %v; want %+v", got.String(), again, err, *got)
		}
	}
}

func TestParseDriftErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"category=plan_correction,after=2x", `after: "2x" is not a duration`},
		{"category=plan_correction,for=soon", `for: "soon" is not a duration`},
		{"category=plan_correction,for=-1m", "for: -1m0s must not be negative"},
		{"category=plan_correction,ces=abc", `ces: "abc" is not a number`},
		{"category=plan_correction,ces=0", "nothing drifts"},
		{"category=plan_correction,engagement=-1", "engagement: set team=…"},
		{"team=bravo,engagement=-5", "engagement: -5 must be"},
		{"team=bravo,engagement=x", `engagement: "x" is not a number`},
		{"category=plan_correction,ces=-9", "ces: -9 must be"},
		{"category=plan_corection", `category "plan_corection" is not simulated`},
		{"after=2m,ces=-2", "set category=… or team=…"},
		{"category=plan_correction,speed=3", `unknown key "speed"`},
		{"category=plan_correction,after", `"after" is not key=value`},
		{"category=plan_correction,,ces=-1", `"" is not key=value`},
		{"category=plan_correction,category=refund_request", "category is given twice"},
	} {
		_, err := ParseDrift(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDrift(%q) = %v; want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the default config is invalid: %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: "127.0.0.1:8080"}, "target"},
		{Config{Rate: -1}, "rate -1"},
		{Config{Teams: -2}, "teams -2"},
		{Config{AgentsPerTeam: 5000}, "agents per team 5000"},
		{Config{PulseEvery: time.Millisecond}, "pulse period 1ms"},
		{Config{History: -time.Hour}, "history -1h0m0s"},
		{Config{BatchSize: 20000}, "batch size 20000"},
		{Config{Teams: 3, Drift: &Drift{Team: "foxtrot", CESDelta: -1}}, `team "foxtrot" is not one of the 3 simulated teams (alpha, bravo, charlie)`},
		{Config{Drift: &Drift{CESDelta: -1}}, "set category"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v; want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Prefix: "CXLINK_SIM_", Environment: map[string]string{
		"CXLINK_SIM_TARGET":      "http://ingest:8080",
		"CXLINK_SIM_RATE":        "50",
		"CXLINK_SIM_PULSE_EVERY": "10m",
		"CXLINK_SIM_HISTORY":     "24h",
		"CXLINK_SIM_DRIFT":       "category=plan_correction,after=2m,ces=-2",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Target: "http://ingest:8080", Rate: 50, PulseEvery: 10 * time.Minute, History: 24 * time.Hour,
		Drift: &Drift{Category: "plan_correction", After: 2 * time.Minute, CESDelta: -2}}
	if cfg.Drift == nil || *cfg.Drift != *want.Drift {
		t.Fatalf("drift %+v; want %+v", cfg.Drift, want.Drift)
	}
	cfg.Drift, want.Drift = nil, nil
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("config %+v; want %+v", cfg, want)
	}
}

func TestTeamNames(t *testing.T) {
	names := TeamNames(14)
	if names[0] != "alpha" || names[11] != "lima" || names[13] != "team-14" {
		t.Errorf("TeamNames(14) = %v", names)
	}
}

func ExampleParseDrift() {
	d, err := ParseDrift("category=plan_correction,after=2m,for=10m,ces=-2")
	fmt.Println(d, err)
	_, err = ParseDrift("category=plan_correction,after=soon")
	fmt.Println(err)
	// Output:
	// category=plan_correction,after=2m0s,for=10m0s,ces=-2 <nil>
	// drift: after: "soon" is not a duration (e.g. 90s, 2m, 1h30m)
}
